package redis_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/nearcache"
)

// BenchmarkNearCacheInvalidationOtherClient measures how long a write by a
// client outside the process (a connection whose reply nothing in the
// process awaits, as another service's) keeps being served by a near
// cache: each of ~b.N iterations caches a value, writes SET on a raw
// connection, and reads every 20 µs until the new value is served. It
// reports the 50th and 99th percentiles. Unlike BenchmarkNearCacheInvalidation,
// whose writer is a go-redis client of the same process, no reply of the
// write competes with the invalidation for the scheduler: on one core
// (taskset -c 0) that one measures mostly the race between the two (a read
// that finds the old value sleeps for the runtime's 1 ms timer grain when
// nothing else is runnable).
func BenchmarkNearCacheInvalidationOtherClient(b *testing.B) {
	c := standalone(b)
	ctx := context.Background()
	be, err := redis.New(c)
	if err != nil {
		b.Fatal(err)
	}
	m, err := kv.New[string](be, "kvbench_other", kv.WithNearCache(nearcache.Options{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := m.Clear(context.Background()); err != nil {
			b.Error(err)
		}
		if err := m.Close(); err != nil {
			b.Error(err)
		}
	})
	raw, err := net.Dial("tcp", c.Options().Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	replies := bufio.NewReader(raw)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		old, next := strconv.Itoa(i), strconv.Itoa(i)+"'"
		if err := m.Set(ctx, "id", old); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; {
			before, _ := m.NearCacheStats()
			if _, _, err := m.Get(ctx, "id"); err != nil {
				b.Fatal(err)
			}
			if after, _ := m.NearCacheStats(); after.Hits > before.Hits {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("the near cache never served the key")
			}
		}
		cmd := fmt.Sprintf("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len("kvbench_other:id"), "kvbench_other:id", len(next), next)
		start := time.Now()
		if _, err := raw.Write([]byte(cmd)); err != nil {
			b.Fatal(err)
		}
		for deadline := start.Add(10 * time.Second); ; {
			v, _, err := m.Get(ctx, "id")
			if err != nil {
				b.Fatal(err)
			}
			if v == next {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("the other client's write not seen within 10s")
			}
			time.Sleep(20 * time.Microsecond) // a service waits between reads
		}
		lat = append(lat, time.Since(start))
		if line, err := replies.ReadString('\n'); err != nil || line != "+OK\r\n" {
			b.Fatalf("SET reply = %q, %v", line, err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
