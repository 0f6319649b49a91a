package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
)

// TestLeaseScriptsAfterFlush: Renew and Release run their scripts by SHA1,
// and by text when the server has lost them (SCRIPT FLUSH, a restart, a
// failover to a server that never ran them).
func TestLeaseScriptsAfterFlush(t *testing.T) {
	s := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	b, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acquire := b.Capabilities().AcquireLeases
	_, l, err := acquire(ctx, []string{"ns:a", "ns:b"}, time.Second)
	if err != nil || l == nil {
		t.Fatalf("AcquireLeases = %v, %v", l, err)
	}
	for _, step := range []struct {
		name  string
		flush bool
		do    func() error
	}{
		{"Renew after SCRIPT FLUSH", true, func() error { return l.Renew(ctx, time.Hour) }},
		{"Renew, the script loaded", false, func() error { return l.Renew(ctx, time.Hour) }},
		{"Release after SCRIPT FLUSH", true, func() error { return l.Release(ctx) }},
	} {
		if step.flush {
			if err := c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if step.name == "Renew after SCRIPT FLUSH" {
			if ttl := s.TTL(backend.LeasePrefix + "{" + redis.SlotTag(redis.Slot("ns:a")) + "}:ns:a"); ttl < time.Minute {
				t.Errorf("TTL after Renew = %v; want about an hour", ttl)
			}
		}
	}
	if held, _, err := acquire(ctx, []string{"ns:a", "ns:b"}, time.Second); err != nil || !held[0] || !held[1] {
		t.Errorf("AcquireLeases after Release = %v, %v; want both free", held, err)
	}
}
