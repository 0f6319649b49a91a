package kv_test

import (
	"context"
	"errors"
	"slices"
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
