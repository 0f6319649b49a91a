package kv_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	kvredis "github.com/kvmap/kv/backend/redis"
)

// TestStaleNeverServesForeignDeleteOnRedis: Map A loads keys and Map B (its
// own client, as another process) deletes each right after A stores it; no
// key is served stale by A after its deadline. Redis may report A's write
// and B's delete in one invalidation message: counting reports of A's own
// writes served 97-141 of 400 deleted keys stale (found by review).
func TestStaleNeverServesForeignDeleteOnRedis(t *testing.T) {
	addr := os.Getenv("KV_REDIS_ADDR")
	if addr == "" {
		t.Skip("KV_REDIS_ADDR not set")
	}
	ctx := context.Background()
	ns := fmt.Sprintf("stale-foreign-%d", time.Now().UnixNano())
	const ttl = 300 * time.Millisecond
	mk := func() *kv.Map[string] {
		c := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		})
		b, err := kvredis.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return mustNew[string](t, b, ns, kv.WithTTL(ttl), kv.WithStaleWhileRevalidate(10*time.Second, 1000), kv.WithLoadLease(time.Second))
	}
	a, b := mk(), mk()
	defer a.Close()
	defer b.Close()
	var mu sync.Mutex
	var errs []error
	note := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	keys := make([]string, 100)
	var wg sync.WaitGroup
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		k := keys[i]
		ready := make(chan struct{})
		wg.Go(func() {
			_, err := a.GetOrLoad(ctx, k, func(context.Context) (string, error) { close(ready); return "old", nil })
			note(err)
		})
		wg.Go(func() {
			<-ready
			note(b.Delete(ctx, k))
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, k := range keys {
		_, ok, err := b.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		present[k] = ok // the load's write landed after the Delete (not a stale set: the lease ended first)
	}
	time.Sleep(ttl + 200*time.Millisecond) // Redis expires by its own clock: past every deadline
	bad := 0
	for _, k := range keys {
		if present[k] {
			continue
		}
		v, err := a.GetOrLoad(ctx, k, func(context.Context) (string, error) { return "fresh", nil })
		if err != nil {
			t.Fatal(err)
		}
		if v == "old" {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d keys deleted by another Map before their deadline were served stale", bad, len(keys))
	}
	if err := a.Clear(ctx); err != nil {
		t.Error(err)
	}
}
