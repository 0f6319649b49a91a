package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
)

// fillRaw writes n keys "ns:kNNNNNN" with raw pipelined SETs.
func fillRaw(t testing.TB, c goredis.UniversalClient, ns string, n int) {
	t.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 1000 {
		pipe := c.Pipeline()
		for i := start; i < min(start+1000, n); i++ {
			pipe.Set(ctx, fmt.Sprintf("%s:k%06d", ns, i), "66f1c0ffee0123456789abcd", 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("fill %s: %v", ns, err)
		}
	}
}

// TestPagingAmongOtherKeys proves paging on a real server (miniredis returns
// every key in one page): 5,000 namespace keys among 100,000 keys of another
// namespace are iterated, counted and cleared exactly, at BaseMap's page size
// and at the default one.
func TestPagingAmongOtherKeys(t *testing.T) {
	clients := realClients(t)
	ctx := context.Background()
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			b := mustRedis(t, c)
			filler := mustNew[string](t, b, fmt.Sprintf("kvfill%d", uniq))
			t.Cleanup(func() { _ = filler.Clear(context.Background()) })
			fillRaw(t, c, filler.Namespace(), 100_000)
			for _, count := range []int{100, kv.DefaultPageSize} {
				m := mustNew[string](t, b, fmt.Sprintf("kvpage%d_%d", uniq, count), kv.WithPageSize(count))
				t.Cleanup(func() { _ = m.Clear(context.Background()) })
				fillRaw(t, c, m.Namespace(), 5000)
				if cc, ok := c.(*goredis.ClusterClient); ok {
					checkSpread(t, cc, m.Namespace())
				}
				seen := map[string]int{}
				for e, err := range m.Iterate(ctx) {
					if err != nil {
						t.Fatalf("Iterate: %v", err)
					}
					seen[e.Key]++
				}
				dups := 0
				for _, n := range seen {
					dups += n - 1
				}
				if len(seen) != 5000 || dups != 0 {
					t.Errorf("page %d: Iterate yielded %d distinct keys and %d duplicates; want 5000 and 0", count, len(seen), dups)
				}
				if n, err := m.Size(ctx); err != nil || n != 5000 {
					t.Errorf("page %d: Size = %d, %v; want 5000", count, n, err)
				}
				if err := m.Clear(ctx); err != nil {
					t.Fatalf("Clear: %v", err)
				}
				if n, err := m.Size(ctx); err != nil || n != 0 {
					t.Errorf("page %d: Size after Clear = %d, %v; want 0", count, n, err)
				}
				if n, err := filler.Size(ctx); err != nil || n != 100_000 {
					t.Errorf("page %d: the other namespace has %d keys after Clear, %v; want 100000", count, n, err)
				}
			}
		})
	}
}

// checkSpread fails unless every master holds keys of the namespace.
func checkSpread(t *testing.T, c *goredis.ClusterClient, ns string) {
	t.Helper()
	var mu sync.Mutex
	perNode := map[string]int{}
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, n *goredis.Client) error {
		keys, _, err := n.Scan(ctx, 0, ns+":*", 100_000).Result()
		mu.Lock()
		defer mu.Unlock()
		perNode[n.Options().Addr] = len(keys)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for addr, n := range perNode {
		if n == 0 {
			t.Errorf("master %s holds no key of %s; want keys on every master (%v)", addr, ns, perNode)
		}
	}
	if len(perNode) < 3 {
		t.Errorf("the cluster has %d masters; want 3", len(perNode))
	}
}

// TestClusterScanRestartsOnTopologyChange: a cursor made under another set of
// masters (a failover, a resharding) restarts the scan from the first master
// instead of failing or skipping masters, so a complete scan still returns
// every key.
func TestClusterScanRestartsOnTopologyChange(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	b := mustRedis(t, c)
	m := mustNew[string](t, b, fmt.Sprintf("kvtopo%d", uniq))
	t.Cleanup(func() { _ = m.Clear(context.Background()) })
	fillRaw(t, c, m.Namespace(), 300)
	seen := map[string]bool{}
	cursor, restarted := "", false
	for pages := 0; ; pages++ {
		page, err := b.Scan(ctx, m.Namespace()+":", cursor, 50)
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		for _, k := range page.Keys {
			seen[k] = true
		}
		if page.Cursor == "" {
			break
		}
		cursor = page.Cursor
		if !restarted && pages == 2 {
			// The slot owners this cursor holds no longer match: a
			// master it never scanned owned every slot.
			i := strings.LastIndex(cursor, "|")
			cursor = cursor[:i+1] + "127.0.0.1:1=0-16383"
			restarted = true
		}
		if pages > 10_000 {
			t.Fatal("the scan does not end")
		}
	}
	if len(seen) != 300 {
		t.Errorf("a scan through a topology change returned %d distinct keys; want 300", len(seen))
	}
}
