package redis_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/redis"
)

// startClusterNode starts an empty cluster-enabled redis-server on a port
// whose cluster-bus port (+10000) is free too. Its port is below those of
// privateCluster, so that it sorts first and a scan reaches it before the
// masters it imports from.
func startClusterNode(t *testing.T) *server {
	t.Helper()
	port := 0
	for try := 0; port == 0 && try < 2000; try++ {
		if p := 10000 + rand.IntN(10000); free(p) && free(p+10000) {
			port = p
		}
	}
	if port == 0 {
		t.Fatal("no free port for a cluster node")
	}
	s := &server{t: t, port: port, args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}}
	s.start()
	t.Cleanup(s.kill)
	return s
}

// joinMaster adds the empty node at addr to the cluster of masters as a
// master that owns no slot, the first step of every reshard to a new
// master, and waits until every node knows it and it knows every node.
func joinMaster(t *testing.T, masters []*node, addr string) *node {
	t.Helper()
	ctx := t.Context()
	host, port, _ := net.SplitHostPort(addr)
	if err := masters[0].c.ClusterMeet(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	n := &node{addr: addr, c: goredis.NewClient(&goredis.Options{Addr: addr})}
	t.Cleanup(func() { n.c.Close() })
	all := append(slices.Clone(masters), n)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		joined := true
		for _, m := range all {
			reply, err := m.c.ClusterNodes(ctx).Result()
			if err != nil || strings.Count(reply, "master") < len(all) || strings.Contains(reply, "handshake") || !strings.Contains(reply, addr) {
				joined = false
			}
			if info, err := m.c.ClusterInfo(ctx).Result(); err != nil || !strings.Contains(info, "cluster_state:ok") {
				joined = false
			}
		}
		if joined {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not join the cluster within 30s", addr)
		}
	}
	id, err := n.c.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	n.id = id
	return n
}

// beginMigration starts moving slots from src to dst as redis-cli
// --cluster reshard does (IMPORTING on dst, MIGRATING on src) and MIGRATEs
// the keys move picks of each slot, leaving the slots in migration: the
// state in which a reshard spends its time.
func beginMigration(ctx context.Context, src, dst *node, slots []int, move func(key string) bool) error {
	host, port, _ := net.SplitHostPort(dst.addr)
	for _, s := range slots {
		if err := dst.c.Do(ctx, "CLUSTER", "SETSLOT", s, "IMPORTING", src.id).Err(); err != nil {
			return err
		}
		if err := src.c.Do(ctx, "CLUSTER", "SETSLOT", s, "MIGRATING", dst.id).Err(); err != nil {
			return err
		}
		keys, err := src.c.ClusterGetKeysInSlot(ctx, s, 1000).Result()
		if err != nil {
			return err
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			if move(k) {
				args = append(args, k)
			}
		}
		if len(args) == 7 {
			continue
		}
		if err := src.c.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("MIGRATE slot %d: %w", s, err)
		}
	}
	return nil
}

// TestClusterReshardToNewMaster holds a private cluster in the middle of a
// reshard to a master that joined with no slot (slots IMPORTING there and
// MIGRATING on their owner, some of their keys moved): the slot map that
// go-redis builds (CLUSTER SLOTS) leaves that master out.
//   - Size, Keys and Iterate must see every key (they saw 150 of 200);
//   - GetMany of two keys of one slot, split between the two masters, must
//     find both (it failed with TRYAGAIN while Get of each succeeded);
//   - a near cache must track the new master: a key moved there, read
//     through an ASK redirection, and then written by another client must
//     be read anew (the old value was served for as long as the migration
//     lasted);
//   - Clear must delete the keys the new master imported (it left them).
func TestClusterReshardToNewMaster(t *testing.T) {
	addrs, _ := privateCluster(t, 0)
	ctx := t.Context()
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	masters := clusterMasters(t, addrs[0])
	src := masters[2]
	owned := func(key string) bool { return slices.Contains(src.slots, redis.Slot(key)) }
	newbie := joinMaster(t, masters, startClusterNode(t).addr())
	// A near cache watching before the migration starts.
	near := nearMap(t, client, "rsnear")
	tag := func(ns string, skip []int) string { // a hash tag of a slot of src
		for i := 0; ; i++ {
			k := ns + ":{t" + strconv.Itoa(i) + "}x"
			if owned(k) && !slices.Contains(skip, redis.Slot(k)) {
				return "{t" + strconv.Itoa(i) + "}"
			}
		}
	}

	// 200 keys; those of src's first 50 key-holding slots move.
	m := mustMap(t, client, "rs")
	var keys []string
	var entries []kv.Entry[string]
	var moving []int
	for i := range 200 {
		k := "k" + strconv.Itoa(i)
		keys = append(keys, k)
		entries = append(entries, kv.Entry[string]{Key: k, Value: "v"})
		if s := redis.Slot("rs:" + k); owned("rs:"+k) && len(moving) < 50 && !slices.Contains(moving, s) {
			moving = append(moving, s)
		}
	}
	if err := m.SetMany(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := beginMigration(ctx, src, newbie, moving, func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}

	t.Run("SizeKeysIterate", func(t *testing.T) {
		small := mustMapScan(t, client, m)
		if n, err := small.Size(ctx); err != nil || n != len(keys) {
			t.Errorf("Size during the reshard = %d, %v; want %d", n, err, len(keys))
		}
		distinct := map[string]bool{}
		for k, err := range small.Keys(ctx) {
			if err != nil {
				t.Fatalf("Keys: %v", err)
			}
			distinct[k] = true
		}
		if len(distinct) != len(keys) {
			t.Errorf("Keys during the reshard: %d distinct; want %d", len(distinct), len(keys))
		}
		seen := map[string]bool{}
		for e, err := range small.Iterate(ctx) {
			if err != nil {
				t.Fatalf("Iterate: %v", err)
			}
			seen[e.Key] = true
		}
		if len(seen) != len(keys) {
			t.Errorf("Iterate during the reshard yielded %d distinct keys; want %d", len(seen), len(keys))
		}
	})

	t.Run("GetManySplitSlot", func(t *testing.T) {
		m2 := mustMap(t, client, "rs2")
		tg := tag("rs2", moving)
		a, b := tg+"a", tg+"b"
		if err := m2.SetMany(ctx, []kv.Entry[string]{{Key: a, Value: "A"}, {Key: b, Value: "B"}}); err != nil {
			t.Fatal(err)
		}
		if err := beginMigration(ctx, src, newbie, []int{redis.Slot("rs2:" + a)}, func(k string) bool { return k == "rs2:"+a }); err != nil {
			t.Fatal(err)
		}
		got, err := m2.GetMany(ctx, []string{a, b})
		if err != nil || got[a] != "A" || got[b] != "B" {
			t.Errorf("GetMany of a slot split by a migration = %v, %v; want both", got, err)
		}
	})

	t.Run("NearCacheTracksImportingMaster", func(t *testing.T) {
		k := tag("rsnear", moving) + "k"
		servedLocally(t, near, k, "v1")
		if err := beginMigration(ctx, src, newbie, []int{redis.Slot("rsnear:" + k)}, func(string) bool { return true }); err != nil {
			t.Fatal(err)
		}
		// Read (and cached) through the ASK redirection to the new master.
		deadline := time.Now().Add(10 * time.Second)
		for {
			before, _ := near.NearCacheStats()
			v, ok, err := near.Get(ctx, k)
			if err != nil || !ok || v != "v1" {
				t.Fatalf("Get(%s) after its move = %q, %v, %v; want v1", k, v, ok, err)
			}
			if after, _ := near.NearCacheStats(); after.Hits > before.Hits {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never served from the near cache after its move", k)
			}
			time.Sleep(time.Millisecond) // polling, bounded by the deadline
		}
		if err := client.Set(ctx, "rsnear:"+k, "v2", 0).Err(); err != nil { // ASK to the new master
			t.Fatal(err)
		}
		pipe := newbie.c.Pipeline()
		pipe.Do(ctx, "ASKING")
		exists := pipe.Exists(ctx, "rsnear:"+k)
		if _, err := pipe.Exec(ctx); err != nil || exists.Val() != 1 {
			t.Fatalf("the write did not land on the new master: %d, %v", exists.Val(), err)
		}
		awaitServed(t, near, k, "v2", true, 10*time.Second)
	})

	t.Run("Clear", func(t *testing.T) {
		if err := m.Clear(ctx); err != nil {
			t.Fatalf("Clear during the reshard: %v", err)
		}
		left, _, err := newbie.c.Scan(ctx, 0, "rs:*", 10_000).Result()
		if err != nil || len(left) != 0 {
			t.Errorf("after Clear the new master still holds %d keys of the namespace, %v", len(left), err)
		}
		if n, err := m.Size(ctx); err != nil || n != 0 {
			t.Errorf("Size after Clear = %d, %v; want 0", n, err)
		}
	})
}

// TestSentinelNearCacheFollowsSentinels asks a Sentinel for a failover of
// a master that cannot be demoted (REPLICAOF is renamed away on it, as
// during a partition that keeps it from its sentinels): it answers ROLE
// "master" for good, while the sentinels, and every client that follows
// them, use the promoted replica. The near cache must follow the
// sentinels: another client's write on the new master is read. The old
// watch asked only the old server's ROLE and served the old value for as
// long as the old master ran.
func TestSentinelNearCacheFollowsSentinels(t *testing.T) {
	private(t)
	sp := startSentinelPairConf(t, "kvsplit", []string{`rename-command REPLICAOF ""`, `rename-command SLAVEOF ""`})
	ctx, rc := t.Context(), sp.replicaClient
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: sp.sentinel.addr()})
	t.Cleanup(func() { sc.Close() })
	sp.waitFor("the sentinel knows the replica", func() bool {
		rs, err := sc.Replicas(ctx, "kvsplit").Result()
		return err == nil && len(rs) > 0
	})
	near := nearMap(t, sp.client, "ssplit")
	servedLocally(t, near, "id", "before")
	sp.waitFor("SENTINEL FAILOVER accepted", func() bool { return sc.Failover(ctx, "kvsplit").Err() == nil })
	sp.waitFor("the sentinel naming the replica", func() bool {
		a, err := sc.GetMasterAddrByName(ctx, "kvsplit").Result()
		return err == nil && len(a) == 2 && a[1] == strconv.Itoa(sp.replica.port)
	})
	old := goredis.NewClient(&goredis.Options{Addr: sp.master.addr()})
	t.Cleanup(func() { old.Close() })
	if role, err := old.Do(ctx, "ROLE").Slice(); err != nil || len(role) == 0 || role[0] != "master" {
		t.Fatalf("ROLE of the old master = %v, %v; the test needs it to stay master", role, err)
	}
	if err := rc.Set(ctx, "ssplit:id", "after the switch", 0).Err(); err != nil {
		t.Fatal(err)
	}
	awaitServed(t, near, "id", "after the switch", true, 10*time.Second)
	servedLocally(t, near, "other", "cached on the new master")
	if err := rc.Set(ctx, "ssplit:other", "changed there", 0).Err(); err != nil {
		t.Fatal(err)
	}
	awaitServed(t, near, "other", "changed there", true, coherenceBound)
}

// startSentinelPairConf is startSentinelPair with conf lines for the
// master.
func startSentinelPairConf(t *testing.T, name string, masterConf []string) *sentinelPair {
	t.Helper()
	sp := &sentinelPair{master: startServer(t, false, masterConf)}
	sp.replica = startServer(t, false, nil, "--replicaof", "127.0.0.1", strconv.Itoa(sp.master.port))
	sp.sentinel = startServer(t, false, []string{
		"sentinel monitor " + name + " 127.0.0.1 " + strconv.Itoa(sp.master.port) + " 1",
		"sentinel down-after-milliseconds " + name + " 1000",
		"sentinel failover-timeout " + name + " 5000",
	}, "--sentinel")
	sp.client = goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName: name, SentinelAddrs: []string{sp.sentinel.addr()}, ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { sp.client.Close() })
	sp.replicaClient = goredis.NewClient(&goredis.Options{Addr: sp.replica.addr()})
	t.Cleanup(func() { sp.replicaClient.Close() })
	sp.waitFor = func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
		}
	}
	ctx := t.Context()
	sp.waitFor("master through the sentinel", func() bool { return sp.client.Ping(ctx).Err() == nil })
	sp.waitFor("replica in sync", func() bool {
		info, err := sp.replicaClient.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	return sp
}
