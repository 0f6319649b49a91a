package redis_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/nearcache"
)

// callCount counts the reads that reach the store, forwarding every
// capability (the Map's near cache needs the store's watch).
type callCount struct {
	backend.Wrapper
	mget, get atomic.Int64
}

func (c *callCount) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	c.mget.Add(1)
	return c.Wrapper.MGet(ctx, keys, withTTL)
}

func (c *callCount) Get(ctx context.Context, key string) (backend.Value, error) {
	c.get.Add(1)
	return c.Wrapper.Get(ctx, key)
}

// TestMissOneRoundTrip (issue 20 item 6): through the local tier (a near
// cache, stale serving), a read of a missing key costs one call of the store
// (MGet with its TTL), no longer a second Get to tell a missing key from one
// of another kind; a key of another kind is still ErrWrongType, for Get and
// for GetOrLoad. On c28abcc every miss cost an MGet and a Get.
func TestMissOneRoundTrip(t *testing.T) {
	for name, c := range realClients(t) {
		for _, o := range []struct {
			name string
			opt  kv.Option
		}{
			{"near", kv.WithNearCache(nearcache.Options{})},
			{"stale", kv.WithStaleWhileRevalidate(time.Second, 100)},
		} {
			t.Run(name+"/"+o.name, func(t *testing.T) {
				ctx := context.Background()
				b, err := redis.New(c)
				if err != nil {
					t.Fatal(err)
				}
				cc := &callCount{Wrapper: backend.Wrapper{Backend: b}}
				ns := fmt.Sprintf("kvmiss%d%s", os.Getpid(), o.name)
				m, err := kv.New[string](cc, ns, o.opt)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := c.Del(context.Background(), ns+":list").Err(); err != nil {
						t.Error(err)
					}
					if err := m.Close(); err != nil {
						t.Error(err)
					}
				})
				if _, ok, err := m.Get(ctx, "missing"); err != nil || ok {
					t.Fatalf("Get(missing) = %v, %v; want not found", ok, err)
				}
				if got := cc.mget.Load() + cc.get.Load(); got != 1 {
					t.Errorf("a miss made %d calls of the store (MGet %d, Get %d); want 1", got, cc.mget.Load(), cc.get.Load())
				}
				if err := c.RPush(ctx, ns+":list", "x").Err(); err != nil {
					t.Fatal(err)
				}
				if _, _, err := m.Get(ctx, "list"); !errors.Is(err, kv.ErrWrongType) {
					t.Errorf("Get(list) = %v; want ErrWrongType", err)
				}
				loads := 0
				if _, err := m.GetOrLoad(ctx, "list", func(context.Context) (string, error) { loads++; return "v", nil }); !errors.Is(err, kv.ErrWrongType) || loads != 0 {
					t.Errorf("GetOrLoad(list) = %v after %d loads; want ErrWrongType, no load", err, loads)
				}
			})
		}
	}
}
