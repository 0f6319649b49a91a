// Package bolt is a [backend.Backend] on a bbolt file: a durable,
// single-file store with per-key TTL, for offline backtests and tools that
// need no server.
//
// # Layout
//
// Each namespace gets its own bucket, with its own expiry index: backend key
// "ns:k" (what kv.Map stores for key k of namespace ns) is key k in the bucket
// of ns. The Backend's Namespace optimisation gives a kv.Map's namespace layer
// the bucket's view directly, without prefixing keys. The mapping is
// invisible from above: a scan of prefix "ns:", or of the empty prefix,
// returns "ns:k", so tools that list every namespace see the
// same flat keyspace as on Redis. Clearing a namespace (a prefix delete of
// "ns:") deletes its bucket, which costs milliseconds whatever its size, and
// its size is the bucket's key count less the index entries already past
// their deadline: no value is read. A scan returns keys in a fixed order,
// each at most once.
//
// # Expiry and clocks
//
// Each value carries its absolute deadline, so deadlines survive reopening.
// Expired keys are invisible to every call at once, by the opener's clock; a
// background sweeper, which also runs at open, deletes them at a cost
// proportional to the number of expired keys, walking each namespace's index
// in deadline order. Close stops the sweeper.
//
// The clock is an option: [WithClock] for the wall clock or a stand-in for it,
// [WithSimulatedClock] for a backtest's time. A file remembers, in its own
// metadata ([FileClock]), the kind of clock its data was written under and the
// latest time that clock showed at a write or at Close. Keys are only ever
// deleted by the clock they were written under:
//
//   - the sweeper runs only when the opener's clock is of the file's kind;
//   - a file written under a simulated clock, opened for writing with the wall
//     clock, is refused with [ErrClockMismatch] unless [WithClockOverride] is
//     given (and then nothing is swept);
//   - a file written before clocks were recorded is never swept;
//   - [WithFileTime] reads a file as of the latest time its clock showed (the
//     time is recorded by the write that creates the file, too, so a
//     backtest that never moved its clock still records it); a file that
//     records no time fails with [ErrNoFileTime].
//
// A clock may read any time from year 1 to year 9999 ([TimeRange]), and a
// deadline is kept for every TTL up to kv.MaxTTL from it: to the nanosecond
// from 1970 to 2262, the range of the Unix nanoseconds files have always
// held, and to the microsecond (rounded up, never early) outside it. A call
// made while the clock reads outside that range fails with an error wrapping
// [ErrTimeRange], as does a TTL asked for so long before its deadline
// (reading at a time centuries before the write) that a time.Duration cannot
// hold it. Files written by versions before this range was kept hold no
// deadline outside 1970 to 2262 (they clamped such deadlines to its ends).
//
// # Read-only
//
// [WithReadOnly] opens an existing file without writing, sweeping or creating
// anything; a missing file fails with fs.ErrNotExist, a 0444 file can be read,
// and several read-only openers may share a file. Writes fail with
// [ErrReadOnly]. A writer's exclusive lock blocks a read-only opener: a file
// cannot be inspected while a writer holds it.
//
// # Damaged files
//
// Open refuses at once, with [ErrNotRegularFile], a path that is not a
// regular file (a directory, a device, a named pipe, whose open would wait
// for a writer for ever). Before bbolt maps a file, Open checks what can be
// checked cheaply (a valid meta page, a file as long as that page says, root
// and freelist page headers and the freelist's page ids within it; a
// read-only open, that the file is not empty) and fails with [ErrCorrupt]
// otherwise, releasing the file. Every call turns a bbolt panic, or a memory
// fault on the mapped file, into an error wrapping ErrCorrupt instead of
// crashing the process; its message names what is damaged (a page, its
// element, the file's length), found by walking the file with reads of its
// own, never Go's runtime text. bbolt keeps no checksum of data pages: a
// flipped byte inside a key or value is returned as data. [Backend.Check]
// checks the whole file, as bbolt's Tx.Check does but with reads of its own
// in the calling goroutine (its cost grows with the file's size).
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
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/internal/leases"
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
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Optimizer = (*Backend)(nil)
	_ backend.Capable   = (*Backend)(nil)
)

// Backend is a backend.Backend on a bbolt database. It is safe for
// concurrent use.
type Backend struct {
	db       *bbolt.DB
	ownsDB   bool
	clock    clock.Clock
	readOnly bool
	file     FileClock     // the file's clock, as read at open
	sweeps   bool          // the opener's clock is the file's kind: expired keys may be deleted, and times recorded
	recorded atomic.Uint64 // 1 + the ord of the latest time on disk (timecode.go); 0 for none
	closed   atomic.Bool
	leases   leases.Table // load leases, in memory (lease.go)

	stop chan struct{}
	done chan struct{}
}

// ErrInvalidOption is returned by Open and New for options that cannot take
// effect together (its message names both), or a value an option cannot
// take. The same option given twice takes its last value.
var ErrInvalidOption = errors.New("bolt: invalid option")

// Option configures a Backend.
type Option func(*config)

type config struct {
	clock       clock.Clock
	kind        ClockKind
	fileTime    bool
	override    bool
	readOnly    bool
	sweep       time.Duration
	noSync      bool
	lockTimeout time.Duration
	given       map[string]bool // the options given, by name
}

func (c *config) give(name string) { c.given[name] = true }

// WithClock sets the clock that deadlines are read from: the system clock by
// default (or when c is nil), or a stand-in for it (a test's fake clock). Its
// kind is WallClock. A backtest's simulated clock is given with
// WithSimulatedClock. It is refused (ErrInvalidOption) with
// WithSimulatedClock or WithFileTime, which set the clock too.
func WithClock(c clock.Clock) Option {
	return func(o *config) { o.clock, o.kind = c, WallClock; o.give("WithClock") }
}

// WithSimulatedClock sets a simulated clock (a backtest's) as the clock that
// deadlines are read from, and marks the file as written under a simulated
// clock: it is then never swept by the wall clock (see the package
// documentation). c must not be nil; it is refused (ErrInvalidOption) with
// WithClock or WithFileTime, which set the clock too.
func WithSimulatedClock(c clock.Clock) Option {
	return func(o *config) { o.clock, o.kind = c, SimulatedClock; o.give("WithSimulatedClock") }
}

// WithFileTime makes the clock stand still at the latest time the file's own
// clock showed (FileClock.Latest): expiry is judged as it was when the last
// write was made (the file holds its latest state only: keys deleted before
// are not brought back). It is meant for read-only inspection
// (WithReadOnly), as the kv command's --at file does; the clock's kind is
// the file's. Opened for writing, writes are made at that time and sweep
// nothing. Open fails with ErrNoFileTime for a file that records no time,
// and with ErrInvalidOption with WithClock or WithSimulatedClock (two clocks)
// or WithSweepInterval (a clock that stands still sweeps nothing).
func WithFileTime() Option { return func(o *config) { o.fileTime = true; o.give("WithFileTime") } }

// WithClockOverride allows opening for writing a file written under a
// simulated clock with the wall clock, which Open otherwise refuses with
// ErrClockMismatch. Nothing is swept while the clocks differ. With
// WithReadOnly (nothing is written), WithSimulatedClock or WithFileTime (the
// clocks agree) it has no effect, and Open fails with ErrInvalidOption.
func WithClockOverride() Option {
	return func(o *config) { o.override = true; o.give("WithClockOverride") }
}

// WithReadOnly opens the file read-only: nothing is written, swept or
// created, a missing file is an error (errors.Is(err, fs.ErrNotExist)), a
// file without write permission can be read, and other read-only openers may
// share it. Every write fails with ErrReadOnly before touching the file.
// bbolt's read-only mode takes a shared lock, which a writer's exclusive lock
// blocks: a file held by a writer cannot be opened, even read-only, until the
// writer closes it (Open fails with ErrLocked after the lock timeout). New
// refuses it (ErrInvalidOption) for a DB opened for writing.
func WithReadOnly() Option { return func(o *config) { o.readOnly = true; o.give("WithReadOnly") } }

// WithSweepInterval sets how often the background sweeper deletes expired
// keys (DefaultSweepInterval by default). d <= 0 keeps only the sweep at
// open. Expired keys are invisible whether or not they were swept. With
// WithReadOnly or WithFileTime nothing is swept, and Open fails with
// ErrInvalidOption.
func WithSweepInterval(d time.Duration) Option {
	return func(o *config) { o.sweep = d; o.give("WithSweepInterval") }
}

// WithNoSync makes Open skip the fsync of every write: much faster, and a
// crash may lose or corrupt recent writes. Meant for bulk loads that can be
// redone. With WithReadOnly (nothing is written), or on New (its caller
// configured the DB), it fails with ErrInvalidOption.
func WithNoSync() Option { return func(o *config) { o.noSync = true; o.give("WithNoSync") } }

// WithLockTimeout sets how long Open waits for a file that another process
// holds before failing with ErrLocked (DefaultLockTimeout by default). d must
// be positive, and New, whose caller opened the DB, refuses it
// (ErrInvalidOption).
func WithLockTimeout(d time.Duration) Option {
	return func(o *config) { o.lockTimeout = d; o.give("WithLockTimeout") }
}

// configure applies opts and checks them, for Open, or for New on db.
func configure(opts []Option, db *bbolt.DB) (config, error) {
	c := config{clock: clock.System(), kind: WallClock, sweep: DefaultSweepInterval, lockTimeout: DefaultLockTimeout, given: map[string]bool{}}
	for _, o := range opts {
		o(&c)
	}
	if db != nil {
		c.give("New")
		if !db.IsReadOnly() {
			c.give("New on a DB opened for writing")
		}
	}
	for _, p := range [...][3]string{
		{"WithClock", "WithSimulatedClock", "both set the clock"},
		{"WithClock", "WithFileTime", "both set the clock"},
		{"WithSimulatedClock", "WithFileTime", "both set the clock"},
		{"WithClockOverride", "WithReadOnly", "a read-only open writes nothing"},
		{"WithClockOverride", "WithSimulatedClock", "the clocks agree"},
		{"WithClockOverride", "WithFileTime", "the clock is of the file's kind"},
		{"WithNoSync", "WithReadOnly", "a read-only open writes nothing"},
		{"WithSweepInterval", "WithReadOnly", "a read-only open sweeps nothing"},
		{"WithSweepInterval", "WithFileTime", "a clock that stands still sweeps nothing"},
		{"WithNoSync", "New", "the caller configured the DB"},
		{"WithLockTimeout", "New", "the caller opened the DB"},
		{"WithReadOnly", "New on a DB opened for writing", "the DB is writable"},
	} {
		if c.given[p[0]] && c.given[p[1]] {
			return c, fmt.Errorf("%w: %s has no effect with %s: %s", ErrInvalidOption, p[0], p[1], p[2])
		}
	}
	switch {
	case c.given["WithSimulatedClock"] && c.clock == nil:
		return c, fmt.Errorf("%w: WithSimulatedClock(nil)", ErrInvalidOption)
	case c.lockTimeout <= 0:
		return c, fmt.Errorf("%w: WithLockTimeout(%v) (want positive)", ErrInvalidOption, c.lockTimeout)
	case c.clock == nil:
		c.clock = clock.System()
	}
	return c, nil
}

// Open opens, or creates with mode 0600, the bbolt file at path (with
// WithReadOnly: opens an existing file, read-only). Before bbolt maps the
// file, Open checks what can be checked cheaply (a valid meta page, a file as
// long as that page says, sane root and freelist pages) and fails with an
// error wrapping ErrCorrupt otherwise; the file is then closed and unlocked.
// It fails with an error wrapping ErrLocked when another process holds the
// file for longer than the lock timeout, and with ErrClockMismatch for a
// file written under a simulated clock opened for writing with the wall
// clock. Close closes the file.
func Open(path string, opts ...Option) (*Backend, error) {
	cfg, err := configure(opts, nil)
	if err != nil {
		return nil, err
	}
	// Something other than a regular file is refused before it is opened: a
	// named pipe would block the open until a writer came, for ever.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("bolt: open %s: %w", path, notRegular(path, st.Mode()))
	}
	var file *os.File // the file bbolt opened, to release it if bbolt panics
	bopts := &bbolt.Options{
		Timeout: cfg.lockTimeout, NoSync: cfg.noSync, FreelistType: bbolt.FreelistMapType, ReadOnly: cfg.readOnly,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			// O_NONBLOCK: a named pipe put in the file's place since the
			// Stat above opens at once, and checkFile refuses it. It means
			// nothing for a regular file (bbolt's Fd call makes the
			// descriptor blocking again).
			f, err := os.OpenFile(name, flag|syscall.O_NONBLOCK, mode)
			if err != nil {
				return nil, err
			}
			if err := checkFile(f, cfg.readOnly); err != nil {
				return nil, errors.Join(err, f.Close())
			}
			file = f
			return f, nil
		},
	}
	mode := os.FileMode(0o600)
	if cfg.readOnly {
		mode = 0o400
	}
	var db *bbolt.DB
	err = guard(path, func() error {
		var err error
		db, err = bbolt.Open(path, mode, bopts)
		return err
	})
	if err != nil && db == nil && file != nil && errors.Is(err, ErrCorrupt) {
		// bbolt panicked after opening and locking the file: release both.
		err = errors.Join(err, file.Close())
	}
	switch {
	case errors.Is(err, bberrors.ErrTimeout) && cfg.readOnly:
		return nil, fmt.Errorf("%w: %s (waited %v; a writer holds it, and a read-only open must wait for the writer to close it): %w", ErrLocked, path, cfg.lockTimeout, err)
	case errors.Is(err, bberrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (waited %v): %w", ErrLocked, path, cfg.lockTimeout, err)
	case errors.Is(err, bberrors.ErrInvalid) || errors.Is(err, bberrors.ErrVersionMismatch) ||
		errors.Is(err, bberrors.ErrChecksum) || errors.Is(err, bberrors.ErrInvalidMapping):
		// What checkFile did not catch, bbolt did: the file is damaged.
		return nil, fmt.Errorf("bolt: open %s: %w: %w", path, ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	return start(db, true, cfg)
}

// New returns a Backend on a database the caller opened (read-only if the
// caller opened it so). The caller closes the database after the Backend.
func New(db *bbolt.DB, opts ...Option) (*Backend, error) {
	cfg, err := configure(opts, db)
	if err != nil {
		return nil, err
	}
	cfg.readOnly = db.IsReadOnly()
	return start(db, false, cfg)
}

func start(db *bbolt.DB, owns bool, cfg config) (*Backend, error) {
	b := &Backend{db: db, ownsDB: owns, clock: cfg.clock, readOnly: cfg.readOnly}
	fail := func(err error) (*Backend, error) {
		if owns {
			err = errors.Join(err, db.Close())
		}
		return nil, err
	}
	fc, hasData, err := b.readFileClock()
	if err != nil {
		return fail(err)
	}
	b.file = fc
	if !fc.Latest.IsZero() {
		if in, err := instantOf(fc.Latest); err == nil {
			b.recorded.Store(in.ord + 1)
		}
	}
	if cfg.fileTime {
		if fc.Latest.IsZero() {
			return fail(fmt.Errorf("%w (its clock's kind: %q)", ErrNoFileTime, fc.Kind))
		}
		b.clock = fixedClock(fc.Latest)
		cfg.kind = fc.Kind
	}
	if b.readOnly {
		return b, nil // nothing is written or swept
	}
	stamp := false
	switch {
	case fc.Kind == "" && !hasData: // a new file: it takes the opener's clock
		b.file.Kind, stamp = cfg.kind, true
	case fc.Kind == SimulatedClock && cfg.kind == WallClock && !cfg.override:
		return fail(&ClockMismatchError{File: fc})
	}
	// Keys are deleted only by the clock they were written under; a file
	// written before clocks were recorded is never swept.
	b.sweeps = b.file.Kind != "" && b.file.Kind == cfg.kind
	if stamp {
		// After b.sweeps is set: the stamp records the clock's time too, so
		// that a file closed without any other write knows when it was made.
		if err := b.stampClock(b.file.Kind); err != nil {
			return fail(err)
		}
	}
	if !b.sweeps || cfg.fileTime {
		return b, nil // nothing to sweep; a clock that stands still neither sweeps nor records
	}
	if _, err := b.sweep(); err != nil {
		return fail(err)
	}
	if cfg.sweep > 0 {
		b.stop = make(chan struct{})
		b.done = make(chan struct{})
		go b.sweepLoop(cfg.sweep)
	}
	return b, nil
}

// fixedClock is a clock that stands still.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// Describe implements backend.Backend.Describe: the system "bbolt", in
// process, scans without duplicates.
func (b *Backend) Describe() backend.Description {
	return backend.Description{System: "bbolt", UniqueScan: true, Clock: b.clock}
}

// Optimizations implements backend.Optimizer: a namespace is a bucket
// (deleted whole, counted without reading values), and a scan page comes
// with its values from one cursor walk.
func (b *Backend) Optimizations() backend.Optimizations {
	return backend.Optimizations{DeletePrefix: b.deletePrefix, CountPrefix: b.countPrefix, ScanEntries: b.scanEntries}
}

// Capabilities implements backend.Capable: a namespace is a bucket, seen
// natively by the namespace layer, leases are held in memory, for the
// Maps of this process (lease.go), and a conditional write is one
// transaction.
func (b *Backend) Capabilities() backend.Capabilities {
	return backend.Capabilities{Namespace: b.namespace, AcquireLeases: b.acquireLeases, SetIf: b.setIfFlat}
}

// setIfFlat is setIf in the flat key space.
func (b *Backend) setIfFlat(ctx context.Context, e backend.GuardedEntry) (bool, error) {
	return b.setIf(ctx, e, locate)
}

// DB returns the bbolt database.
func (b *Backend) DB() *bbolt.DB { return b.db }

// Sync reports whether writes are synced to disk before they return.
func (b *Backend) Sync() bool { return !b.db.NoSync }

// ReadOnly reports whether the Backend was opened read-only.
func (b *Backend) ReadOnly() bool { return b.readOnly }

// FileClock returns the clock the file's data was written under, as read at
// open (for a file new to this Backend, the Backend's own).
func (b *Backend) FileClock() FileClock { return b.file }

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
	var err error
	if b.sweeps && !b.readOnly {
		// The clock's time at Close is the file's latest: where a backtest
		// stopped, for kv --at file.
		var now instant
		if now, err = b.now(); err == nil && now.ord+1 > b.recorded.Load() {
			err = b.update(now, func(*bbolt.Tx) error { return nil })
		}
	}
	if b.ownsDB {
		err = errors.Join(err, b.db.Close())
	}
	return err
}

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return backend.ErrClosed
	}
	return ctx.Err()
}

// checkWrite is check for a call that writes.
func (b *Backend) checkWrite(ctx context.Context) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if b.readOnly {
		return ErrReadOnly
	}
	return nil
}

// view runs fn in a read transaction, guarded against a damaged file (as
// guard, without its closure: this is the path of every read).
func (b *Backend) view(fn func(tx *bbolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer corruptOnPanic(&err, b.db.Path())
	return b.db.View(fn)
}

// update runs fn in a write transaction, guarded against a damaged file,
// and records in the file the time of the clock the write was made at.
func (b *Backend) update(now instant, fn func(tx *bbolt.Tx) error) error {
	recorded := false
	err := guard(b.db.Path(), func() error {
		return b.db.Update(func(tx *bbolt.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			var err error
			recorded, err = b.recordTime(tx, now)
			return err
		})
	})
	if err == nil && recorded {
		b.committed(now)
	}
	return err
}

// read runs fn in a read transaction (view) at the clock's time.
func (b *Backend) read(fn func(tx *bbolt.Tx, now instant) error) error {
	now, err := b.now()
	if err != nil {
		return err
	}
	return b.view(func(tx *bbolt.Tx) error { return fn(tx, now) })
}

// write runs fn in a write transaction (update) at the clock's time.
func (b *Backend) write(fn func(tx *bbolt.Tx, now instant) error) error {
	now, err := b.now()
	if err != nil {
		return err
	}
	return b.update(now, func(tx *bbolt.Tx) error { return fn(tx, now) })
}

// now returns the clock's time, or an error wrapping ErrTimeRange when it
// reads outside TimeRange.
func (b *Backend) now() (instant, error) { return instantOf(b.clock.Now()) }

func (b *Backend) sweepLoop(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			// A failed sweep changes nothing and is retried at the next
			// tick; expired keys stay invisible meanwhile.
			if _, err := b.sweep(); err != nil {
				continue
			}
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
		err := b.write(func(tx *bbolt.Tx, now instant) error {
			return tx.ForEach(func(name []byte, idx *bbolt.Bucket) error {
				var data *bbolt.Bucket
				switch {
				case bytes.Equal(name, rootIndexBucket):
					data = tx.Bucket(rootBucket)
				case len(name) > len(indexPrefix) && string(name[:len(indexPrefix)]) == string(indexPrefix):
					data = tx.Bucket(append(append([]byte(nil), dataPrefix...), name[len(indexPrefix):]...))
				default:
					return nil
				}
				c := idx.Cursor()
				for k := firstExpired(c, now); k != nil && n < sweepBatch; k = firstExpired(c, now) {
					d := deadlineOf(k)
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
