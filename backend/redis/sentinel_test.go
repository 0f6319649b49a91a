package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/conformance"
)

// sentinelClients starts a private master and a sentinel that monitors it
// (as "name"), waits until the sentinel names the master, and returns a
// maker of failover clients, each closed when its test ends.
func sentinelClients(t *testing.T, name string) func(t conformance.T) goredis.UniversalClient {
	t.Helper()
	private(t)
	master := startServer(t, false, nil)
	sentinel := startServer(t, false, []string{
		"sentinel monitor " + name + " 127.0.0.1 " + strconv.Itoa(master.port) + " 1",
		"sentinel down-after-milliseconds " + name + " 5000",
	}, "--sentinel")
	newClient := func(t conformance.T) goredis.UniversalClient {
		c := goredis.NewFailoverClient(&goredis.FailoverOptions{MasterName: name, SentinelAddrs: []string{sentinel.addr()}})
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("close failover client: %v", err)
			}
		})
		return c
	}
	probe := newClient(t)
	deadline := time.Now().Add(10 * time.Second)
	for probe.Ping(context.Background()).Err() != nil { // the sentinel names the master
		if time.Now().After(deadline) {
			t.Fatalf("no master through the sentinel at %s", sentinel.addr())
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
	return newClient
}

// TestConformanceSentinel runs the whole suite through failover clients of
// a private master that a sentinel names (KV_REDIS_PRIVATE): the conditional
// writes, GetWithTTL, the near cache and leases included.
func TestConformanceSentinel(t *testing.T) {
	conformance.Run(t, separateClients(sentinelClients(t, "kvconf")))
}
