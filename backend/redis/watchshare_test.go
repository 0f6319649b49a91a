package redis

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// recorder keeps the reports of one watch and checks the watch contract
// as they come: one at a time, the first Live or Lost, keys and flushes
// only while live, none after stop returned.
type recorder struct {
	t       *testing.T
	name    string
	mu      sync.Mutex
	busy    bool
	live    bool
	stopped bool
	kinds   []backend.ChangeKind
	keys    []string
	changed chan struct{}
}

func newRecorder(t *testing.T, name string) *recorder {
	return &recorder{t: t, name: name, changed: make(chan struct{}, 1)}
}

func (r *recorder) report(ch backend.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.busy:
		r.t.Errorf("%s: a report while another runs", r.name)
	case r.stopped:
		r.t.Errorf("%s: %v after stop returned", r.name, ch.Kind)
	case len(r.kinds) == 0 && ch.Kind != backend.ChangeLive && ch.Kind != backend.ChangeLost:
		r.t.Errorf("%s: first report %v; want ChangeLive or ChangeLost", r.name, ch.Kind)
	case !r.live && (ch.Kind == backend.ChangeKeys || ch.Kind == backend.ChangeAll || ch.Kind == backend.ChangeSynced):
		r.t.Errorf("%s: %v while not live", r.name, ch.Kind)
	}
	r.busy = true
	defer func() { r.busy = false }()
	if ch.Kind == backend.ChangeSynced {
		return
	}
	r.kinds = append(r.kinds, ch.Kind)
	r.keys = append(r.keys, ch.Keys...)
	switch ch.Kind {
	case backend.ChangeLive:
		r.live = true
	case backend.ChangeLost:
		r.live = false
	}
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// await waits until cond holds on the reports, failing after 10 s.
func (r *recorder) await(what string, cond func(kinds []backend.ChangeKind, keys []string) bool) {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok := cond(r.kinds, r.keys)
		kinds, keys := slices.Clone(r.kinds), slices.Clone(r.keys)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			r.t.Fatalf("%s: not %s within 10s: reports %v, keys %q", r.name, what, kinds, keys)
		}
	}
}

func (r *recorder) awaitKind(k backend.ChangeKind, n int) {
	r.t.Helper()
	r.await(fmt.Sprintf("%d× %v", n, k), func(kinds []backend.ChangeKind, _ []string) bool {
		c := 0
		for _, x := range kinds {
			if x == k {
				c++
			}
		}
		return c >= n
	})
}

func (r *recorder) awaitKey(key string) {
	r.t.Helper()
	r.await("reported "+key, func(_ []backend.ChangeKind, keys []string) bool { return slices.Contains(keys, key) })
}

func (r *recorder) stop(stop func()) {
	stop()
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

func (r *recorder) sawKey(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.keys, key)
}

// TestWatchSharedConnection: watches of one Backend share one tracking
// connection, and each keeps the watch contract: a watch that starts while
// the connection is live is reported live once its prefix is tracked (a
// write right after is reported); one that stops ends its own reports
// only; a wider prefix makes the connection anew (the others see a loss,
// then live again); a broken connection is reported to all; the last stop
// closes it.
func TestWatchSharedConnection(t *testing.T) {
	addr := os.Getenv("KV_REDIS_ADDR")
	if addr == "" {
		t.Skip("KV_REDIS_ADDR is not set")
	}
	ctx := context.Background()
	name := fmt.Sprintf("kvwshare%d", os.Getpid())
	c := goredis.NewClient(&goredis.Options{Addr: addr, ClientName: name, ContextTimeoutEnabled: true})
	defer c.Close()
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ns := func(x string) string { return name + x + ":" }
	set := func(key string) {
		t.Helper()
		if err := c.Set(ctx, key, "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	defer c.Del(ctx, ns("a")+"k", ns("b")+"k", ns("c")+"k", ns("b")+"k2", ns("b")+"k3", ns("c")+"k2")
	trackers := func() int {
		list, err := c.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(trackingIDs(list, name))
	}

	watch := func(r *recorder, prefix string) func() {
		t.Helper()
		stop, err := b.watch(ctx, prefix, r.report)
		if err != nil {
			t.Fatal(err)
		}
		return stop
	}
	a, bb := newRecorder(t, "A"), newRecorder(t, "B")
	stopA, stopB := watch(a, ns("a")), watch(bb, ns("b"))
	a.awaitKind(backend.ChangeLive, 1)
	bb.awaitKind(backend.ChangeLive, 1)
	set(ns("a") + "k")
	set(ns("b") + "k")
	a.awaitKey(ns("a") + "k")
	bb.awaitKey(ns("b") + "k")
	if a.sawKey(ns("b")+"k") || bb.sawKey(ns("a")+"k") {
		t.Errorf("a watch was reported a key of another prefix")
	}

	// A late watch: live only once its prefix is tracked, so a write made
	// right after its ChangeLive is reported.
	cr := newRecorder(t, "C")
	stopC := watch(cr, ns("c"))
	cr.awaitKind(backend.ChangeLive, 1)
	set(ns("c") + "k")
	cr.awaitKey(ns("c") + "k")
	if got := trackers(); got != 1 {
		t.Errorf("tracking connections of three watches = %d; want 1", got)
	}

	// A stops: B and C go on, A hears nothing more.
	a.stop(stopA)
	set(ns("a") + "k")
	set(ns("b") + "k2")
	bb.awaitKey(ns("b") + "k2")

	// A wider prefix (covering B's and C's): the connection is made anew.
	d := newRecorder(t, "D")
	stopD := watch(d, name)
	d.awaitKind(backend.ChangeLive, 1)
	bb.awaitKind(backend.ChangeLive, 2)
	cr.awaitKind(backend.ChangeLive, 2)
	set(ns("c") + "k2")
	cr.awaitKey(ns("c") + "k2")
	d.awaitKey(ns("c") + "k2")

	// A broken connection is reported to every watch, which goes live
	// again on the next.
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range trackingIDs(list, name) {
		if err := c.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*recorder{bb, cr, d} {
		r.awaitKind(backend.ChangeLost, 2-btoi(r == d))
	}
	bb.awaitKind(backend.ChangeLive, 3)
	set(ns("b") + "k3")
	bb.awaitKey(ns("b") + "k3")

	bb.stop(stopB)
	cr.stop(stopC)
	d.stop(stopD)
	deadline := time.Now().Add(10 * time.Second)
	for trackers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the tracking connection still open 10s after the last stop")
		}
		time.Sleep(time.Millisecond) // polling, bounded by the deadline
	}
}

// trackingIDs returns the ids of the connections named name with tracking
// on (flag t) in a reply of CLIENT LIST.
func trackingIDs(list, name string) []string {
	var ids []string
	for _, line := range strings.Split(list, "\n") {
		f := map[string]string{}
		for _, kv := range strings.Fields(line) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				f[k] = v
			}
		}
		if f["name"] == name && strings.Contains(f["flags"], "t") {
			ids = append(ids, f["id"])
		}
	}
	return ids
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestWatchEndsWithClose: closing the Backend ends its tracking connection
// and reports ChangeLost (backend.ErrClosed) to the watches still running,
// which hear nothing more. The old watch kept its connections until each
// watch was stopped.
func TestWatchEndsWithClose(t *testing.T) {
	addr := os.Getenv("KV_REDIS_ADDR")
	if addr == "" {
		t.Skip("KV_REDIS_ADDR is not set")
	}
	ctx := context.Background()
	name := fmt.Sprintf("kvwclose%d", os.Getpid())
	c := goredis.NewClient(&goredis.Options{Addr: addr, ClientName: name, ContextTimeoutEnabled: true})
	defer c.Close()
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder(t, "E")
	stop, err := b.watch(ctx, name+":", r.report)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	r.awaitKind(backend.ChangeLive, 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The ChangeLost may come just after Close returns, from a report of
	// the watch that was running when Close began.
	r.awaitKind(backend.ChangeLost, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := c.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(trackingIDs(list, name)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tracking connection still open 10s after Close")
		}
		time.Sleep(time.Millisecond) // polling, bounded by the deadline
	}
}
