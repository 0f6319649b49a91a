// Package nearcache is a coherent in-process cache of a store's values: a
// backend.Backend decorator that serves repeated reads of a key from
// memory, without a round trip, and stays coherent with the store through
// the store's change reports (backend.Capabilities.Watch: Redis's
// server-assisted invalidation, CLIENT TRACKING in broadcast mode).
//
// Most users turn it on with kv.WithNearCache, which gives one Map's local
// tier (the one structure per Map that also holds its loads, misses and
// values remembered for stale serving) these Options; New puts the same
// cache (package internal/tier) over any Backend that reports changes.
//
// # Coherence
//
// A value is cached with its absolute deadline, read in the same round trip
// (the request's send time plus the PTTL read with the value), and is never
// served past it. A write by any other client removes the key when its
// report arrives (on loopback, about a millisecond: docs/performance.md); a
// fetch that races a report of its key never stores the value it read.
// Writes through the cache remove the key before and after they reach the
// store, so a read that follows a write in the same process sees it. While
// the store cannot report changes (its connection broke, a cluster changed
// masters), the cache is empty and every read goes to the store, until
// reports flow again; a loss is applied the moment the store sees it, before
// it reconnects.
//
// # Staleness bound
//
// The bound is Options.MaxLag (δ, DefaultMaxLag when 0): a value served
// from memory at time t was the store's value at some moment within δ before
// t. It holds by design, not by the speed of the reports: on a store whose
// reports travel apart from the writes (Redis), the cache serves a value
// from memory only while the store has proved, less than δ ago, that every
// change it had carried out was reported (a PING answered in order on each
// tracking connection, every 20 ms); when that proof is late (a silent link,
// a busy scheduler, a stalled server), reads go to the store until it comes.
// Stats.Unsynced counts them. A store whose reports are synchronous (memory)
// needs no proof.
//
// Changes the store does not report are outside that bound, and are bounded
// by the key's TTL and Options.MaxStaleness (a value is read again at least
// that often) only: on Redis, SWAPDB, and values read from replicas
// (cluster ReadOnly, RouteByLatency, RouteRandomly, Sentinel ReplicaOnly
// clients), which may be older than an invalidation already received; on a
// cluster, a key written through an ASK redirection to a master that joined
// less than a topology check (one second) before. FLUSHDB, FLUSHALL (also
// ASYNC), DEBUG RELOAD, MOVE, RENAME, COPY, RESTORE, scripts, expiry and
// eviction are reported.
//
// A read that finds nothing cached reads the value and its TTL in one round
// trip; a key the store does not have costs a second (Get, which tells a
// missing key from one of another kind). Scans, counts and TTL reads go to
// the store.
//
// What it does not promise: a write by another client may be invisible for
// up to δ, so two processes may briefly disagree. Turn the cache on for keys
// read far more often than written (BaseMap's signal ids read on every
// tick), not for keys whose readers must see another process's write at
// once.
package nearcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/internal/tier"
)

// Default bounds of a cache.
const (
	DefaultMaxEntries = tier.DefaultMaxEntries
	DefaultMaxBytes   = tier.DefaultMaxBytes
	// DefaultMaxLag is δ when Options.MaxLag is 0: five of the Redis
	// watch's 20 ms proofs, so that a few late ones (a busy scheduler, a
	// garbage collection) send no read to the store.
	DefaultMaxLag = tier.DefaultMaxLag
)

// ErrNoWatch is returned by New for a store that does not report changes
// (no Capabilities.Watch): no cache over it could stay coherent.
var ErrNoWatch = errors.New("nearcache: the store does not report changes")

// ErrInvalidOptions is returned by New for a negative bound in Options.
var ErrInvalidOptions = errors.New("nearcache: invalid options")

// Options bound a cache.
type Options struct {
	// MaxEntries bounds the number of cached keys (DefaultMaxEntries when
	// 0); the least recently used leave first. Under kv.WithNearCache it
	// bounds the Map's whole local tier, which also holds what
	// WithStaleWhileRevalidate remembers: the larger of the two sizes.
	MaxEntries int
	// MaxBytes bounds the bytes of cached keys and values
	// (DefaultMaxBytes when 0; at least 1024 otherwise). A value larger
	// than a sixteenth of it is not cached.
	MaxBytes int64
	// MaxLag is δ, the staleness bound of every value served from memory
	// (DefaultMaxLag when 0): a value is served only while the store has
	// proved, less than MaxLag ago, that every change it carried out was
	// reported (backend.ChangeSynced). The Redis watch proves itself every
	// 20 ms: with MaxLag 25 ms, 0.1% of reads went to the store on loopback
	// with four goroutines reading on two cores (none at 100 ms); under
	// 20 ms most would.
	MaxLag time.Duration
	// MaxStaleness, when positive, makes a value read from the store more
	// than MaxStaleness ago be read again: the bound of the changes the
	// store does not report (SWAPDB on Redis, see the package doc), and of
	// any report lost against the store's promise.
	MaxStaleness time.Duration
	// Clock tells the time of deadlines: when nil, the store's
	// (backend.Description.Clock), else the system clock.
	Clock clock.Clock
}

// Stats are a cache's counters since New.
type Stats struct {
	Hits, Misses  int64 // reads of a key served from memory, and not
	Invalidations int64 // keys removed by a change report
	Entries       int
	Bytes         int64
	Live          bool // changes are reported: the cache is in use
	// Unsynced counts reads of a key that went to the store, while live,
	// because the store's latest proof that its reports were up to date
	// was MaxLag old or older (a silent link, a stalled scheduler).
	Unsynced int64
	// Losses counts the times the cache stopped being live (a ChangeLost
	// report of the store): each emptied the cache and sent reads to the
	// store until reports were live again.
	Losses int64
	// LastLoss is the reason the store gave for its latest ChangeLost
	// (a broken connection, NOPERM for a command the watch needs, a server
	// no longer master), also when the cache never went live; nil when it
	// gave none.
	LastLoss error
}

// Backend is a backend.Backend that caches the values it reads from the
// Backend it wraps. It is safe for concurrent use. Its Wrapper's Backend is
// the Backend it wraps: the calls it does not cache (TTL, Scan, Describe) go
// there.
type Backend struct {
	backend.Wrapper
	opt     backend.Optimizations
	prefix  string
	t       *tier.Tier[struct{}] // the cached values (internal/tier, as kv.Map's)
	watch   func(context.Context, string, func(backend.Change)) (func(), error)
	mu      sync.Mutex
	stop    func() // nil until the watch starts
	stopped bool
	started atomic.Bool
}

var (
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Optimizer = (*Backend)(nil)
)

// New returns a cache over next that watches the keys under prefix (all
// keys when empty): reads of other keys pass through uncached. New does no
// I/O: the watch starts with the first call, under that call's context
// values but not its cancellation, and runs in the background until Stop or
// Close; the cache is used from the store's first ChangeLive report on, and
// every read before it goes to the store.
func New(next backend.Backend, prefix string, o Options) (*Backend, error) {
	watch := backend.CapabilitiesOf(next).Watch
	if watch == nil {
		return nil, ErrNoWatch
	}
	to, err := tier.Near(o.MaxEntries, o.MaxBytes, o.MaxLag, o.MaxStaleness)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	to.Clock = o.Clock
	if to.Clock == nil {
		to.Clock = next.Describe().Clock
	}
	c := &Backend{Wrapper: backend.Wrapper{Backend: next}, prefix: prefix, t: tier.New[struct{}](to), watch: watch}
	// The cache's own Optimizations: the store's, prefix deletes emptying
	// the cache. Its Capabilities are in lease.go.
	c.opt = backend.OptimizationsOf(next)
	if f := c.opt.DeletePrefix; f != nil {
		c.opt.DeletePrefix = func(ctx context.Context, prefix string, n int) error {
			c.t.Purge(false)
			defer c.t.Purge(false)
			return f(ctx, prefix, n)
		}
	}
	return c, nil
}

// start starts the watch, once, unless the cache is stopped. A watch that
// cannot start leaves the cache unused; the next call tries again.
func (c *Backend) start(ctx context.Context) {
	if c.started.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil || c.stopped {
		return
	}
	stop, err := c.watch(context.WithoutCancel(ctx), c.prefix, c.t.Changed)
	if err != nil {
		return
	}
	c.stop = stop
	c.started.Store(true)
}

// forget removes keys and voids the fetches of them under way.
func (c *Backend) forget(keys ...string) { c.t.Forget(keys...) }

// Stats returns the cache's counters.
func (c *Backend) Stats() Stats { return Stats(c.t.Stats()) }

// Stop ends the watch and empties the cache: every later read goes to the
// store. It does not close the store. Stopping twice is not an error.
func (c *Backend) Stop() {
	c.t.Stop()
	c.mu.Lock()
	c.stopped = true
	stop := c.stop
	c.stop = func() {}
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Close stops the cache and closes the Backend it wraps.
func (c *Backend) Close() error {
	c.Stop()
	return c.Backend.Close()
}

// Optimizations implements backend.Optimizer: the wrapped store's, its
// prefix deletes emptying the cache.
func (c *Backend) Optimizations() backend.Optimizations { return c.opt }
