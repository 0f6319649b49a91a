package redis_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/nearcache"
)

// The linearizability checks of this file give each concurrent client of
// the check its own go-redis client, made with go-redis's DEFAULT options
// (retries included: MaxRetries 3), as separate processes would have.
// Faults go through a proxy (proxy_test.go) in front of a server of the
// test's own: miniredis, or a private redis-server under KV_REDIS_PRIVATE=1;
// never the shared servers, where only fault-free histories run.

// faultPeriods is the length of a history under faults, in periods of
// 100 calls, each beginning with every connection dropped: long enough
// that go-redis's retries of writes whose reply was lost (MaxRetries 3 by
// default) show in nearly every history, short enough for CI.
const faultPeriods = 40

// defaultClient returns a new client of addr with go-redis's default
// options, closed when the test ends.
func defaultClient(t conformance.T, addr string) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return c
}

// opener returns a Store.Open that makes a Backend on a new client from
// newClient, with opts.
func opener(newClient func(t conformance.T) goredis.UniversalClient, opts ...redis.Option) func(t conformance.T) backend.Backend {
	return func(t conformance.T) backend.Backend {
		b, err := redis.New(newClient(t), opts...)
		if err != nil {
			t.Fatalf("redis.New: %v", err)
		}
		return b
	}
}

// separateClients returns a Harness whose stores reach the data through
// clients that newClient makes, one per Store.Open, with opts.
func separateClients(newClient func(t conformance.T) goredis.UniversalClient, opts ...redis.Option) conformance.Harness {
	open := opener(newClient, opts...)
	return conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			return conformance.Store{Backend: open(t), Open: open}
		},
		PageHint: true,
	}
}

// linearVariants are the Map and backend settings every topology is
// checked with: without auto-pipelining, with it (the default), and
// through a near cache (where the store reports changes).
func linearVariants(near bool) map[string]struct {
	opts []redis.Option
	lin  conformance.LinearOptions
} {
	v := map[string]struct {
		opts []redis.Option
		lin  conformance.LinearOptions
	}{
		"Direct":       {opts: []redis.Option{redis.WithoutAutoPipeline()}},
		"AutoPipeline": {}, // the default
	}
	if near {
		v["NearCache"] = struct {
			opts []redis.Option
			lin  conformance.LinearOptions
		}{lin: conformance.LinearOptions{Options: []kv.Option{kv.WithNearCache(nearcache.Options{})}}}
	}
	return v
}

// TestLinearizableMiniredis checks histories of clients with default
// options on miniredis, its clock moved by FastForward during the run (so
// that keys expire in the history), without and with faults: connections
// dropped with commands in flight, replies cut, stalls. A write whose reply
// is lost must not be sent again by go-redis's retries after later writes
// of other clients.
func TestLinearizableMiniredis(t *testing.T) {
	start := func(t conformance.T) *miniredis.Miniredis {
		s := miniredis.NewMiniRedis()
		if err := s.Start(); err != nil {
			t.Fatalf("miniredis: %v", err)
		}
		t.Cleanup(s.Close)
		return s
	}
	for name, v := range linearVariants(false) {
		t.Run(name, func(t *testing.T) {
			h := conformance.Harness{
				New: func(t conformance.T) conformance.Store {
					s := start(t)
					open := opener(func(t conformance.T) goredis.UniversalClient { return defaultClient(t, s.Addr()) }, v.opts...)
					return conformance.Store{Backend: open(t), Advance: s.FastForward, Open: open}
				},
				Faults: func(t conformance.T) (conformance.Store, conformance.Faults) {
					s := start(t)
					p := newProxy(t.(testing.TB), s.Addr())
					open := opener(func(t conformance.T) goredis.UniversalClient { return defaultClient(t, p.addr()) }, v.opts...)
					direct := opener(func(t conformance.T) goredis.UniversalClient { return defaultClient(t, s.Addr()) })
					return conformance.Store{Backend: direct(t), Advance: s.FastForward, Open: open}, p
				},
			}
			conformance.RunLinearizable(t, h, v.lin)
			t.Run("Faults", func(t *testing.T) {
				lin := v.lin
				lin.Faults, lin.FaultPeriods = true, faultPeriods
				r := conformance.RunLinearizable(t, h, lin)
				if r.Unknown == 0 {
					t.Errorf("no write reported an error under faults: the proxy lost no reply, or the client hid the loss (retried)")
				}
			})
		})
	}
}

// TestLinearizableStandalone checks histories of clients with default
// options on the shared server (KV_REDIS_ADDR), without faults.
func TestLinearizableStandalone(t *testing.T) {
	addr := standalone(t).Options().Addr
	for name, v := range linearVariants(true) {
		t.Run(name, func(t *testing.T) {
			h := separateClients(func(t conformance.T) goredis.UniversalClient { return defaultClient(t, addr) }, v.opts...)
			conformance.RunLinearizable(t, h, v.lin)
		})
	}
}

// TestLinearizableSharedWatch checks histories of clients that share one
// Backend, each through a near-cached Map of its own: their watches share
// the Backend's one tracking connection (issue 19), so every report reaches
// every Map through one reader.
func TestLinearizableSharedWatch(t *testing.T) {
	addr := standalone(t).Options().Addr
	open := opener(func(t conformance.T) goredis.UniversalClient { return defaultClient(t, addr) })
	h := conformance.Harness{
		New:      func(t conformance.T) conformance.Store { return conformance.Store{Backend: open(t)} },
		PageHint: true,
	}
	// δ of 30 ms and a run of a second: a report that misses one of the
	// Maps leaves it serving an old value far longer than δ.
	const lag = 30 * time.Millisecond
	conformance.RunLinearizable(t, h, conformance.LinearOptions{
		Duration:  time.Second,
		Staleness: lag,
		Options:   []kv.Option{kv.WithNearCache(nearcache.Options{MaxLag: lag})},
	})
}

// TestLinearizableCluster checks histories of cluster clients with default
// options on the shared cluster (KV_REDIS_CLUSTER_ADDRS), without faults.
func TestLinearizableCluster(t *testing.T) {
	cluster(t)
	addrs := strings.Split(os.Getenv("KV_REDIS_CLUSTER_ADDRS"), ",")
	newClient := func(t conformance.T) goredis.UniversalClient {
		c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("close cluster client: %v", err)
			}
		})
		return c
	}
	for name, v := range linearVariants(true) {
		t.Run(name, func(t *testing.T) {
			conformance.RunLinearizable(t, separateClients(newClient, v.opts...), v.lin)
		})
	}
}

// TestLinearizableFaults checks histories of clients with default options
// on a private redis-server through the fault proxy: every connection
// dropped with the commands in flight every 100 calls, replies cut
// mid-way, stalls. go-redis retries a command whose reply was lost (its
// default MaxRetries is 3); a write re-sent that way lands after other
// clients' later writes, and the history is not linearizable. Each write
// the backend sends must go out once, and report its loss.
func TestLinearizableFaults(t *testing.T) {
	private(t)
	s := startServer(t, false, nil)
	for name, v := range linearVariants(true) {
		t.Run(name, func(t *testing.T) {
			h := conformance.Harness{
				New: func(t conformance.T) conformance.Store {
					t.Fatalf("only the fault run uses this harness")
					return conformance.Store{}
				},
				Faults: func(t conformance.T) (conformance.Store, conformance.Faults) {
					p := newProxy(t.(testing.TB), s.addr())
					open := opener(func(t conformance.T) goredis.UniversalClient { return defaultClient(t, p.addr()) }, v.opts...)
					direct := opener(func(t conformance.T) goredis.UniversalClient { return defaultClient(t, s.addr()) })
					return conformance.Store{Backend: direct(t), Open: open}, p
				},
			}
			lin := v.lin
			lin.Faults, lin.FaultPeriods = true, faultPeriods
			r := conformance.RunLinearizable(t, h, lin)
			if r.Unknown == 0 {
				t.Errorf("no write reported an error under faults: the proxy lost no reply, or the client hid the loss (retried)")
			}
		})
	}
}

// TestLinearizableSentinel checks histories of failover clients with
// default options, through a sentinel of a private master, without faults.
// Failovers are outside the claim: Redis replicates asynchronously, and a
// failover may lose acknowledged writes.
func TestLinearizableSentinel(t *testing.T) {
	newClient := sentinelClients(t, "kvlinear")
	for name, v := range linearVariants(true) {
		t.Run(name, func(t *testing.T) {
			conformance.RunLinearizable(t, separateClients(newClient, v.opts...), v.lin)
		})
	}
}
