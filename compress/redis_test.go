package compress_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/compress"
)

// standalone returns a client of the Redis server at KV_REDIS_ADDR, closed
// when the test ends, or skips the test when the variable is not set. A
// server that does not answer fails the test.
func standalone(t *testing.T) *goredis.Client {
	t.Helper()
	addr := os.Getenv("KV_REDIS_ADDR")
	if addr == "" {
		t.Skip("KV_REDIS_ADDR is not set")
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer: %v", addr, err)
	}
	return c
}

// uniqueNS returns a namespace no other test uses.
func uniqueNS(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "cmp" + hex.EncodeToString(b)
}

// TestRedisReadsPlainSet: on a real Redis, values written by a plain SET (a
// BaseMap service, redis-cli), short and long, JSON and not, are read back
// unchanged by a Map with compression on, which can compare-and-swap them;
// what the Map writes long is stored compressed, and a Map without
// compression sees the stored bytes.
func TestRedisReadsPlainSet(t *testing.T) {
	c := standalone(t)
	ctx := t.Context()
	ns := uniqueNS(t)
	t.Cleanup(func() {
		keys, err := c.Keys(context.WithoutCancel(ctx), ns+":*").Result()
		if err == nil && len(keys) > 0 {
			err = c.Del(context.WithoutCancel(ctx), keys...).Err()
		}
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	b, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	m, err := kv.New[string](b, ns, kv.WithCompression(), kv.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	long := `{"id":"66f1c0ffee0123456789abcd","note":"` + strings.Repeat("breakout above the high; ", 40) + `"}`
	for key, raw := range map[string]string{
		"short":  "66f1c0ffee0123456789abcd",
		"json":   long,
		"binary": "\xff\x00\x01 not the marker",
	} {
		if err := c.Set(ctx, ns+":"+key, raw, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		got, ok, err := m.Get(ctx, key)
		if err != nil || !ok || got != raw {
			t.Errorf("Get(%s) after a plain SET = %.40q, %v, %v; want the value as set", key, got, ok, err)
		}
	}
	swapped, err := m.CompareAndSwap(ctx, "json", long, long+" ")
	if err != nil || !swapped {
		t.Fatalf("CompareAndSwap over the plain SET's value = %v, %v; want true", swapped, err)
	}
	stored, err := c.Get(ctx, ns+":json").Result()
	if err != nil || !strings.HasPrefix(stored, compress.Marker+"z") || len(stored) >= len(long) {
		t.Errorf("stored after the swap: %d bytes starting %.6q, %v; want zstd, shorter than %d", len(stored), stored, err, len(long))
	}
	if got, ok, err := m.Get(ctx, "json"); err != nil || !ok || got != long+" " {
		t.Errorf("Get after the swap = %.40q, %v, %v; want the new value", got, ok, err)
	}
	plain, err := kv.New[string](b, ns, kv.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if got, _, err := plain.Get(ctx, "json"); err != nil || got != stored {
		t.Errorf("a Map without compression reads %.6q, %v; want the stored bytes", got, err)
	}
}
