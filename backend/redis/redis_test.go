package redis_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/nearcache"
)

// miniHarness runs the suite on a fresh miniredis per case, its clock moved
// by FastForward. miniredis returns every key in one SCAN page, so it does
// not honour the page hint.
func miniHarness(opts ...redis.Option) conformance.Harness {
	return conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			s := miniredis.NewMiniRedis()
			if err := s.Start(); err != nil {
				t.Fatalf("miniredis: %v", err)
			}
			t.Cleanup(s.Close)
			c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
			t.Cleanup(func() { _ = c.Close() })
			b, err := redis.New(c, opts...)
			if err != nil {
				t.Fatalf("redis.New: %v", err)
			}
			return conformance.Store{Backend: b, Advance: s.FastForward}
		},
		Faults: func(t conformance.T) (conformance.Store, conformance.Faults) {
			s := miniredis.NewMiniRedis()
			if err := s.Start(); err != nil {
				t.Fatalf("miniredis: %v", err)
			}
			t.Cleanup(s.Close)
			return throughProxy(t, s.Addr(), s.FastForward, opts...)
		},
	}
}

func TestConformanceMiniredis(t *testing.T) {
	conformance.Run(t, miniHarness())
}

func TestConformanceMiniredisHashTag(t *testing.T) {
	conformance.Run(t, miniHarness(redis.WithHashTag()))
}

// TestConformanceMiniredisCoreOnly runs the suite with the backend's
// optimisations hidden: the results must be the same.
func TestConformanceMiniredisCoreOnly(t *testing.T) {
	conformance.Run(t, conformance.WithoutOptimizations(miniHarness()))
}

// The real-server suites run when their environment variables are set, and
// fail, never skip, when the server they name does not answer.

var (
	clientOnce sync.Map // address list -> goredis.UniversalClient
)

// standalone returns a client of the server at KV_REDIS_ADDR, shared by the
// tests of this process, or skips the test when the variable is not set.
func standalone(t testing.TB) *goredis.Client {
	t.Helper()
	c := standaloneClient(t)
	if c == nil {
		t.Skip("KV_REDIS_ADDR is not set")
	}
	return c
}

// cluster returns a client of the cluster at KV_REDIS_CLUSTER_ADDRS, or
// skips the test when the variable is not set.
func cluster(t testing.TB) *goredis.ClusterClient {
	t.Helper()
	c := clusterClient(t)
	if c == nil {
		t.Skip("KV_REDIS_CLUSTER_ADDRS is not set")
	}
	return c
}

// standaloneClient is standalone, returning nil when the variable is not set.
func standaloneClient(t testing.TB) *goredis.Client {
	t.Helper()
	addr := os.Getenv("KV_REDIS_ADDR")
	if addr == "" {
		return nil
	}
	c, _ := clientOnce.LoadOrStore("s:"+addr, goredis.NewClient(&goredis.Options{
		Addr: addr, ContextTimeoutEnabled: true, PoolSize: 16,
	}))
	client := c.(*goredis.Client)
	ping(t, client, addr)
	return client
}

// clusterClient is cluster, returning nil when the variable is not set.
func clusterClient(t testing.TB) *goredis.ClusterClient {
	t.Helper()
	addrs := os.Getenv("KV_REDIS_CLUSTER_ADDRS")
	if addrs == "" {
		return nil
	}
	c, _ := clientOnce.LoadOrStore("c:"+addrs, goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs: strings.Split(addrs, ","), ContextTimeoutEnabled: true,
	}))
	client := c.(*goredis.ClusterClient)
	ping(t, client, addrs)
	return client
}

// ownClient returns a client of the server at KV_REDIS_ADDR for this test
// alone (the auto-pipeliner of WithAutoPipeline ends with its client),
// closed when the test ends, or skips the test when the variable is not set.
func ownClient(t testing.TB) *goredis.Client {
	t.Helper()
	standalone(t)
	c := goredis.NewClient(&goredis.Options{Addr: os.Getenv("KV_REDIS_ADDR"), ContextTimeoutEnabled: true})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// realClients returns the clients of the real servers whose variables are
// set, by name ("standalone", "cluster"), or skips the test when none is.
func realClients(t testing.TB) map[string]goredis.UniversalClient {
	t.Helper()
	clients := map[string]goredis.UniversalClient{}
	if c := standaloneClient(t); c != nil {
		clients["standalone"] = c
	}
	if c := clusterClient(t); c != nil {
		clients["cluster"] = c
	}
	if len(clients) == 0 {
		t.Skip("neither KV_REDIS_ADDR nor KV_REDIS_CLUSTER_ADDRS is set")
	}
	return clients
}

func ping(t testing.TB, c goredis.UniversalClient, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer: %v", addr, err)
	}
}

// sharedHarness is realHarness on a server that the test binary run again
// reaches too (KV_REDIS_ADDR, KV_REDIS_CLUSTER_ADDRS), for the fleet cases.
// A private server is not: a child process would start its own.
func sharedHarness(c goredis.UniversalClient, opts ...redis.Option) conformance.Harness {
	h := realHarness(c, opts...)
	h.Shared = true
	return h
}

func realHarness(c goredis.UniversalClient, opts ...redis.Option) conformance.Harness {
	return conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			b, err := redis.New(c, opts...)
			if err != nil {
				t.Fatalf("redis.New: %v", err)
			}
			return conformance.Store{Backend: b} // real time
		},
		PageHint: true,
	}
}

func TestConformanceStandalone(t *testing.T) {
	c := standalone(t)
	h := sharedHarness(c)
	h.Faults = func(t conformance.T) (conformance.Store, conformance.Faults) {
		return throughProxy(t, c.Options().Addr, nil)
	}
	conformance.Run(t, h)
	t.Run("CoreOnly", func(t *testing.T) { conformance.Run(t, conformance.WithoutOptimizations(h)) })
}

func TestConformanceCluster(t *testing.T) {
	h := sharedHarness(cluster(t))
	conformance.Run(t, h)
	t.Run("CoreOnly", func(t *testing.T) { conformance.Run(t, conformance.WithoutOptimizations(h)) })
}

func TestConformanceClusterHashTag(t *testing.T) {
	conformance.Run(t, sharedHarness(cluster(t), redis.WithHashTag()))
}

// TestConformanceMiniredisAutoPipeline runs the suite with single-key calls
// auto-pipelined, faults included (a stalled or dropped pipeline).
func TestConformanceMiniredisAutoPipeline(t *testing.T) {
	conformance.Run(t, miniHarness(redis.WithAutoPipeline()))
}

// TestConformanceStandaloneAutoPipeline runs the suite on the real server
// with single-key calls auto-pipelined, on a client of its own (the
// auto-pipeliner ends with its client).
func TestConformanceStandaloneAutoPipeline(t *testing.T) {
	c := ownClient(t)
	h := sharedHarness(c, redis.WithAutoPipeline())
	h.Faults = func(t conformance.T) (conformance.Store, conformance.Faults) {
		return throughProxy(t, c.Options().Addr, nil, redis.WithAutoPipeline())
	}
	conformance.Run(t, h)
}

// TestConformanceClusterAutoPipeline runs the suite on the cluster with
// single-key calls auto-pipelined.
func TestConformanceClusterAutoPipeline(t *testing.T) {
	cluster(t)
	c := goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs: strings.Split(os.Getenv("KV_REDIS_CLUSTER_ADDRS"), ","), ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	conformance.Run(t, sharedHarness(c, redis.WithAutoPipeline()))
}

// TestConformanceStandaloneNearCache runs the suite on the real server with
// a near cache in front of every Map.
func TestConformanceStandaloneNearCache(t *testing.T) {
	h := sharedHarness(standalone(t))
	h.Options = []kv.Option{kv.WithNearCache(nearcache.Options{})}
	conformance.Run(t, h)
}

// TestConformanceClusterNearCache runs the suite on the cluster with a near
// cache in front of every Map: one tracking connection per master.
func TestConformanceClusterNearCache(t *testing.T) {
	h := sharedHarness(cluster(t))
	h.Options = []kv.Option{kv.WithNearCache(nearcache.Options{})}
	conformance.Run(t, h)
}
