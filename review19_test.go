package kv_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/nearcache"
)

// review19SlowGet is a store whose Get takes step of the manual clock: a
// round trip that takes time, deterministically. It hides the store's
// capabilities (no watch: the Map's tier is live from the start).
type review19SlowGet struct {
	backend.Backend
	c    *clock.Manual
	step time.Duration
}

func (b review19SlowGet) Get(ctx context.Context, key string) (backend.Value, error) {
	v, err := b.Backend.Get(ctx, key)
	b.c.Advance(b.step)
	return v, err
}

// TestReview19FarPathDeadlineDrift: a GetOrLoad hit on a key known to be far
// from its deadline is a plain Get, given a TTL synthesized from the
// remembered deadline. The new code records that TTL counted from after the
// reply: each such hit moves the remembered deadline later by the round
// trip, so the key is never known to be near its deadline. Refresh-ahead
// then never fires before the key expires (the hot key misses, as the
// option exists to prevent), and stale serving refuses the expired key (its
// remembered deadline lies in the future: "deleted, not expired").
func TestReview19FarPathDeadlineDrift(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("RefreshAhead", func(t *testing.T) {
		c := clock.NewManual(start)
		store := memory.New(memory.WithClock(c), memory.WithSweepInterval(0))
		defer store.Close()
		m := mustNew[string](t, review19SlowGet{store, c, time.Second}, "ns",
			kv.WithTTL(10*time.Second), kv.WithRefreshAhead(0.2), kv.WithSynchronousRefresh())
		defer m.Close()
		if err := m.Set(ctx, "k", "v1"); err != nil {
			t.Fatal(err)
		}
		var loads atomic.Int32
		load := func(context.Context) (string, error) { loads.Add(1); return "v2", nil }
		// Hits until just before the key's deadline (10 s): the last 2 s
		// are the refresh window.
		for c.Now().Before(start.Add(9500 * time.Millisecond)) {
			if _, err := m.GetOrLoad(ctx, "k", load); err != nil {
				t.Fatal(err)
			}
			if loads.Load() > 0 {
				break
			}
		}
		if got := loads.Load(); got == 0 {
			t.Errorf("hits up to %v after the write (TTL 10 s, refresh window 2 s): loads %d, want a refresh ahead of expiry",
				c.Now().Sub(start), got)
		}
	})
	t.Run("StaleWhileRevalidate", func(t *testing.T) {
		c := clock.NewManual(start)
		store := memory.New(memory.WithClock(c), memory.WithSweepInterval(0))
		defer store.Close()
		m := mustNew[string](t, review19SlowGet{store, c, time.Second}, "ns",
			kv.WithTTL(10*time.Second), kv.WithStaleWhileRevalidate(5*time.Second, 100), kv.WithSynchronousRefresh())
		defer m.Close()
		if err := m.Set(ctx, "k", "v1"); err != nil {
			t.Fatal(err)
		}
		load := func(context.Context) (string, error) { return "v2", nil }
		// Hits every second while the key lives (the Map knows its
		// deadline from the write: each is a plain Get).
		for c.Now().Before(start.Add(9 * time.Second)) {
			if v, err := m.GetOrLoad(ctx, "k", load); err != nil || v != "v1" {
				t.Fatalf("GetOrLoad at %v = %q, %v; want v1", c.Now().Sub(start), v, err)
			}
		}
		c.Set(start.Add(11 * time.Second)) // expired 1 s ago, within the 5 s grace
		if v, err := m.GetOrLoad(ctx, "k", load); err != nil || v != "v1" {
			t.Errorf("GetOrLoad 1 s after expiry = %q, %v; want v1 served stale", v, err)
		}
	})
}

// TestReview19NearHitNotRememberedForStale: with a near cache and stale
// serving, a GetOrLoad hit served from the near cache is not remembered as
// a value to serve stale (readKept returns before End): a key that
// GetOrLoad returned, and that then expired, is not served stale but
// loaded in the call. Before, the near cache sat under the seen set, and
// the hit was recorded.
func TestReview19NearHitNotRememberedForStale(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := clock.NewManual(start)
	store := memory.New(memory.WithClock(c), memory.WithSweepInterval(0))
	defer store.Close()
	m := mustNew[string](t, store, "ns", kv.WithTTL(10*time.Second),
		kv.WithNearCache(nearcache.Options{}), kv.WithStaleWhileRevalidate(5*time.Second, 100))
	defer m.Close()
	if err := m.Set(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := m.Get(ctx, "k"); err != nil || !ok || v != "v1" {
		t.Fatalf("Get = %q, %v, %v; want v1", v, ok, err)
	}
	load := func(context.Context) (string, error) { return "v2", nil }
	if v, err := m.GetOrLoad(ctx, "k", load); err != nil || v != "v1" {
		t.Fatalf("GetOrLoad = %q, %v; want v1", v, err)
	}
	c.Advance(11 * time.Second)
	if v, err := m.GetOrLoad(ctx, "k", load); err != nil || v != "v1" {
		t.Errorf("GetOrLoad 1 s after expiry = %q, %v; want v1 served stale (GetOrLoad returned it before)", v, err)
	}
}

// TestReview19LoadedLargeValueFlushesTier: Tier.Wrote keeps a loaded value
// whatever its size (End refuses one over a sixteenth of MaxBytes), and
// keep then evicts from the least recently used end until the bytes fit,
// the new slot last: one loaded value larger than the near cache's
// MaxBytes empties the whole near cache (and what stale serving
// remembers) before being evicted itself.
func TestReview19LoadedLargeValueFlushesTier(t *testing.T) {
	ctx := context.Background()
	c := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(c), memory.WithSweepInterval(0))
	defer store.Close()
	m := mustNew[string](t, store, "ns", kv.WithTTL(time.Minute),
		kv.WithNearCache(nearcache.Options{MaxBytes: 1024}), kv.WithStaleWhileRevalidate(5*time.Second, 100))
	defer m.Close()
	if err := m.Set(ctx, "a", "small"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Get(ctx, "a"); err != nil { // near-cached now
		t.Fatal(err)
	}
	big := string(make([]byte, 2000))
	if _, err := m.GetOrLoad(ctx, "big", func(context.Context) (string, error) { return big, nil }); err != nil {
		t.Fatal(err)
	}
	before, _ := m.NearCacheStats()
	if _, _, err := m.Get(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	after, _ := m.NearCacheStats()
	if after.Hits != before.Hits+1 {
		t.Errorf("Get of a near-cached key after loading a 2000-byte value (MaxBytes 1024): hits %d -> %d, want a near hit (entries %d, bytes %d)",
			before.Hits, after.Hits, after.Entries, after.Bytes)
	}
}
