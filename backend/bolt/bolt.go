// Package bolt is a [backend.Backend] on a bbolt file: a durable,
// single-file store with per-key TTL, for offline backtests and tools that
// need no server.
//
// # Layout
//
// Each namespace gets its own bucket, with its own expiry index: backend key
// "ns:k" (what kv.Map stores for key k of namespace ns) is key k in the bucket
// of ns. The Backend is a backend.Namespacer: a kv.Map's namespace layer works
// on the bucket's view directly, without prefixing keys. The mapping is invisible from above: a scan of prefix "ns:", or of
// the empty prefix, returns "ns:k", so tools that list every namespace see the
// same flat keyspace as on Redis. Clearing a namespace (a prefix delete of
// "ns:") deletes its bucket, which costs milliseconds whatever its size, and
// its size is the bucket's key count less the index entries already past
// their deadline: no value is read. A scan returns keys in a fixed order,
// each at most once.
//
// # Expiry
//
// Each value carries its absolute deadline, so deadlines survive reopening.
// Expired keys are invisible to every call at once; a background sweeper,
// which also runs at open, deletes them at a cost proportional to the number
// of expired keys, walking each namespace's index in deadline order. The
// clock is an option ([WithClock]), so a backtest can expire keys by its
// simulated time. Close stops the sweeper.
//
// # Durability
//
// By default a write is on disk (fsync) when the call returns. [WithNoSync]
// skips the fsync, for bulk loads that can be redone after a crash. Writes
// of one call (MSet) go in one transaction. DB.Batch is not used: it waits up
// to 10 ms for other writers and helps only with many concurrent ones.
//
// # Transactions
//
// Bytes are copied out before a transaction ends; the keys and values of a
// scan page are copied into shared 4 KiB blocks (larger ones on their own),
// so a value kept by the caller keeps at most a block alive. Reads never upgrade to a
// write: an expired key is left to the sweeper. A scan takes a fresh read
// transaction per page, so no read transaction stays open while a caller's
// loop body runs.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/kvmap/kv/backend"
)

// Defaults of the options.
const (
	DefaultLockTimeout   = time.Second
	DefaultSweepInterval = time.Minute
)

// sweepBatch is how many expired keys one write transaction of the sweeper
// deletes at most, so that writers never wait long behind it.
const sweepBatch = 10_000

var (
	_ backend.Backend       = (*Backend)(nil)
	_ backend.PrefixDeleter = (*Backend)(nil)
	_ backend.PrefixCounter = (*Backend)(nil)
	_ backend.UniqueScanner = (*Backend)(nil)
	_ backend.EntryScanner  = (*Backend)(nil)
	_ backend.Describer     = (*Backend)(nil)
	_ backend.Getter        = (*Backend)(nil)
)

// Backend is a backend.Backend on a bbolt database. It is safe for
// concurrent use.
type Backend struct {
	db     *bbolt.DB
	ownsDB bool
	clock  backend.Clock
	closed atomic.Bool

	stop chan struct{}
	done chan struct{}
}

// Option configures a Backend.
type Option func(*config)

type config struct {
	clock       backend.Clock
	sweep       time.Duration
	noSync      bool
	lockTimeout time.Duration
}

// WithClock sets the clock that deadlines are read from (the system clock by
// default).
func WithClock(c backend.Clock) Option { return func(o *config) { o.clock = c } }

// WithSweepInterval sets how often the background sweeper deletes expired
// keys (DefaultSweepInterval by default). d <= 0 keeps only the sweep at
// open. Expired keys are invisible whether or not they were swept.
func WithSweepInterval(d time.Duration) Option { return func(o *config) { o.sweep = d } }

// WithNoSync makes Open skip the fsync of every write: much faster, and a
// crash may lose or corrupt recent writes. Meant for bulk loads that can be
// redone. It has no effect on New, whose caller configured the DB.
func WithNoSync() Option { return func(o *config) { o.noSync = true } }

// WithLockTimeout sets how long Open waits for a file that another process
// holds before failing with ErrLocked (DefaultLockTimeout by default).
func WithLockTimeout(d time.Duration) Option { return func(o *config) { o.lockTimeout = d } }

func configure(opts []Option) config {
	c := config{clock: backend.SystemClock(), sweep: DefaultSweepInterval, lockTimeout: DefaultLockTimeout}
	for _, o := range opts {
		o(&c)
	}
	if c.clock == nil {
		c.clock = backend.SystemClock()
	}
	if c.lockTimeout <= 0 {
		c.lockTimeout = DefaultLockTimeout
	}
	return c
}

// Open opens, or creates with mode 0600, the bbolt file at path. It fails
// with an error wrapping ErrLocked when another process holds the file for
// longer than the lock timeout. Close closes the file.
func Open(path string, opts ...Option) (*Backend, error) {
	cfg := configure(opts)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: cfg.lockTimeout, NoSync: cfg.noSync, FreelistType: bbolt.FreelistMapType})
	if errors.Is(err, bberrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (waited %v): %w", ErrLocked, path, cfg.lockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	return start(db, true, cfg)
}

// New returns a Backend on a database the caller opened. The caller closes
// the database after the Backend.
func New(db *bbolt.DB, opts ...Option) (*Backend, error) {
	return start(db, false, configure(opts))
}

func start(db *bbolt.DB, owns bool, cfg config) (*Backend, error) {
	b := &Backend{db: db, ownsDB: owns, clock: cfg.clock}
	if !db.IsReadOnly() {
		if _, err := b.sweep(); err != nil {
			if owns {
				_ = db.Close()
			}
			return nil, err
		}
	}
	if cfg.sweep > 0 && !db.IsReadOnly() {
		b.stop = make(chan struct{})
		b.done = make(chan struct{})
		go b.sweepLoop(cfg.sweep)
	}
	return b, nil
}

// Describe implements backend.Describer: the system "bbolt", in process.
func (b *Backend) Describe() backend.Description { return backend.Description{System: "bbolt"} }

// DB returns the bbolt database.
func (b *Backend) DB() *bbolt.DB { return b.db }

// Sync reports whether writes are synced to disk before they return.
func (b *Backend) Sync() bool { return !b.db.NoSync }

// Close implements backend.Backend.Close: it stops the sweeper and closes the
// file if Open opened it.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return backend.ErrClosed
	}
	if b.stop != nil {
		close(b.stop)
		<-b.done
	}
	if b.ownsDB {
		return b.db.Close()
	}
	return nil
}

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return backend.ErrClosed
	}
	return ctx.Err()
}

func (b *Backend) now() int64 { return b.clock.Now().UnixNano() }

func (b *Backend) sweepLoop(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			_, _ = b.sweep() // a failed sweep is retried at the next tick
		}
	}
}

// sweep deletes every key whose deadline has passed, walking each
// namespace's expiry index from its earliest deadline, sweepBatch keys per
// write transaction. It returns how many keys it deleted.
func (b *Backend) sweep() (int, error) {
	total := 0
	for {
		n := 0
		now := b.now()
		err := b.db.Update(func(tx *bbolt.Tx) error {
			return tx.ForEach(func(name []byte, idx *bbolt.Bucket) error {
				var data *bbolt.Bucket
				switch {
				case string(name) == "kv.x":
					data = tx.Bucket(rootBucket)
				case len(name) > len(indexPrefix) && string(name[:len(indexPrefix)]) == string(indexPrefix):
					data = tx.Bucket(append(append([]byte(nil), dataPrefix...), name[len(indexPrefix):]...))
				default:
					return nil
				}
				c := idx.Cursor()
				for k, _ := c.First(); k != nil && n < sweepBatch; k, _ = c.First() {
					d := deadlineOf(k)
					if !expired(d, now) {
						break
					}
					key := k[headerLength:]
					if data != nil {
						// Delete the value only if it still has this deadline:
						// an overwrite moved its index entry.
						if v := data.Get(key); v != nil && deadlineOf(v) == d {
							if err := data.Delete(key); err != nil {
								return err
							}
						}
					}
					if err := c.Delete(); err != nil {
						return err
					}
					n++
				}
				return nil
			})
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("bolt: sweep: %w", err)
		}
		if n < sweepBatch {
			return total, nil
		}
	}
}
