package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/internal/testkv"
)

// mustNew returns a Map or fails the test.
func mustNew[V any](t testing.TB, b backend.Backend, ns string, opts ...kv.Option) *kv.Map[V] {
	t.Helper()
	return testkv.MustNew[V](t, b, ns, opts...)
}

// mustRedis builds a Backend on a client or fails the test.
func mustRedis(t testing.TB, c goredis.UniversalClient, opts ...redis.Option) *redis.Backend {
	t.Helper()
	b, err := redis.New(c, opts...)
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	return b
}

// mustMapOn builds a Map on a backend or fails the test.
func mustMapOn(t testing.TB, b backend.Backend, ns string) *kv.Map[string] {
	t.Helper()
	return testkv.MustNew[string](t, b, ns)
}

// mustMap builds a Map on a client or fails the test.
func mustMap(t testing.TB, c goredis.UniversalClient, ns string, opts ...redis.Option) *kv.Map[string] {
	t.Helper()
	b, err := redis.New(c, opts...)
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	m, err := kv.New[string](b, ns)
	if err != nil {
		t.Fatalf("kv.New: %v", err)
	}
	return m
}

// everyCall runs each Map call against m and returns the error of each. The
// writes are what used to be acknowledged without happening: pipelined
// batches, Clear and Expire(NoTTL) read only per-command errors, which
// go-redis leaves empty when the connection cannot be set up.
func everyCall(ctx context.Context, m *kv.Map[string]) map[string]error {
	out := map[string]error{}
	out["Set"] = m.Set(ctx, "a", "1")
	out["SetMany"] = m.SetMany(ctx, []kv.Entry[string]{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "c", Value: "3"}})
	out["Clear"] = m.Clear(ctx)
	_, out["ExpireNoTTL"] = m.Expire(ctx, "a", kv.NoTTL)
	_, out["Expire"] = m.Expire(ctx, "a", 1000000000)
	out["Delete"] = m.Delete(ctx, "a")
	out["DeleteMany"] = m.DeleteMany(ctx, []string{"a", "b"})
	_, _, out["Get"] = m.Get(ctx, "a")
	_, out["GetMany"] = m.GetMany(ctx, []string{"a", "b"})
	_, _, out["TTL"] = m.TTL(ctx, "a")
	_, out["Size"] = m.Size(ctx)
	_, out["ToArray"] = m.ToArray(ctx)
	return out
}

func checkEveryCallFails(t *testing.T, m *kv.Map[string], secret string) {
	t.Helper()
	for name, err := range everyCall(t.Context(), m) {
		if err == nil {
			t.Errorf("%s = nil; want an error (nothing can have been done)", name)
			continue
		}
		if secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("%s error %q names the password", name, err)
		}
	}
	err := m.SetMany(t.Context(), []kv.Entry[string]{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}})
	var be *kv.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("SetMany error %v is not a *kv.BatchError", err)
	}
	if len(be.Written) != 0 || len(be.Unknown) != 0 || len(be.Failed) != 2 {
		t.Errorf("SetMany BatchError = written %q, failed %q, unknown %q; want both keys failed", be.Written, be.Failed, be.Unknown)
	}
}

// TestWrongPasswordFailsEveryCall: a client whose password is wrong reports
// an error from every call, batches and Clear included.
func TestWrongPasswordFailsEveryCall(t *testing.T) {
	s := miniredis.NewMiniRedis()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.RequireAuth("right-pass-kv")
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), Password: "wrong-pass-kv", ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	checkEveryCallFails(t, mustMap(t, c, "auth"), "wrong-pass-kv")
}

// TestWrongPasswordFailsEveryCallRealServer is the same on a private
// redis-server with requirepass.
func TestWrongPasswordFailsEveryCallRealServer(t *testing.T) {
	private(t)
	s := startServer(t, false, nil, "--requirepass", "right-pass-kv")
	c := goredis.NewClient(&goredis.Options{Addr: s.addr(), Password: "wrong-pass-kv", ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	checkEveryCallFails(t, mustMap(t, c, "auth"), "wrong-pass-kv")
}

// TestBadDBIndexFailsEveryCall: SELECT of a database that does not exist
// fails the connection setup; every call must report it. On a private
// server.
func TestBadDBIndexFailsEveryCall(t *testing.T) {
	private(t)
	s := startServer(t, false, nil)
	c := goredis.NewClient(&goredis.Options{Addr: s.addr(), DB: 9999, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	checkEveryCallFails(t, mustMap(t, c, "baddb"), "")
}

// TestOOMPartialBatch: under maxmemory with noeviction a large SetMany fails
// part-way. The error says which keys were written and which were not, and
// both sets are true: every written key reads back, no failed key exists.
func TestOOMPartialBatch(t *testing.T) {
	private(t)
	s := startServer(t, false, nil, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
	c := goredis.NewClient(&goredis.Options{Addr: s.addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	m := mustMap(t, c, "oom")
	ctx := t.Context()
	value := strings.Repeat("x", 1000)
	entries := make([]kv.Entry[string], 8000)
	for i := range entries {
		entries[i] = kv.Entry[string]{Key: fmt.Sprintf("k%05d", i), Value: value}
	}
	err := m.SetMany(ctx, entries)
	var be *kv.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("SetMany = %v; want a *kv.BatchError", err)
	}
	if !strings.Contains(err.Error(), "OOM") {
		t.Errorf("error %q does not carry the OOM cause", err)
	}
	if len(be.Written) == 0 || len(be.Failed) == 0 || len(be.Unknown) != 0 {
		t.Fatalf("BatchError: %d written, %d failed, %d unknown; want some written, some failed, none unknown",
			len(be.Written), len(be.Failed), len(be.Unknown))
	}
	if n := len(be.Written) + len(be.Failed); n != len(entries) {
		t.Errorf("BatchError accounts for %d keys; want %d", n, len(entries))
	}
	got, err := m.GetMany(ctx, be.Written)
	if err != nil || len(got) != len(be.Written) {
		t.Errorf("GetMany(written) found %d of %d, %v", len(got), len(be.Written), err)
	}
	got, err = m.GetMany(ctx, be.Failed)
	if err != nil || len(got) != 0 {
		t.Errorf("GetMany(failed) found %d keys, %v; want none", len(got), err)
	}
	if n, err := m.Size(ctx); err != nil || n != len(be.Written) {
		t.Errorf("Size = %d, %v; want %d", n, err, len(be.Written))
	}
}

// TestBatchErrorKeysAreTheCallers: the namespace layer gives a BatchError's
// keys back without the namespace.
func TestBatchErrorKeysAreTheCallers(t *testing.T) {
	be := &backend.BatchError{Op: "write", Written: []string{"ns:a"}, Failed: []string{"ns:b:c"}, Err: errors.New("x")}
	got := be.MapKeys(func(k string) string { return strings.TrimPrefix(k, "ns:") })
	if got.Written[0] != "a" || got.Failed[0] != "b:c" || got.Unknown != nil {
		t.Errorf("MapKeys = %+v", got)
	}
}

// TestHashTagRefusesBraceNamespaceAtNew: in hash-tag mode a namespace
// holding "{" or "}" used to be accepted by kv.New, and every later call
// failed. It is refused when the Map is built; other namespaces still work.
func TestHashTagRefusesBraceNamespaceAtNew(t *testing.T) {
	s := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	tagged, err := redis.New(c, redis.WithHashTag())
	if err != nil {
		t.Fatal(err)
	}
	plain, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"a{b", "a}b", "{ab}"} {
		if _, err := kv.New[string](tagged, ns); !errors.Is(err, kv.ErrInvalidNamespace) {
			t.Errorf("hash-tag kv.New(%q) = %v; want ErrInvalidNamespace", ns, err)
		}
		m, err := kv.New[string](plain, ns)
		if err != nil {
			t.Errorf("plain kv.New(%q) = %v; want a Map (braces are plain bytes there)", ns, err)
			continue
		}
		if err := m.Set(t.Context(), "k", "v"); err != nil {
			t.Errorf("plain Set in %q: %v", ns, err)
		}
	}
	m, err := kv.New[string](tagged, "ok")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(t.Context(), "k", "v"); err != nil {
		t.Errorf("hash-tag Set: %v", err)
	}
}
