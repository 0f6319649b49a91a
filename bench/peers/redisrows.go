package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmap/kv"
	kvredis "github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/nearcache"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

const (
	hotKeys   = 1000
	valueSize = 100
	inflight  = 50
	pause     = 20 * time.Microsecond // the invalidation reader's pause between reads
)

// client is one peer's way of reading and writing key i of a run's keys
// (hot keys 0..999; key 1000 is the invalidation row's).
type client struct {
	get   func(ctx context.Context, i int) (string, error)
	set   func(ctx context.Context, i int, v string) error
	hits  func() int64                          // reads served from the local cache so far (nil: none)
	stats func() (hits, misses, unsynced int64) // of the local cache so far (nil: none)
	close func()
}

// keyset names a run's keys: short names for kv, namespace:name for the
// others, which is what kv stores.
type keyset struct {
	ns         string
	short, raw []string
}

func newKeyset() keyset {
	k := keyset{ns: uniq("peers")}
	for i := range hotKeys + 1 {
		s := fmt.Sprintf("k%04d", i)
		k.short = append(k.short, s)
		k.raw = append(k.raw, k.ns+":"+s)
	}
	return k
}

// value returns a value of valueSize bytes that starts with tag.
func value(tag string) string {
	return tag + strings.Repeat("v", valueSize-len(tag))
}

// peersOf lists the peers of each Go row.
var peersOf = map[string][]string{
	"cached":  {"kv-near", "rueidis-cache", "go-redis"},
	"get50":   {"kv-autopipe", "kv-default", "rueidis", "go-redis"},
	"set50":   {"kv-autopipe", "rueidis", "go-redis"},
	"mixed50": {"kv-autopipe", "rueidis", "go-redis"},
	"inval":   {"kv-near", "rueidis-cache"},
}

// open makes peer's client on a fresh connection.
func (b *bench) open(peer string, ks keyset) (*client, error) {
	switch peer {
	case "go-redis":
		c := goredis.NewClient(&goredis.Options{Addr: b.addr})
		return &client{
			get: func(ctx context.Context, i int) (string, error) { return c.Get(ctx, ks.raw[i]).Result() },
			set: func(ctx context.Context, i int, v string) error {
				return c.Set(ctx, ks.raw[i], v, kv.DefaultTTL).Err()
			},
			close: func() { _ = c.Close() },
		}, nil
	case "rueidis", "rueidis-cache":
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{b.addr}, DisableRetry: true})
		if err != nil {
			return nil, fmt.Errorf("rueidis: %w", err)
		}
		var hits, misses atomic.Int64
		cl := &client{
			set: func(ctx context.Context, i int, v string) error {
				return c.Do(ctx, c.B().Set().Key(ks.raw[i]).Value(v).Px(kv.DefaultTTL).Build()).Error()
			},
			close: c.Close,
		}
		if peer == "rueidis" {
			cl.get = func(ctx context.Context, i int) (string, error) {
				return c.Do(ctx, c.B().Get().Key(ks.raw[i]).Build()).ToString()
			}
			return cl, nil
		}
		cl.get = func(ctx context.Context, i int) (string, error) {
			r := c.DoCache(ctx, c.B().Get().Key(ks.raw[i]).Cache(), time.Minute)
			if r.IsCacheHit() {
				hits.Add(1)
			} else {
				misses.Add(1)
			}
			return r.ToString()
		}
		cl.hits = hits.Load
		cl.stats = func() (int64, int64, int64) { return hits.Load(), misses.Load(), 0 }
		return cl, nil
	case "kv-near", "kv-autopipe", "kv-default":
		c := goredis.NewClient(&goredis.Options{Addr: b.addr})
		var bopts []kvredis.Option
		var mopts []kv.Option
		switch peer {
		case "kv-autopipe":
			bopts = append(bopts, kvredis.WithAutoPipeline())
		case "kv-near":
			mopts = append(mopts, kv.WithNearCache(nearcache.Options{}))
		}
		be, err := kvredis.New(c, append(bopts, kvredis.WithCloseClient())...)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("kv backend: %w", err)
		}
		m, err := kv.New[string](be, ks.ns, mopts...)
		if err != nil {
			_ = be.Close()
			return nil, fmt.Errorf("kv map: %w", err)
		}
		cl := &client{
			get: func(ctx context.Context, i int) (string, error) {
				v, ok, err := m.Get(ctx, ks.short[i])
				if err == nil && !ok {
					err = fmt.Errorf("key %s missing", ks.short[i])
				}
				return v, err
			},
			set: func(ctx context.Context, i int, v string) error { return m.Set(ctx, ks.short[i], v) },
			close: func() {
				_ = m.Close()
				_ = be.Close()
			},
		}
		if peer == "kv-near" {
			cl.hits = func() int64 { s, _ := m.NearCacheStats(); return s.Hits }
			cl.stats = func() (int64, int64, int64) {
				s, _ := m.NearCacheStats()
				return s.Hits, s.Misses, s.Unsynced
			}
		}
		return cl, nil
	}
	return nil, fmt.Errorf("unknown peer %q", peer)
}

// hitRate tells the local cache's hits since the counters h0, m0, u0.
func (c *client) hitRate(h0, m0, u0 int64) string {
	h, m, u := c.stats()
	h, m, u = h-h0, m-m0, u-u0
	s := fmt.Sprintf("hits %.2f%% of %d", 100*float64(h)/float64(max(1, h+m)), h+m)
	if u > 0 {
		s += fmt.Sprintf(", %d unsynced", u)
	}
	return s
}

// redisRow runs one Go row for every peer of it, in an order rotated by run.
func (b *bench) redisRow(ctx context.Context, row string, run int) error {
	ks := newKeyset()
	w := goredis.NewClient(&goredis.Options{Addr: b.addr})
	defer func() {
		_ = w.Del(context.Background(), ks.raw...).Err()
		_ = w.Close()
	}()
	p := w.Pipeline()
	for i := range ks.raw {
		p.Set(ctx, ks.raw[i], value(fmt.Sprint(i)), 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	for _, peer := range rotate(peersOf[row], run) {
		c, err := b.open(peer, ks)
		if err != nil {
			return err
		}
		err = b.measure(ctx, row, peer, c, w, ks)
		c.close()
		if err != nil {
			return fmt.Errorf("%s: %w", peer, err)
		}
	}
	return nil
}

func (b *bench) measure(ctx context.Context, row, peer string, c *client, w *goredis.Client, ks keyset) error {
	val := value("set")
	read := func(ctx context.Context, r *rng) error {
		_, err := c.get(ctx, r.intn(hotKeys))
		return err
	}
	write := func(ctx context.Context, r *rng) error { return c.set(ctx, r.intn(hotKeys), val) }
	mixed := func(ctx context.Context, r *rng) error {
		if r.intn(10) < 8 {
			return read(ctx, r)
		}
		return write(ctx, r)
	}
	// Every peer first reads every hot key once (connections made, local
	// caches filled), then runs its row for a fifth of b.dur unmeasured.
	for i := range hotKeys {
		if _, err := c.get(ctx, i); err != nil {
			return err
		}
	}
	var h0, m0, u0 int64
	started := func() {
		if c.stats != nil {
			h0, m0, u0 = c.stats()
		}
	}
	defer func() {
		if c.stats != nil {
			b.note(row, peer, c.hitRate(h0, m0, u0))
		}
	}()
	var ns float64
	var err error
	switch row {
	case "cached":
		ns, err = b.throughput(ctx, 1, read, started)
	case "get50":
		ns, err = b.throughput(ctx, inflight, read, started)
	case "set50":
		ns, err = b.throughput(ctx, inflight, write, started)
	case "mixed50":
		ns, err = b.throughput(ctx, inflight, mixed, started)
	case "inval":
		started()
		lat, err := b.inval(ctx, c, w, ks)
		if err != nil {
			return err
		}
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		b.add(row, peer, "p50 µs", us(p50))
		b.add(row, peer, "p99 µs", us(p99))
		fmt.Printf("%-8s %-14s p50 %8.1f µs  p99 %8.1f µs  max %8.1f µs\n", row, peer, us(p50), us(p99), us(lat[len(lat)-1]))
		return nil
	}
	if err != nil {
		return err
	}
	b.add(row, peer, "ns/op", ns)
	fmt.Printf("%-8s %-14s %10.0f ns/op\n", row, peer, ns)
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// rng is a xorshift generator, one per goroutine.
type rng uint64

func (r *rng) intn(n int) int {
	x := uint64(*r)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*r = rng(x)
	return int(x % uint64(n))
}

// throughput runs op in n goroutines for a fifth of b.dur (warm-up), calls
// started, runs op for b.dur, and returns the measured time divided by the operations done
// (ns per operation; with n > 1 the inverse of throughput, as
// testing.B.RunParallel reports).
func (b *bench) throughput(ctx context.Context, n int, op func(context.Context, *rng) error, started func()) (float64, error) {
	if _, err := b.loop(ctx, n, b.dur/5, op); err != nil {
		return 0, err
	}
	started()
	return b.loop(ctx, n, b.dur, op)
}

func (b *bench) loop(ctx context.Context, n int, d time.Duration, op func(context.Context, *rng) error) (float64, error) {
	var (
		stop atomic.Bool
		ops  atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := time.Now()
	for g := range n {
		wg.Go(func() {
			r := rng(0x9e3779b97f4a7c15 ^ uint64(g+1)*0xbf58476d1ce4e5b9)
			var k int64
			for !stop.Load() {
				if err := op(ctx, &r); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					break
				}
				k++
			}
			ops.Add(k)
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(el) / float64(max(1, ops.Load())), nil
}

// seen is what the invalidation reader last read.
type seen struct {
	v   string
	at  time.Time
	hit bool // served from the local cache
}

// inval runs b.trials trials: a reader goroutine loops on Get of one key
// with 20 µs pauses; each trial writes a value with w, waits until the
// reader serves it from its local cache, then SETs another value with w
// and measures from the start of that SET until the reader read it.
func (b *bench) inval(ctx context.Context, c *client, w *goredis.Client, ks keyset) ([]time.Duration, error) {
	const key = hotKeys
	var (
		latest  atomic.Pointer[seen]
		stop    atomic.Bool
		readErr atomic.Pointer[error]
		wg      sync.WaitGroup
	)
	notify := make(chan struct{}, 1)
	wg.Go(func() {
		for !stop.Load() {
			h0 := c.hits()
			v, err := c.get(ctx, key)
			at := time.Now()
			if err != nil {
				readErr.Store(&err)
				select {
				case notify <- struct{}{}:
				default:
				}
				return
			}
			hit := c.hits() > h0
			if trace.IsEnabled() {
				trace.Log(ctx, "get", fmt.Sprintf("%s hit=%v", v[:min(len(v), 10)], hit))
			}
			if cur := latest.Load(); cur == nil || cur.v != v || hit && !cur.hit {
				latest.Store(&seen{v, at, hit})
				select {
				case notify <- struct{}{}:
				default:
				}
			}
			time.Sleep(pause)
		}
	})
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	wait := func(ok func(*seen) bool) (*seen, error) {
		t := time.NewTimer(10 * time.Second)
		defer t.Stop()
		for {
			if p := readErr.Load(); p != nil {
				return nil, *p
			}
			if s := latest.Load(); s != nil && ok(s) {
				return s, nil
			}
			select {
			case <-notify:
			case <-t.C:
				return nil, errors.New("the reader did not see the value within 10 s")
			}
		}
	}
	set := func(k, v string) error { return w.Set(ctx, k, v, 0).Err() }
	if b.extWriter != "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("taskset", "-c", b.extWriter, self, "-writeproc", "-addr", b.addr)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		defer func() { _ = in.Close(); _ = cmd.Wait() }()
		set = func(k, v string) error {
			_, err := fmt.Fprintf(in, "%s %s\n", k, v)
			return err
		}
	}
	lat := make([]time.Duration, 0, b.trials)
	for t := range b.trials {
		old, next := value(fmt.Sprintf("%d-old", t)), value(fmt.Sprintf("%d-new", t))
		if err := set(ks.raw[key], old); err != nil {
			return nil, err
		}
		if _, err := wait(func(s *seen) bool { return s.v == old && s.hit }); err != nil {
			return nil, fmt.Errorf("trial %d, caching: %w", t, err)
		}
		start := time.Now()
		trace.Log(ctx, "set", fmt.Sprintf("%d start", t))
		if err := set(ks.raw[key], next); err != nil {
			return nil, err
		}
		trace.Log(ctx, "set", fmt.Sprintf("%d done", t))
		s, err := wait(func(s *seen) bool { return s.v == next })
		if err != nil {
			return nil, fmt.Errorf("trial %d: %w", t, err)
		}
		lat = append(lat, s.at.Sub(start))
		trace.Log(ctx, "trial", fmt.Sprintf("%d lat=%v", t, s.at.Sub(start)))
	}
	slices.Sort(lat)
	return lat, nil
}

// writerProcess SETs, for -extwriter, each "key value" line of stdin.
func writerProcess(addr string) {
	ctx := context.Background()
	w := goredis.NewClient(&goredis.Options{Addr: addr})
	defer w.Close()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if err := w.Set(ctx, k, v, 0).Err(); err != nil {
			fmt.Fprintln(os.Stderr, "writeproc:", err)
			os.Exit(1)
		}
	}
}
