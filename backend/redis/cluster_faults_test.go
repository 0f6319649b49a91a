package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/redis"
)

// privateCluster starts a cluster of its own for a destructive test (three
// masters, with a replica each when replicas is 1) with
// scripts/redis-cluster.sh, on free loopback ports whose cluster-bus ports
// (+10000) are free too, and stops it when the test ends. It returns the
// node addresses and the directory holding each node's pid file.
func privateCluster(t *testing.T, replicas int) ([]string, string) {
	t.Helper()
	private(t)
	n := 3 * (replicas + 1)
	var ports []string
	for try := 0; len(ports) < n && try < 2000; try++ {
		p := 20000 + rand.IntN(25000)
		if free(p) && free(p+10000) && !slices.Contains(ports, strconv.Itoa(p)) {
			ports = append(ports, strconv.Itoa(p))
		}
	}
	if len(ports) < n {
		t.Fatal("no free ports for a private cluster")
	}
	slices.SortFunc(ports, func(a, b string) int { return strings.Compare("127.0.0.1:"+a, "127.0.0.1:"+b) })
	dir := t.TempDir()
	script, err := filepath.Abs("../../scripts/redis-cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KV_CLUSTER_DIR="+dir, "KV_CLUSTER_PORTS="+strings.Join(ports, " "),
		"KV_CLUSTER_REPLICAS="+strconv.Itoa(replicas))
	cmd := exec.Command("bash", script, "start")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		stop := exec.Command("bash", script, "stop")
		stop.Env = env
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("stop the private cluster: %v\n%s", err, out)
		}
	})
	if err != nil {
		t.Fatalf("start a private cluster: %v\n%s", err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), ","), dir
}

func free(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// node is one master of a private cluster, reached directly.
type node struct {
	addr, id string
	c        *goredis.Client
	slots    []int
}

// clusterMasters returns the masters of the cluster at addr, sorted by
// address as the backend scans them.
func clusterMasters(t *testing.T, addr string) []*node {
	t.Helper()
	ctx := t.Context()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	reply, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []*node
	for _, line := range strings.Split(reply, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		a, _, _ := strings.Cut(f[1], "@")
		n := &node{addr: a, id: f[0]}
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				continue
			}
			for s := l; s <= h; s++ {
				n.slots = append(n.slots, s)
			}
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *node) int { return strings.Compare(a.addr, b.addr) })
	for _, n := range out {
		n.c = goredis.NewClient(&goredis.Options{Addr: n.addr})
		t.Cleanup(func() { n.c.Close() })
	}
	return out
}

// migrate moves slots from src to dst the way redis-cli --cluster reshard
// does: IMPORTING and MIGRATING, MIGRATE of the keys in batches, then the
// new owner told to every master.
func migrate(ctx context.Context, src, dst *node, all []*node, slots []int) error {
	host, port, _ := net.SplitHostPort(dst.addr)
	for _, s := range slots {
		if err := dst.c.Do(ctx, "CLUSTER", "SETSLOT", s, "IMPORTING", src.id).Err(); err != nil {
			return err
		}
		if err := src.c.Do(ctx, "CLUSTER", "SETSLOT", s, "MIGRATING", dst.id).Err(); err != nil {
			return err
		}
		for {
			keys, err := src.c.ClusterGetKeysInSlot(ctx, s, 300).Result()
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				break
			}
			args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
			for _, k := range keys {
				args = append(args, k)
			}
			if err := src.c.Do(ctx, args...).Err(); err != nil {
				return fmt.Errorf("MIGRATE slot %d: %w", s, err)
			}
		}
		for _, n := range append([]*node{dst, src}, all...) {
			if err := n.c.Do(ctx, "CLUSTER", "SETSLOT", s, "NODE", dst.id).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestClusterReshardingDuringIteration moves slots holding more than 10,000
// keys of the namespace, live, from the master a pass scans last to the one
// it scanned first, in the middle of the pass, several times. Every key
// present for the whole pass must be yielded, none twice, and Size must be
// exact once the migration ends. The scan used to notice only a change of
// the set of masters, and missed every moved key.
func TestClusterReshardingDuringIteration(t *testing.T) {
	addrs, _ := privateCluster(t, 0)
	ctx := t.Context()
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	masters := clusterMasters(t, addrs[0])
	if len(masters) != 3 {
		t.Fatalf("%d masters; want 3", len(masters))
	}
	first, last := masters[0], masters[2]
	moving := last.slots[:40] // slots of the master scanned last
	m := mustMap(t, client, "rs")
	m2 := mustMap(t, client, "rs") // a second Map, for Size during the passes

	// 10,500 keys in the moving slots, 3,000 elsewhere.
	var keys []string
	inMoving := 0
	for i := 0; inMoving < 10_500 || len(keys)-inMoving < 3_000; i++ {
		k := "k" + strconv.Itoa(i)
		if slices.Contains(moving, redis.Slot("rs:"+k)) {
			if inMoving >= 10_500 {
				continue
			}
			inMoving++
		} else if len(keys)-inMoving >= 3_000 {
			continue
		}
		keys = append(keys, k)
	}
	batch := make([]kv.Entry[string], 0, 1000)
	for i, k := range keys {
		batch = append(batch, kv.Entry[string]{Key: k, Value: "v"})
		if len(batch) == cap(batch) || i == len(keys)-1 {
			if err := m.SetMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}

	for round := range 3 {
		// The pass has scanned the first master once it yields a key served
		// by the second: then the slots move from the last to the first.
		src, dst := last, first
		seen := map[string]int{}
		moved := false
		// A Size pass in small pages runs beside the iteration, through
		// the migration.
		sizes := make(chan error, 1)
		go func() {
			n, err := mustMapScan(t, client, m).Size(ctx)
			if err == nil && n != len(keys) {
				err = fmt.Errorf("Size during the migration = %d; want %d", n, len(keys))
			}
			sizes <- err
		}()
		for e, err := range mustMapScan(t, client, m).Iterate(ctx) {
			if err != nil {
				t.Fatalf("round %d: Iterate: %v", round, err)
			}
			seen[e.Key]++
			if !moved && slices.Contains(masters[1].slots, redis.Slot("rs:"+e.Key)) {
				if err := migrate(ctx, src, dst, masters, moving); err != nil {
					t.Fatalf("round %d: migrate: %v", round, err)
				}
				moved = true
			}
		}
		if !moved {
			t.Fatalf("round %d: the pass never reached the second master", round)
		}
		if err := <-sizes; err != nil {
			t.Errorf("round %d: %v", round, err)
		}
		missing, twice := 0, 0
		for _, k := range keys {
			switch seen[k] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
		if missing > 0 || twice > 0 || len(seen) != len(keys) {
			t.Errorf("round %d: the pass yielded %d distinct keys of %d: %d missing, %d twice", round, len(seen), len(keys), missing, twice)
		}
		if n, err := m2.Size(ctx); err != nil || n != len(keys) {
			t.Errorf("round %d: Size after the migration = %d, %v; want %d", round, n, err, len(keys))
		}
		// Back to the last master, outside a pass, for the next round.
		if err := migrate(ctx, dst, src, masters, moving); err != nil {
			t.Fatalf("round %d: migrate back: %v", round, err)
		}
	}
}

// mustMapScan returns m with small pages, so that a pass takes many pages.
func mustMapScan(t *testing.T, c goredis.UniversalClient, m *kv.Map[string]) *kv.Map[string] {
	t.Helper()
	b, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	small, err := kv.New[string](b, m.Namespace(), kv.WithPageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	return small
}

// TestClusterFailoverUnderWriteLoad kills a master with SIGKILL during a
// write load: every write acknowledged before or after the failover is read
// back afterwards, errors happen only between the kill and the promotion of
// the replica (plus the client's refresh of the slot map), and the same Map
// works again without being rebuilt.
func TestClusterFailoverUnderWriteLoad(t *testing.T) {
	addrs, dir := privateCluster(t, 1)
	ctx := t.Context()
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	m := mustMap(t, client, "fo")
	masters := clusterMasters(t, addrs[0])
	victim := masters[1]
	// A near cache over the same cluster, its keys spread over every
	// master: after the failover it must serve another client's writes,
	// and cache again once it tracks the new master.
	near := nearMap(t, client, "fo")
	hot := make([]string, 30)
	for i := range hot {
		hot[i] = fmt.Sprintf("hot-%02d", i)
		servedLocally(t, near, hot[i], "before")
	}

	type result struct {
		key string
		at  time.Time
		err error
	}
	var (
		mu      sync.Mutex
		results []result
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w%d-%06d", w, i)
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := m.Set(cctx, k, "v")
				cancel()
				mu.Lock()
				results = append(results, result{k, time.Now(), err})
				mu.Unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // load before the kill; not a timing assertion
	pid, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(victim.addr, "127.0.0.1:"), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait, with a deadline, for a replica to take over the victim's slots.
	survivor := masters[0].c
	var promotedAt time.Time
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		info, err := survivor.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			if now := clusterMasters(t, masters[0].addr); len(now) == 3 && !slices.ContainsFunc(now, func(n *node) bool { return n.addr == victim.addr }) {
				promotedAt = time.Now()
				break
			}
		}
	}
	if promotedAt.IsZero() {
		t.Fatal("no replica took over within 60s")
	}
	time.Sleep(3 * time.Second) // load after the failover; not a timing assertion
	close(stop)
	wg.Wait()

	// The client may need a few seconds after the promotion to learn the new
	// slot map (it reloads on errors and MOVED replies).
	grace := promotedAt.Add(2 * time.Second)
	var acked []string
	before, after, failed := 0, 0, 0
	for _, r := range results {
		if r.err == nil {
			acked = append(acked, r.key)
			if r.at.Before(killedAt) {
				before++
			} else if r.at.After(grace) {
				after++
			}
			continue
		}
		failed++
		if r.at.Before(killedAt) || r.at.After(grace) {
			t.Errorf("write of %s failed outside the failover window (%v after the kill; promoted %v after): %v",
				r.key, r.at.Sub(killedAt), promotedAt.Sub(killedAt), r.err)
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("acknowledged writes: %d before the kill, %d after the failover; want both", before, after)
	}
	t.Logf("%d writes acknowledged (%d before the kill, %d after the failover), %d failed; promotion %v after the kill",
		len(acked), before, after, failed, promotedAt.Sub(killedAt))
	for i := 0; i < len(acked); i += 500 {
		chunk := acked[i:min(i+500, len(acked))]
		got, err := m.GetMany(ctx, chunk)
		if err != nil {
			t.Fatalf("GetMany after the failover: %v", err)
		}
		if len(got) != len(chunk) {
			var lost []string
			for _, k := range chunk {
				if _, ok := got[k]; !ok {
					lost = append(lost, k)
				}
			}
			t.Errorf("%d acknowledged writes lost, e.g. %q", len(lost), lost[:min(5, len(lost))])
		}
	}
	if err := m.Set(ctx, "after", "ok"); err != nil {
		t.Errorf("Set after the failover: %v", err)
	}
	for _, k := range hot {
		if err := client.Set(ctx, "fo:"+k, "after the failover", 0).Err(); err != nil {
			t.Fatalf("raw SET after the failover: %v", err)
		}
	}
	for _, k := range hot {
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, ok, err := near.Get(ctx, k)
			if err == nil && ok && v == "after the failover" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("near cache: Get(%s) = %q, %v, %v 10s after another client's write following the failover", k, v, ok, err)
			}
			time.Sleep(time.Millisecond) // polling, bounded by the deadline
		}
	}
	servedLocally(t, near, "hot-00", "cached again") // tracking follows the new master
	if _, err := m.Size(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Size after the failover: %v", err)
	}
}

// sentinelPair is a master, its replica and a Sentinel that monitors them,
// private servers, with go-redis's failover client through the sentinel.
type sentinelPair struct {
	master, replica *server
	sentinel        *server
	client          *goredis.Client // the failover client
	replicaClient   *goredis.Client // the replica, directly
	waitFor         func(what string, cond func() bool)
}

// startSentinelPair starts a sentinelPair monitored under name and waits,
// with deadlines, for the client to reach the master and for the replica
// to be in sync, so that the sentinel can promote it.
func startSentinelPair(t *testing.T, name string) *sentinelPair {
	t.Helper()
	return startSentinelPairConf(t, name, nil)
}

// TestSentinelFailover kills the master a Sentinel monitors: the sentinel
// promotes the replica, and writes through the same failover client and Map
// resume; every write acknowledged before the kill is read back from the new
// master.
func TestSentinelFailover(t *testing.T) {
	private(t)
	sp := startSentinelPair(t, "kvfo")
	ctx, c, rc, master, waitFor := t.Context(), sp.client, sp.replicaClient, sp.master, sp.waitFor
	m := mustMap(t, c, "sfo")
	var acked []string
	for i := range 500 {
		k := fmt.Sprintf("before%04d", i)
		if err := m.Set(ctx, k, "v"); err != nil {
			t.Fatalf("Set before the failover: %v", err)
		}
		acked = append(acked, k)
	}
	// Let the replica take the last writes, as it does within milliseconds.
	waitFor("replica caught up", func() bool { n, err := rc.DBSize(ctx).Result(); return err == nil && n >= 500 })
	master.kill()

	// Writes resume through the same client once the sentinel promoted the
	// replica.
	waitFor("writes through the failover client", func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return m.Set(cctx, "after", "ok") == nil
	})
	if role, err := rc.Do(ctx, "ROLE").Slice(); err != nil || len(role) == 0 || role[0] != "master" {
		t.Errorf("ROLE of the old replica = %v, %v; want master", role, err)
	}
	got, err := m.GetMany(ctx, acked)
	if err != nil || len(got) != len(acked) {
		t.Errorf("after the failover GetMany found %d of %d acknowledged writes, %v", len(got), len(acked), err)
	}
	if v, ok, err := m.Get(ctx, "after"); err != nil || !ok || v != "ok" {
		t.Errorf("Get(after) = %q, %v, %v", v, ok, err)
	}
}

// TestSentinelSwitchNearCache asks a Sentinel for a failover while both
// servers run: the old master, now a replica, stays up but sends no more
// invalidations (a replica sends none for the writes it replicates). A near
// cache must notice (it asks the tracked server its ROLE every second) and
// move to the new master: another client's write there is seen, and
// caching resumes.
func TestSentinelSwitchNearCache(t *testing.T) {
	private(t)
	sp := startSentinelPair(t, "kvsw")
	ctx, c, rc, waitFor := t.Context(), sp.client, sp.replicaClient, sp.waitFor
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: sp.sentinel.addr()})
	t.Cleanup(func() { sc.Close() })
	waitFor("the sentinel knows the replica", func() bool {
		rs, err := sc.Replicas(ctx, "kvsw").Result()
		return err == nil && len(rs) > 0
	})
	near := nearMap(t, c, "ssw")
	servedLocally(t, near, "id", "before")
	waitFor("SENTINEL FAILOVER accepted", func() bool { return sc.Failover(ctx, "kvsw").Err() == nil })
	waitFor("the replica promoted", func() bool {
		role, err := rc.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	if err := rc.Set(ctx, "ssw:id", "after the switch", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor("the near cache serving the new master's value", func() bool {
		v, ok, err := near.Get(ctx, "id")
		return err == nil && ok && v == "after the switch"
	})
	servedLocally(t, near, "other", "cached on the new master")
	if err := rc.Set(ctx, "ssw:other", "changed there", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor("an invalidation from the new master", func() bool {
		v, ok, err := near.Get(ctx, "other")
		return err == nil && ok && v == "changed there"
	})
}
