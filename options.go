package kv

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/compress"
	"github.com/kvmap/kv/nearcache"
)

// DefaultTTL is the TTL of a Map built without WithTTL: BaseMap's 300 seconds.
const DefaultTTL = 5 * time.Minute

// DefaultPageSize is the page-size hint of bulk operations built without
// WithPageSize. BaseMap used 100 (its SCAN COUNT); a larger page costs fewer
// round trips per key on Redis while still holding only one page of values at
// a time (see docs/performance.md).
const DefaultPageSize = 1000

// DefaultScanCount is DefaultPageSize.
//
// Deprecated: use DefaultPageSize.
const DefaultScanCount = DefaultPageSize

// Option configures a Map built by New. Two options that cannot take effect
// together, or that set one thing to two values, make New fail with
// ErrInvalidOption naming both, whatever their order; the same option given
// twice takes its last value.
type Option func(*options)

type options struct {
	ttl            time.Duration
	pageSize       int
	page, scan     *int // WithPageSize's and WithScanCount's values
	logger         *slog.Logger
	codec          any // a Codec[V], checked by New
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	noTelemetry    bool
	recordKeys     bool
	jitter         float64
	seed           uint64
	missTTL        time.Duration
	clock          clock.Clock
	refresh        float64
	syncRefresh    bool
	leaseTTL       time.Duration
	staleGrace     time.Duration
	staleSize      int
	near           *nearcache.Options
	loadTimeout    time.Duration
	failOpen       bool
	compression    []compress.Option // nil: WithCompression not given
}

// WithCompression stores the Map's values compressed (package compress):
// zstd by default, values under 256 bytes raw, opts to change either (the
// options of package compress). Values written without it (before it was
// on, by BaseMap) are read as they are, and so are values compressed with
// other options; a Map without it reads a compressed value as the stored
// bytes, undecoded. BaseMap cannot read them either: leave compression off
// on namespaces that BaseMap services read. The decorator sits between the
// namespace and the Map's local tier, so the near cache (WithNearCache) and
// what stale serving remembers hold decoded values: a hit pays no
// decompression. A stored value that cannot be decompressed is its key's
// *DecodeError, matching ErrCorrupt (or ErrTooLarge, for one that would
// decode to more than the maximum size, compress.WithMaxSize, 64 MiB by
// default); a value longer than the maximum fails its write with an error
// matching ErrTooLarge. New fails with ErrInvalidOption for an
// invalid option of opts.
func WithCompression(opts ...compress.Option) Option {
	return func(o *options) { o.compression = append([]compress.Option{}, opts...) }
}

// wrapCompression puts the decorator of WithCompression over b, when given.
func (o *options) wrapCompression(b backend.Backend) (backend.Backend, error) {
	if o.compression == nil {
		return b, nil
	}
	c, err := compress.New(b, o.compression...)
	if err != nil {
		return nil, fmt.Errorf("%w: WithCompression: %w", ErrInvalidOption, err)
	}
	return c, nil
}

// WithNearCache puts a coherent in-process cache (package nearcache) in
// front of the store: a Get of a key read before is served from memory,
// without a round trip, until the key's deadline, a write by any client
// (reported by the store), a write through this Map, or a bound of o. The
// store must report changes (Redis, through CLIENT TRACKING on every master;
// memory): New fails with ErrInvalidOption otherwise. The cache watches the
// Map's namespace from the Map's first call on, and Map.Close stops it.
//
// A write by another process is seen once its report arrives (about 0.1 ms
// on loopback; MaxLag bounds it), so turn it on for keys read far more often than
// written, whose readers can accept that delay; see the package
// documentation of nearcache for the exact rules. Telemetry tells hits served
// locally apart (kv.hit.source). New fails with ErrInvalidOption for a
// negative bound in o, a MaxBytes under 1024, and for an o.Clock other than
// WithClock's or the store's clock (see WithClock). The cache is part of the
// Map's local tier, which o bounds as a whole (with the size of
// WithStaleWhileRevalidate when larger).
func WithNearCache(o nearcache.Options) Option { return func(opts *options) { opts.near = &o } }

// WithFailOpen makes GetOrLoad and GetManyOrLoad serve the loader's value
// when the store cannot be read or written. A read that fails is taken for a
// miss: the key is loaded (one load per key in the process, as for any miss),
// and its value returned. A loaded value that cannot be stored is returned
// with a nil error. Nothing being stored while the store fails, the source
// takes every such call: size it, or bound it in the loader.
//
// No store error is swallowed silently: each one served through adds a
// kv.fail_open event to the call's span, counts its keys on
// kv.client.fail_open (by kv.fail_open.step, "read" or "write", and
// error.type), and is logged at Warn: by the Map's logger (WithLogger), or
// by slog.Default when it has none.
//
// What is not the store failing is still returned: a value that does not
// decode (*DecodeError), a key holding data of another kind (ErrWrongType),
// a value too large for the store (ErrTooLarge), a value the codec cannot
// encode, bad input, the loader's own error, ErrClosed (a closed Map or
// store), and the end of the caller's context. A store that hangs is failed
// open only when its client gives up before the caller's context ends (a
// go-redis ReadTimeout shorter than the caller's deadline). Every other call
// (Get, Set, ...) is unchanged. Off by default: the store's error is
// returned.
func WithFailOpen() Option { return func(o *options) { o.failOpen = true } }

// DefaultLoadTimeout bounds every load of a Map built without
// WithLoadTimeout.
const DefaultLoadTimeout = 30 * time.Second

// WithLoadTimeout bounds every load (GetOrLoad, GetManyOrLoad, refreshes and
// stale reloads) to d. At d the load's context is cancelled, its lease
// (WithLoadLease) is released and no longer renewed, even if the loader
// ignores its context, so another process can take the key over within one
// lease time; the callers get an error wrapping ErrLoadTimeout and
// context.DeadlineExceeded, and the load's result, if it comes later, is
// never stored. d must be positive (0 too is refused, with
// ErrInvalidOption); the default is DefaultLoadTimeout.
func WithLoadTimeout(d time.Duration) Option { return func(o *options) { o.loadTimeout = d } }

// WithLoadLease makes the loads of GetOrLoad and GetManyOrLoad one per key
// across every process that shares the store, not only within this Map:
// before loading a missing key a Map takes the key's lease in the store, for
// d, and renews it every d/3 while the load runs; a Map that finds the lease
// taken waits for the value instead (polling the key, from 1 ms doubling up
// to 50 ms), up to its caller's context, and loads the key itself if the
// lease is released or expires without a value (its holder failed or died:
// the others are delayed by at most d). A refresh ahead of expiry whose
// lease is taken is left to its holder. Leases are never keys of a
// namespace: no read, scan or Size sees them (backend.LeasePrefix); Clear
// ends the leases of its namespace.
//
// A lease also carries the right to store: the loaded value is stored, in
// one step on the store, only while the lease holds and the key is as the
// load found it. A Set, Delete, Expire or Clear of the key through any Map
// on the store ends that right, so a load that raced an update of the source
// and its write or delete never stores its older value. Writers that do not
// go through kv cannot end it (a BaseMap service's SET is seen only as a
// changed key; its DEL is not seen).
//
// On a store that reports changes (Redis, memory), a Map with leases watches
// its namespace from its first GetOrLoad or GetManyOrLoad on (on Redis one
// tracking connection per master, which receives an invalidation for every
// write under the namespace), so that a wait for another process's lease
// ends as soon as the value is stored; Close stops the watch.
//
// The store, as wrapped, must keep leases (Redis, memory and bbolt do,
// through backend.Capabilities.AcquireLeases): New fails with
// ErrInvalidOption otherwise, for instance under a wrapper that does not
// forward its store's Capabilities. A failure to take, renew or release a
// lease is logged (WithLogger) and counted (outcome "lease_error" of
// kv.client.loads), and the load runs without it. d must be at most MaxTTL,
// and not negative (ErrInvalidOption); 0 takes no lease, as without the
// option. Longer than a load takes is best, as a lease that lapses lets
// another process load too.
func WithLoadLease(d time.Duration) Option { return func(o *options) { o.leaseTTL = d } }

// WithStaleWhileRevalidate makes GetOrLoad serve, for up to grace after a
// key expired, the value it last read or loaded for it in this process,
// while one load of the key runs in the background (inside the call with
// WithSynchronousRefresh); the call returns no error and counts as a miss,
// and the outcome "stale" is recorded. Only keys that expired are served
// stale: writes, deletes, Expire and Clear through this Map forget what it
// remembered, before and after they reach the store, and a read that raced
// one records nothing. On a store that reports changes (Redis, memory) the
// Map watches its namespace (one tracking connection per Redis master), so a
// key another process wrote or deleted before its deadline is never served
// stale either, and nothing is served while the reports are not live. On a
// store that reports none (bbolt), a key deleted through another Map before
// its deadline may still be served, within its grace, once that deadline
// has passed. Up to size values are remembered in the Map's local tier,
// least recently used first out, within its byte bound (64 MiB, or the near
// cache's MaxBytes); a value larger than a sixteenth of that bound (4 MiB by
// default) is not remembered, and so never served stale. Nothing is stored: Get, Size, Iterate and every plain read never see
// an expired key. grace and size must be positive (ErrInvalidOption), or
// both 0, which serves nothing stale, as without the option.
//
// With WithTTL(NoTTL) keys never expire, and New fails with
// ErrInvalidOption.
func WithStaleWhileRevalidate(grace time.Duration, size int) Option {
	return func(o *options) { o.staleGrace, o.staleSize = grace, size }
}

// WithRefreshAhead makes a GetOrLoad hit on a key in the last fraction f of
// the Map's TTL (0.2: the last 2 of 10 minutes) load the key again and store
// it with a fresh TTL, while the call returns the current value: a hot key
// is reloaded before it expires instead of missing in every process at once.
// One refresh per key runs at a time, in the background (Map.Close cancels
// it and waits for it) unless WithSynchronousRefresh. The Map remembers the deadlines it has
// seen (of keys it wrote, or read with their TTL; up to 10,000 keys, or
// WithStaleWhileRevalidate's size, least recently used out): a hit on a key
// known to be far from its deadline is a plain Get, and any other hit reads the key's remaining TTL in the same
// round trip (MGet with TTLs). A deadline moved by another process is
// learnt at the next read with the TTL; one shortened by another process
// may go unseen, and the key is then loaded when it misses. f is in [0, 1);
// 0, the default, refreshes nothing. GetManyOrLoad does not refresh.
//
// With WithTTL(NoTTL) keys never expire, and New fails with
// ErrInvalidOption.
func WithRefreshAhead(f float64) Option { return func(o *options) { o.refresh = f } }

// WithSynchronousRefresh runs the refreshes of WithRefreshAhead and the
// reloads of WithStaleWhileRevalidate inside the GetOrLoad call that finds
// them due (ending with the call's context too), so that a backtest on a
// simulated clock makes the same load calls at the same points every run.
// New fails with ErrInvalidOption without one of those two options.
func WithSynchronousRefresh() Option { return func(o *options) { o.syncRefresh = true } }

// WithTTLJitter spreads the TTL of every write that takes the Map's TTL by a
// random fraction of it, up to f either way (0.1: between 90% and 110%), so
// that keys written together do not all expire together. f is in [0, 1);
// anything else makes New fail with ErrInvalidOption. The random source is
// seeded with seed: two Maps with the same seed spread the same way, so a
// backtest replays identically. Writes with their own TTL are not spread.
//
// With WithTTL(NoTTL) keys never expire, and New fails with
// ErrInvalidOption.
func WithTTLJitter(f float64, seed uint64) Option {
	return func(o *options) { o.jitter, o.seed = f, seed }
}

// WithMissTTL makes GetOrLoad and GetManyOrLoad remember, in this process
// and for d by the Map's clock, a key that load reported missing (by
// returning an error wrapping ErrNotFound, or by leaving it out of
// loadMany's result): within d it is reported missing again without calling
// load. A remembered miss is the loader's answer: writes and deletes
// through the Map do not forget it (a Set's value is still found, as a
// GetOrLoad reads the store first). Nothing is stored: plain reads never see
// a remembered miss. 0, the default, remembers nothing.
func WithMissTTL(d time.Duration) Option { return func(o *options) { o.missTTL = d } }

// WithClock sets the Map's clock, which times what the Map remembers in its
// process (misses of WithMissTTL, deadlines of WithStaleWhileRevalidate). By
// default it is the clock the store expires keys by when the store has one
// (backend.Description.Clock: a memory or bbolt store's, a backtest's
// simulated clock), and the system clock otherwise, so that a backtest
// replays the same load calls every run. It is for a store without a clock
// (Redis): New fails with ErrInvalidOption when c is not the clock the store
// has (set by its own WithClock or WithSimulatedClock). nil is the default.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithTTL sets the TTL of every write that does not name its own: a positive
// duration, or NoTTL for keys that never expire (DefaultTTL by default). Any
// other value makes New fail with ErrInvalidTTL.
func WithTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithPageSize sets the page-size hint of bulk operations (Clear, Size,
// ToArray, Iterate, Keys, Values; SCAN's COUNT on Redis): DefaultPageSize by
// default. A value below 1 makes New fail with ErrInvalidOption, as does
// WithScanCount with another value.
func WithPageSize(n int) Option { return func(o *options) { o.page = &n } }

// WithScanCount is WithPageSize; New fails with ErrInvalidOption when both
// are given with different values.
//
// Deprecated: use WithPageSize.
func WithScanCount(n int) Option { return func(o *options) { o.scan = &n } }

// WithLogger makes every Map call emit one Info record to l (operation,
// namespace, key or count, duration, error; never a value), as BaseMap logs
// every call. nil, the default, logs nothing.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithCodec sets the codec of the Map's values, replacing the default (raw for
// string and []byte types, JSON otherwise). New fails with ErrInvalidOption
// when c is not a Codec of the Map's value type.
func WithCodec[V any](c Codec[V]) Option { return func(o *options) { o.codec = c } }

// WithTracerProvider sets the OpenTelemetry tracer provider of the Map's spans.
// By default the Map follows otel.GetTracerProvider() at every call: a
// provider installed after New still receives the spans, and while none is
// installed the Map starts no span at all. With WithoutTelemetry a non-nil
// tp makes New fail with ErrInvalidOption.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithMeterProvider sets the OpenTelemetry meter provider of the Map's
// metrics (otel.GetMeterProvider() by default). With WithoutTelemetry a
// non-nil mp makes New fail with ErrInvalidOption.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProvider = mp }
}

// WithKeysInTelemetry records the key of single-key calls as the span
// attribute kv.key. Keys are not recorded by default; values never are.
// With WithoutTelemetry New fails with ErrInvalidOption.
func WithKeysInTelemetry() Option { return func(o *options) { o.recordKeys = true } }

// WithoutTelemetry turns the Map's spans and metrics off. New fails with
// ErrInvalidOption when it comes with WithKeysInTelemetry, or with a non-nil
// provider of WithTracerProvider or WithMeterProvider.
func WithoutTelemetry() Option { return func(o *options) { o.noTelemetry = true } }

// newOptions applies opts and checks them, against each other and against
// the clock of the store (nil for a store without one).
func newOptions(opts []Option, storeClock clock.Clock) (options, error) {
	o := options{ttl: DefaultTTL, pageSize: DefaultPageSize, loadTimeout: DefaultLoadTimeout}
	for i, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: option %d is nil", ErrInvalidOption, i)
		}
		opt(&o)
	}
	switch {
	case o.page != nil && o.scan != nil && *o.page != *o.scan:
		return o, fmt.Errorf("%w: WithPageSize(%d) and WithScanCount(%d) set the same page size", ErrInvalidOption, *o.page, *o.scan)
	case o.page != nil:
		o.pageSize = *o.page
	case o.scan != nil:
		o.pageSize = *o.scan
	}
	clash := o.twoClocks(storeClock)
	// The reasons of the last six checks: options that act on the Map's TTL,
	// and there is none, or on its telemetry, and there is none.
	const (
		noTTL       = " has no effect with WithTTL(NoTTL): keys never expire"
		noTelemetry = " has no effect with WithoutTelemetry: the Map records no telemetry"
	)
	for _, c := range []struct {
		bad bool
		why string
	}{
		{o.jitter < 0 || o.jitter >= 1, fmt.Sprintf("TTL jitter %v (want 0 to less than 1)", o.jitter)},
		{o.refresh < 0 || o.refresh >= 1, fmt.Sprintf("refresh-ahead fraction %v (want 0 to less than 1)", o.refresh)},
		{o.missTTL < 0, fmt.Sprintf("miss TTL %v (want 0 or positive)", o.missTTL)},
		{o.leaseTTL < 0 || o.leaseTTL > MaxTTL, fmt.Sprintf("load lease %v (want positive, at most MaxTTL)", o.leaseTTL)},
		{o.staleGrace < 0 || o.staleSize < 0 || (o.staleGrace > 0) != (o.staleSize > 0), fmt.Sprintf("stale-while-revalidate grace %v, size %d (want both positive)", o.staleGrace, o.staleSize)},
		{o.loadTimeout <= 0, fmt.Sprintf("load timeout %v (want positive)", o.loadTimeout)},
		{o.pageSize < 1, fmt.Sprintf("page size %d (want at least 1)", o.pageSize)},
		{o.syncRefresh && o.refresh == 0 && o.staleGrace == 0, "WithSynchronousRefresh without WithRefreshAhead or WithStaleWhileRevalidate has nothing to run"},
		{clash != "", clash},
		{o.ttl == NoTTL && o.refresh > 0, "WithRefreshAhead" + noTTL},
		{o.ttl == NoTTL && o.staleGrace > 0, "WithStaleWhileRevalidate" + noTTL},
		{o.ttl == NoTTL && o.jitter > 0, "WithTTLJitter" + noTTL},
		{o.noTelemetry && o.recordKeys, "WithKeysInTelemetry" + noTelemetry},
		{o.noTelemetry && o.tracerProvider != nil, "WithTracerProvider" + noTelemetry},
		{o.noTelemetry && o.meterProvider != nil, "WithMeterProvider" + noTelemetry},
	} {
		if c.bad {
			return o, fmt.Errorf("%w: %s", ErrInvalidOption, c.why)
		}
	}
	return o, nil
}

// twoClocks names two clocks of the options and the store that differ,
// or returns "": one clock times the store's expiry and what the Map
// remembers.
func (o *options) twoClocks(storeClock clock.Clock) string {
	var nearClock clock.Clock
	if o.near != nil {
		nearClock = o.near.Clock
	}
	clocks := []struct {
		c    clock.Clock
		name string
	}{{storeClock, "the store's own clock (its WithClock or WithSimulatedClock)"}, {o.clock, "WithClock"}, {nearClock, "WithNearCache's Options.Clock"}}
	for i, a := range clocks {
		for _, b := range clocks[i+1:] {
			if a.c != nil && b.c != nil && !sameClock(a.c, b.c) {
				return fmt.Sprintf("%s and %s are two clocks: give one (WithClock is for a store without a clock, as Redis)", a.name, b.name)
			}
		}
	}
	return ""
}

// sameClock reports whether a and b are the same clock; a clock of a type
// that == cannot compare is never the same.
func sameClock(a, b clock.Clock) (same bool) {
	defer func() { _ = recover() }()
	return a == b
}
