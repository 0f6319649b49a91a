package redis_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
)

// condEnv is a Backend whose SetIf is under test, with a raw client of the
// same server to set up and inspect keys, and a namespace of its own.
type condEnv struct {
	b       *redis.Backend
	raw     goredis.UniversalClient
	ns      string
	hashTag bool
	advance func(time.Duration) // miniredis's clock; nil on a real server

	mu   sync.Mutex
	used []string // wire keys to delete at the end
}

// newCondEnv returns a condEnv on client c (raw reaches the same data), with
// opts; the keys it used are deleted when the test ends (never a flush: the
// server may be shared).
func newCondEnv(t *testing.T, c, raw goredis.UniversalClient, advance func(time.Duration), opts ...redis.Option) *condEnv {
	t.Helper()
	b := mustRedis(t, c, opts...)
	e := &condEnv{b: b, raw: raw, ns: "kvcond" + strings.ToLower(rand.Text()[:12]), hashTag: b.HashTag(), advance: advance}
	t.Cleanup(func() {
		ctx := context.Background()
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, w := range e.used {
			if err := raw.Del(ctx, w).Err(); err != nil {
				t.Errorf("delete %s: %v", w, err)
			}
		}
	})
	return e
}

// key returns the backend key of k in the env's namespace, and notes its
// stored key for deletion.
func (e *condEnv) key(k string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.used = append(e.used, e.wire(k))
	return e.ns + ":" + k
}

// wire returns the stored key of k (as key names it).
func (e *condEnv) wire(k string) string {
	if e.hashTag {
		return "{" + e.ns + "}:" + k
	}
	return e.ns + ":" + k
}

func (e *condEnv) setIf(ctx context.Context, g backend.GuardedEntry) (bool, error) {
	return e.b.Capabilities().SetIf(ctx, g)
}

// setExpired stores "old" at w with a 1 ms TTL and returns once the server
// reports it gone (miniredis: its clock moved past it).
func (e *condEnv) setExpired(t *testing.T, w string) {
	t.Helper()
	ctx := t.Context()
	if err := e.raw.Set(ctx, w, "old", time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if e.advance != nil {
		e.advance(10 * time.Millisecond)
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := e.raw.Exists(ctx, w).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s with a 1ms TTL still there after 5s", w)
		}
		time.Sleep(time.Millisecond) // polling, bounded by the deadline
	}
}

// condTarget makes condEnvs on one kind of server.
type condTarget struct {
	name string
	env  func(t *testing.T, opts ...redis.Option) *condEnv
}

// condTargets returns miniredis, and the real standalone server and cluster
// whose variables (KV_REDIS_ADDR, KV_REDIS_CLUSTER_ADDRS) are set.
func condTargets(t *testing.T) []condTarget {
	t.Helper()
	targets := []condTarget{{"miniredis", func(t *testing.T, opts ...redis.Option) *condEnv {
		s := miniredis.RunT(t)
		c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		return newCondEnv(t, c, c, s.FastForward, opts...)
	}}}
	if c := standaloneClient(t); c != nil {
		targets = append(targets, condTarget{"standalone", func(t *testing.T, opts ...redis.Option) *condEnv {
			return newCondEnv(t, c, c, nil, opts...)
		}})
	}
	if c := clusterClient(t); c != nil {
		targets = append(targets, condTarget{"cluster", func(t *testing.T, opts ...redis.Option) *condEnv {
			return newCondEnv(t, c, c, nil, opts...)
		}})
	}
	return targets
}

// condVariants are the Backend options every SetIf test runs with.
var condVariants = []struct {
	name string
	opts []redis.Option
}{
	{"default", nil},
	{"HashTag", []redis.Option{redis.WithHashTag()}},
	{"WithoutAutoPipeline", []redis.Option{redis.WithoutAutoPipeline()}},
}

// rawState is what a stored key holds, read by the raw client.
type rawState struct {
	typ  string        // "none", "string", "list", ...
	val  string        // a string's value
	list []string      // a list's elements
	pttl time.Duration // -1: no expiry; -2: absent
}

func readRaw(t *testing.T, raw goredis.UniversalClient, w string) rawState {
	t.Helper()
	ctx := t.Context()
	typ, err := raw.Type(ctx, w).Result()
	if err != nil {
		t.Fatal(err)
	}
	st := rawState{typ: typ}
	switch typ {
	case "string":
		if st.val, err = raw.Get(ctx, w).Result(); err != nil {
			t.Fatal(err)
		}
	case "list":
		if st.list, err = raw.LRange(ctx, w, 0, -1).Result(); err != nil {
			t.Fatal(err)
		}
	}
	if st.pttl, err = raw.PTTL(ctx, w).Result(); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSetIf checks each guard of SetIf against what the key holds: whether
// it writes, what it leaves (value and expiry), on miniredis and the real
// servers configured, with and without the hash tag and the auto-pipeliner.
func TestSetIf(t *testing.T) {
	const hour = time.Hour
	str := func(v string, ttl time.Duration) func(*testing.T, *condEnv, string) {
		return func(t *testing.T, e *condEnv, w string) {
			if err := e.raw.Set(t.Context(), w, v, ttl).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	list := func(t *testing.T, e *condEnv, w string) {
		if err := e.raw.RPush(t.Context(), w, "a", "").Err(); err != nil {
			t.Fatal(err)
		}
	}
	expired := func(t *testing.T, e *condEnv, w string) { e.setExpired(t, w) }
	ifAbsent := func(v string, ttl time.Duration) backend.GuardedEntry {
		return backend.GuardedEntry{Entry: backend.Entry{Value: []byte(v), TTL: ttl}}
	}
	ifPrev := func(prev []byte, v string, ttl time.Duration) backend.GuardedEntry {
		return backend.GuardedEntry{Entry: backend.Entry{Value: []byte(v), TTL: ttl}, PrevFound: true, Prev: prev}
	}
	binary := []byte{0, 0xff, '\'', ']', ']', '\n', 'x', 0}
	const unchanged = "<unchanged>"
	cases := []struct {
		name  string
		setup func(*testing.T, *condEnv, string) // nil: the key is absent
		entry backend.GuardedEntry
		want  bool
		// After: wantVal is the value, or unchanged (the key as setup left
		// it), or "" with wantTTL -2 for absent; wantTTL -1 for no expiry,
		// -2 absent, -3 expired or at most 1 ms, else about that TTL.
		wantVal string
		wantTTL time.Duration
	}{
		{"Absent/IfAbsent", nil, ifAbsent("new", hour), true, "new", hour},
		{"Absent/IfAbsentNoTTL", nil, ifAbsent("new", backend.NoTTL), true, "new", -1},
		{"Absent/IfAbsentEmptyValue", nil, backend.GuardedEntry{Entry: backend.Entry{TTL: hour}}, true, "", hour},
		{"Absent/IfAbsentSubMillisecondTTL", nil, ifAbsent("new", 300*time.Microsecond), true, "new", -3},
		{"Present/IfAbsent", str("old", hour), ifAbsent("new", hour), false, unchanged, hour},
		{"PresentNoTTL/IfAbsent", str("old", 0), ifAbsent("new", hour), false, unchanged, -1},
		{"PresentEmpty/IfAbsent", str("", hour), ifAbsent("new", hour), false, unchanged, hour},
		{"Expired/IfAbsent", expired, ifAbsent("new", 2*hour), true, "new", 2 * hour},
		{"Expired/IfPrev", expired, ifPrev([]byte("old"), "new", hour), false, "", -2},
		{"Absent/IfPrevEmpty", nil, ifPrev([]byte{}, "new", hour), false, "", -2},
		{"Absent/IfPrevNil", nil, ifPrev(nil, "new", hour), false, "", -2},
		{"Match", str("old", hour), ifPrev([]byte("old"), "new", 2*hour), true, "new", 2 * hour},
		{"MatchFromNoTTL", str("old", 0), ifPrev([]byte("old"), "new", hour), true, "new", hour},
		{"MatchNoTTLClearsExpiry", str("old", hour), ifPrev([]byte("old"), "new", backend.NoTTL), true, "new", -1},
		{"MatchSubMillisecondTTL", str("old", hour), ifPrev([]byte("old"), "new", 300*time.Microsecond), true, "new", -3},
		{"MatchWriteEmpty", str("old", hour), backend.GuardedEntry{Entry: backend.Entry{TTL: hour}, PrevFound: true, Prev: []byte("old")}, true, "", hour},
		{"MatchBinary", str(string(binary), hour), ifPrev(binary, string(binary)+"2", hour), true, string(binary) + "2", hour},
		{"Mismatch", str("old", hour), ifPrev([]byte("other"), "new", 2*hour), false, unchanged, hour},
		{"MismatchPrefix", str("old", hour), ifPrev([]byte("ol"), "new", 2*hour), false, unchanged, hour},
		{"MismatchLonger", str("old", hour), ifPrev([]byte("old\x00"), "new", 2*hour), false, unchanged, hour},
		{"PresentEmpty/IfPrevNil", str("", hour), ifPrev(nil, "new", 2*hour), true, "new", 2 * hour},
		{"PresentEmpty/IfPrevEmpty", str("", hour), ifPrev([]byte{}, "new", 2*hour), true, "new", 2 * hour},
		{"PresentEmpty/IfPrevOther", str("", hour), ifPrev([]byte("x"), "new", 2*hour), false, unchanged, hour},
		{"List/IfAbsent", list, ifAbsent("new", hour), false, unchanged, -1},
		{"List/IfPrevEmpty", list, ifPrev(nil, "new", hour), false, unchanged, -1},
		{"List/IfPrevElement", list, ifPrev([]byte("a"), "new", hour), false, unchanged, -1},
	}
	for _, target := range condTargets(t) {
		for _, v := range condVariants {
			t.Run(target.name+"/"+v.name, func(t *testing.T) {
				e := target.env(t, v.opts...)
				for i, tc := range cases {
					t.Run(tc.name, func(t *testing.T) {
						ctx := t.Context()
						k := e.key("k" + strconv.Itoa(i))
						w := e.wire("k" + strconv.Itoa(i))
						if tc.setup != nil {
							tc.setup(t, e, w)
						}
						before := readRaw(t, e.raw, w)
						g := tc.entry
						g.Key = k
						got, err := e.setIf(ctx, g)
						if err != nil || got != tc.want {
							t.Fatalf("SetIf = %v, %v; want %v, nil", got, err, tc.want)
						}
						after := readRaw(t, e.raw, w)
						if tc.wantVal == unchanged {
							if after.typ != before.typ || after.val != before.val || !slices.Equal(after.list, before.list) {
								t.Errorf("key after SetIf = %+v; want it unchanged, %+v", after, before)
							}
						} else if tc.wantTTL != -2 && !(tc.wantTTL == -3 && after.typ == "none") && (after.typ != "string" || after.val != tc.wantVal) {
							t.Errorf("key after SetIf = %+v; want the string %q", after, tc.wantVal)
						}
						switch d := after.pttl; {
						case tc.wantTTL == -1 || tc.wantTTL == -2:
							if d != tc.wantTTL {
								t.Errorf("PTTL after SetIf = %v; want %v", d, tc.wantTTL)
							}
						case tc.wantTTL == -3:
							if d != -2 && (d < 0 || d > time.Millisecond) {
								t.Errorf("PTTL after SetIf with a TTL under 1ms = %v; want expired or at most 1ms (rounded up, not dropped)", d)
							}
						case d > tc.wantTTL || d < tc.wantTTL-time.Minute:
							t.Errorf("PTTL after SetIf = %v; want about %v", d, tc.wantTTL)
						}
					})
				}
			})
		}
	}
}

// TestSetIfChecks: SetIf refuses what MSet refuses with the same typed
// errors, before anything is sent; on a closed Backend it fails with
// ErrClosed, and with an ended context with the context's error.
func TestSetIfChecks(t *testing.T) {
	s := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	plain, tagged := mustRedis(t, c), mustRedis(t, c, redis.WithHashTag())
	closed := mustRedis(t, c)
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	entry := func(key string, ttl time.Duration, prev bool) backend.GuardedEntry {
		return backend.GuardedEntry{Entry: backend.Entry{Key: key, Value: []byte("v"), TTL: ttl}, PrevFound: prev, Prev: []byte("p")}
	}
	for _, tc := range []struct {
		name  string
		b     *redis.Backend
		ctx   context.Context
		entry backend.GuardedEntry
		want  error
	}{
		{"EmptyKey", plain, t.Context(), entry("", time.Hour, false), backend.ErrEmptyKey},
		{"ZeroTTL", plain, t.Context(), entry("ns:k", 0, false), backend.ErrInvalidTTL},
		{"NegativeTTL", plain, t.Context(), entry("ns:k", -time.Second, true), backend.ErrInvalidTTL},
		{"TTLOverMax", plain, t.Context(), entry("ns:k", backend.MaxTTL+time.Hour, true), backend.ErrInvalidTTL},
		{"BraceNamespaceHashTag", tagged, t.Context(), entry("a{b:k", time.Hour, false), backend.ErrInvalidNamespace},
		{"Closed", closed, t.Context(), entry("ns:k", time.Hour, false), backend.ErrClosed},
		{"CanceledContext", plain, canceled, entry("ns:k", time.Hour, true), context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := s.CommandCount()
			for _, prev := range []bool{false, true} {
				g := tc.entry
				g.PrevFound = prev
				got, err := tc.b.Capabilities().SetIf(tc.ctx, g)
				if got || !errors.Is(err, tc.want) {
					t.Errorf("SetIf(%+v) = %v, %v; want false, an error matching %v", g, got, err, tc.want)
				}
			}
			if sent := s.CommandCount() - n; sent != 0 {
				t.Errorf("%d commands sent for refused calls; want none", sent)
			}
		})
	}
}

// TestSetIfConcurrent: of 20 concurrent SetIfs with the same guard (absent;
// then holding one value), exactly one writes, and the key holds its
// value; and compare-and-set increments from several goroutines, each
// retried until SetIf reports it wrote, lose none (the counter ends at the
// number of increments).
func TestSetIfConcurrent(t *testing.T) {
	for _, target := range condTargets(t) {
		for _, v := range condVariants {
			t.Run(target.name+"/"+v.name, func(t *testing.T) {
				e := target.env(t, v.opts...)
				ctx := t.Context()
				for _, prevFound := range []bool{false, true} {
					k := e.key("race" + strconv.FormatBool(prevFound))
					if prevFound {
						if err := e.raw.Set(ctx, e.wire("race"+strconv.FormatBool(prevFound)), "start", 0).Err(); err != nil {
							t.Fatal(err)
						}
					}
					const n = 20
					won := make([]bool, n)
					var wg sync.WaitGroup
					start := make(chan struct{})
					for i := range n {
						wg.Go(func() {
							<-start
							ok, err := e.setIf(ctx, backend.GuardedEntry{
								Entry:     backend.Entry{Key: k, Value: []byte("w" + strconv.Itoa(i)), TTL: time.Hour},
								PrevFound: prevFound, Prev: []byte("start"),
							})
							if err != nil {
								t.Errorf("SetIf %d: %v", i, err)
							}
							won[i] = ok
						})
					}
					close(start)
					wg.Wait()
					var winners []int
					for i, ok := range won {
						if ok {
							winners = append(winners, i)
						}
					}
					if len(winners) != 1 {
						t.Fatalf("PrevFound %v: %d concurrent SetIfs wrote: %v; want exactly one", prevFound, n, winners)
					}
					val, err := e.b.Get(ctx, k)
					if want := "w" + strconv.Itoa(winners[0]); err != nil || string(val.Bytes) != want {
						t.Errorf("PrevFound %v: Get after the race = %q, %v; want the winner's %q", prevFound, val.Bytes, err, want)
					}
				}

				// Compare-and-set counter, from an absent key.
				k := e.key("counter")
				const workers, each = 8, 25
				var wg sync.WaitGroup
				var mu sync.Mutex
				wrote := 0
				for range workers {
					wg.Go(func() {
						for range each {
							for attempt := 0; ; attempt++ {
								if attempt == 10000 {
									t.Errorf("an increment failed 10000 times")
									return
								}
								cur, err := e.b.Get(ctx, k)
								if err != nil {
									t.Error(err)
									return
								}
								next := 1
								if cur.Found {
									if next, err = strconv.Atoi(string(cur.Bytes)); err != nil {
										t.Error(err)
										return
									}
									next++
								}
								ok, err := e.setIf(ctx, backend.GuardedEntry{
									Entry:     backend.Entry{Key: k, Value: []byte(strconv.Itoa(next)), TTL: time.Hour},
									PrevFound: cur.Found, Prev: cur.Bytes,
								})
								if err != nil {
									t.Error(err)
									return
								}
								if ok {
									mu.Lock()
									wrote++
									mu.Unlock()
									break
								}
							}
						}
					})
				}
				wg.Wait()
				val, err := e.b.Get(ctx, k)
				if want := strconv.Itoa(workers * each); err != nil || string(val.Bytes) != want || wrote != workers*each {
					t.Errorf("counter after %d compare-and-set increments = %q, %v (%d writes reported); want %s", workers*each, val.Bytes, err, wrote, want)
				}
			})
		}
	}
}

// gateHook, on a client, holds the GET of key gate until release is closed
// (a single-key call of the Backend under way, so that its next single-key
// call takes the auto-pipeliner), and counts, per command name, the commands
// sent on the caller's direct path and those the auto-pipeliner sent. A
// command the caller sends itself reaches ProcessHook with the caller's
// context, which the test marks (callerCtx); the auto-pipeliner sends a
// lone command with a context of its own (go-redis v9.23: Background) and
// several in a pipeline.
type gateHook struct {
	gate    string
	entered chan struct{}
	release chan struct{}

	mu     sync.Mutex
	direct map[string]int
	auto   map[string]int
}

// callerMark marks the context of the test's own calls.
type callerMark struct{}

// callerCtx returns ctx marked as the caller's, for gateHook.
func callerCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, callerMark{}, true)
}

func newGateHook(gate string) *gateHook {
	return &gateHook{gate: gate, entered: make(chan struct{}, 1), release: make(chan struct{}),
		direct: map[string]int{}, auto: map[string]int{}}
}

func (h *gateHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *gateHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if a := cmd.Args(); cmd.Name() == "get" && len(a) == 2 && a[1] == h.gate {
			h.entered <- struct{}{}
			<-h.release
		}
		h.mu.Lock()
		if ctx.Value(callerMark{}) != nil {
			h.direct[cmd.Name()]++
		} else {
			h.auto[cmd.Name()]++
		}
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *gateHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.mu.Lock()
		for _, c := range cmds {
			h.auto[c.Name()]++
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// counts returns how many commands named name went out on the direct path
// and through the auto-pipeliner.
func (h *gateHook) counts(name string) (direct, auto int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.direct[name], h.auto[name]
}

// hold starts a Get of the gate key through b and returns once it is held
// (under way); the returned function releases it and waits for it.
func (h *gateHook) hold(t *testing.T, b *redis.Backend) (release func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := b.Get(context.Background(), h.gate)
		done <- err
	}()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the gate Get did not start within 10s")
	}
	return func() {
		close(h.release)
		if err := <-done; err != nil {
			t.Errorf("gate Get: %v", err)
		}
	}
}

// TestSetIfAutoPipelined: a SetIf made while another single-key call is
// under way goes through the auto-pipeliner (in a pipeline), both forms, the
// script by text too after SCRIPT FLUSH (on miniredis only: never on a
// shared server), and gives the same results.
func TestSetIfAutoPipelined(t *testing.T) {
	for name, addr := range pipeServers(t) {
		t.Run(name, func(t *testing.T) {
			h := newGateHook("kvcond_gate:" + rand.Text())
			c := goredis.NewClient(&goredis.Options{Addr: addr})
			t.Cleanup(func() { _ = c.Close() })
			c.AddHook(h)
			e := newCondEnv(t, c, c, nil)
			ctx := t.Context()
			release := h.hold(t, e.b)
			defer release()
			k := e.key("k")
			steps := []struct {
				name    string
				flush   bool // SCRIPT FLUSH first: only on miniredis, never on a shared server
				entry   backend.GuardedEntry
				want    bool
				wantVal string
				cmd     string // the command that must have gone out in a pipeline
			}{
				{"IfAbsent", false, backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("1"), TTL: time.Hour}}, true, "1", "set"},
				{"IfAbsentPresent", false, backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("x"), TTL: time.Hour}}, false, "1", "set"},
				{"IfPrev", false, backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("2"), TTL: time.Hour}, PrevFound: true, Prev: []byte("1")}, true, "2", "evalsha"},
				{"IfPrevMismatch", false, backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("x"), TTL: time.Hour}, PrevFound: true, Prev: []byte("1")}, false, "2", "evalsha"},
				{"IfPrevAfterFlush", true, backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("3"), TTL: time.Hour}, PrevFound: true, Prev: []byte("2")}, true, "3", "eval"},
			}
			for _, st := range steps {
				if st.flush {
					if name != "miniredis" {
						continue // a shared server: never flushed
					}
					if err := c.ScriptFlush(ctx).Err(); err != nil {
						t.Fatal(err)
					}
				}
				d0, a0 := h.counts(st.cmd)
				got, err := e.setIf(callerCtx(ctx), st.entry)
				if err != nil || got != st.want {
					t.Fatalf("%s: SetIf = %v, %v; want %v, nil", st.name, got, err, st.want)
				}
				if v := readRaw(t, c, e.wire("k")); v.val != st.wantVal {
					t.Errorf("%s: value after SetIf = %q; want %q", st.name, v.val, st.wantVal)
				}
				if d, a := h.counts(st.cmd); d != d0 || a != a0+1 {
					t.Errorf("%s: %s sent %d times directly, %d through the auto-pipeliner; want 0, 1", st.name, strings.ToUpper(st.cmd), d-d0, a-a0)
				}
			}
		})
	}
}

// TestSetIfNeverResent: a SetIf whose reply is lost (the proxy drops the
// connection right after handing the command to the server) fails with an
// error matching ErrUnknownOutcome, never (false, nil); the command went to
// the server once (the client's default Options retry three times), and
// the write happened. Both forms, the script by SHA1 and by text after
// NOSCRIPT, on the direct path and through the auto-pipeliner.
func TestSetIfNeverResent(t *testing.T) {
	cases := []struct {
		name    string
		cmd     string // the command whose reply is lost
		prev    bool
		flush   bool // SCRIPT FLUSH before the call: EVALSHA meets NOSCRIPT, then EVAL
		evalsha int  // EVALSHAs the server must have been handed
	}{
		{"IfAbsent", "set", false, false, 0},
		{"IfPrev", "evalsha", true, false, 1},
		{"IfPrevByText", "eval", true, true, 1},
	}
	for server, addr := range noRetryServers(t) {
		for _, path := range []string{"direct", "auto"} {
			for _, tc := range cases {
				t.Run(server+"/"+path+"/"+tc.name, func(t *testing.T) {
					p := newDropProxy(t, addr)
					c := goredis.NewClient(&goredis.Options{Addr: p.addr()}) // default Options: MaxRetries 3
					t.Cleanup(func() { _ = c.Close() })
					h := newGateHook("ns:gate")
					c.AddHook(h)
					direct := goredis.NewClient(&goredis.Options{Addr: addr})
					t.Cleanup(func() { _ = direct.Close() })
					ctx := context.Background()
					if err := direct.FlushAll(ctx).Err(); err != nil { // a server of this test's own
						t.Fatal(err)
					}
					var opts []redis.Option
					if path == "direct" {
						opts = append(opts, redis.WithoutAutoPipeline())
					}
					b := mustRedis(t, c, opts...)
					setIf := b.Capabilities().SetIf
					g := backend.GuardedEntry{Entry: backend.Entry{Key: "ns:k", Value: []byte("new"), TTL: time.Hour}}
					if tc.prev {
						g.PrevFound, g.Prev = true, []byte("old")
						if err := direct.Set(ctx, "ns:k", "old", 0).Err(); err != nil {
							t.Fatal(err)
						}
						// Loads the script (without writing: the guard fails).
						if ok, err := setIf(ctx, backend.GuardedEntry{Entry: backend.Entry{Key: "ns:k", Value: []byte("x"), TTL: time.Hour}, PrevFound: true, Prev: []byte("no")}); ok || err != nil {
							t.Fatalf("SetIf loading the script = %v, %v", ok, err)
						}
					}
					if tc.flush {
						if err := direct.ScriptFlush(ctx).Err(); err != nil {
							t.Fatal(err)
						}
					}
					if path == "auto" {
						defer h.hold(t, b)()
					}
					p.reset()
					p.arm(tc.cmd)
					d0, a0 := h.counts(tc.cmd)
					ok, err := setIf(callerCtx(ctx), g)
					if ok || !errors.Is(err, backend.ErrUnknownOutcome) {
						t.Errorf("SetIf whose reply was lost = %v, %v; want false and an error matching ErrUnknownOutcome", ok, err)
					}
					if got := p.count(tc.cmd); got != 1 {
						t.Errorf("%s sent %d times; want once (never re-sent)", strings.ToUpper(tc.cmd), got)
					}
					if tc.flush {
						if got := p.count("evalsha"); got != tc.evalsha {
							t.Errorf("EVALSHA sent %d times; want %d (NOSCRIPT, then EVAL)", got, tc.evalsha)
						}
					}
					d, a := h.counts(tc.cmd)
					if d, a = d-d0, a-a0; path == "auto" && (d != 0 || a != 1) || path == "direct" && (d != 1 || a != 0) {
						t.Errorf("%s sent %d times directly, %d through the auto-pipeliner, on the %s path", strings.ToUpper(tc.cmd), d, a, path)
					}
					// The write reached the server: its outcome was unknown,
					// not "not written". Polled: the proxy handed it over as
					// the client saw its connection end.
					deadline := time.Now().Add(10 * time.Second)
					for {
						v, err := direct.Get(ctx, "ns:k").Result()
						if err == nil && v == "new" {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("the SetIf whose reply was lost is not on the server: %q, %v", v, err)
						}
						time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
					}
				})
			}
		}
	}
}

// TestSetIfScriptFlushed: after SCRIPT FLUSH (a restart, a failover to a
// server that never ran it) the script goes by text once (EVALSHA answers
// NOSCRIPT, then EVAL), which loads it: the next call goes by SHA1 alone.
// On miniredis and a private server only: never flushed on a shared one.
func TestSetIfScriptFlushed(t *testing.T) {
	for server, addr := range noRetryServers(t) {
		t.Run(server, func(t *testing.T) {
			p := newDropProxy(t, addr)
			c := goredis.NewClient(&goredis.Options{Addr: p.addr()})
			t.Cleanup(func() { _ = c.Close() })
			e := newCondEnv(t, c, c, nil)
			ctx := t.Context()
			k := e.key("k")
			if err := c.Set(ctx, e.wire("k"), "0", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			p.reset()
			for i, want := range []struct{ evalsha, eval int }{{1, 1}, {2, 1}} {
				ok, err := e.setIf(ctx, backend.GuardedEntry{
					Entry:     backend.Entry{Key: k, Value: []byte(strconv.Itoa(i + 1)), TTL: time.Hour},
					PrevFound: true, Prev: []byte(strconv.Itoa(i)),
				})
				if !ok || err != nil {
					t.Fatalf("SetIf %d = %v, %v; want true, nil", i, ok, err)
				}
				if es, ev := p.count("evalsha"), p.count("eval"); es != want.evalsha || ev != want.eval {
					t.Errorf("after SetIf %d: EVALSHA sent %d, EVAL %d times; want %d, %d", i, es, ev, want.evalsha, want.eval)
				}
			}
		})
	}
}

// TestSetIfLeavesLease: SetIf does not touch the key's load lease; the
// lease holder's Store then finds the key changed and does not write.
func TestSetIfLeavesLease(t *testing.T) {
	for _, target := range condTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			e := target.env(t)
			ctx := t.Context()
			k := e.key("k")
			held, l, err := e.b.Capabilities().AcquireLeases(ctx, []string{k}, time.Minute)
			if err != nil || l == nil || !held[0] {
				t.Fatalf("AcquireLeases = %v, %v, %v", held, l, err)
			}
			t.Cleanup(func() { _ = l.Release(context.Background()) })
			if ok, err := e.setIf(ctx, backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("set if"), TTL: time.Hour}}); !ok || err != nil {
				t.Fatalf("SetIf = %v, %v; want true, nil", ok, err)
			}
			if d, err := e.raw.PTTL(ctx, e.b.LeaseKeyForTest(k)).Result(); err != nil || d <= 0 {
				t.Errorf("lease PTTL after SetIf = %v, %v; want the lease still held", d, err)
			}
			stored, err := l.Store(ctx, []backend.GuardedEntry{{Entry: backend.Entry{Key: k, Value: []byte("loaded"), TTL: time.Hour}}})
			if err != nil || len(stored) != 1 || stored[0] {
				t.Errorf("Store after SetIf = %v, %v; want [false] (the key changed)", stored, err)
			}
			if v := readRaw(t, e.raw, e.wire("k")); v.val != "set if" {
				t.Errorf("value after Store = %q; want SetIf's", v.val)
			}
		})
	}
}

// TestSetIfSentinel runs the SetIf checks through a failover client, on a
// private master and Sentinel (KV_REDIS_PRIVATE=1).
func TestSetIfSentinel(t *testing.T) {
	private(t)
	master := startServer(t, false, nil)
	sentinel := startServer(t, false, []string{
		"sentinel monitor kvcond 127.0.0.1 " + strconv.Itoa(master.port) + " 1",
		"sentinel down-after-milliseconds kvcond 5000",
	}, "--sentinel")
	c := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName: "kvcond", SentinelAddrs: []string{sentinel.addr()}, ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil { // the sentinel names the master
		if time.Now().After(deadline) {
			t.Fatalf("no master through the sentinel at %s", sentinel.addr())
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
	e := newCondEnv(t, c, c, nil)
	ctx := t.Context()
	k := e.key("k")
	for i, step := range []struct {
		entry backend.GuardedEntry
		want  bool
	}{
		{backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("1"), TTL: time.Hour}}, true},
		{backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("x"), TTL: time.Hour}}, false},
		{backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("2"), TTL: backend.NoTTL}, PrevFound: true, Prev: []byte("1")}, true},
		{backend.GuardedEntry{Entry: backend.Entry{Key: k, Value: []byte("x"), TTL: time.Hour}, PrevFound: true, Prev: []byte("1")}, false},
	} {
		if got, err := e.setIf(ctx, step.entry); err != nil || got != step.want {
			t.Fatalf("step %d: SetIf = %v, %v; want %v, nil", i, got, err, step.want)
		}
	}
	if st := readRaw(t, e.raw, e.wire("k")); st.val != "2" || st.pttl != -1 {
		t.Errorf("key through the sentinel = %+v; want \"2\" without expiry", st)
	}
}
