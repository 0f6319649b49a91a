package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	kvbolt "github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	kvredis "github.com/kvmap/kv/backend/redis"
	goredis "github.com/redis/go-redis/v9"
)

// memKey is a key of the memory rows: 30 bytes, the shape of BaseMap's
// signal keys.
func memKey(i int) string { return fmt.Sprintf("binance:strat-%07d:BTC/USDT", i) }

// memRows fills a namespace of b.memKeys keys on each store (not timed),
// then measures Size, Iterate and Clear on it: time, and the Go heap above
// the heap after a GC before the call.
func (b *bench) memRows(ctx context.Context, run int) error {
	for _, st := range rotate(b.memStores, run) {
		if err := b.memStore(ctx, st); err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

func (b *bench) memStore(ctx context.Context, st string) error {
	var (
		be    backend.Backend
		batch = 1000
		err   error
	)
	switch st {
	case "redis":
		be, err = kvredis.New(goredis.NewClient(&goredis.Options{Addr: b.memAddr}), kvredis.WithCloseClient())
	case "bolt":
		dir := b.dir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "kvpeers"); err != nil {
				return err
			}
			defer func() { _ = os.RemoveAll(dir) }()
		}
		path := filepath.Join(dir, uniq("peers")+".db")
		defer func() { _ = os.Remove(path) }()
		be, err = kvbolt.Open(path, kvbolt.WithNoSync())
		batch = 10000
	case "memory":
		be = memory.New()
	default:
		return fmt.Errorf("unknown store %q (redis, bolt, memory)", st)
	}
	if err != nil {
		return err
	}
	defer func() { _ = be.Close() }()
	m, err := kv.New[string](be, uniq("peersmem"), kv.WithTTL(kv.NoTTL))
	if err != nil {
		return err
	}
	defer func() { _ = m.Close() }()

	start := time.Now()
	val := value("mem")
	entries := make([]kv.Entry[string], 0, batch)
	for i := 0; i < b.memKeys; i += batch {
		entries = entries[:0]
		for j := i; j < min(i+batch, b.memKeys); j++ {
			entries = append(entries, kv.Entry[string]{Key: memKey(j), Value: val})
		}
		if err := m.SetMany(ctx, entries); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
	}
	entries = nil
	fmt.Printf("mem      %-7s filled %d keys in %v\n", st, b.memKeys, time.Since(start).Round(time.Millisecond))

	ops := []struct {
		name string
		f    func() error
	}{
		{"Size", func() error {
			n, err := m.Size(ctx)
			if err == nil && n != b.memKeys {
				err = fmt.Errorf("size %d, want %d", n, b.memKeys)
			}
			return err
		}},
		{"Iterate", func() error {
			n := 0
			for e, err := range m.Iterate(ctx) {
				if err != nil {
					return err
				}
				if len(e.Value) != valueSize {
					return fmt.Errorf("value of %s has %d bytes", e.Key, len(e.Value))
				}
				n++
			}
			if n != b.memKeys {
				return fmt.Errorf("iterate yielded %d entries, want %d", n, b.memKeys)
			}
			return nil
		}},
		{"Clear", func() error { return m.Clear(ctx) }},
	}
	for _, op := range ops {
		h, err := heapDuring(op.f)
		if err != nil {
			return fmt.Errorf("%s: %w", op.name, err)
		}
		row := "mem " + op.name + ", " + st
		b.add(row, "kv", "ms", float64(h.elapsed)/float64(time.Millisecond))
		b.add(row, "kv", "peak heap MiB", mib(h.peak))
		if h.gcs > 0 { // the live heap is known only at the end of a GC
			b.add(row, "kv", "peak live MiB", mib(h.peakLive))
		}
		b.add(row, "kv", "allocated MiB", mib(h.alloc))
		fmt.Printf("mem      %-7s %-8s %9.1f ms  peak heap +%7.1f MiB  peak live +%7.1f MiB  allocated %8.1f MiB  (GCs %d)\n",
			st, op.name, float64(h.elapsed)/float64(time.Millisecond), mib(h.peak), mib(h.peakLive), mib(h.alloc), h.gcs)
	}
	if n, err := m.Size(ctx); err != nil || n != 0 {
		return fmt.Errorf("after Clear: Size = %d, %v", n, err)
	}
	return nil
}

func mib(v int64) float64 { return float64(v) / (1 << 20) }

// heap is what heapDuring measured.
type heap struct {
	elapsed        time.Duration
	peak, peakLive int64 // above the heap after the GC before the call
	alloc          int64 // bytes allocated during the call
	gcs            uint32
}

var heapMetrics = []string{"/memory/classes/heap/objects:bytes", "/gc/heap/live:bytes"}

func readHeap() (objects, live int64) {
	s := []metrics.Sample{{Name: heapMetrics[0]}, {Name: heapMetrics[1]}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
}

// heapDuring runs f after a GC and reports its time and the peak Go heap
// above the heap after that GC: the bytes of heap objects (HeapAlloc,
// garbage included) sampled every millisecond, and the live heap marked by
// each GC during f (read at every GC's end by a finalizer, and sampled).
func heapDuring(f func() error) (heap, error) {
	runtime.GC()
	runtime.GC()
	base, baseLive := readHeap()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var (
		peak, peakLive atomic.Int64
		done           = make(chan struct{})
		wg             sync.WaitGroup
		running        atomic.Bool
	)
	sample := func() {
		o, l := readHeap()
		for p := peak.Load(); o > p && !peak.CompareAndSwap(p, o); p = peak.Load() {
		}
		for p := peakLive.Load(); l > p && !peakLive.CompareAndSwap(p, l); p = peakLive.Load() {
		}
	}
	running.Store(true)
	armGCHook(func() bool { sample(); return running.Load() })
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
	running.Store(false)
	close(done)
	wg.Wait()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	h := heap{elapsed: el, peak: max(0, peak.Load()-base), peakLive: max(0, peakLive.Load()-baseLive), gcs: ms1.NumGC - ms0.NumGC,
		alloc: int64(ms1.TotalAlloc - ms0.TotalAlloc)}
	return h, err
}

// armGCHook calls f after each GC, for as long as f returns true: a
// finalizer on an object that is garbage at once re-arms itself.
func armGCHook(f func() bool) {
	o := new([16]byte)
	runtime.SetFinalizer(o, func(*[16]byte) {
		if f() {
			armGCHook(f)
		}
	})
}
