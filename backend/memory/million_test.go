package memory_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	kvbolt "github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	kvredis "github.com/kvmap/kv/backend/redis"
)

// millionKeys is the size of the namespace of TestMillion.
const millionKeys = 1_000_000

// millionKey is the i-th key of TestMillion: 30 bytes, the shape of
// BaseMap's signal keys; with the namespace "mill:" a stored key has 35.
func millionKey(i int) string { return fmt.Sprintf("binance:strat-%07d:BTC/USDT", i) }

// TestMillion (KV_MILLION=1; off by default, it takes about a minute) fills
// a namespace of a million keys (30-byte keys, 100-byte values) on the
// memory store, bbolt and a private redis-server it starts, and logs for
// Size, Keys, Values, Iterate and Clear the time and the Go heap above the
// heap before the call: the peak of the heap's objects (garbage not yet
// collected included) and of the heap marked live by the GCs during the call.
// It fails when a call's peak live heap exceeds 24 MiB, and when the memory
// store holds more than 272 heap bytes a key.
func TestMillion(t *testing.T) {
	if os.Getenv("KV_MILLION") != "1" {
		t.Skip("KV_MILLION=1 runs the million-key namespace")
	}
	stores := map[string]func(t *testing.T) backend.Backend{
		"memory": func(*testing.T) backend.Backend { return memory.New() },
		"bolt": func(t *testing.T) backend.Backend {
			b, err := kvbolt.Open(filepath.Join(t.TempDir(), "m.db"), kvbolt.WithNoSync())
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"redis": privateRedis,
	}
	for _, name := range []string{"memory", "bolt", "redis"} {
		t.Run(name, func(t *testing.T) { million(t, stores[name](t)) })
	}
}

func million(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	defer func() { _ = b.Close() }()
	m, err := kv.New[string](b, "mill", kv.WithTTL(kv.NoTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Close() }()
	val := string(make([]byte, 100))
	runtime.GC()
	before, _ := readHeap()
	start := time.Now()
	entries := make([]kv.Entry[string], 0, 10_000)
	for i := 0; i < millionKeys; i += cap(entries) {
		entries = entries[:0]
		for j := i; j < i+cap(entries); j++ {
			entries = append(entries, kv.Entry[string]{Key: millionKey(j), Value: val})
		}
		if err := m.SetMany(ctx, entries); err != nil {
			t.Fatal(err)
		}
	}
	entries = nil
	runtime.GC()
	after, _ := readHeap()
	perKey := float64(after-before) / millionKeys
	t.Logf("%-7s filled in %v, heap %+.1f MiB (%.0f bytes a key)", b.Describe().System, time.Since(start).Round(time.Millisecond), mib(after-before), perKey)
	if _, ok := b.(*memory.Backend); ok && perKey > 272 {
		t.Errorf("the memory store holds %.0f heap bytes a key; want at most 272", perKey)
	}

	count := func(seq func(func(string, error) bool)) error {
		n := 0
		for _, err := range seq {
			if err != nil {
				return err
			}
			n++
		}
		if n != millionKeys {
			return fmt.Errorf("yielded %d; want %d", n, millionKeys)
		}
		return nil
	}
	ops := []struct {
		name string
		f    func() error
	}{
		{"Size", func() error {
			n, err := m.Size(ctx)
			if err == nil && n != millionKeys {
				err = fmt.Errorf("Size = %d; want %d", n, millionKeys)
			}
			return err
		}},
		{"Keys", func() error { return count(m.Keys(ctx)) }},
		{"Values", func() error { return count(m.Values(ctx)) }},
		{"Iterate", func() error {
			return count(func(yield func(string, error) bool) {
				for e, err := range m.Iterate(ctx) {
					if !yield(e.Key, err) {
						return
					}
				}
			})
		}},
		{"Clear", func() error { return m.Clear(ctx) }},
	}
	for _, op := range ops {
		h, err := heapDuring(op.f)
		if err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		t.Logf("%-7s %-8s %8.0f ms  peak heap %+7.1f MiB  peak live %+7.1f MiB  allocated %7.1f MiB  GCs %d",
			b.Describe().System, op.name, float64(h.elapsed)/float64(time.Millisecond), mib(h.peak), mib(h.peakLive), mib(h.alloc), h.gcs)
		if h.peakLive > 24<<20 {
			t.Errorf("%s: peak live heap %+.1f MiB; want at most 24 MiB", op.name, mib(h.peakLive))
		}
	}
	if n, err := m.Size(ctx); err != nil || n != 0 {
		t.Errorf("after Clear: Size = %d, %v; want 0", n, err)
	}
}

// privateRedis starts a redis-server of its own on a free loopback port,
// without persistence, stopped at the end of the test.
func privateRedis(t *testing.T) backend.Backend {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the private redis-server did not answer within 10 s")
		}
		runtime.Gosched()
	}
	b, err := kvredis.New(c, kvredis.WithCloseClient())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mib(v int64) float64 { return float64(v) / (1 << 20) }

// heapUse is what heapDuring measured.
type heapUse struct {
	elapsed        time.Duration
	peak, peakLive int64 // above the heap after the GC before the call
	alloc          int64 // bytes allocated during the call
	gcs            uint32
}

// readHeap returns the bytes of heap objects (HeapAlloc: garbage not yet
// collected included) and the heap marked live by the last GC.
func readHeap() (objects, live int64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
}

// heapDuring runs f after a GC and reports its time and the peaks of the
// heap above the heap after that GC, sampled every millisecond.
func heapDuring(f func() error) (heapUse, error) {
	runtime.GC()
	runtime.GC()
	base, baseLive := readHeap()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var (
		peak, peakLive atomic.Int64
		done           = make(chan struct{})
		wg             sync.WaitGroup
	)
	sample := func() {
		o, l := readHeap()
		for p := peak.Load(); o > p && !peak.CompareAndSwap(p, o); p = peak.Load() {
		}
		for p := peakLive.Load(); l > p && !peakLive.CompareAndSwap(p, l); p = peakLive.Load() {
		}
	}
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	})
	start := time.Now()
	err := f()
	el := time.Since(start)
	sample()
	close(done)
	wg.Wait()
	runtime.ReadMemStats(&ms1)
	return heapUse{
		elapsed:  el,
		peak:     max(0, peak.Load()-base),
		peakLive: max(0, peakLive.Load()-baseLive),
		alloc:    int64(ms1.TotalAlloc - ms0.TotalAlloc),
		gcs:      ms1.NumGC - ms0.NumGC,
	}, err
}
