package redis_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/nearcache"
)

// aclServiceUser is the ACL SETUSER line the README gives for a service
// whose Maps use namespace signal_cache, with load leases and the near
// cache, on a standalone server or a Sentinel-managed master: the data
// keys, the lease keys of those keys (":kv-lease:{T}:signal_cache:...", T
// the slot tag, one to six digits), the invalidation channel, and the
// commands.
const aclServiceUser = `ACL SETUSER signal_svc reset on >s1gnal-svc-pass ` +
	`~signal_cache:* ` +
	`~:kv-lease:{[0-9]}:signal_cache:* ~:kv-lease:{[0-9][0-9]}:signal_cache:* ` +
	`~:kv-lease:{[0-9][0-9][0-9]}:signal_cache:* ~:kv-lease:{[0-9][0-9][0-9][0-9]}:signal_cache:* ` +
	`~:kv-lease:{[0-9][0-9][0-9][0-9][0-9]}:signal_cache:* ~:kv-lease:{[0-9][0-9][0-9][0-9][0-9][0-9]}:signal_cache:* ` +
	`-@all +get +mget +set +unlink +del +exists +pttl +pexpire +persist +scan +multi +exec ` +
	`+evalsha +eval +hello +auth +ping +client|tracking`

// aclNoLeaseUser is the same user without the lease key patterns.
const aclNoLeaseUser = `ACL SETUSER nolease_svc reset on >n0lease-svc-pass ~signal_cache:* ` +
	`-@all +get +mget +set +unlink +del +exists +pttl +pexpire +persist +scan +multi +exec ` +
	`+evalsha +eval +hello +auth +ping +client|tracking`

// TestACLServiceUser: a user restricted to its service by the README's ACL
// SETUSER line (Redis 7's default acl-pubsub-default resetchannels, default
// user off) runs a Map with load leases and the near cache: the lease is
// taken while the load runs, the value stored, the near cache goes live and
// serves reads; every other call works. A user without the lease key
// patterns gets NOPERM, as an error, from every lease call and from the
// writes that end leases.
func TestACLServiceUser(t *testing.T) {
	private(t)
	s := startServer(t, false, []string{
		"user default off",
		"user admin on >adm1n-pass ~* &* +@all",
		"acl-pubsub-default resetchannels",
	})
	ctx := context.Background()
	admin := goredis.NewClient(&goredis.Options{Addr: s.addr(), Username: "admin", Password: "adm1n-pass"})
	t.Cleanup(func() { _ = admin.Close() })
	for _, line := range []string{aclServiceUser, aclNoLeaseUser} {
		args := []any{}
		for _, f := range strings.Fields(line) {
			args = append(args, f)
		}
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}

	t.Run("LeasesAndNearCache", func(t *testing.T) {
		c := goredis.NewClient(&goredis.Options{Addr: s.addr(), Username: "signal_svc", Password: "s1gnal-svc-pass", ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		b := mustRedis(t, c)
		var logs syncBuffer
		m := mustNew[string](t, b, "signal_cache", kv.WithLoadLease(time.Minute), kv.WithNearCache(nearcache.Options{}),
			kv.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		closeAtEnd(t, m)
		leaseKey := b.LeaseKeyForTest("signal_cache:id")
		var leased int64 = -1
		v, err := m.GetOrLoad(ctx, "id", func(ctx context.Context) (string, error) {
			leased, _ = admin.Exists(ctx, leaseKey).Result()
			return "loaded", nil
		})
		if err != nil || v != "loaded" {
			t.Fatalf("GetOrLoad = %q, %v; want loaded", v, err)
		}
		if leased != 1 {
			t.Errorf("lease key %q while loading: EXISTS = %d; want 1 (a lease taken)", leaseKey, leased)
		}
		if got, err := admin.Get(ctx, "signal_cache:id").Result(); err != nil || got != "loaded" {
			t.Errorf("stored value = %q, %v; want loaded", got, err)
		}
		if n, _ := admin.Exists(ctx, leaseKey).Result(); n != 0 {
			t.Errorf("lease key still there after the load")
		}
		// The near cache goes live and serves reads from memory.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, _, err := m.Get(ctx, "id"); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if st, _ := m.NearCacheStats(); st.Live && st.Hits > 0 {
				break
			}
			if time.Now().After(deadline) {
				st, _ := m.NearCacheStats()
				t.Fatalf("near cache not serving after 10s: %+v; log: %s", st, logs.String())
			}
			time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
		}
		// Another client's write reaches the cache (the invalidation
		// channel is allowed).
		if err := admin.Set(ctx, "signal_cache:id", "theirs", 0).Err(); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(10 * time.Second)
		for {
			v, _, err := m.Get(ctx, "id")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if v == "theirs" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Get = %q 10s after another client's write; want theirs", v)
			}
			time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
		}
		for name, err := range everyCall(ctx, m) {
			if err != nil {
				t.Errorf("%s as the service user: %v", name, err)
			}
		}
		if strings.Contains(logs.String(), "NOPERM") {
			t.Errorf("log shows a permission error: %s", logs.String())
		}
	})

	t.Run("WithoutLeasePatterns", func(t *testing.T) {
		c := goredis.NewClient(&goredis.Options{Addr: s.addr(), Username: "nolease_svc", Password: "n0lease-svc-pass", ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		b := mustRedis(t, c)
		noperm := func(what string, err error) {
			t.Helper()
			var re goredis.Error
			if !errors.As(err, &re) || !strings.HasPrefix(re.Error(), "NOPERM") {
				t.Errorf("%s without the lease key patterns = %v; want a NOPERM reply error in the chain", what, err)
			}
		}
		_, _, err := b.Capabilities().AcquireLeases(ctx, []string{"signal_cache:k"}, time.Minute)
		noperm("AcquireLeases", err)
		if errors.Is(err, backend.ErrUnknownOutcome) {
			t.Errorf("AcquireLeases refused by the server matches ErrUnknownOutcome: %v", err)
		}
		noperm("Delete", b.Delete(ctx, []string{"signal_cache:k"}))
		_, err = b.Expire(ctx, "signal_cache:k", time.Hour)
		noperm("Expire", err)
		// Through a Map, a lease failure is not silent either: the load
		// runs without it and the failure is logged.
		var logs syncBuffer
		m := mustNew[string](t, b, "signal_cache", kv.WithLoadLease(time.Minute),
			kv.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		closeAtEnd(t, m)
		if v, err := m.GetOrLoad(ctx, "other", func(context.Context) (string, error) { return "x", nil }); v != "x" {
			t.Errorf("GetOrLoad without lease permission = %q, %v; want x (loaded without the lease)", v, err)
		}
		if !strings.Contains(logs.String(), "NOPERM") {
			t.Errorf("log after a refused lease = %q; want the NOPERM error", logs.String())
		}
	})
}

// TestACLWithoutLeases: a user with its namespace's key pattern only (as
// for BaseMap) works with every call through a Backend built WithoutLeases,
// and WithLoadLease over it fails at New instead of silently.
func TestACLWithoutLeases(t *testing.T) {
	private(t)
	s := startServer(t, false, []string{
		"user default off",
		"user admin on >adm1n-pass ~* &* +@all",
		"acl-pubsub-default resetchannels",
	})
	ctx := context.Background()
	admin := goredis.NewClient(&goredis.Options{Addr: s.addr(), Username: "admin", Password: "adm1n-pass"})
	t.Cleanup(func() { _ = admin.Close() })
	args := []any{}
	for _, f := range strings.Fields(aclNoLeaseUser) {
		args = append(args, f)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: s.addr(), Username: "nolease_svc", Password: "n0lease-svc-pass", ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	b := mustRedis(t, c, redis.WithoutLeases())
	if _, err := kv.New[string](b, "signal_cache", kv.WithLoadLease(time.Minute)); !errors.Is(err, kv.ErrInvalidOption) {
		t.Errorf("New WithLoadLease over a Backend WithoutLeases = %v; want ErrInvalidOption", err)
	}
	m := mustNew[string](t, b, "signal_cache", kv.WithNearCache(nearcache.Options{}))
	closeAtEnd(t, m)
	for name, err := range everyCall(ctx, m) {
		if err != nil {
			t.Errorf("%s as a user without lease patterns, WithoutLeases: %v", name, err)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// closeAtEnd closes m when the test ends, which stops its near cache.
func closeAtEnd(t *testing.T, m *kv.Map[string]) {
	t.Cleanup(func() {
		if err := m.Close(); err != nil && !errors.Is(err, kv.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
}
