package kv_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/codes"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	kvredis "github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/conformance"
)

// errStoreDown is the error of a failing store's calls.
var errStoreDown = errors.New("store down")

// failing is a store whose reads (Get, MGet) and writes (MSet, a lease's
// Store) fail, with err, while told to, and that counts the calls it failed.
type failing struct {
	backend.Wrapper
	reads, writes      atomic.Bool
	err                atomic.Pointer[error] // errStoreDown when nil
	readFails, wrFails atomic.Int64
}

func newFailing(b backend.Backend) *failing { return &failing{Wrapper: backend.Wrapper{Backend: b}} }

func (f *failing) fail() error {
	if e := f.err.Load(); e != nil {
		return *e
	}
	return errStoreDown
}

func (f *failing) read() error {
	if f.reads.Load() {
		f.readFails.Add(1)
		return f.fail()
	}
	return nil
}

func (f *failing) write() error {
	if f.writes.Load() {
		f.wrFails.Add(1)
		return f.fail()
	}
	return nil
}

func (f *failing) Get(ctx context.Context, key string) (backend.Value, error) {
	if err := f.read(); err != nil {
		return backend.Value{}, err
	}
	return f.Wrapper.Get(ctx, key)
}

func (f *failing) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	if err := f.read(); err != nil {
		return nil, err
	}
	return f.Wrapper.MGet(ctx, keys, withTTL)
}

func (f *failing) MSet(ctx context.Context, entries []backend.Entry) error {
	if err := f.write(); err != nil {
		return err
	}
	return f.Wrapper.MSet(ctx, entries)
}

// Capabilities are the store's, but its namespace views (which would bypass
// the failures), its leases storing through the failures.
func (f *failing) Capabilities() backend.Capabilities {
	c := f.Wrapper.Capabilities()
	c.Namespace = nil
	if a := c.AcquireLeases; a != nil {
		c.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
			held, l, err := a(ctx, keys, ttl)
			if l != nil {
				l = failingLease{l, f}
			}
			return held, l, err
		}
	}
	return c
}

type failingLease struct {
	backend.Lease
	f *failing
}

func (l failingLease) Store(ctx context.Context, entries []backend.GuardedEntry) ([]bool, error) {
	if err := l.f.write(); err != nil {
		return nil, err
	}
	return l.Lease.Store(ctx, entries)
}

// failOpenStore is one store of the fail-open tests.
type failOpenStore struct {
	name string
	open func(t *testing.T) backend.Backend
}

// failOpenStores are memory, bbolt and Redis (miniredis; the server of
// KV_REDIS_ADDR too when set), each to be wrapped by failing.
func failOpenStores() []failOpenStore {
	stores := []failOpenStore{
		{"memory", func(t *testing.T) backend.Backend { return newMem(t) }},
		{"bolt", func(t *testing.T) backend.Backend { return newBolt(t) }},
		{"miniredis", func(t *testing.T) backend.Backend { return redisAt(t, miniredis.RunT(t).Addr()) }},
	}
	if addr := os.Getenv("KV_REDIS_ADDR"); addr != "" {
		stores = append(stores, failOpenStore{"redis", func(t *testing.T) backend.Backend { return redisAt(t, addr) }})
	}
	return stores
}

// redisAt returns a Redis backend on addr, closed with the test.
func redisAt(t *testing.T, addr string) backend.Backend {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1,
		DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	b, err := kvredis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := errors.Join(b.Close(), c.Close()); err != nil {
			t.Error(err)
		}
	})
	return b
}

// uniqueNS is a namespace no other test (or process on a shared server)
// uses.
func uniqueNS(prefix string) string {
	return fmt.Sprintf("%s%d_%d", prefix, os.Getpid(), time.Now().UnixNano())
}

// TestFailOpen: with WithFailOpen, GetOrLoad and GetManyOrLoad return the
// loader's values with a nil error when the store cannot be read, written,
// or both, on every store; each store error served through is one point of
// kv.client.fail_open (by step), one kv.fail_open span event and one Warn
// record, and the call's span has no error status. Without the option the
// same failures are returned. What the store could write is stored.
func TestFailOpen(t *testing.T) {
	for _, st := range failOpenStores() {
		for _, mode := range []struct {
			name          string
			reads, writes bool
		}{{"read", true, false}, {"write", false, true}, {"read+write", true, true}} {
			for _, lease := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s fails/lease %v", st.name, mode.name, lease)
				t.Run(name, func(t *testing.T) {
					testFailOpen(t, st, mode.reads, mode.writes, lease)
				})
			}
		}
	}
}

func testFailOpen(t *testing.T, st failOpenStore, failReads, failWrites, lease bool) {
	ctx := context.Background()
	store := newFailing(st.open(t))
	ns := uniqueNS("failopen")
	tel := newTelemetry(t)
	var log bytes.Buffer
	opts := append(tel.opts(), kv.WithFailOpen(), kv.WithLogger(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	closed := []kv.Option{}
	if lease {
		opts = append(opts, kv.WithLoadLease(time.Minute))
		closed = append(closed, kv.WithLoadLease(time.Minute))
	}
	m := mustNew[string](t, store, ns, opts...)
	plain := mustNew[string](t, store, ns, closed...) // fails closed, as by default
	t.Cleanup(func() {
		store.reads.Store(false)
		store.writes.Store(false)
		if err := errors.Join(m.Close(), plain.Close(), plain.Clear(context.Background())); err != nil {
			t.Error(err)
		}
	})
	if err := plain.Set(ctx, "stored", "old"); err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int64
	load := func(v string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { loads.Add(1); return v, nil }
	}
	loadMany := func(_ context.Context, keys []string) (map[string]string, error) {
		loads.Add(1)
		out := map[string]string{}
		for _, k := range keys {
			out[k] = "many " + k
		}
		return out, nil
	}
	store.reads.Store(failReads)
	store.writes.Store(failWrites)

	// Without the option: the store's error.
	_, err := plain.GetOrLoad(ctx, "k", load("v"))
	if !errors.Is(err, errStoreDown) {
		t.Errorf("without WithFailOpen: GetOrLoad = %v; want the store's error", err)
	}
	if _, err := plain.GetManyOrLoad(ctx, []string{"m1", "m2"}, loadMany); !errors.Is(err, errStoreDown) {
		t.Errorf("without WithFailOpen: GetManyOrLoad = %v; want the store's error", err)
	}
	if got := sums(t, tel, kv.MetricFailOpen, kv.AttrFailOpenStep); len(got) != 0 {
		t.Errorf("kv.client.fail_open = %v without the option; want none", got)
	}

	loads.Store(0)
	store.readFails.Store(0)
	store.wrFails.Store(0)
	v, err := m.GetOrLoad(ctx, "k", load("v"))
	if v != "v" || err != nil {
		t.Fatalf("GetOrLoad = %q, %v; want v, nil", v, err)
	}
	want := map[string]string{"m1": "many m1", "m2": "many m2", "stored": "old"}
	if failReads {
		want["stored"] = "many stored" // not read: loaded
	}
	got, err := m.GetManyOrLoad(ctx, []string{"m1", "m2", "stored"}, loadMany)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("GetManyOrLoad = %v, %v; want %v, nil", got, err, want)
	}
	if n := loads.Load(); n != 2 {
		t.Errorf("%d loader calls; want 2", n)
	}

	// Each failed store call is one span event, one Warn record, and its
	// keys on kv.client.fail_open, by step.
	failed := map[string]int64{"read": store.readFails.Load(), "write": store.wrFails.Load()}
	if failReads != (failed["read"] > 0) || failWrites != (failed["write"] > 0) {
		t.Fatalf("the store failed %v; want reads failed %v, writes %v", failed, failReads, failWrites)
	}
	for step, n := range failed {
		if n == 0 {
			delete(failed, step)
		}
	}
	events, keys := map[string]int64{}, map[string]int64{}
	for _, name := range []string{"GetOrLoad " + ns, "GetManyOrLoad " + ns} {
		sp := one(t, tel, name)
		if sp.Status().Code != codes.Unset {
			t.Errorf("%s span status = %v; want unset (the call succeeded)", name, sp.Status())
		}
		for _, e := range sp.Events() {
			if e.Name != "kv.fail_open" {
				continue
			}
			var step string
			var n int64
			for _, a := range e.Attributes {
				switch a.Key {
				case kv.AttrFailOpenStep:
					step = a.Value.AsString()
				case kv.AttrKeys:
					n = a.Value.AsInt64()
				}
			}
			events[step]++
			keys[step] += n
		}
	}
	if fmt.Sprint(events) != fmt.Sprint(failed) {
		t.Errorf("kv.fail_open span events by step = %v; want one per failed store call, %v", events, failed)
	}
	steps := sums(t, tel, kv.MetricFailOpen, kv.AttrFailOpenStep)
	delete(keys, "")
	for step, n := range keys {
		if steps[step] != n {
			t.Errorf("kv.client.fail_open = %v; want the keys of the span events, %v", steps, keys)
			break
		}
	}
	if types := sums(t, tel, kv.MetricFailOpen, "error.type"); types["_OTHER"] != steps["read"]+steps["write"] {
		t.Errorf("kv.client.fail_open by error.type = %v; want all _OTHER", types)
	}
	warns := int64(strings.Count(log.String(), `level=WARN msg="kv: the store failed`))
	if warns != failed["read"]+failed["write"] {
		t.Errorf("%d Warn records of failing open; want one per failed store call, %v (log %q)", warns, failed, log.String())
	}

	// What the store could write is stored; what it could not is not.
	store.reads.Store(false)
	store.writes.Store(false)
	_, ok, err := plain.Get(ctx, "k")
	if err != nil || ok == failWrites {
		t.Errorf("after healing: Get(k) = %v, %v; want stored %v", ok, err, !failWrites)
	}
}

// TestFailOpenOneLoad: while the store is down (the conformance fault
// injector below the Map, on memory and bbolt), concurrent misses of one
// key still share one load, leases or not, and all get its value.
func TestFailOpenOneLoad(t *testing.T) {
	for _, st := range []struct {
		name string
		open func(t *testing.T) backend.Backend
	}{
		{"memory", func(t *testing.T) backend.Backend { return memory.New(memory.WithSweepInterval(0)) }},
		{"bolt", func(t *testing.T) backend.Backend {
			b, err := bolt.Open(filepath.Join(t.TempDir(), "kv.db"), bolt.WithNoSync(), bolt.WithSweepInterval(0))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	} {
		for _, lease := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/lease %v", st.name, lease), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ctx := context.Background()
					store, faults := conformance.WithFaults(st.open(t))
					defer func() {
						if err := store.Close(); err != nil {
							t.Error(err)
						}
					}()
					opts := []kv.Option{kv.WithFailOpen(), kv.WithLoadTimeout(time.Hour)}
					if lease {
						opts = append(opts, kv.WithLoadLease(time.Minute))
					}
					tel := newTelemetry(t)
					m := mustNew[string](t, store, "ns", append(opts, tel.opts()...)...)
					defer m.Close()
					faults.Fail()
					var loads atomic.Int64
					release := make(chan struct{})
					load := func(context.Context) (string, error) {
						loads.Add(1)
						<-release
						return "v", nil
					}
					const callers = 8
					errs := make(chan error, callers)
					for range callers {
						go func() {
							v, err := m.GetOrLoad(ctx, "k", load)
							if err == nil && v != "v" {
								err = fmt.Errorf("value %q; want v", v)
							}
							errs <- err
						}()
					}
					synctest.Wait() // every caller failed to read, and waits for the load
					close(release)
					for range callers {
						if err := <-errs; err != nil {
							t.Errorf("GetOrLoad: %v", err)
						}
					}
					if n := loads.Load(); n != 1 {
						t.Errorf("%d loads for %d concurrent misses; want 1", n, callers)
					}
					if lease {
						if got := sums(t, tel, kv.MetricLoads, kv.AttrOutcome); got["lease_error"] == 0 {
							t.Errorf("kv.client.loads = %v; want the failed lease counted", got)
						}
					}
					if got := sums(t, tel, kv.MetricFailOpen, "error.type"); got["_OTHER"] < callers+1 {
						t.Errorf("kv.client.fail_open by error.type = %v; want at least %d (each caller's read, the write)", got, callers+1)
					}
				})
			})
		}
	}
}

// TestFailOpenNotForOtherErrors: with WithFailOpen, what is not the store
// failing is still returned, and the loader is not called on a read that
// returned it: data of another kind, a closed store, a value too large to
// store, the caller's context ended, a closed Map, a value that does not
// decode, the loader's own error.
func TestFailOpenNotForOtherErrors(t *testing.T) {
	type rec struct{ N int }
	for _, tc := range []struct {
		name    string
		reads   error // the reads fail with it
		writes  error // the writes fail with it
		call    func(ctx context.Context, m *kv.Map[rec], load func(context.Context) (rec, error)) error
		want    error
		noLoads bool
	}{
		{name: "wrong type", reads: kv.ErrWrongType, want: kv.ErrWrongType, noLoads: true},
		{name: "closed store", reads: kv.ErrClosed, want: kv.ErrClosed, noLoads: true},
		{name: "too large", writes: kv.ErrTooLarge, want: kv.ErrTooLarge},
		{name: "caller's context ended", reads: errStoreDown, want: errStoreDown, noLoads: true,
			call: func(ctx context.Context, m *kv.Map[rec], load func(context.Context) (rec, error)) error {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				_, err := m.GetOrLoad(ctx, "k", load)
				return err
			}},
		{name: "closed Map", reads: errStoreDown, want: errStoreDown, noLoads: true,
			call: func(ctx context.Context, m *kv.Map[rec], load func(context.Context) (rec, error)) error {
				if err := m.Close(); err != nil {
					return err
				}
				_, err := m.GetOrLoad(ctx, "k", load)
				return err
			}},
		{name: "closed Map, GetManyOrLoad", reads: errStoreDown, want: errStoreDown, noLoads: true,
			call: func(ctx context.Context, m *kv.Map[rec], load func(context.Context) (rec, error)) error {
				if err := m.Close(); err != nil {
					return err
				}
				_, err := m.GetManyOrLoad(ctx, []string{"k"}, func(ctx context.Context, _ []string) (map[string]rec, error) {
					v, err := load(ctx)
					return map[string]rec{"k": v}, err
				})
				return err
			}},
		{name: "decode", want: new(kv.DecodeError), noLoads: true,
			call: func(ctx context.Context, m *kv.Map[rec], load func(context.Context) (rec, error)) error {
				_, err := m.GetOrLoad(ctx, "bad", load)
				return err
			}},
		{name: "loader's error", writes: errStoreDown, want: kv.ErrNotFound,
			call: func(ctx context.Context, m *kv.Map[rec], _ func(context.Context) (rec, error)) error {
				_, err := m.GetOrLoad(ctx, "k", func(context.Context) (rec, error) { return rec{}, kv.ErrNotFound })
				return err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			mem := newMem(t)
			if err := mem.MSet(ctx, []backend.Entry{{Key: "ns:bad", Value: []byte("{not json"), TTL: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			store := newFailing(mem)
			for _, e := range []struct {
				err  error
				flag *atomic.Bool
			}{{tc.reads, &store.reads}, {tc.writes, &store.writes}} {
				if e.err != nil {
					err := fmt.Errorf("the store says: %w", e.err)
					store.err.Store(&err)
					e.flag.Store(true)
				}
			}
			tel := newTelemetry(t)
			m := mustNew[rec](t, store, "ns", append(tel.opts(), kv.WithFailOpen())...)
			defer m.Close()
			var loads atomic.Int64
			load := func(context.Context) (rec, error) { loads.Add(1); return rec{N: 1}, nil }
			call := tc.call
			if call == nil {
				call = func(ctx context.Context, m *kv.Map[rec], load func(context.Context) (rec, error)) error {
					_, err := m.GetOrLoad(ctx, "k", load)
					return err
				}
			}
			err := call(ctx, m, load)
			var de *kv.DecodeError
			if wde, ok := tc.want.(*kv.DecodeError); ok && wde != nil {
				if !errors.As(err, &de) {
					t.Errorf("error %v; want a *DecodeError", err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Errorf("error %v; want %v", err, tc.want)
			}
			if tc.noLoads && loads.Load() != 0 {
				t.Errorf("the loader was called %d times; want never", loads.Load())
			}
			if got := sums(t, tel, kv.MetricFailOpen, kv.AttrFailOpenStep); len(got) != 0 {
				t.Errorf("kv.client.fail_open = %v; want nothing served through", got)
			}
		})
	}
}

// TestFailOpenRedisServer: a Redis server that refuses every command (an
// error reply), then one that is gone (connection refused): GetOrLoad and
// GetManyOrLoad serve the loader's values, and kv.client.fail_open names
// the failures server and connection.
func TestFailOpenRedisServer(t *testing.T) {
	ctx := context.Background()
	srv := miniredis.RunT(t)
	tel := newTelemetry(t)
	m := mustNew[string](t, redisAt(t, srv.Addr()), "ns", append(tel.opts(), kv.WithFailOpen())...)
	defer m.Close()
	load := func(context.Context) (string, error) { return "v", nil }
	loadMany := func(_ context.Context, keys []string) (map[string]string, error) {
		out := map[string]string{}
		for _, k := range keys {
			out[k] = "v"
		}
		return out, nil
	}
	check := func(step string) {
		t.Helper()
		if v, err := m.GetOrLoad(ctx, "k", load); v != "v" || err != nil {
			t.Errorf("%s: GetOrLoad = %q, %v; want v, nil", step, v, err)
		}
		if got, err := m.GetManyOrLoad(ctx, []string{"a", "b"}, loadMany); len(got) != 2 || err != nil {
			t.Errorf("%s: GetManyOrLoad = %v, %v; want a and b, nil", step, got, err)
		}
	}
	srv.SetError("ERR injected by the test")
	check("error replies")
	srv.Close()
	check("server gone")
	got := sums(t, tel, kv.MetricFailOpen, "error.type")
	if got["server"] == 0 || got["connection"] == 0 {
		t.Errorf("kv.client.fail_open by error.type = %v; want server and connection", got)
	}
}

// TestFailOpenRecordedSomewhere: WithFailOpen with WithoutTelemetry and no
// WithLogger would swallow store errors silently: New refuses it.
func TestFailOpenRecordedSomewhere(t *testing.T) {
	// A Map without a logger (and without telemetry) logs what it serves
	// through to slog.Default: it is never silent.
	var buf bytes.Buffer
	saved := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer slog.SetDefault(saved)
	store := newFailing(newMem(t))
	m, err := kv.New[string](store, "ns", kv.WithoutTelemetry(), kv.WithFailOpen())
	if err != nil {
		t.Fatalf("New(WithFailOpen, WithoutTelemetry) = %v; want a Map", err)
	}
	defer m.Close()
	store.reads.Store(true)
	if v, err := m.GetOrLoad(t.Context(), "k", func(context.Context) (string, error) { return "v", nil }); v != "v" || err != nil {
		t.Fatalf("GetOrLoad = %q, %v; want the loader's value", v, err)
	}
	if !strings.Contains(buf.String(), "WithFailOpen") || !strings.Contains(buf.String(), "step=read") {
		t.Errorf("slog.Default holds %q; want the Warn record of the read served through", buf.String())
	}
}
