// Package memory is an in-process [backend.Backend] for unit tests and
// programs that need no server.
//
// Keys live in a map and in an ordered index (a B-tree) that serves scans in
// key order, without duplicates, under the backend's own mutex, so multi-key
// operations are atomic. A key and its value share one allocation, 250-270
// heap bytes a key for 35-byte keys and 100-byte values. Every key has its
// own deadline, read from an injectable [clock.Clock]: an expired key is
// invisible to every operation at once, and a background sweep reclaims
// expired keys so they do not pile up.
//
// A backend is unbounded by default; [WithCapacity] bounds it, evicting the
// least recently used key when a write would exceed the capacity (the keys of
// a bounded backend are kept in a recency list too).
package memory

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"

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

	mu       sync.Mutex
	keys     map[string]*entry     // each key shares its entry's kv
	index    *btree.BTreeG[*entry] // the entries of keys, in key order
	capacity int                   // > 0: the bound of a bounded backend
	recent   *entry                // a bounded backend's recency list: newest
	oldest   *entry                // and oldest entries
	closed   bool

	leases leases.Table // the load leases; see acquireLeases

	changed  []string // keys changed under mu, reported by unlock
	watching int      // watches running, under mu
	watches  watches

	stop chan struct{}
	done chan struct{}
}

// entry is one stored key and its value, in one allocation.
type entry struct {
	kv           string // the key, then the value
	klen         int
	deadline     int64  // Unix nanoseconds; 0: no expiry
	newer, older *entry // the recency list of a bounded backend
}

func (e *entry) key() string { return e.kv[:e.klen] }

// val returns a copy of the value, the caller's.
func (e *entry) val() []byte { return append(make([]byte, 0, len(e.kv)-e.klen), e.kv[e.klen:]...) }

func entryLess(a, b *entry) bool { return a.key() < b.key() }

// probe returns an entry of key alone, for seeking in the index.
func probe(key string) *entry { return &entry{kv: key, klen: len(key)} }

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
	b := &Backend{
		clock:    cfg.clock,
		keys:     map[string]*entry{},
		index:    btree.NewG(32, entryLess),
		capacity: max(0, cfg.capacity),
	}
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

// lock takes b.mu for a call, unless the call must fail before doing
// anything (check): then it returns the error, b.mu released.
func (b *Backend) lock(ctx context.Context) error {
	b.mu.Lock()
	err := b.check(ctx)
	if err != nil {
		b.mu.Unlock()
	}
	return err
}

// now returns the clock's time in Unix nanoseconds.
func (b *Backend) now() int64 { return b.clock.Now().UnixNano() }

// lookup returns the live entry of key, removing it if it has expired. It
// updates recency only when touch is set. b.mu must be held.
func (b *Backend) lookup(key string, now int64, touch bool) (*entry, bool) {
	e, ok := b.keys[key]
	if !ok {
		return nil, false
	}
	if e.expired(now) {
		b.remove(e)
		return nil, false
	}
	if touch {
		b.unlink(e)
		b.link(e)
	}
	return e, true
}

// put stores key with val and deadline, the newest key, evicting the oldest
// key of a full bounded backend. b.mu must be held.
func (b *Backend) put(key string, val []byte, deadline int64) {
	e, ok := b.keys[key]
	if ok {
		b.unlink(e)
		e.kv, e.deadline = key+string(val), deadline
	} else {
		e = &entry{kv: key + string(val), klen: len(key), deadline: deadline}
		b.index.ReplaceOrInsert(e)
	}
	b.keys[e.key()] = e // a string key is replaced too: it shares the new kv
	b.link(e)
	b.changedKey(key)
	if b.capacity > 0 && len(b.keys) > b.capacity {
		b.remove(b.oldest)
	}
}

// remove deletes e. b.mu must be held.
func (b *Backend) remove(e *entry) {
	delete(b.keys, e.key())
	b.index.Delete(e)
	b.unlink(e)
	b.changedKey(e.key())
}

// link makes e the newest entry of a bounded backend's recency list.
func (b *Backend) link(e *entry) {
	if b.capacity == 0 {
		return
	}
	e.older, e.newer = b.recent, nil
	if b.recent != nil {
		b.recent.newer = e
	} else {
		b.oldest = e
	}
	b.recent = e
}

// unlink takes e out of a bounded backend's recency list.
func (b *Backend) unlink(e *entry) {
	if b.capacity == 0 {
		return
	}
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		b.recent = e.older
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		b.oldest = e.newer
	}
	e.newer, e.older = nil, nil
}

func (e *entry) expired(now int64) bool { return e.deadline != 0 && e.deadline <= now }

// ttl returns the remaining TTL of a live entry.
func (e *entry) ttl(now int64) time.Duration {
	if e.deadline == 0 {
		return backend.NoTTL
	}
	return time.Duration(e.deadline - now)
}

// MGet implements backend.Backend.MGet.
func (b *Backend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	if err := backend.CheckKeys(keys); err != nil {
		return nil, err
	}
	out := make([]backend.Value, len(keys))
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.unlock()
	now := b.now()
	for i, k := range keys {
		e, ok := b.lookup(k, now, true)
		if !ok {
			continue
		}
		out[i] = backend.Value{Bytes: e.val(), Found: true}
		if withTTL {
			out[i].TTL = e.ttl(now)
		}
	}
	return out, nil
}

// Get implements backend.Backend.Get: MGet of one key, without its TTL
// (and without a slice of results: it is the hot path of a Map's Get).
func (b *Backend) Get(ctx context.Context, key string) (backend.Value, error) {
	if err := backend.CheckKey(key); err != nil {
		return backend.Value{}, err
	}
	if err := b.lock(ctx); err != nil {
		return backend.Value{}, err
	}
	defer b.unlock()
	e, ok := b.lookup(key, b.now(), true)
	if !ok {
		return backend.Value{}, nil
	}
	return backend.Value{Bytes: e.val(), Found: true}, nil
}

// MSet implements backend.Backend.MSet.
func (b *Backend) MSet(ctx context.Context, entries []backend.Entry) error {
	entries, err := backend.CheckEntries(entries)
	if err != nil {
		return err
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.unlock()
	now := b.now()
	for _, e := range entries {
		b.put(e.Key, e.Value, backend.Deadline(now, e.TTL))
	}
	return nil
}

// Delete implements backend.Backend.Delete. It ends the load leases of keys
// (see acquireLeases).
func (b *Backend) Delete(ctx context.Context, keys []string) error {
	if err := backend.CheckKeys(keys); err != nil {
		return err
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.unlock()
	b.leases.End(keys...)
	for _, k := range keys {
		if e, ok := b.keys[k]; ok {
			b.remove(e)
		}
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
	if err := b.lock(ctx); err != nil {
		return false, err
	}
	defer b.unlock()
	b.leases.End(key)
	now := b.now()
	e, ok := b.lookup(key, now, false)
	if !ok {
		return false, nil
	}
	e.deadline = backend.Deadline(now, ttl)
	b.changedKey(key)
	return true, nil
}

// TTL implements backend.Backend.TTL.
func (b *Backend) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	if err := backend.CheckKey(key); err != nil {
		return 0, false, err
	}
	if err := b.lock(ctx); err != nil {
		return 0, false, err
	}
	defer b.unlock()
	now := b.now()
	e, ok := b.lookup(key, now, false)
	if !ok {
		return 0, false, nil
	}
	return e.ttl(now), true, nil
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
	if err := b.lock(ctx); err != nil {
		return backend.EntryPage{}, err
	}
	defer b.unlock()
	now := b.now()
	var page backend.EntryPage
	more := false
	b.ascend(prefix, cursor, func(e *entry) bool {
		if e.expired(now) {
			return true
		}
		if len(page.Keys) == count {
			more = true
			return false
		}
		page.Keys = append(page.Keys, e.key())
		if values {
			page.Values = append(page.Values, e.val())
		}
		return true
	})
	if more {
		page.Cursor = page.Keys[len(page.Keys)-1]
	}
	return page, nil
}

// ascend calls fn for each entry whose key starts with prefix and sorts
// after cursor, in order, until fn returns false. b.mu must be held, and fn
// must not change the index.
func (b *Backend) ascend(prefix, cursor string, fn func(*entry) bool) {
	visit := func(e *entry) bool {
		k := e.key()
		if !strings.HasPrefix(k, prefix) {
			return false // past the prefix range
		}
		if cursor != "" && k <= cursor {
			return true
		}
		return fn(e)
	}
	b.index.AscendGreaterOrEqual(probe(max(prefix, cursor)), visit)
}

// countPrefix is Optimizations.CountPrefix, in one locked pass.
func (b *Backend) countPrefix(ctx context.Context, prefix string, _ int) (int, error) {
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	defer b.unlock()
	now, n := b.now(), 0
	b.ascend(prefix, "", func(e *entry) bool {
		if !e.expired(now) {
			n++
		}
		return true
	})
	return n, nil
}

// deletePrefix is Optimizations.DeletePrefix, atomic: no reader sees
// part of the prefix deleted. It ends the load leases of every key under
// prefix. When every key starts with prefix and no watch needs the keys,
// the store is dropped at once; otherwise the keys are removed a chunk at a
// time, so that the call holds no list of them.
func (b *Backend) deletePrefix(ctx context.Context, prefix string, _ int) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.unlock()
	b.leases.EndPrefix(prefix)
	first, _ := b.index.Min()
	last, _ := b.index.Max()
	if b.watching == 0 && (first == nil || strings.HasPrefix(first.key(), prefix) && strings.HasPrefix(last.key(), prefix)) {
		b.drop()
		return nil
	}
	for n, _ := b.removeChunk(prefix, "", nil); n == sweepChunk; n, _ = b.removeChunk(prefix, "", nil) {
	}
	return nil
}

// removeChunk removes those of the next sweepChunk entries under prefix
// after cursor (all of them if fewer) that match (all when match is nil). It
// returns how many it examined and the key of the last one. b.mu must be
// held.
func (b *Backend) removeChunk(prefix, after string, match func(*entry) bool) (n int, last string) {
	chunk := make([]*entry, 0, sweepChunk)
	b.ascend(prefix, after, func(e *entry) bool {
		if n == sweepChunk {
			return false
		}
		n++
		last = e.key()
		if match == nil || match(e) {
			chunk = append(chunk, e)
		}
		return true
	})
	for _, e := range chunk {
		b.remove(e)
	}
	return n, last
}

// drop removes every key at once. b.mu must be held.
func (b *Backend) drop() {
	b.keys = map[string]*entry{}
	b.index.Clear(false)
	b.recent, b.oldest = nil, nil
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
	return backend.Capabilities{AcquireLeases: b.acquireLeases, Watch: b.watch, SetIf: b.setIf}
}

// setIf implements backend.Capabilities.SetIf under the Backend's lock.
func (b *Backend) setIf(ctx context.Context, e backend.GuardedEntry) (bool, error) {
	checked, err := backend.CheckEntries([]backend.Entry{e.Entry})
	if err != nil {
		return false, err
	}
	if err := b.lock(ctx); err != nil {
		return false, err
	}
	defer b.unlock()
	now := b.now()
	cur, found := b.lookup(e.Key, now, false)
	if found != e.PrevFound || found && cur.kv[cur.klen:] != string(e.Prev) {
		return false, nil // not as guarded (GuardedEntry.Matches, without a copy)
	}
	b.put(e.Key, checked[0].Value, backend.Deadline(now, checked[0].TTL))
	return true, nil
}

// Len returns the number of keys held, expired ones not yet swept included.
// It is meant for tests and metrics.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.unlock()
	return len(b.keys)
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
	b.drop()
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
		now, before := b.now(), len(b.keys)
		seen, last := b.removeChunk("", after, func(e *entry) bool { return e.expired(now) })
		removed += before - len(b.keys)
		b.unlock()
		if seen < sweepChunk {
			return removed
		}
		after = last
	}
}
