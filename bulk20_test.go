package kv_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/nearcache"
)

// TestBulkReadSkipsNearCache (issue 20 item 6): a batch read of more keys
// than a sixteenth of the near cache's bound (GetMany, GetManyOrLoad) reads
// through: it caches none of its keys, evicts none of the hot ones, and asks
// no key's TTL. A small batch is still cached. On 5fbbd78 the bulk GetMany
// cached its keys, evicting the hot one, and read every key's TTL.
func TestBulkReadSkipsNearCache(t *testing.T) {
	const n = 64 // MaxEntries 64: a bulk read is more than 4 keys
	reads := map[string]func(ctx context.Context, m *kv.Map[string], keys []string) (int, error){
		"GetMany": func(ctx context.Context, m *kv.Map[string], keys []string) (int, error) {
			got, err := m.GetMany(ctx, keys)
			return len(got), err
		},
		"GetManyOrLoad": func(ctx context.Context, m *kv.Map[string], keys []string) (int, error) {
			got, err := m.GetManyOrLoad(ctx, keys, func(context.Context, []string) (map[string]string, error) {
				return nil, fmt.Errorf("load called: every key is stored")
			})
			return len(got), err
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store := &remoteLike{Backend: newMem(t)}
			m := mustNew[string](t, store, "ns", kv.WithNearCache(nearcache.Options{MaxEntries: n}))
			entries := make([]kv.Entry[string], n)
			keys := make([]string, n)
			for i := range entries {
				keys[i] = fmt.Sprintf("k%02d", i)
				entries[i] = kv.Entry[string]{Key: keys[i], Value: "v"}
			}
			if err := m.SetMany(ctx, entries); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := m.Get(ctx, "hot"); err != nil || ok {
				t.Fatalf("Get(hot) = %v, %v", ok, err)
			}
			if err := m.Set(ctx, "hot", "h"); err != nil {
				t.Fatal(err)
			}
			for range 2 { // the first read caches "hot", the second is a hit
				if _, ok, err := m.Get(ctx, "hot"); err != nil || !ok {
					t.Fatalf("Get(hot) = %v, %v; want found", ok, err)
				}
			}
			before, _ := m.NearCacheStats()
			ttlReads := store.ttlReads.Load()
			if got, err := read(ctx, m, keys); err != nil || got != n {
				t.Fatalf("%s of %d keys = %d, %v", name, n, got, err)
			}
			after, _ := m.NearCacheStats()
			if after.Entries != before.Entries {
				t.Errorf("near cache entries after the bulk read = %d; want %d (it caches nothing)", after.Entries, before.Entries)
			}
			if got := store.ttlReads.Load() - ttlReads; got != 0 {
				t.Errorf("the bulk read asked the TTLs of %d keys; want 0", got)
			}
			if _, ok, err := m.Get(ctx, "hot"); err != nil || !ok {
				t.Fatalf("Get(hot) = %v, %v; want found", ok, err)
			}
			if got, _ := m.NearCacheStats(); got.Hits != after.Hits+1 {
				t.Errorf("hits after reading the hot key again = %d; want %d (still cached)", got.Hits, after.Hits+1)
			}
			// A small batch is cached: its second read is served locally.
			for range 2 {
				if _, err := read(ctx, m, keys[:3]); err != nil {
					t.Fatal(err)
				}
			}
			if got, _ := m.NearCacheStats(); got.Hits < after.Hits+4 {
				t.Errorf("hits after reading 3 keys twice = %d; want at least %d", got.Hits, after.Hits+4)
			}
		})
	}
}
