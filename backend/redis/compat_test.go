package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/conformance"
)

func miniClient(t *testing.T) (*miniredis.Miniredis, *goredis.Client) {
	t.Helper()
	s := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return s, c
}

// servers returns the clients the compatibility tests run on: miniredis
// always, the real server and cluster when their variables are set.
func servers(t *testing.T) map[string]goredis.UniversalClient {
	_, mini := miniClient(t)
	out := map[string]goredis.UniversalClient{"miniredis": mini}
	if c := standaloneClient(t); c != nil {
		out["standalone"] = c
	}
	if c := clusterClient(t); c != nil {
		out["cluster"] = c
	}
	return out
}

var uniq = time.Now().UnixNano()

// TestBaseMapWritesReadByMap writes keys exactly as BaseMap does (SET, then
// a separate EXPIRE unless the TTL is -1) and reads them through Map[string].
func TestBaseMapWritesReadByMap(t *testing.T) {
	ctx := context.Background()
	for name, c := range servers(t) {
		t.Run(name, func(t *testing.T) {
			ns := fmt.Sprintf("signal_cache_%d", uniq)
			b := mustRedis(t, c)
			m, err := kv.New[string](b, ns)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Clear(context.Background()) })
			keys := map[string]int{ // key -> BaseMap ttlExpireSeconds
				"binance:my-strategy:BTC/USDT:USDT": 300,
				"binance:my-strategy:ETH/USDT:USDT": -1,
				"backtest:binance:s:frame:SOL":      60,
			}
			for k, ttl := range keys {
				if err := c.Set(ctx, ns+":"+k, "66f1c0ffee-"+k, 0).Err(); err != nil {
					t.Fatal(err)
				}
				if ttl != -1 {
					if err := c.Expire(ctx, ns+":"+k, time.Duration(ttl)*time.Second).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			for k, ttl := range keys {
				v, ok, err := m.Get(ctx, k)
				if err != nil || !ok || v != "66f1c0ffee-"+k {
					t.Errorf("Get(%q) = %q, %v, %v; want the raw string", k, v, ok, err)
				}
				d, ok, err := m.TTL(ctx, k)
				want := time.Duration(ttl) * time.Second
				if ttl == -1 {
					want = kv.NoTTL
				}
				if err != nil || !ok || d > want || (ttl != -1 && d < want-10*time.Second) {
					t.Errorf("TTL(%q) = %v, %v, %v; want about %v", k, d, ok, err, want)
				}
			}
			got, err := m.ToArray(ctx)
			if err != nil || len(got) != len(keys) {
				t.Errorf("ToArray = %d entries, %v; want %d", len(got), err, len(keys))
			}
		})
	}
}

// TestMapWritesReadByBaseMap writes through Map[string] and reads with raw
// commands as BaseMap does.
func TestMapWritesReadByBaseMap(t *testing.T) {
	ctx := context.Background()
	for name, c := range servers(t) {
		t.Run(name, func(t *testing.T) {
			ns := fmt.Sprintf("schedule_cache_%d", uniq)
			b := mustRedis(t, c)
			m := mustNew[string](t, b, ns) // default TTL, 300 s
			never := mustNew[string](t, b, ns+"_never", kv.WithTTL(kv.NoTTL))
			t.Cleanup(func() { _ = m.Clear(context.Background()); _ = never.Clear(context.Background()) })
			key := "binance:my-strategy:BTC/USDT:USDT"
			if err := m.Set(ctx, key, "66f1c0ffee0123456789abcd"); err != nil {
				t.Fatal(err)
			}
			if err := never.Set(ctx, key, "forever"); err != nil {
				t.Fatal(err)
			}
			if v, err := c.Get(ctx, ns+":"+key).Result(); err != nil || v != "66f1c0ffee0123456789abcd" {
				t.Errorf("raw GET = %q, %v; want the string as set", v, err)
			}
			if d, err := c.PTTL(ctx, ns+":"+key).Result(); err != nil || d > 300*time.Second || d < 290*time.Second {
				t.Errorf("raw PTTL = %v, %v; want about 300s", d, err)
			}
			if d, err := c.PTTL(ctx, ns+"_never:"+key).Result(); err != nil || d != -1 {
				t.Errorf("raw PTTL of a NoTTL key = %v, %v; want -1 (no expiry)", d, err)
			}
			// BaseMap's own scan finds exactly the namespace's key (on one
			// node: on a cluster BaseMap's single-node SCAN misses keys).
			if name == "cluster" {
				return
			}
			keys, _, err := c.Scan(ctx, 0, ns+":*", 1000).Result()
			if err != nil || !slices.Equal(keys, []string{ns + ":" + key}) {
				t.Errorf("SCAN MATCH %s:* = %q, %v", ns, keys, err)
			}
		})
	}
}

func TestHashTagFormat(t *testing.T) {
	ctx := context.Background()
	_, c := miniClient(t)
	b := mustRedis(t, c, redis.WithHashTag())
	m := mustNew[string](t, b, "ns")
	if err := m.Set(ctx, "a:b", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "{ns}:a:b").Result(); err != nil || v != "v" {
		t.Errorf("GET {ns}:a:b = %q, %v; want v", v, err)
	}
	// A namespace with a brace is refused when the Map is built, and a raw
	// key of that shape by the store itself.
	if _, err := kv.New[string](b, "n{s}"); !errors.Is(err, kv.ErrInvalidNamespace) {
		t.Errorf("kv.New(n{s}) with hash tags = %v; want ErrInvalidNamespace", err)
	}
	if err := b.MSet(ctx, []backend.Entry{{Key: "n{s}:k", TTL: kv.NoTTL}}); !errors.Is(err, kv.ErrInvalidNamespace) {
		t.Errorf("MSet of n{s}:k with hash tags = %v; want ErrInvalidNamespace", err)
	}
}

// TestOtherRedisTypes checks keys of other types under a namespace, the same
// on every path (with the backend's optimisations and without them): Get
// fails with ErrWrongType, every other call neither sees nor touches them.
// Clear used to delete them through the optimised path and leave them through
// its fallback.
func TestOtherRedisTypes(t *testing.T) {
	for name, hide := range map[string]bool{"optimised": false, "core only": true} {
		t.Run(name, func(t *testing.T) { testOtherRedisTypes(t, hide) })
	}
}

func testOtherRedisTypes(t *testing.T, coreOnly bool) {
	ctx := context.Background()
	_, c := miniClient(t)
	var b backend.Backend
	b, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if coreOnly {
		b = conformance.CoreOnly(b)
	}
	m := mustMapOn(t, b, "ns")
	c.RPush(ctx, "ns:list", "a", "b")
	c.HSet(ctx, "ns:hash", "f", "v")
	if err := m.Set(ctx, "str", "v"); err != nil {
		t.Fatal(err)
	}

	if _, _, err := m.Get(ctx, "list"); !errors.Is(err, kv.ErrWrongType) {
		t.Errorf("Get(list) = %v; want ErrWrongType", err)
	}
	if ok, err := m.Has(ctx, "list"); ok || err != nil {
		t.Errorf("Has(list) = %v, %v; want false, nil", ok, err)
	}
	if got, err := m.GetMany(ctx, []string{"list"}); err != nil || len(got) != 0 {
		t.Errorf("GetMany(list) = %v, %v; want empty, nil", got, err)
	}
	got, err := m.GetMany(ctx, []string{"list", "hash", "str"})
	if err != nil || len(got) != 1 || got["str"] != "v" {
		t.Errorf("GetMany = %v, %v; want only str", got, err)
	}
	if n, err := m.Size(ctx); n != 1 || err != nil {
		t.Errorf("Size = %d, %v; want 1", n, err)
	}
	all, err := m.ToArray(ctx)
	if err != nil || len(all) != 1 {
		t.Errorf("ToArray = %v, %v; want only str", all, err)
	}
	if err := m.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, "ns:str").Val(); n != 0 {
		t.Errorf("the string key survived Clear")
	}
	if n := c.Exists(ctx, "ns:list", "ns:hash").Val(); n != 2 {
		t.Errorf("%d of the list and the hash left after Clear; want both (Clear touches values only)", n)
	}
}

// TestClientOwnership: Close never closes the caller's client, unless the
// backend was built WithCloseClient (as kvurl builds it).
func TestClientOwnership(t *testing.T) {
	ctx := context.Background()
	_, c := miniClient(t)
	b := mustRedis(t, c)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Errorf("the caller's client was closed by Backend.Close: %v", err)
	}
	owned := mustRedis(t, c, redis.WithCloseClient())
	if err := owned.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); !errors.Is(err, goredis.ErrClosed) {
		t.Errorf("Ping after Close of a WithCloseClient backend = %v; want redis.ErrClosed", err)
	}
}
