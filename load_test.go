package kv_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
)

// counting counts the reads and batched writes that reach the store.
type counting struct {
	backend.Backend
	mgets, msets atomic.Int32
	lastMSet     atomic.Int32 // entries of the last MSet
}

func (c *counting) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	c.mgets.Add(1)
	return c.Backend.MGet(ctx, keys, withTTL)
}

func (c *counting) MSet(ctx context.Context, entries []backend.Entry) error {
	c.msets.Add(1)
	c.lastMSet.Store(int32(len(entries)))
	return c.Backend.MSet(ctx, entries)
}

// TestGetManyOrLoad: one read of all keys, one loadMany call with the
// misses only, one batched write of what it returned; keys it leaves out
// are absent.
func TestGetManyOrLoad(t *testing.T) {
	ctx := context.Background()
	store := &counting{Backend: newMem(t)}
	m := mustNew[string](t, store, "ns")
	if err := m.Set(ctx, "a", "stored"); err != nil {
		t.Fatal(err)
	}
	store.mgets.Store(0)
	store.msets.Store(0)
	var asked [][]string
	got, err := m.GetManyOrLoad(ctx, []string{"a", "b", "c", "b"}, func(_ context.Context, missing []string) (map[string]string, error) {
		asked = append(asked, slices.Sorted(slices.Values(missing)))
		return map[string]string{"b": "loaded-b"}, nil // c is not in the source
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "stored", "b": "loaded-b"}; len(got) != 2 || got["a"] != want["a"] || got["b"] != want["b"] {
		t.Errorf("GetManyOrLoad = %v; want %v", got, want)
	}
	if len(asked) != 1 || !slices.Equal(asked[0], []string{"b", "c"}) {
		t.Errorf("loadMany calls = %q; want one, with [b c]", asked)
	}
	if r, w, n := store.mgets.Load(), store.msets.Load(), store.lastMSet.Load(); r != 1 || w != 1 || n != 1 {
		t.Errorf("store saw %d reads and %d writes (last of %d entries); want 1 read, 1 write of 1", r, w, n)
	}
	if v, ok, err := m.Get(ctx, "b"); err != nil || !ok || v != "loaded-b" {
		t.Errorf("Get(b) after the load = %q, %v, %v", v, ok, err)
	}
	boom := errors.New("db down")
	got, err = m.GetManyOrLoad(ctx, []string{"a", "z"}, func(context.Context, []string) (map[string]string, error) { return nil, boom })
	if !errors.Is(err, boom) || got["a"] != "stored" {
		t.Errorf("GetManyOrLoad with a failing load = %v, %v; want the stored value and the load error", got, err)
	}
	if ok, _ := m.Has(ctx, "z"); ok {
		t.Errorf("a failed load stored z")
	}
}

// TestGetManyOrLoadSharesFlights: a GetOrLoad of a key a GetManyOrLoad is
// loading waits for that load instead of loading again, and a GetManyOrLoad
// of a key a GetOrLoad is loading waits too. synctest makes "while it is
// loading" exact.
func TestGetManyOrLoadSharesFlights(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New(memory.WithSweepInterval(0))
		defer store.Close()
		m := mustNew[string](t, store, "ns")
		release := make(chan struct{})
		var batchCalls, singleCalls atomic.Int32
		var wg sync.WaitGroup
		var batch map[string]string
		wg.Go(func() {
			var err error
			batch, err = m.GetManyOrLoad(ctx, []string{"x", "y"}, func(_ context.Context, missing []string) (map[string]string, error) {
				batchCalls.Add(1)
				<-release
				return map[string]string{"x": "bx", "y": "by"}, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
		synctest.Wait() // the batch is loading x and y
		var single string
		wg.Go(func() {
			var err error
			single, err = m.GetOrLoad(ctx, "x", func(context.Context) (string, error) {
				singleCalls.Add(1)
				return "sx", nil
			})
			if err != nil {
				t.Error(err)
			}
		})
		synctest.Wait() // the single call waits for the batch's flight
		close(release)
		wg.Wait()
		if single != "bx" || singleCalls.Load() != 0 || batchCalls.Load() != 1 {
			t.Errorf("GetOrLoad during the batch = %q (its load called %d times, the batch's %d); want bx, 0, 1",
				single, singleCalls.Load(), batchCalls.Load())
		}
		if batch["x"] != "bx" || batch["y"] != "by" {
			t.Errorf("batch = %v", batch)
		}
	})
}

// TestMissTTL: a key the source does not have is remembered, by the Map's
// clock, and load is not called again until the miss is forgotten; nothing
// is stored.
func TestMissTTL(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(clk))
	t.Cleanup(func() { store.Close() })
	m := mustNew[string](t, store, "ns", kv.WithMissTTL(time.Minute), kv.WithClock(clk))
	calls := 0
	load := func(context.Context) (string, error) { calls++; return "", kv.ErrNotFound }
	for range 3 {
		if _, err := m.GetOrLoad(ctx, "gone", load); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("GetOrLoad = %v; want ErrNotFound", err)
		}
	}
	if calls != 1 {
		t.Errorf("load called %d times within the miss TTL; want 1", calls)
	}
	clk.Advance(time.Minute)
	if _, err := m.GetOrLoad(ctx, "gone", load); !errors.Is(err, kv.ErrNotFound) || calls != 2 {
		t.Errorf("after the miss TTL: %v, load called %d times; want ErrNotFound and a second call", err, calls)
	}
	if ok, _ := m.Has(ctx, "gone"); ok {
		t.Errorf("a remembered miss was stored")
	}
	batchCalls := 0
	loadMany := func(context.Context, []string) (map[string]string, error) { batchCalls++; return nil, nil }
	for range 2 {
		if got, err := m.GetManyOrLoad(ctx, []string{"left-out"}, loadMany); err != nil || len(got) != 0 {
			t.Fatalf("GetManyOrLoad = %v, %v", got, err)
		}
	}
	if batchCalls != 1 {
		t.Errorf("loadMany called %d times for a key it left out; want 1 within the miss TTL", batchCalls)
	}
}

// TestTTLJitter: writes that take the Map's TTL are spread by up to the
// fraction either way, the same way for the same seed; writes with their own
// TTL are not.
func TestTTLJitter(t *testing.T) {
	ctx := context.Background()
	ttls := func(seed uint64) []time.Duration {
		clk := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
		store := memory.New(memory.WithClock(clk))
		defer store.Close()
		m := mustNew[string](t, store, "ns", kv.WithTTL(time.Hour), kv.WithTTLJitter(0.2, seed))
		var out []time.Duration
		for i := range 50 {
			k := string(rune('a'+i%26)) + string(rune('a'+i/26))
			if err := m.Set(ctx, k, "v"); err != nil {
				t.Fatal(err)
			}
			d, _, err := m.TTL(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		if err := m.SetWithTTL(ctx, "own", "v", time.Minute); err != nil {
			t.Fatal(err)
		}
		if d, _, _ := m.TTL(ctx, "own"); d != time.Minute {
			t.Errorf("a write with its own TTL got %v; want it unspread", d)
		}
		return out
	}
	a, b, c := ttls(7), ttls(7), ttls(8)
	if !slices.Equal(a, b) {
		t.Errorf("the same seed spread TTLs differently")
	}
	if slices.Equal(a, c) {
		t.Errorf("different seeds spread TTLs the same way")
	}
	lo, hi := slices.Min(a), slices.Max(a)
	if lo < 48*time.Minute || hi > 72*time.Minute || hi-lo < 10*time.Minute {
		t.Errorf("TTLs spread over [%v, %v]; want within 1h±20%%, and spread", lo, hi)
	}
	for _, bad := range []float64{-0.1, 1} {
		if _, err := kv.New[string](newMem(t), "ns", kv.WithTTLJitter(bad, 1)); !errors.Is(err, kv.ErrInvalidOption) {
			t.Errorf("WithTTLJitter(%v) = %v; want ErrInvalidOption", bad, err)
		}
	}
}

// TestRefreshAheadSynchronous: a hit in the last part of the TTL returns
// the current value and, in the same call, loads and stores a fresh one;
// earlier hits load nothing. On a simulated clock every run makes the same
// load calls.
func TestRefreshAheadSynchronous(t *testing.T) {
	ctx := context.Background()
	run := func() []string {
		clk := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
		store := memory.New(memory.WithClock(clk))
		defer store.Close()
		m := mustNew[string](t, store, "ns", kv.WithTTL(10*time.Minute), kv.WithRefreshAhead(0.2),
			kv.WithSynchronousRefresh(), kv.WithClock(clk))
		defer m.Close()
		var calls []string
		n := 0
		load := func(context.Context) (string, error) {
			n++
			v := fmt.Sprintf("v%d", n)
			calls = append(calls, clk.Now().Format("15:04:05")+"="+v)
			return v, nil
		}
		for _, step := range []time.Duration{0, 7 * time.Minute, 90 * time.Second, 30 * time.Second, 9 * time.Minute} {
			clk.Advance(step)
			if _, err := m.GetOrLoad(ctx, "k", load); err != nil {
				t.Fatal(err)
			}
		}
		return calls
	}
	first := run()
	// 00:00 miss; 00:07 hit, 3m left; 00:08:30 hit, 1m30s left: refresh;
	// 00:09 hit on the fresh value; 00:18 hit, 1m30s left again: refresh.
	if want := []string{"00:00:00=v1", "00:08:30=v2", "00:18:00=v3"}; !slices.Equal(first, want) {
		t.Errorf("load calls = %q; want %q", first, want)
	}
	if again := run(); !slices.Equal(first, again) {
		t.Errorf("a second run made the load calls %q; the first %q", again, first)
	}
}

// TestRefreshAheadBackground: concurrent hits near expiry start one
// refresh, return the current value at once, and the fresh value is stored
// by the time Close returns.
func TestRefreshAheadBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New(memory.WithSweepInterval(0)) // the bubble's fake clock
		defer store.Close()
		m := mustNew[string](t, store, "ns", kv.WithTTL(10*time.Minute), kv.WithRefreshAhead(0.2))
		var calls atomic.Int32
		release := make(chan struct{})
		load := func(context.Context) (string, error) {
			n := calls.Add(1)
			if n > 1 {
				<-release // the refresh is under way while the hits are served
			}
			return fmt.Sprintf("v%d", n), nil
		}
		if v, err := m.GetOrLoad(ctx, "k", load); err != nil || v != "v1" {
			t.Fatalf("first GetOrLoad = %q, %v", v, err)
		}
		time.Sleep(9 * time.Minute) // fake time: 1 minute of TTL left
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if v, err := m.GetOrLoad(ctx, "k", load); err != nil || v != "v1" {
					t.Errorf("hit near expiry = %q, %v; want the current v1", v, err)
				}
			})
		}
		wg.Wait()
		close(release)
		synctest.Wait() // the refresh ends (Close would cancel it)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if c := calls.Load(); c != 2 {
			t.Errorf("load called %d times; want 2 (one miss, one refresh for 8 hits)", c)
		}
		if v, _, _ := m.Get(ctx, "k"); v != "v2" {
			t.Errorf("after Close the stored value is %q; want the refreshed v2", v)
		}
		if d, _, _ := m.TTL(ctx, "k"); d != 10*time.Minute {
			t.Errorf("TTL after the refresh = %v; want a fresh 10m", d)
		}
	})
}

// TestLoadsMetric: kv.client.loads counts loads by outcome, and names no key.
func TestLoadsMetric(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	m := mustNew[string](t, newMem(t), "ns", tel.opts()...)
	if _, err := m.GetOrLoad(ctx, "a", func(context.Context) (string, error) { return "v", nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := m.GetOrLoad(ctx, "b", func(context.Context) (string, error) { return "", kv.ErrNotFound }); !errors.Is(err, kv.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := m.GetManyOrLoad(ctx, []string{"c", "d"}, func(context.Context, []string) (map[string]string, error) {
		return map[string]string{"c": "v"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != kv.MetricLoads {
				continue
			}
			for _, p := range mt.Data.(metricdata.Sum[int64]).DataPoints {
				outcome, _ := p.Attributes.Value(kv.AttrOutcome)
				got[outcome.AsString()] += p.Value
				for _, a := range p.Attributes.ToSlice() {
					if v := a.Value.String(); v == "a" || v == "b" || v == "c" || v == "d" {
						t.Errorf("the metric names a key: %v", a)
					}
				}
			}
		}
	}
	if got["loaded"] != 2 || got["not_found"] != 2 {
		t.Errorf("kv.client.loads = %v; want loaded 2, not_found 2", got)
	}
}
