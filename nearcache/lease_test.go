package nearcache_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/nearcache"
)

// silentStore is a memory store whose watch goes live but reports no key
// changes: only the cache's own forgetting keeps it coherent.
type silentStore struct{ *memory.Backend }

func (s silentStore) Capabilities() backend.Capabilities {
	o := s.Backend.Capabilities()
	watch := o.Watch
	o.Watch = func(ctx context.Context, prefix string, report func(backend.Change)) (func(), error) {
		return watch(ctx, prefix, func(c backend.Change) {
			if c.Kind != backend.ChangeKeys {
				report(c)
			}
		})
	}
	return o
}

// TestLeaseStoreForgetsKeys: a value stored through a lease taken through
// the cache (a load's result) is seen by the next read through the cache,
// as a write through it is, even when the store reports nothing.
func TestLeaseStoreForgetsKeys(t *testing.T) {
	ctx := context.Background()
	m := memory.New(memory.WithClock(clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))), memory.WithSweepInterval(0))
	t.Cleanup(func() { _ = m.Close() })
	c, err := nearcache.New(silentStore{m}, "", nearcache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	if err := m.MSet(ctx, []backend.Entry{{Key: "k", Value: []byte("old"), TTL: backend.NoTTL}}); err != nil {
		t.Fatal(err)
	}
	read := func() backend.Value {
		t.Helper()
		v, err := c.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	read()
	if v := read(); !v.Local || string(v.Bytes) != "old" {
		t.Fatalf("second Get = %q, local %v; want old, served locally", v.Bytes, v.Local)
	}
	acquire := c.Capabilities().AcquireLeases
	if acquire == nil {
		t.Fatal("the cache hides the store's AcquireLeases")
	}
	held, l, err := acquire(ctx, []string{"k"}, time.Minute)
	if err != nil || !slices.Equal(held, []bool{true}) {
		t.Fatalf("AcquireLeases = %v, %v", held, err)
	}
	stored, err := l.Store(ctx, []backend.GuardedEntry{{Entry: backend.Entry{Key: "k", Value: []byte("new"), TTL: backend.NoTTL}, PrevFound: true, Prev: []byte("old")}})
	if err != nil || !slices.Equal(stored, []bool{true}) {
		t.Fatalf("Store = %v, %v; want [true]", stored, err)
	}
	if v := read(); string(v.Bytes) != "new" {
		t.Errorf("Get after Store through the cache = %q (local %v); want new", v.Bytes, v.Local)
	}
}
