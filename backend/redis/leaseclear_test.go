package redis_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
)

// TestClearEndsOnlyItsLeases: a prefix delete (kv.Map.Clear) ends the
// leases of the keys under its prefix, present or not, and no other: not
// those of a namespace that ends like it, starts like it, or holds it in
// its keys. On miniredis, and on the servers the environment names.
func TestClearEndsOnlyItsLeases(t *testing.T) {
	s := miniredis.RunT(t)
	mini := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = mini.Close() })
	clients := map[string]goredis.UniversalClient{"miniredis": mini}
	if c := standaloneClient(t); c != nil {
		clients["standalone"] = c
	}
	if c := clusterClient(t); c != nil {
		clients["cluster"] = c
	}
	for name, c := range clients {
		for _, hashTag := range []bool{false, true} {
			var opts []redis.Option
			if hashTag {
				name += "/hashtag"
				opts = append(opts, redis.WithHashTag())
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				b := mustRedis(t, c, opts...)
				ns := "kvlc" + rand.Text()[:8]
				mine := []string{ns + ":k", ns + ":{a}", ns + ":absent"}
				others := []string{ns + "2:k", "x" + ns + ":k", "a:" + ns + ":k", "a:" + ns + ":"}
				if !hashTag {
					others = append(others, "a}:"+ns+":k")
				}
				all := append(append([]string(nil), mine...), others...)
				entries := []backend.Entry{}
				for _, k := range all {
					if k != ns+":absent" {
						entries = append(entries, backend.Entry{Key: k, Value: []byte("v"), TTL: time.Minute})
					}
				}
				if err := b.MSet(ctx, entries); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Delete(context.Background(), all) })
				acquire := b.Capabilities().AcquireLeases
				held, l, err := acquire(ctx, all, time.Minute)
				if err != nil || l == nil {
					t.Fatalf("AcquireLeases = %v, %v", held, err)
				}
				t.Cleanup(func() { _ = l.Release(context.Background()) })
				if err := backend.DeletePrefix(ctx, b, ns+":", 100); err != nil {
					t.Fatalf("DeletePrefix: %v", err)
				}
				again, l2, err := acquire(ctx, all, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if l2 != nil {
					t.Cleanup(func() { _ = l2.Release(context.Background()) })
				}
				for i, k := range all {
					if want := i < len(mine); again[i] != want {
						t.Errorf("lease of %q free after DeletePrefix(%q) = %v; want %v", k, ns+":", again[i], want)
					}
				}
				vals, err := b.MGet(ctx, others, false)
				if err != nil {
					t.Fatal(err)
				}
				for i, v := range vals {
					if !v.Found {
						t.Errorf("DeletePrefix(%q) deleted %q", ns+":", others[i])
					}
				}
			})
		}
	}
}

// TestLeaseKeySlotOnCluster: the cluster itself (CLUSTER KEYSLOT) puts each
// lease key in its key's slot, keys with braces and hash-tag mode included.
func TestLeaseKeySlotOnCluster(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	for _, opts := range [][]redis.Option{nil, {redis.WithHashTag()}} {
		b := mustRedis(t, c, opts...)
		for _, k := range []string{"ns:k", "ns:{x}", "ns:a{b}c", "ns:}{", "ns:{}", "ns:{", "signal_cache:42"} {
			w := k
			if b.HashTag() {
				w = "{ns}:" + k[len("ns:"):]
				if k == "signal_cache:42" {
					w = "{signal_cache}:42"
				}
			}
			lk := b.LeaseKeyForTest(k)
			ks, err1 := c.ClusterKeySlot(ctx, w).Result()
			ls, err2 := c.ClusterKeySlot(ctx, lk).Result()
			if err1 != nil || err2 != nil || ks != ls || int(ks) != redis.Slot(w) {
				t.Errorf("CLUSTER KEYSLOT %q = %d, %v; of its lease %q = %d, %v; want equal (and %d)", w, ks, err1, lk, ls, err2, redis.Slot(w))
			}
		}
	}
}
