// Package memory is an in-process [backend.Backend] for unit tests and
// programs that need no server.
//
// Keys live in a least-recently-used list (golang-lru's simplelru) under the
// backend's own mutex, so multi-key operations are atomic, and in an ordered
// index that serves scans in key order, without duplicates. Every key has its
// own deadline, read from an injectable [clock.Clock]: an expired key is
// invisible to every operation at once, and a background sweep reclaims
// expired keys so they do not pile up.
//
// A backend is unbounded by default; [WithCapacity] bounds it, evicting the
// least recently used key when a write would exceed the capacity.
package memory

import (
	"context"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"
	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/internal/leases"
)

// DefaultSweepInterval is how often the background sweep looks for expired
// keys unless WithSweepInterval says otherwise.
const DefaultSweepInterval = time.Minute

// sweepChunk is how many keys one locked step of the sweep examines, so that
// the sweep never holds the lock for long.
const sweepChunk = 1024

var (
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Optimizer = (*Backend)(nil)
	_ backend.Capable   = (*Backend)(nil)
)

// Backend is an in-memory backend.Backend. It is safe for concurrent use.
type Backend struct {
	clock clock.Clock

	mu     sync.Mutex
	lru    *simplelru.LRU[string, *item]
	index  *btree.BTreeG[string] // the keys of lru, in order
	closed bool

	leases leases.Table // the load leases; see acquireLeases

	changed  []string // keys changed under mu, reported by unlock
	watching int      // watches running, under mu
	watches  watches

	stop chan struct{}
	done chan struct{}
}

// item is one stored value.
type item struct {
	val      []byte
	deadline int64 // Unix nanoseconds; 0: no expiry
}

// Option configures a Backend.
type Option func(*config)

type config struct {
	capacity int
	clock    clock.Clock
	sweep    time.Duration
}

// WithCapacity bounds the backend to n keys, evicting the least recently used
// key beyond that. n <= 0 means unbounded, the default.
func WithCapacity(n int) Option { return func(c *config) { c.capacity = n } }

// WithClock sets the clock that deadlines are read from (the system clock by
// default). Tests and backtests use it to drive expiry without waiting.
func WithClock(clock clock.Clock) Option { return func(c *config) { c.clock = clock } }

// WithSweepInterval sets how often expired keys are reclaimed in the
// background (DefaultSweepInterval by default); d <= 0 disables the sweep.
// Expired keys are invisible whether or not they have been swept.
func WithSweepInterval(d time.Duration) Option { return func(c *config) { c.sweep = d } }

// New returns an empty Backend. Close stops its background sweep.
func New(opts ...Option) *Backend {
	cfg := config{clock: clock.System(), sweep: DefaultSweepInterval}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.clock == nil {
		cfg.clock = clock.System()
	}
	size := cfg.capacity
	if size <= 0 {
		size = math.MaxInt // simplelru refuses 0; this is the largest it takes
	}
	b := &Backend{
		clock: cfg.clock,
		index: btree.NewOrderedG[string](32),
	}
	// The callback runs inside simplelru calls made under b.mu: it only keeps
	// the index in step, it calls no user code.
	lru, err := simplelru.NewLRU(size, func(key string, _ *item) {
		b.index.Delete(key)
		b.changedKey(key)
	})
	if err != nil { // unreachable: size is positive
		panic(err)
	}
	b.lru = lru
	if cfg.sweep > 0 {
		b.stop = make(chan struct{})
		b.done = make(chan struct{})
		go b.sweepLoop(cfg.sweep)
	}
	return b
}

// check returns the error a call must fail with before doing anything: the
// backend is closed, or the context has ended. b.mu must be held.
func (b *Backend) check(ctx context.Context) error {
	if b.closed {
		return backend.ErrClosed
	}
	return ctx.Err()
}

// now returns the clock's time in Unix nanoseconds.
func (b *Backend) now() int64 { return b.clock.Now().UnixNano() }

// lookup returns the live item of key, removing it if it has expired. It
// updates recency only when touch is set. b.mu must be held.
func (b *Backend) lookup(key string, now int64, touch bool) (*item, bool) {
	var it *item
	var ok bool
	if touch {
		it, ok = b.lru.Get(key)
	} else {
		it, ok = b.lru.Peek(key)
	}
	if !ok {
		return nil, false
	}
	if it.expired(now) {
		b.lru.Remove(key)
		return nil, false
	}
	return it, true
}

func (it *item) expired(now int64) bool { return it.deadline != 0 && it.deadline <= now }

// ttl returns the remaining TTL of a live item.
func (it *item) ttl(now int64) time.Duration {
	if it.deadline == 0 {
		return backend.NoTTL
	}
	return time.Duration(it.deadline - now)
}

// MGet implements backend.Backend.MGet.
func (b *Backend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	if err := backend.CheckKeys(keys); err != nil {
		return nil, err
	}
	out := make([]backend.Value, len(keys))
	b.mu.Lock()
	defer b.unlock()
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	now := b.now()
	for i, k := range keys {
		it, ok := b.lookup(k, now, true)
		if !ok {
			continue
		}
		out[i] = backend.Value{Bytes: clone(it.val), Found: true}
		if withTTL {
			out[i].TTL = it.ttl(now)
		}
	}
	return out, nil
}

// Get implements backend.Backend.Get: MGet of one key, without its TTL.
func (b *Backend) Get(ctx context.Context, key string) (backend.Value, error) {
	vals, err := b.MGet(ctx, []string{key}, false)
	if err != nil {
		return backend.Value{}, err
	}
	return vals[0], nil
}

// MSet implements backend.Backend.MSet.
func (b *Backend) MSet(ctx context.Context, entries []backend.Entry) error {
	entries, err := backend.CheckEntries(entries)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.unlock()
	if err := b.check(ctx); err != nil {
		return err
	}
	now := b.now()
	for _, e := range entries {
		b.lru.Add(e.Key, &item{val: clone(e.Value), deadline: backend.Deadline(now, e.TTL)})
		b.index.ReplaceOrInsert(e.Key)
		b.changedKey(e.Key)
	}
	return nil
}

// Delete implements backend.Backend.Delete. It ends the load leases of keys
// (see acquireLeases).
func (b *Backend) Delete(ctx context.Context, keys []string) error {
	if err := backend.CheckKeys(keys); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.unlock()
	if err := b.check(ctx); err != nil {
		return err
	}
	b.leases.End(keys...)
	for _, k := range keys {
		b.lru.Remove(k)
	}
	return nil
}

// Expire implements backend.Backend.Expire. It ends the load lease of key,
// whether or not the key exists.
func (b *Backend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := backend.CheckKey(key); err != nil {
		return false, err
	}
	ttl, err := backend.CheckTTL(ttl)
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.unlock()
	if err := b.check(ctx); err != nil {
		return false, err
	}
	b.leases.End(key)
	now := b.now()
	it, ok := b.lookup(key, now, false)
	if !ok {
		return false, nil
	}
	it.deadline = backend.Deadline(now, ttl)
	b.changedKey(key)
	return true, nil
}

// TTL implements backend.Backend.TTL.
func (b *Backend) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	if err := backend.CheckKey(key); err != nil {
		return 0, false, err
	}
	b.mu.Lock()
	defer b.unlock()
	if err := b.check(ctx); err != nil {
		return 0, false, err
	}
	now := b.now()
	it, ok := b.lookup(key, now, false)
	if !ok {
		return 0, false, nil
	}
	return it.ttl(now), true, nil
}

// Scan implements backend.Backend.Scan. Keys come in byte order; the cursor
// is the last key returned, so a scan never returns a key twice.
func (b *Backend) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	page, err := b.scanPage(ctx, prefix, cursor, count, false)
	return backend.Page{Keys: page.Keys, Cursor: page.Cursor}, err
}

// scanEntries is Optimizations.ScanEntries: keys and values of a page are
// read under one lock.
func (b *Backend) scanEntries(ctx context.Context, prefix, cursor string, count int) (backend.EntryPage, error) {
	return b.scanPage(ctx, prefix, cursor, count, true)
}

func (b *Backend) scanPage(ctx context.Context, prefix, cursor string, count int, values bool) (backend.EntryPage, error) {
	if count <= 0 {
		count = 1
	}
	b.mu.Lock()
	defer b.unlock()
	if err := b.check(ctx); err != nil {
		return backend.EntryPage{}, err
	}
	now := b.now()
	var page backend.EntryPage
	more := false
	b.ascend(prefix, cursor, func(k string) bool {
		it, _ := b.lru.Peek(k)
		if it.expired(now) {
			return true
		}
		if len(page.Keys) == count {
			more = true
			return false
		}
		page.Keys = append(page.Keys, k)
		if values {
			page.Values = append(page.Values, clone(it.val))
		}
		return true
	})
	if more {
		page.Cursor = page.Keys[len(page.Keys)-1]
	}
	return page, nil
}

// ascend calls fn for each indexed key that starts with prefix and sorts
// after cursor, in order, until fn returns false. b.mu must be held, and fn
// must not change the index.
func (b *Backend) ascend(prefix, cursor string, fn func(string) bool) {
	visit := func(k string) bool {
		if !strings.HasPrefix(k, prefix) {
			return false // past the prefix range
		}
		if cursor != "" && k <= cursor {
			return true
		}
		return fn(k)
	}
	start := prefix
	if cursor > start {
		start = cursor
	}
	b.index.AscendGreaterOrEqual(start, visit)
}

// countPrefix is Optimizations.CountPrefix, in one locked pass.
func (b *Backend) countPrefix(ctx context.Context, prefix string, _ int) (int, error) {
	b.mu.Lock()
	defer b.unlock()
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	now, n := b.now(), 0
	b.ascend(prefix, "", func(k string) bool {
		if it, _ := b.lru.Peek(k); !it.expired(now) {
			n++
		}
		return true
	})
	return n, nil
}

// deletePrefix is Optimizations.DeletePrefix, atomic: no reader sees
// part of the prefix deleted. It ends the load leases of every key under
// prefix.
func (b *Backend) deletePrefix(ctx context.Context, prefix string, _ int) error {
	b.mu.Lock()
	defer b.unlock()
	if err := b.check(ctx); err != nil {
		return err
	}
	b.leases.EndPrefix(prefix)
	var keys []string
	b.ascend(prefix, "", func(k string) bool {
		keys = append(keys, k)
		return true
	})
	for _, k := range keys {
		b.lru.Remove(k)
	}
	return nil
}

// Describe implements backend.Backend.Describe: the system "memory", in
// process, scans without duplicates.
func (b *Backend) Describe() backend.Description {
	return backend.Description{System: "memory", UniqueScan: true, Clock: b.clock}
}

// Optimizations implements backend.Optimizer: a prefix delete and count in
// one locked pass over the ordered index, and scan pages with their values.
func (b *Backend) Optimizations() backend.Optimizations {
	return backend.Optimizations{DeletePrefix: b.deletePrefix, CountPrefix: b.countPrefix, ScanEntries: b.scanEntries}
}

// Capabilities implements backend.Capable: watches of changes (reported by
// the call that made them), and leases (held apart from the keys, expiring
// by the Backend's clock), so that Maps sharing one Backend load a missing
// key once.
func (b *Backend) Capabilities() backend.Capabilities {
	return backend.Capabilities{AcquireLeases: b.acquireLeases, Watch: b.watch}
}

// Len returns the number of keys held, expired ones not yet swept included.
// It is meant for tests and metrics.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.unlock()
	return b.lru.Len()
}

// Close implements backend.Backend.Close: it stops the background sweep,
// waits for it to return and drops every key.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return backend.ErrClosed
	}
	b.closed = true
	b.lru.Purge()
	b.mu.Unlock()
	if b.stop != nil {
		close(b.stop)
		<-b.done
	}
	return nil
}

func (b *Backend) sweepLoop(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.sweep()
		}
	}
}

// sweep removes every expired key, a chunk of keys per locked step. It
// returns the number of keys removed.
func (b *Backend) sweep() int {
	removed, after := 0, ""
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return removed
		}
		now := b.now()
		var expired []string
		seen, last := 0, ""
		b.ascend("", after, func(k string) bool {
			if seen == sweepChunk {
				return false
			}
			seen++
			last = k
			if it, _ := b.lru.Peek(k); it.expired(now) {
				expired = append(expired, k)
			}
			return true
		})
		for _, k := range expired {
			b.lru.Remove(k)
		}
		removed += len(expired)
		b.unlock()
		if seen < sweepChunk {
			return removed
		}
		after = last
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
