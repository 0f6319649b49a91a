package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// The tests of this file review the shared tracking connection of
// 6f5786b. They run against KV_REDIS_ADDR and use only b.watch, so that
// they also run on the code before it (one connection per watch).

// reviewAddr returns the address of the shared Redis, or skips.
func reviewAddr(t *testing.T) string {
	addr := os.Getenv("KV_REDIS_ADDR")
	if addr == "" {
		t.Skip("KV_REDIS_ADDR is not set")
	}
	return addr
}

// reviewRec records the reports of one watch.
type reviewRec struct {
	mu      sync.Mutex
	kinds   []backend.ChangeKind
	keys    []string
	changed chan struct{}
}

func newReviewRec() *reviewRec { return &reviewRec{changed: make(chan struct{}, 1)} }

func (r *reviewRec) report(ch backend.Change) {
	r.mu.Lock()
	if ch.Kind != backend.ChangeSynced {
		r.kinds = append(r.kinds, ch.Kind)
	}
	r.keys = append(r.keys, ch.Keys...)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// wait reports whether cond holds on the reports within d.
func (r *reviewRec) wait(d time.Duration, cond func(kinds []backend.ChangeKind, keys []string) bool) bool {
	deadline := time.After(d)
	for {
		r.mu.Lock()
		ok := cond(r.kinds, r.keys)
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-r.changed:
		case <-deadline:
			return false
		}
	}
}

func (r *reviewRec) snapshot() ([]backend.ChangeKind, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.kinds), slices.Clone(r.keys)
}

func reviewLive(kinds []backend.ChangeKind, _ []string) bool {
	return len(kinds) > 0 && kinds[len(kinds)-1] == backend.ChangeLive
}

func reviewAny(kinds []backend.ChangeKind, _ []string) bool { return len(kinds) > 0 }

func reviewBackend(t *testing.T, opt *goredis.Options) (*Backend, *goredis.Client) {
	t.Helper()
	c := goredis.NewClient(opt)
	b, err := New(c)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		_ = c.Close()
	})
	return b, c
}

func reviewWatch(t *testing.T, b *Backend, prefix string, report func(backend.Change)) func() {
	t.Helper()
	stop, err := b.watch(context.Background(), prefix, report)
	if err != nil {
		t.Fatal(err)
	}
	return stop
}

// TestReviewWatchSlowReportStallsOthers: a report that takes its time (a
// consumer of the public Watch capability that hands reports to a busy
// goroutine) runs on the shared reader, so the other watches' reports wait
// for it (documented: report must return quickly), and B, whose key waits,
// is told ChangeLost when the PINGs go unanswered. But it holds no lock
// that Watch, stop or Close need: while A's report blocks, B's stop, a new
// watch and the Backend's Close return at once, and A hears of the Close
// (ChangeLost) once its report returns. Before, the give-up of the
// unanswered PINGs took the hub's lock and waited for A's report, so that
// B heard nothing, and B's stop (and any Watch, and Close) blocked.
func TestReviewWatchSlowReportStallsOthers(t *testing.T) {
	addr := reviewAddr(t)
	name := fmt.Sprintf("kvrvslow%d", os.Getpid())
	b, c := reviewBackend(t, &goredis.Options{Addr: addr, ClientName: name})
	ctx := context.Background()
	pA, pB := name+"a:", name+"b:"
	defer c.Del(ctx, pA+"k", pB+"k")

	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ra := newReviewRec()
	stopA := reviewWatch(t, b, pA, func(ch backend.Change) {
		ra.report(ch)
		if ch.Kind == backend.ChangeKeys {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
	})
	defer stopA()
	rb := newReviewRec()
	stopB := reviewWatch(t, b, pB, rb.report)
	if !ra.wait(10*time.Second, reviewLive) || !rb.wait(10*time.Second, reviewLive) {
		t.Fatal("the watches were not live within 10s")
	}
	if err := c.Set(ctx, pA+"k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("A was not told of its key within 10s")
	}
	// B's key waits for A's report (documented), but B hears of it or,
	// once the PINGs go unanswered, of the loss; its stop does not wait.
	if err := c.Set(ctx, pB+"k", "v", time.Minute).Err(); err != nil {
		close(release)
		t.Fatal(err)
	}
	if !rb.wait(5*time.Second, func(k []backend.ChangeKind, keys []string) bool {
		return slices.Contains(k, backend.ChangeLost) || slices.Contains(keys, pB+"k")
	}) {
		kinds, keys := rb.snapshot()
		t.Errorf("B told neither of its key nor of a loss within 5s while A's report ran: reports %v, keys %q", kinds, keys)
	}
	for _, step := range []struct {
		name string
		do   func()
	}{
		{"B's stop", stopB},
		{"a new Watch and its stop", func() {
			stop, err := b.watch(ctx, name+"c:", func(backend.Change) {})
			if err == nil {
				stop()
			}
		}},
		{"Close", func() { _ = b.Close() }},
	} {
		done := make(chan struct{})
		go func() {
			step.do()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Errorf("%s did not return within 3s while A's report ran", step.name)
			close(release)
			<-done
			return
		}
	}
	close(release)
	lost := func(k []backend.ChangeKind, _ []string) bool { return k[len(k)-1] == backend.ChangeLost }
	if !ra.wait(10*time.Second, lost) {
		kinds, _ := ra.snapshot()
		t.Errorf("A's reports after its slow report and Close = %v; want a last ChangeLost", kinds)
	}
}

// TestReviewWatchStopOtherFromReport: a report of A that stops watch B
// (one component giving up a sibling watch when A is lost, live or
// synced) waits for the hub's lock, which the reporting of A holds: B's
// stop cannot return until A's report does (a deadlock if A waits for
// it). Each watch had its own goroutine before.
func TestReviewWatchStopOtherFromReport(t *testing.T) {
	addr := reviewAddr(t)
	name := fmt.Sprintf("kvrvstop%d", os.Getpid())
	b, _ := reviewBackend(t, &goredis.Options{Addr: addr, ClientName: name})
	rb := newReviewRec()
	stopB := reviewWatch(t, b, name+"b:", rb.report)
	if !rb.wait(10*time.Second, reviewLive) {
		t.Fatal("B was not live within 10s")
	}
	var once sync.Once
	var blocked atomic.Bool
	done := make(chan struct{})
	stopA := reviewWatch(t, b, name+"a:", func(ch backend.Change) {
		if ch.Kind != backend.ChangeSynced {
			return
		}
		once.Do(func() {
			defer close(done)
			stopped := make(chan struct{})
			go func() {
				stopB()
				close(stopped)
			}()
			select {
			case <-stopped:
			case <-time.After(3 * time.Second):
				blocked.Store(true) // let A's report return: B's stop then ends
			}
		})
	})
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("A was not synced within 15s")
	}
	stopA()
	stopB()
	if blocked.Load() {
		t.Errorf("stopping B from A's ChangeSynced report did not return within 3s")
	}
}

// TestReviewWatchLateWatchLostAtOnce: a watch started while the shared
// connection is down (its server refuses connections, and the hub waits a
// second between attempts) hears nothing until the next attempt fails:
// its first report, ChangeLost, comes up to retryMax late, although the
// hub already knows the connection is lost. Before, the watch's own
// connection failed at once and reported ChangeLost.
func TestReviewWatchLateWatchLostAtOnce(t *testing.T) {
	addr := reviewAddr(t)
	name := fmt.Sprintf("kvrvlate%d", os.Getpid())
	var (
		refuse   atomic.Bool
		mu       sync.Mutex
		conns    []net.Conn
		refusals = make(chan struct{}, 1000)
	)
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		if refuse.Load() {
			select {
			case refusals <- struct{}{}:
			default:
			}
			return nil, errors.New("review: connection refused")
		}
		var d net.Dialer
		cn, err := d.DialContext(ctx, network, a)
		if err == nil {
			mu.Lock()
			conns = append(conns, cn)
			mu.Unlock()
		}
		return cn, err
	}
	b, _ := reviewBackend(t, &goredis.Options{Addr: addr, ClientName: name, Dialer: dial, MaxRetries: -1})
	ra := newReviewRec()
	stopA := reviewWatch(t, b, name+"a:", ra.report)
	defer stopA()
	if !ra.wait(10*time.Second, reviewLive) {
		t.Fatal("A was not live within 10s")
	}
	refuse.Store(true)
	mu.Lock()
	for _, cn := range conns {
		_ = cn.Close()
	}
	mu.Unlock()
	if !ra.wait(10*time.Second, func(k []backend.ChangeKind, _ []string) bool { return k[len(k)-1] == backend.ChangeLost }) {
		t.Fatal("A was not lost within 10s")
	}
	// After 8 refused attempts the hub waits retryMax between attempts.
	for range 8 {
		select {
		case <-refusals:
		case <-time.After(10 * time.Second):
			t.Fatal("no attempt to reconnect within 10s")
		}
	}
	rb := newReviewRec()
	stopB := reviewWatch(t, b, name+"b:", rb.report)
	defer stopB()
	start := time.Now()
	if !rb.wait(400*time.Millisecond, reviewAny) {
		rb.wait(5*time.Second, reviewAny)
		kinds, _ := rb.snapshot()
		t.Errorf("a watch started while the connection was down: no report within 400ms (first reports %v after %v); want ChangeLost at once",
			kinds, time.Since(start).Round(time.Millisecond))
	} else if kinds, _ := rb.snapshot(); kinds[0] != backend.ChangeLost {
		t.Errorf("first report %v; want ChangeLost", kinds[0])
	}
	refuse.Store(false)
}

// TestReviewWatchStoppedPrefixesPile: the prefixes of stopped watches stay
// tracked while any watch of the Backend runs, so a long-lived watch and
// Maps made and closed in turn (a namespace per tenant, per job) grow the
// connection's prefix table without bound, on the server too, which keeps
// sending the invalidations of every such namespace to the reader. The
// connection is made anew once they outnumber maxStale and the running
// watches' prefixes. (Only on the shared connection: it reads the hub's
// state.)
func TestReviewWatchStoppedPrefixesPile(t *testing.T) {
	addr := reviewAddr(t)
	name := fmt.Sprintf("kvrvpile%d", os.Getpid())
	b, _ := reviewBackend(t, &goredis.Options{Addr: addr, ClientName: name})
	rl := newReviewRec()
	stopL := reviewWatch(t, b, name+"long:", rl.report)
	defer stopL()
	if !rl.wait(10*time.Second, reviewLive) {
		t.Fatal("the long-lived watch was not live within 10s")
	}
	const cycles = 40
	for i := range cycles {
		r := newReviewRec()
		stop := reviewWatch(t, b, fmt.Sprintf("%st%d:", name, i), r.report)
		if !r.wait(10*time.Second, reviewLive) {
			stop()
			t.Fatalf("watch %d was not live within 10s", i)
		}
		stop()
	}
	b.watches.mu.Lock()
	h := b.watches.h
	b.watches.mu.Unlock()
	h.mu.Lock()
	tracked := 0
	for _, n := range h.nodes {
		tracked += len(n.asked)
	}
	h.mu.Unlock()
	if tracked > 1+maxStale {
		t.Errorf("prefixes tracked with 1 watch running after %d stopped = %d; want at most %d", cycles, tracked, 1+maxStale)
	}
}
