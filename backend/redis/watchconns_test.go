package redis_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/nearcache"
)

// killTracking kills the tracking connections of the server that admin
// reaches (CLIENT LIST flag t), those named name only unless name is
// empty, and returns how many it killed.
func killTracking(t *testing.T, admin goredis.UniversalClient, name string) int {
	t.Helper()
	ctx := context.Background()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		f := clientFields(line)
		if !strings.Contains(f["flags"], "t") || (name != "" && f["name"] != name) {
			continue
		}
		if err := admin.Do(ctx, "CLIENT", "KILL", "ID", f["id"]).Err(); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	if killed == 0 {
		t.Fatalf("no tracking connection to kill in %s", list)
	}
	return killed
}

// clientFields returns the fields of a line of CLIENT LIST.
func clientFields(line string) map[string]string {
	f := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	return f
}

// TestNearCacheOneConnection: 10 near-cached Maps of distinct namespaces
// on one Backend share one tracking connection: one connection beyond the
// client's pool (CLIENT LIST, by the client's name). The watch of each
// near cache had two of its own (a tracking connection and one for the
// role check): 20 beyond the pool.
func TestNearCacheOneConnection(t *testing.T) {
	admin := standalone(t)
	name := fmt.Sprintf("kvconns%d", os.Getpid())
	c := goredis.NewClient(&goredis.Options{Addr: admin.Options().Addr, ClientName: name, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	b, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for i := range 10 {
		m, err := kv.New[string](b, fmt.Sprintf("%s_%d", name, i), kv.WithNearCache(nearcache.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := m.Clear(context.Background()); err != nil {
				t.Error(err)
			}
			_ = m.Close()
		})
		servedLocally(t, m, "id", "v") // its watch is live
	}
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	var lines []string
	for _, line := range strings.Split(list, "\n") {
		if clientFields(line)["name"] == name {
			named++
			lines = append(lines, line)
		}
	}
	st := c.PoolStats()
	pool := int(st.TotalConns)
	if st.PipelineStats != nil {
		pool += int(st.PipelineStats.TotalConns)
	}
	if got := named - pool; got != 1 {
		t.Errorf("connections beyond the pool (%d) for 10 near-cached Maps = %d; want 1\n%s", pool, got, strings.Join(lines, "\n"))
	}
}
