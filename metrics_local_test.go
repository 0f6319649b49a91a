package kv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/nearcache"
)

// point is one data point of an Int64 sum, with its attributes.
type point struct {
	attrs attribute.Set
	value int64
}

// int64Points returns the points of the Int64 sum (counter or up-down
// counter, synchronous or observable) named name whose kv.namespace is ns,
// at one collection of tel's reader.
func int64Points(t *testing.T, tel *telemetry, name, ns string) []point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var out []point
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != name {
				continue
			}
			sum, ok := mt.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is a %T; want an Int64 sum", name, mt.Data)
			}
			for _, p := range sum.DataPoints {
				if v, _ := p.Attributes.Value(kv.AttrNamespace); v.AsString() == ns {
					out = append(out, point{p.Attributes, p.Value})
				}
			}
		}
	}
	return out
}

// localMetrics are the kv.local.* values of namespace ns at one
// collection each; -1 for an instrument without a point, but for the
// counters (invalidations, losses), which have none until their first Add:
// 0 then.
type localMetrics struct{ entries, bytes, invalidations, losses int64 }

func readLocal(t *testing.T, tel *telemetry, ns string) localMetrics {
	t.Helper()
	one := func(name string) int64 {
		ps := int64Points(t, tel, name, ns)
		switch len(ps) {
		case 0:
			return -1
		case 1:
			return ps[0].value
		}
		t.Fatalf("%s: %d points for namespace %s; want 1 (one attribute set)", name, len(ps), ns)
		return 0
	}
	return localMetrics{one(kv.MetricLocalEntries), one(kv.MetricLocalBytes), max(one(kv.MetricLocalInvalidations), 0), max(one(kv.MetricLocalLosses), 0)}
}

// fromStats is what the kv.local.* metrics must say of a Map's tier.
func fromStats(s nearcache.Stats) localMetrics {
	return localMetrics{int64(s.Entries), s.Bytes, s.Invalidations, s.Losses}
}

// reportingStore is a store whose watches' reports a test can add to (a
// ChangeLost, as a broken tracking connection reports).
type reportingStore struct {
	backend.Wrapper
	mu      sync.Mutex
	reports []func(backend.Change)
}

func (s *reportingStore) Capabilities() backend.Capabilities {
	c := s.Wrapper.Capabilities()
	c.Namespace = nil // a view would bypass the wrapper
	watch := c.Watch
	c.Watch = func(ctx context.Context, prefix string, report func(backend.Change)) (func(), error) {
		s.mu.Lock()
		s.reports = append(s.reports, report)
		s.mu.Unlock()
		return watch(ctx, prefix, report)
	}
	return c
}

// send reports ch to every watch (one report at a time, as a store does).
func (s *reportingStore) send(ch backend.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reports {
		r(ch)
	}
}

// TestLocalTierMetrics: with a near cache, kv.local.entries and
// kv.local.bytes follow the tier as it fills, kv.local.invalidations
// counts another Map's write reported by the store, kv.local.losses a
// ChangeLost, each equal to NearCacheStats and carrying the attributes of
// the Map's other metrics; after Close the Map is reported no more.
func TestLocalTierMetrics(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	store := &reportingStore{Wrapper: backend.Wrapper{Backend: newMem(t)}}
	m := mustNew[string](t, store, "ns", append(tel.opts(), kv.WithNearCache(nearcache.Options{}))...)
	other := mustNew[string](t, store, "ns")
	check := func(step string, want func(got localMetrics) bool) localMetrics {
		t.Helper()
		st, _ := m.NearCacheStats()
		got := readLocal(t, tel, "ns")
		if got != fromStats(st) {
			t.Errorf("%s: kv.local.* = %+v; want NearCacheStats %+v", step, got, fromStats(st))
		}
		if !want(got) {
			t.Errorf("%s: kv.local.* = %+v: not as expected", step, got)
		}
		return got
	}
	if got := readLocal(t, tel, "ns"); got != (localMetrics{}) {
		t.Errorf("before any call: kv.local.* = %+v; want every instrument at 0", got)
	}
	for _, k := range []string{"a", "b", "c"} {
		if err := other.Set(ctx, k, "value of "+k); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := m.Get(ctx, k); !ok || err != nil {
			t.Fatalf("Get(%s) = %v, %v", k, ok, err)
		}
	}
	full := check("three keys read", func(g localMetrics) bool { return g.entries == 3 && g.bytes > 0 && g.invalidations == 0 })
	checkAttrs := func(name string) {
		t.Helper()
		ps := int64Points(t, tel, name, "ns")
		if len(ps) != 1 {
			t.Fatalf("%s: %d points; want 1", name, len(ps))
		}
		if v, _ := ps[0].attrs.Value("db.system.name"); v.AsString() != "memory" {
			t.Errorf("%s attributes %v; want db.system.name memory", name, ps[0].attrs.ToSlice())
		}
	}
	checkAttrs(kv.MetricLocalEntries)

	if err := other.Set(ctx, "a", "new"); err != nil { // reported by the store: a is invalidated
		t.Fatal(err)
	}
	check("after another Map's write", func(g localMetrics) bool {
		return g.invalidations == full.invalidations+1 && g.entries == 2 && g.bytes < full.bytes
	})

	store.send(backend.Change{Kind: backend.ChangeLost, Err: errors.New("connection reset")})
	check("after a loss of the reports", func(g localMetrics) bool { return g.losses == 1 && g.entries == 0 && g.bytes == 0 })
	store.send(backend.Change{Kind: backend.ChangeLive})
	if _, ok, err := m.Get(ctx, "b"); !ok || err != nil {
		t.Fatalf("Get(b) = %v, %v", ok, err)
	}
	check("refilled", func(g localMetrics) bool { return g.entries == 1 && g.losses == 1 })
	checkAttrs(kv.MetricLocalInvalidations)
	checkAttrs(kv.MetricLocalLosses)

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Entries and bytes are observed no more; the counters keep their
	// totals (a closed Map takes nothing back from them).
	if got := readLocal(t, tel, "ns"); got != (localMetrics{-1, -1, 1, 1}) {
		t.Errorf("after Close: kv.local.* = %+v; want no entries or bytes, the counters' totals (1 invalidation, 1 loss)", got)
	}
}

// TestLocalTierMetricsWho: the Maps of one namespace on one meter provider
// add up; a Map whose tier holds nothing is not observed; a tier that
// watches nothing (bbolt, stale serving) has entries and bytes only.
func TestLocalTierMetricsWho(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	store := newMem(t)
	load := func(context.Context) (string, error) { return "loaded", nil }
	near := append(tel.opts(), kv.WithNearCache(nearcache.Options{}))
	a := mustNew[string](t, store, "both", near...)
	b := mustNew[string](t, store, "both", near...)
	plain := mustNew[string](t, store, "plain", tel.opts()...)
	for _, m := range []*kv.Map[string]{a, b, plain} {
		defer m.Close()
	}
	for i, m := range []*kv.Map[string]{a, b, b, plain} {
		if err := m.Set(ctx, fmt.Sprint(i), "v"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := m.Get(ctx, fmt.Sprint(i)); !ok || err != nil {
			t.Fatalf("Get = %v, %v", ok, err)
		}
	}
	sa, _ := a.NearCacheStats()
	sb, _ := b.NearCacheStats()
	if got := readLocal(t, tel, "both"); got.entries != int64(sa.Entries+sb.Entries) || got.entries != 3 || got.bytes != sa.Bytes+sb.Bytes {
		t.Errorf("two Maps of one namespace: kv.local.* = %+v; want the sum of %+v and %+v", got, sa, sb)
	}
	if got := readLocal(t, tel, "plain"); got != (localMetrics{-1, -1, 0, 0}) {
		t.Errorf("a Map without a local tier: kv.local.* = %+v; want no point", got)
	}

	bb, err := bolt.Open(filepath.Join(t.TempDir(), "kv.db"), bolt.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	m := mustNew[string](t, bb, "bolt", append(tel.opts(), kv.WithTTL(time.Hour), kv.WithStaleWhileRevalidate(time.Minute, 10))...)
	defer m.Close()
	for _, k := range []string{"x", "y"} {
		if _, err := m.GetOrLoad(ctx, k, load); err != nil {
			t.Fatal(err)
		}
	}
	if got := readLocal(t, tel, "bolt"); got.entries != 2 || got.bytes <= 0 || got.invalidations != 0 || got.losses != 0 {
		t.Errorf("bbolt with stale serving: kv.local.* = %+v; want 2 entries, their bytes, no invalidations or losses (no watch)", got)
	}
}

// TestLocalTierMetricsUnregisteredByGC: a Map dropped without Close stops
// being observed once the garbage collector has collected it.
func TestLocalTierMetricsUnregisteredByGC(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	func() {
		m := mustNew[string](t, newMem(t), "dropped", append(tel.opts(), kv.WithMissTTL(time.Hour))...)
		if _, err := m.GetOrLoad(ctx, "k", func(context.Context) (string, error) { return "", kv.ErrNotFound }); !errors.Is(err, kv.ErrNotFound) {
			t.Fatal(err)
		}
	}()
	if got := readLocal(t, tel, "dropped"); got.entries != 1 {
		t.Fatalf("a remembered miss: kv.local.entries = %d; want 1", got.entries)
	}
	deadline := time.Now().Add(10 * time.Second)
	for readLocal(t, tel, "dropped").entries != -1 {
		if time.Now().After(deadline) {
			t.Fatal("the dropped Map is still observed 10s later")
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// TestLocalTierMetricsRedis: on a Redis server (KV_REDIS_ADDR), a write
// by another client reaches kv.local.invalidations through the tracking
// connection, and kv.local.entries follows.
func TestLocalTierMetricsRedis(t *testing.T) {
	addr := os.Getenv("KV_REDIS_ADDR")
	if addr == "" {
		t.Skip("KV_REDIS_ADDR not set")
	}
	ctx := context.Background()
	tel := newTelemetry(t)
	newBackend := func() backend.Backend { return redisAt(t, addr) }
	ns := fmt.Sprintf("kvlocalmetrics%d_%d", os.Getpid(), time.Now().UnixNano())
	m := mustNew[string](t, newBackend(), ns, append(tel.opts(), kv.WithNearCache(nearcache.Options{}))...)
	other := mustNew[string](t, newBackend(), ns)
	t.Cleanup(func() {
		if err := errors.Join(m.Close(), other.Clear(context.Background())); err != nil {
			t.Error(err)
		}
	})
	if err := other.SetMany(ctx, []kv.Entry[string]{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}); err != nil {
		t.Fatal(err)
	}
	// Read until both are served locally: the tracking connection is live.
	poll(t, "near cache live with a and b", func() bool {
		for _, k := range []string{"a", "b"} {
			if _, ok, err := m.Get(ctx, k); err != nil || !ok {
				t.Fatalf("Get(%s) = %v, %v", k, ok, err)
			}
		}
		st, _ := m.NearCacheStats()
		return st.Live && st.Entries == 2
	})
	if got := readLocal(t, tel, ns); got.entries != 2 || got.bytes <= 0 || got.invalidations != 0 || got.losses != 0 {
		t.Errorf("two keys near-cached: kv.local.* = %+v; want 2 entries, their bytes, nothing else", got)
	}
	if err := other.Set(ctx, "a", "changed"); err != nil {
		t.Fatal(err)
	}
	poll(t, "the invalidation of a counted", func() bool { return readLocal(t, tel, ns).invalidations == 1 })
	st, _ := m.NearCacheStats()
	if got := readLocal(t, tel, ns); got != fromStats(st) || got.entries != 1 {
		t.Errorf("after another client's write: kv.local.* = %+v; want NearCacheStats %+v with 1 entry", got, fromStats(st))
	}
}

// poll calls cond until it holds, failing the test after 10 seconds (for
// a real server's asynchronous reports).
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		runtime.Gosched()
	}
}

// noLeases is a store whose leases cannot be taken: AcquireLeases fails.
type noLeases struct {
	backend.Wrapper
	tries atomic.Int64
}

var errLeaseDown = errors.New("lease store down")

func (s *noLeases) Capabilities() backend.Capabilities {
	c := s.Wrapper.Capabilities()
	c.Namespace = nil
	c.AcquireLeases = func(context.Context, []string, time.Duration) ([]bool, backend.Lease, error) {
		s.tries.Add(1)
		return nil, nil, errLeaseDown
	}
	return c
}

// TestLeaseFailuresAndAbandonedLoadsCounted: the lease failures and the
// abandoned loads of the concurrency issue are counted by kv.client.loads
// (outcomes lease_error and abandoned), read through the manual reader, on
// every store that keeps leases.
func TestLeaseFailuresAndAbandonedLoadsCounted(t *testing.T) {
	for _, st := range []struct {
		name string
		open func(t *testing.T) backend.Backend
	}{
		{"memory", func(t *testing.T) backend.Backend {
			b := memory.New(memory.WithSweepInterval(0))
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Error(err)
				}
			})
			return b
		}},
		{"bolt", func(t *testing.T) backend.Backend { return newBolt(t, bolt.WithSweepInterval(0)) }},
	} {
		t.Run(st.name+"/lease_error", func(t *testing.T) {
			ctx := context.Background()
			tel := newTelemetry(t)
			store := &noLeases{Wrapper: backend.Wrapper{Backend: st.open(t)}}
			m := mustNew[string](t, store, "ns", append(tel.opts(), kv.WithLoadLease(time.Minute))...)
			defer m.Close()
			if _, err := m.GetOrLoad(ctx, "k", func(context.Context) (string, error) { return "v", nil }); err != nil {
				t.Fatal(err)
			}
			got := sums(t, tel, kv.MetricLoads, kv.AttrOutcome)
			if n := store.tries.Load(); n == 0 || got["lease_error"] != n || got["loaded"] != 1 {
				t.Errorf("kv.client.loads = %v after %d failed lease calls; want lease_error %d, loaded 1", got, n, n)
			}
		})
		t.Run(st.name+"/abandoned", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				tel := newTelemetry(t)
				m := mustNew[string](t, st.open(t), "ns", append(tel.opts(), kv.WithLoadTimeout(time.Second))...)
				release := make(chan struct{})
				done := make(chan error, 1)
				go func() {
					_, err := m.GetOrLoad(ctx, "k", func(context.Context) (string, error) {
						<-release // ignores its context
						return "late", nil
					})
					done <- err
				}()
				synctest.Wait()
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				if got := sums(t, tel, kv.MetricLoads, kv.AttrOutcome); got["abandoned"] != 1 {
					t.Errorf("kv.client.loads = %v; want abandoned 1", got)
				}
				close(release)
				if err := <-done; !errors.Is(err, kv.ErrClosed) {
					t.Errorf("GetOrLoad = %v; want ErrClosed", err)
				}
				synctest.Wait()
			})
		})
	}
}
