package kv_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/nearcache"
)

// remoteLike is a memory store seen as a remote one: it reports changes
// (a near cache can sit over it) but has no ScanEntries, so a pass reads
// each page's values with an MGet, as on Redis. It counts the reads that
// asked for TTLs.
type remoteLike struct {
	*memory.Backend
	ttlReads atomic.Int64
}

func (r *remoteLike) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	if withTTL {
		r.ttlReads.Add(int64(len(keys)))
	}
	return r.Backend.MGet(ctx, keys, withTTL)
}

func (r *remoteLike) Optimizations() backend.Optimizations {
	o := r.Backend.Optimizations()
	o.ScanEntries = nil
	return o
}

// TestPassSkipsNearCache (issue 20 item 6): a pass over a near-cached Map
// reads below the near cache: it caches none of the keys it reads, evicts
// none of the hot ones, and asks no key's TTL. On the old code a pass read
// each page through the near cache's MGet, which asked the store for the
// TTLs of the whole page, cached every key and evicted the hot one.
func TestPassSkipsNearCache(t *testing.T) {
	passes := map[string]func(ctx context.Context, m *kv.Map[string]) (int, error){
		"Iterate": func(ctx context.Context, m *kv.Map[string]) (n int, err error) {
			for _, err := range m.Iterate(ctx) {
				if err != nil {
					return n, err
				}
				n++
			}
			return n, nil
		},
		"Values": func(ctx context.Context, m *kv.Map[string]) (n int, err error) {
			for _, err := range m.Values(ctx) {
				if err != nil {
					return n, err
				}
				n++
			}
			return n, nil
		},
		"Keys": func(ctx context.Context, m *kv.Map[string]) (n int, err error) {
			for _, err := range m.Keys(ctx) {
				if err != nil {
					return n, err
				}
				n++
			}
			return n, nil
		},
		"ToArray": func(ctx context.Context, m *kv.Map[string]) (int, error) {
			es, err := m.ToArray(ctx)
			return len(es), err
		},
	}
	const keys = 20
	for name, pass := range passes {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store := &remoteLike{Backend: newMem(t)}
			m := mustNew[string](t, store, "ns", kv.WithPageSize(6),
				kv.WithNearCache(nearcache.Options{MaxEntries: 4}))
			entries := make([]kv.Entry[string], keys)
			for i := range entries {
				entries[i] = kv.Entry[string]{Key: fmt.Sprintf("k%02d", i), Value: "v"}
			}
			if err := m.SetMany(ctx, entries); err != nil {
				t.Fatal(err)
			}
			for range 2 { // the first read caches "k00", the second is a hit
				if _, ok, err := m.Get(ctx, "k00"); err != nil || !ok {
					t.Fatalf("Get(k00) = %v, %v; want found", ok, err)
				}
			}
			before, _ := m.NearCacheStats()
			if !before.Live || before.Entries != 1 || before.Hits != 1 {
				t.Fatalf("near cache before the pass: live %v, %d entries, %d hits; want live, 1, 1", before.Live, before.Entries, before.Hits)
			}
			ttlReads := store.ttlReads.Load()

			n, err := pass(ctx, m)
			if err != nil || n != keys {
				t.Fatalf("%s: %d keys, %v; want %d, nil", name, n, err, keys)
			}
			after, _ := m.NearCacheStats()
			if after.Entries != 1 {
				t.Errorf("near cache entries after %s = %d; want 1 (the pass caches nothing)", name, after.Entries)
			}
			if got := store.ttlReads.Load() - ttlReads; got != 0 {
				t.Errorf("%s asked the TTLs of %d keys; want 0", name, got)
			}
			if _, ok, err := m.Get(ctx, "k00"); err != nil || !ok {
				t.Fatalf("Get(k00) = %v, %v; want found", ok, err)
			}
			if got, _ := m.NearCacheStats(); got.Hits != after.Hits+1 {
				t.Errorf("near cache hits after reading the hot key again = %d; want %d (still cached)", got.Hits, after.Hits+1)
			}
		})
	}
}

// BenchmarkIterate100kMemory is a pass over 100,000 keys of the memory
// store, with its ScanEntries and through its core methods only (Scan,
// then an MGet of each page).
func BenchmarkIterate100kMemory(b *testing.B) {
	for _, st := range []struct {
		name string
		wrap func(backend.Backend) backend.Backend
	}{
		{"store=memory", func(b backend.Backend) backend.Backend { return b }},
		{"store=memorycore", conformance.CoreOnly},
	} {
		b.Run(st.name, func(b *testing.B) {
			ctx := context.Background()
			mem := memory.New(memory.WithSweepInterval(0))
			b.Cleanup(func() { _ = mem.Close() })
			m := mustNew[string](b, st.wrap(mem), "ns", kv.WithTTL(kv.NoTTL), kv.WithoutTelemetry())
			entries := make([]kv.Entry[string], 100_000)
			for i := range entries {
				entries[i] = kv.Entry[string]{Key: fmt.Sprintf("k%06d", i), Value: "value"}
			}
			if err := m.SetMany(ctx, entries); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				n := 0
				for _, err := range m.Iterate(ctx) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != len(entries) {
					b.Fatal(n)
				}
			}
		})
	}
}
