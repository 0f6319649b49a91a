package redis_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/nearcache"
)

// coherenceBound is how long a test waits for a write by another client to
// stop being served by a near cache: 20x the 5 ms p99 bound that
// BenchmarkNearCacheInvalidation checks (it measures 0.3 ms), for a CI
// machine running every package's tests under -race at once.
const coherenceBound = 100 * time.Millisecond

// nearMap returns a Map of ns with a near cache over c, closed and cleared
// when the test ends.
func nearMap(t *testing.T, c goredis.UniversalClient, ns string, opts ...redis.Option) *kv.Map[string] {
	t.Helper()
	b, err := redis.New(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kv.New[string](b, ns, kv.WithNearCache(nearcache.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Clear(context.Background()); err != nil {
			t.Errorf("Clear: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// servedLocally sets key to v through m and waits until m serves it from
// its near cache (the watch is live and the value cached).
func servedLocally(t *testing.T, m *kv.Map[string], key, v string) {
	t.Helper()
	ctx := context.Background()
	if err := m.Set(ctx, key, v); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		before, _ := m.NearCacheStats()
		got, ok, err := m.Get(ctx, key)
		if err != nil || !ok || got != v {
			t.Fatalf("Get(%s) = %q, %v, %v; want %q", key, got, ok, err, v)
		}
		if after, _ := m.NearCacheStats(); after.Hits > before.Hits {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not served from the near cache within 10s: %+v", key, before)
		}
		time.Sleep(time.Millisecond) // polling, bounded by the deadline
	}
}

// awaitServed polls m.Get(key) until it returns want (ok false for a
// missing key) and returns how long that took, failing after bound.
func awaitServed(t *testing.T, m *kv.Map[string], key, want string, found bool, bound time.Duration) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	for {
		got, ok, err := m.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%s): %v", key, err)
		}
		if ok == found && got == want {
			return time.Since(start)
		}
		if time.Since(start) > bound {
			t.Fatalf("Get(%s) = %q, %v %v after another client's change; want %q, %v", key, got, ok, time.Since(start), want, found)
		}
	}
}

// TestNearCacheExternalChanges: a write, delete or expiry change by another
// client (raw go-redis, as redis-cli or a BaseMap service would make it)
// stops being served within coherenceBound, on the server and on the
// cluster (one tracking connection per master).
func TestNearCacheExternalChanges(t *testing.T) {
	clients := realClients(t)
	cases := []struct {
		name   string
		change func(ctx context.Context, c goredis.UniversalClient, key string) error
		want   string
		found  bool
	}{
		{"SET", func(ctx context.Context, c goredis.UniversalClient, key string) error {
			return c.Set(ctx, key, "external", 0).Err()
		}, "external", true},
		{"DEL", func(ctx context.Context, c goredis.UniversalClient, key string) error {
			return c.Del(ctx, key).Err()
		}, "", false},
		{"PEXPIRE", func(ctx context.Context, c goredis.UniversalClient, key string) error {
			return c.PExpire(ctx, key, time.Millisecond).Err()
		}, "", false},
		{"UNLINK via BaseMap's clear", func(ctx context.Context, c goredis.UniversalClient, key string) error {
			return c.Unlink(ctx, key).Err()
		}, "", false},
	}
	for name, c := range clients {
		for i, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				ns := fmt.Sprintf("kvnear%d_%d", os.Getpid(), i)
				m := nearMap(t, c, ns)
				servedLocally(t, m, "id", "cached")
				if err := tc.change(context.Background(), c, ns+":id"); err != nil {
					t.Fatal(err)
				}
				d := awaitServed(t, m, "id", tc.want, tc.found, coherenceBound)
				t.Logf("%s seen after %v", tc.name, d)
			})
		}
	}
}

// TestNearCacheReadYourWrites: a write through the Map is read back at
// once, by the next call, before any change report.
func TestNearCacheReadYourWrites(t *testing.T) {
	c := standalone(t)
	m := nearMap(t, c, fmt.Sprintf("kvnearryw%d", os.Getpid()))
	ctx := context.Background()
	servedLocally(t, m, "id", "v0")
	for i := range 200 {
		want := fmt.Sprintf("v%d", i+1)
		if err := m.Set(ctx, "id", want); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := m.Get(ctx, "id"); err != nil || !ok || got != want {
			t.Fatalf("Get right after Set(%q) = %q, %v, %v", want, got, ok, err)
		}
	}
	if err := m.Delete(ctx, "id"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := m.Get(ctx, "id"); err != nil || ok {
		t.Fatalf("Get right after Delete = %v, %v; want missing", ok, err)
	}
}

// TestNearCacheDeadline: a cached key is never served past its Redis
// deadline (send time plus the PTTL read with it), even with no report of
// its expiry.
func TestNearCacheDeadline(t *testing.T) {
	c := standalone(t)
	m := nearMap(t, c, fmt.Sprintf("kvneardl%d", os.Getpid()))
	ctx := context.Background()
	servedLocally(t, m, "warm", "w")
	if err := m.SetWithTTL(ctx, "id", "short", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	set := time.Now()
	local := 0
	for {
		before, _ := m.NearCacheStats()
		called := time.Now() // a local copy is served after this, and before its deadline
		v, ok, err := m.Get(ctx, "id")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		// Redis itself serves a key until its millisecond clock has passed
		// the deadline: only a copy served locally is checked.
		if after, _ := m.NearCacheStats(); after.Hits > before.Hits {
			local++
			if since := called.Sub(set); since > 300*time.Millisecond {
				t.Fatalf("the near cache served %q %v after a 300ms TTL began", v, since)
			}
		}
	}
	if local == 0 {
		t.Errorf("the key was never served from the near cache")
	}
}

// TestNearCacheFlushRestartAndLoss, on a private server: FLUSHDB empties the
// cache; when the tracking connection is killed, a write made meanwhile is
// still seen (the cache is bypassed until tracking is back) and caching
// resumes; after a server restart the old value is never served.
func TestNearCacheFlushRestartAndLoss(t *testing.T) {
	private(t)
	srv := startServer(t, false, nil)
	c := goredis.NewClient(&goredis.Options{Addr: srv.addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	m := nearMap(t, c, "kvnear")
	ctx := context.Background()

	t.Run("FLUSHDB", func(t *testing.T) {
		servedLocally(t, m, "id", "v1")
		if err := c.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		awaitServed(t, m, "id", "", false, coherenceBound)
	})
	t.Run("TrackingConnectionKilled", func(t *testing.T) {
		servedLocally(t, m, "id", "v2")
		killTracking(t, c, "")
		// No invalidation can report this write: the cache must have been
		// bypassed since the kill.
		if err := c.Set(ctx, "kvnear:id", "external", 0).Err(); err != nil {
			t.Fatal(err)
		}
		awaitServed(t, m, "id", "external", true, coherenceBound)
		servedLocally(t, m, "other", "cached again") // tracking is back
	})
	t.Run("ServerRestart", func(t *testing.T) {
		servedLocally(t, m, "id", "v3")
		srv.kill()
		srv.start() // no persistence: the key is gone
		// The tracking connection's end is seen within moments of the
		// restart; from then on the old value is never served.
		back := time.Now()
		for {
			v, ok, err := m.Get(ctx, "id")
			if err == nil && !ok {
				break
			}
			if err == nil && ok && time.Since(back) > coherenceBound {
				t.Fatalf("Get %v after a restart = %q; the server has no such key", time.Since(back), v)
			}
			if err != nil && time.Since(back) > 10*time.Second {
				t.Fatalf("Get still failing 10s after the restart: %v", err)
			}
			time.Sleep(time.Millisecond) // polling, bounded above
		}
		servedLocally(t, m, "id", "v4") // tracking is back
	})
}

// TestNearCacheServerDemoted: an operator makes the tracked server a
// replica of another (REPLICAOF) while the near cache holds its keys. A
// replica is not relied on for invalidations (one tracked from its start
// sent none for the writes it replicated, in a check made for this), so the
// cache must notice the demotion (ROLE, asked every second), stay bypassed
// and read the replicated writes from the server.
func TestNearCacheServerDemoted(t *testing.T) {
	private(t)
	old := startServer(t, false, nil)
	newMaster := startServer(t, false, nil)
	c := goredis.NewClient(&goredis.Options{Addr: old.addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	nc := goredis.NewClient(&goredis.Options{Addr: newMaster.addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = nc.Close() })
	b, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kv.New[string](b, "kvdemote", kv.WithNearCache(nearcache.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	servedLocally(t, m, "id", "before")
	if err := nc.Set(ctx, "kvdemote:id", "on the new master", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(newMaster.port)).Err(); err != nil {
		t.Fatal(err)
	}
	// Once the sync is done the old server holds the new master's data (the
	// sync itself flushes the cache); a later write there reaches it by
	// replication only, which no invalidation reports.
	awaitValue := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, ok, err := m.Get(ctx, "id")
			if err == nil && ok && v == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Get = %q, %v, %v 10s after the server was demoted; want %q", v, ok, err, want)
			}
			time.Sleep(time.Millisecond) // polling, bounded by the deadline
		}
	}
	awaitValue("on the new master")
	if err := nc.Set(ctx, "kvdemote:id", "replicated later", 0).Err(); err != nil {
		t.Fatal(err)
	}
	awaitValue("replicated later")
	if s, _ := m.NearCacheStats(); s.Live {
		t.Errorf("the near cache is live on a replica: %+v", s)
	}
}
