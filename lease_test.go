package kv_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
)

// renewCount counts the lease renewals and releases that reach the store.
type renewCount struct {
	backend.Backend
	renews, releases atomic.Int32
}

func (r *renewCount) Capabilities() backend.Capabilities {
	o := backend.CapabilitiesOf(r.Backend)
	if a := o.AcquireLeases; a != nil {
		o.AcquireLeases = func(ctx context.Context, keys []string, d time.Duration) ([]bool, backend.Lease, error) {
			held, l, err := a(ctx, keys, d)
			if l != nil {
				l = &countedLease{Lease: l, r: r}
			}
			return held, l, err
		}
	}
	return o
}

type countedLease struct {
	backend.Lease
	r *renewCount
}

func (c *countedLease) Renew(ctx context.Context, d time.Duration) error {
	c.r.renews.Add(1)
	return c.Lease.Renew(ctx, d)
}

func (c *countedLease) Release(ctx context.Context) error {
	c.r.releases.Add(1)
	return c.Lease.Release(ctx)
}

// TestLoadLeaseRenewedDuringLongLoad: a load that takes five lease times
// keeps its lease by renewing it, so a Map of another process that misses
// meanwhile waits for the value instead of loading too, and gets it as soon
// as it is stored.
func TestLoadLeaseRenewedDuringLongLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &renewCount{Backend: memory.New(memory.WithSweepInterval(0))}
		defer store.Close()
		m1 := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Second))
		m2 := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Second))
		var calls atomic.Int32
		load := func(context.Context) (string, error) {
			calls.Add(1)
			time.Sleep(5 * time.Second) // fake time
			return "slow", nil
		}
		var wg sync.WaitGroup
		var v1 string
		var err1 error
		wg.Go(func() { v1, err1 = m1.GetOrLoad(ctx, "id", load) })
		synctest.Wait() // m1 holds the lease and is loading
		start := time.Now()
		v2, err2 := m2.GetOrLoad(ctx, "id", load)
		waited := time.Since(start)
		wg.Wait()
		if err1 != nil || err2 != nil || v1 != "slow" || v2 != "slow" {
			t.Errorf("GetOrLoad = %q, %v and %q, %v; want slow twice", v1, err1, v2, err2)
		}
		if c := calls.Load(); c != 1 {
			t.Errorf("load called %d times; want 1 (the lease was renewed)", c)
		}
		if waited < 5*time.Second || waited > 5*time.Second+100*time.Millisecond {
			t.Errorf("the waiting Map got the value after %v; want the load's 5s plus one poll", waited)
		}
		if r := store.renews.Load(); r < 10 {
			t.Errorf("%d renewals in a 5s load with a 1s lease; want one every third of the lease", r)
		}
		synctest.Wait() // the release follows the end of the flight
		if r := store.releases.Load(); r != 1 {
			t.Errorf("%d releases; want 1", r)
		}
	})
}

// TestLoadLeaseReleasedOnError: a load that fails releases its lease at
// once, so a waiting Map loads the key itself without waiting for the
// lease to expire; the failing Map's callers get its error.
func TestLoadLeaseReleasedOnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New(memory.WithSweepInterval(0))
		defer store.Close()
		m1 := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Minute))
		m2 := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Minute))
		boom := errors.New("database down")
		var wg sync.WaitGroup
		var err1 error
		wg.Go(func() {
			_, err1 = m1.GetOrLoad(ctx, "id", func(context.Context) (string, error) {
				time.Sleep(time.Second)
				return "", boom
			})
		})
		synctest.Wait()
		start := time.Now()
		v2, err2 := m2.GetOrLoad(ctx, "id", func(context.Context) (string, error) { return "second", nil })
		waited := time.Since(start)
		wg.Wait()
		if !errors.Is(err1, boom) {
			t.Errorf("failing Map: GetOrLoad = %v; want its load error", err1)
		}
		if err2 != nil || v2 != "second" {
			t.Errorf("waiting Map: GetOrLoad = %q, %v; want second, nil", v2, err2)
		}
		if waited > time.Second+100*time.Millisecond {
			t.Errorf("the waiting Map loaded after %v; want right after the 1s failure, not the 1m lease", waited)
		}
	})
}

// TestCloseStopsLeaseRenewal: once Close returns, a load still under way
// renews its lease no more, and the wait of another Map ends with Close.
func TestCloseStopsLeaseRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &renewCount{Backend: memory.New(memory.WithSweepInterval(0))}
		defer store.Close()
		m := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Second))
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := m.GetOrLoad(ctx, "id", func(context.Context) (string, error) { <-release; return "v", nil })
			done <- err
		}()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		before := store.renews.Load()
		if before == 0 {
			t.Fatalf("no renewal in 2s of a 1s lease")
		}
		time.Sleep(10 * time.Second)
		if after := store.renews.Load(); after != before {
			t.Errorf("%d renewals after Close; want none", after-before)
		}
		close(release)
		if err := <-done; !errors.Is(err, kv.ErrClosed) {
			t.Errorf("GetOrLoad = %v; want ErrClosed: Close ends the load", err)
		}
	})
}

// TestGetManyOrLoadLease: two Maps loading overlapping batches at once load
// each key once between them; every key comes back to both.
func TestGetManyOrLoadLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New(memory.WithSweepInterval(0))
		defer store.Close()
		var mu sync.Mutex
		loaded := map[string]int{}
		loadMany := func(_ context.Context, keys []string) (map[string]string, error) {
			mu.Lock()
			for _, k := range keys {
				loaded[k]++
			}
			mu.Unlock()
			time.Sleep(time.Second)
			out := map[string]string{}
			for _, k := range keys {
				out[k] = "v-" + k
			}
			return out, nil
		}
		batches := [][]string{{"a", "b", "c"}, {"b", "c", "d"}}
		results := make([]map[string]string, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, keys := range batches {
			m := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Minute))
			wg.Go(func() { results[i], errs[i] = m.GetManyOrLoad(ctx, keys, loadMany) })
		}
		wg.Wait()
		for k, n := range loaded {
			if n != 1 {
				t.Errorf("key %s loaded %d times; want 1", k, n)
			}
		}
		if len(loaded) != 4 {
			t.Errorf("loaded %v; want a, b, c and d once each", loaded)
		}
		for i, keys := range batches {
			if errs[i] != nil {
				t.Errorf("batch %d: %v", i, errs[i])
			}
			for _, k := range keys {
				if results[i][k] != "v-"+k {
					t.Errorf("batch %d: %s = %q; want v-%s", i, k, results[i][k], k)
				}
			}
		}
	})
}

// TestLoadLeaseInvalid: a lease time out of range is refused by New.
func TestLoadLeaseInvalid(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, kv.MaxTTL + 1} {
		if _, err := kv.New[string](newMem(t), "ns", kv.WithLoadLease(d)); !errors.Is(err, kv.ErrInvalidOption) {
			t.Errorf("WithLoadLease(%v): New = %v; want ErrInvalidOption", d, err)
		}
	}
}

// TestStaleWhileRevalidate: within the grace period after a key expired,
// GetOrLoad serves the value it last saw and reloads it (inside the call
// with WithSynchronousRefresh); past it, or for a key deleted before its
// deadline, it loads; plain reads never see the expired value.
func TestStaleWhileRevalidate(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(clk), memory.WithSweepInterval(0))
	defer store.Close()
	m := mustNew[string](t, store, "ns", kv.WithTTL(time.Minute),
		kv.WithStaleWhileRevalidate(30*time.Second, 100), kv.WithSynchronousRefresh())
	n := 0
	load := func(context.Context) (string, error) { n++; return fmt.Sprintf("v%d", n), nil }
	steps := []struct {
		name    string
		advance time.Duration
		do      func()
		want    string
		loads   int
	}{
		{name: "miss loads", want: "v1", loads: 1},
		{name: "hit", advance: 59 * time.Second, want: "v1", loads: 1},
		{name: "expired 10s ago: stale, reloaded", advance: 11 * time.Second, want: "v1", loads: 2},
		{name: "the reloaded value", want: "v2", loads: 2},
		{name: "expired 31s ago: loaded", advance: 91 * time.Second, want: "v3", loads: 3},
		{name: "deleted by another Map before its deadline: loaded", advance: 10 * time.Second, do: func() {
			other := mustNew[string](t, store, "ns")
			if err := other.Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
		}, want: "v4", loads: 4},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.do != nil {
			s.do()
		}
		if s.name == "expired 10s ago: stale, reloaded" {
			if _, ok, _ := m.Get(ctx, "k"); ok {
				t.Errorf("%s: Get found the expired key", s.name)
			}
		}
		v, err := m.GetOrLoad(ctx, "k", load)
		if err != nil || v != s.want || n != s.loads {
			t.Errorf("%s: GetOrLoad = %q, %v after %d loads; want %q after %d", s.name, v, err, n, s.want, s.loads)
		}
	}
}

// TestStaleForgottenOnWrite: a value written or deleted through the Map is
// never served stale afterwards.
func TestStaleForgottenOnWrite(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(clk), memory.WithSweepInterval(0))
	defer store.Close()
	m := mustNew[string](t, store, "ns", kv.WithTTL(time.Minute),
		kv.WithStaleWhileRevalidate(time.Hour, 100), kv.WithSynchronousRefresh())
	load := func(context.Context) (string, error) { return "loaded", nil }
	for _, write := range []struct {
		name string
		do   func() error
	}{
		{"Delete", func() error { return m.Delete(ctx, "k") }},
		{"DeleteMany", func() error { return m.DeleteMany(ctx, []string{"k"}) }},
		{"Clear", func() error { return m.Clear(ctx) }},
		{"SetWithTTL then expiry", func() error { return m.SetWithTTL(ctx, "k", "short", time.Second) }},
	} {
		if _, err := m.GetOrLoad(ctx, "k", load); err != nil {
			t.Fatal(err)
		}
		if err := write.do(); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Minute) // past every deadline, within the grace
		loads := 0
		v, err := m.GetOrLoad(ctx, "k", func(context.Context) (string, error) { loads++; return "fresh", nil })
		if err != nil || v != "fresh" || loads != 1 {
			t.Errorf("after %s: GetOrLoad = %q, %v with %d loads; want fresh, loaded", write.name, v, err, loads)
		}
		if err := m.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMapClockDefaultsToStoreClock: without WithClock a Map times what it
// remembers by the store's clock (a memory store's, a bbolt backtest's
// simulated one), so a remembered miss ends when the store's clock says so.
func TestMapClockDefaultsToStoreClock(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(clk), memory.WithSweepInterval(0))
	defer store.Close()
	m := mustNew[string](t, store, "ns", kv.WithMissTTL(time.Minute))
	loads := 0
	load := func(context.Context) (string, error) { loads++; return "", kv.ErrNotFound }
	for _, step := range []time.Duration{0, 30 * time.Second, 31 * time.Second} {
		clk.Advance(step)
		if _, err := m.GetOrLoad(ctx, "gone", load); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("GetOrLoad = %v; want ErrNotFound", err)
		}
	}
	if loads != 2 {
		t.Errorf("load called %d times over 61s of the store's clock with a 1m miss TTL; want 2", loads)
	}
}

// TestStaleInvalid: WithStaleWhileRevalidate needs a positive grace and size.
func TestStaleInvalid(t *testing.T) {
	for _, c := range [][2]int{{0, 10}, {10, 0}, {-1, 10}, {10, -1}} {
		_, err := kv.New[string](newMem(t), "ns", kv.WithStaleWhileRevalidate(time.Duration(c[0])*time.Second, c[1]))
		if !errors.Is(err, kv.ErrInvalidOption) {
			t.Errorf("WithStaleWhileRevalidate(%ds, %d): New = %v; want ErrInvalidOption", c[0], c[1], err)
		}
	}
}

// beforeAcquire runs hook once, before the first lease is taken.
type beforeAcquire struct {
	backend.Backend
	once sync.Once
	hook func()
}

func (b *beforeAcquire) Capabilities() backend.Capabilities {
	o := backend.CapabilitiesOf(b.Backend)
	a := o.AcquireLeases
	o.AcquireLeases = func(ctx context.Context, keys []string, d time.Duration) ([]bool, backend.Lease, error) {
		b.once.Do(b.hook)
		return a(ctx, keys, d)
	}
	return o
}

// TestLoadLeaseReadsAfterTaking: a process that missed a key, and takes its
// lease only after another process loaded, stored and released it, reads
// the key again instead of loading it a second time.
func TestLoadLeaseReadsAfterTaking(t *testing.T) {
	ctx := context.Background()
	store := newMem(t)
	other := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Minute))
	loads := 0
	load := func(context.Context) (string, error) { loads++; return fmt.Sprintf("v%d", loads), nil }
	for _, c := range []struct {
		name string
		call func(m *kv.Map[string]) (string, error)
	}{
		{"GetOrLoad", func(m *kv.Map[string]) (string, error) { return m.GetOrLoad(ctx, "k", load) }},
		{"GetManyOrLoad", func(m *kv.Map[string]) (string, error) {
			got, err := m.GetManyOrLoad(ctx, []string{"k"}, func(ctx context.Context, _ []string) (map[string]string, error) {
				v, err := load(ctx)
				return map[string]string{"k": v}, err
			})
			return got["k"], err
		}},
	} {
		loads = 0
		if err := other.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		late := &beforeAcquire{Backend: store, hook: func() {
			if _, err := other.GetOrLoad(ctx, "k", load); err != nil {
				t.Errorf("the other process: %v", err)
			}
		}}
		m := mustNew[string](t, late, "ns", kv.WithLoadLease(time.Minute))
		v, err := c.call(m)
		if err != nil || v != "v1" || loads != 1 {
			t.Errorf("%s: got %q, %v after %d loads; want the other process's v1, 1 load", c.name, v, err, loads)
		}
	}
}

// TestPanickingBatchLoadEndsItsLease: a loadMany that panics while holding
// leases gets them released and stops renewing them.
func TestPanickingBatchLoadEndsItsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &renewCount{Backend: memory.New(memory.WithSweepInterval(0))}
		defer store.Close()
		m := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Second))
		_, err := m.GetManyOrLoad(ctx, []string{"a", "b"}, func(context.Context, []string) (map[string]string, error) {
			time.Sleep(2 * time.Second) // renewed meanwhile
			panic("loader bug")
		})
		if err == nil {
			t.Fatal("GetManyOrLoad with a panicking loader returned no error")
		}
		synctest.Wait()
		renewed := store.renews.Load()
		time.Sleep(10 * time.Second)
		if after := store.renews.Load(); after != renewed {
			t.Errorf("%d renewals after the panic; want none", after-renewed)
		}
		if r := store.releases.Load(); r != 1 {
			t.Errorf("%d releases; want 1", r)
		}
	})
}

// TestHitsFarFromDeadlineReadNoTTL: with refresh ahead or stale serving, a
// GetOrLoad hit on a key the Map knows to be far from its deadline is a
// plain Get; only a key near (or of unknown) deadline is read with its TTL.
func TestHitsFarFromDeadlineReadNoTTL(t *testing.T) {
	ctx := context.Background()
	for name, opt := range map[string]kv.Option{
		"refresh ahead": kv.WithRefreshAhead(0.2),
		"stale serving": kv.WithStaleWhileRevalidate(time.Minute, 10),
	} {
		t.Run(name, func(t *testing.T) {
			store := &counting{Backend: newMem(t)}
			m := mustNew[string](t, store, "ns", kv.WithTTL(time.Hour), opt)
			load := func(context.Context) (string, error) { return "v", nil }
			if _, err := m.GetOrLoad(ctx, "k", load); err != nil {
				t.Fatal(err)
			}
			store.mgets.Store(0)
			for range 3 {
				if v, err := m.GetOrLoad(ctx, "k", load); err != nil || v != "v" {
					t.Fatalf("GetOrLoad = %q, %v", v, err)
				}
			}
			if n := store.mgets.Load(); n != 0 {
				t.Errorf("%d reads with TTL for hits on a key an hour from its deadline; want 0", n)
			}
		})
	}
}
