package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/namespace"
	"github.com/kvmap/kv/nearcache"
	"github.com/kvmap/kv/ttl"
)

// NoTTL is the TTL of a key that never expires (BaseMap's -1).
const NoTTL = backend.NoTTL

// MaxTTL is the longest TTL accepted anywhere: 100 years. A longer TTL given
// to WithTTL, SetWithTTL or Expire is refused with ErrInvalidTTL before
// anything is written, on every backend, so that no deadline can overflow;
// transfer.Copy writes a longer source TTL as MaxTTL and counts it. Use NoTTL
// for a key that never expires.
const MaxTTL = backend.MaxTTL

// Entry is one key of a namespace, without the namespace, and its value.
type Entry[V any] struct {
	Key   string
	Value V
}

// Map is a typed map over one namespace of a backend. It is safe for
// concurrent use. Build it with New.
type Map[V any] struct {
	tel         *telemetry // nil: no spans, no metrics
	ns          string
	b           *ttl.Backend // over namespace.Backend over the store
	entries     bool         // the store returns scan pages with their values
	ttl         time.Duration
	pageSize    int
	codec       Codec[V]
	logger      *slog.Logger
	loads       flights[V]
	misses      missSet
	jitter      *jitter // nil: writes get the default TTL as it is
	clock       clock.Clock
	refresh     time.Duration // a hit with less TTL left is refreshed; 0: never
	syncRef     bool          // refresh inside the call
	leaseTTL    time.Duration // WithLoadLease
	acquire     func(context.Context, []string, time.Duration) ([]bool, backend.Lease, error)
	seen        *seen[V]           // WithRefreshAhead, WithStaleWhileRevalidate; nil without
	near        *nearcache.Backend // nil: no near cache
	loadTimeout time.Duration
	// watch reports the store's changes to stale serving
	// (WithStaleWhileRevalidate); nil when the store reports none.
	watch     func(context.Context, string, func(backend.Change)) (func(), error)
	under     backend.Backend // the namespace's store, below the near cache: what the verifier reads
	wakers    wakers
	watchMu   sync.Mutex
	watchStop func()     // nil until the watch started
	bgMu      sync.Mutex // guards closed, runs, and bg.Add against Close
	closed    bool
	runs      runs
	quit      chan struct{} // closed by Close
	bg        sync.WaitGroup
}

// New returns the Map of namespace ns over b. The namespace must be non-empty
// and hold no ":" (ErrInvalidNamespace). See the package documentation for the
// layers New stacks over b. The Map does not own b: close b when done.
func New[V any](b backend.Backend, ns string, opts ...Option) (*Map[V], error) {
	o := options{ttl: DefaultTTL, pageSize: DefaultPageSize}
	for _, opt := range opts {
		opt(&o)
	}
	if b == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrInvalidOption)
	}
	if o.jitter < 0 || o.jitter >= 1 {
		return nil, fmt.Errorf("%w: TTL jitter %v (want 0 to less than 1)", ErrInvalidOption, o.jitter)
	}
	if o.refresh < 0 || o.refresh >= 1 {
		return nil, fmt.Errorf("%w: refresh-ahead fraction %v (want 0 to less than 1)", ErrInvalidOption, o.refresh)
	}
	if o.missTTL < 0 {
		return nil, fmt.Errorf("%w: miss TTL %v (want 0 or positive)", ErrInvalidOption, o.missTTL)
	}
	if o.leaseTTL < 0 || o.leaseTTL > MaxTTL {
		return nil, fmt.Errorf("%w: load lease %v (want positive, at most MaxTTL)", ErrInvalidOption, o.leaseTTL)
	}
	if o.staleGrace < 0 || o.staleSize < 0 || (o.staleGrace > 0) != (o.staleSize > 0) {
		return nil, fmt.Errorf("%w: stale-while-revalidate grace %v, size %d (want both positive)", ErrInvalidOption, o.staleGrace, o.staleSize)
	}
	if o.ttl == NoTTL {
		// Each of these acts on the Map's TTL, and there is none.
		for _, c := range []struct {
			on   bool
			name string
		}{{o.refresh > 0, "WithRefreshAhead"}, {o.staleGrace > 0, "WithStaleWhileRevalidate"}, {o.jitter > 0, "WithTTLJitter"}} {
			if c.on {
				return nil, fmt.Errorf("%w: %s has no effect with WithTTL(NoTTL): keys never expire", ErrInvalidOption, c.name)
			}
		}
	}
	if o.syncRefresh && o.refresh == 0 && o.staleGrace == 0 {
		return nil, fmt.Errorf("%w: WithSynchronousRefresh without WithRefreshAhead or WithStaleWhileRevalidate has nothing to run", ErrInvalidOption)
	}
	if o.loadTimeout < 0 {
		return nil, fmt.Errorf("%w: load timeout %v (want positive)", ErrInvalidOption, o.loadTimeout)
	}
	if o.loadTimeout == 0 {
		o.loadTimeout = DefaultLoadTimeout
	}
	if o.pageSize < 1 {
		return nil, fmt.Errorf("%w: page size %d (want at least 1)", ErrInvalidOption, o.pageSize)
	}
	codec := defaultCodec[V]()
	if o.codec != nil {
		c, ok := o.codec.(Codec[V])
		if !ok {
			return nil, fmt.Errorf("%w: codec %T is not a Codec[%T]", ErrInvalidOption, o.codec, *new(V))
		}
		codec = c
	}
	nsb, err := namespace.New(b, ns)
	if err != nil {
		return nil, err
	}
	var top backend.Backend = nsb
	var near *nearcache.Backend
	if o.near != nil {
		if near, err = nearcache.New(nsb, "", *o.near); err != nil {
			return nil, fmt.Errorf("%w: near cache: %w", ErrInvalidOption, err)
		}
		top = near
	}
	tb, err := ttl.New(top, o.ttl)
	if err != nil {
		return nil, err
	}
	if o.clock == nil {
		o.clock = tb.Describe().Clock
	}
	if o.clock == nil {
		o.clock = clock.System()
	}
	var tel *telemetry
	if !o.noTelemetry {
		tp, mp := o.tracerProvider, o.meterProvider // a nil tp follows the global
		if mp == nil {
			mp = otel.GetMeterProvider()
		}
		if tel, err = newTelemetry(ns, tb.Describe(), tp, mp, o.recordKeys, near != nil); err != nil {
			return nil, err
		}
	}
	m := &Map[V]{
		tel:      tel,
		ns:       ns,
		b:        tb,
		entries:  backend.OptimizationsOf(tb).ScanEntries != nil,
		ttl:      tb.Default(),
		pageSize: o.pageSize,
		codec:    codec,
		logger:   o.logger,
		clock:    o.clock,
		misses:   missSet{ttl: o.missTTL},
		quit:     make(chan struct{}),
		near:     near,
		syncRef:  o.syncRefresh,

		loadTimeout: o.loadTimeout,
		under:       nsb,
	}
	if o.leaseTTL > 0 {
		m.leaseTTL, m.acquire = o.leaseTTL, backend.OptimizationsOf(tb).AcquireLeases
		if m.acquire == nil {
			return nil, fmt.Errorf("%w: WithLoadLease: the store %s, as wrapped, keeps no leases (backend.Optimizations.AcquireLeases; a wrapper must forward its Optimizations)",
				ErrInvalidOption, tb.Describe().System)
		}
		// Lease waits learn of a stored value from the store's change
		// reports, where it makes them (see pause).
		m.watch = backend.OptimizationsOf(nsb).Watch
	}
	if o.jitter > 0 && m.ttl != NoTTL {
		m.jitter = newJitter(o.jitter, o.seed)
	}
	if o.refresh > 0 && m.ttl != NoTTL {
		m.refresh = time.Duration(float64(m.ttl) * o.refresh)
	}
	if m.ttl != NoTTL && (m.refresh > 0 || o.staleGrace > 0) {
		grace, size := o.staleGrace, o.staleSize
		if grace == 0 {
			size = seenCap
		}
		if m.seen, err = newSeen[V](grace, size); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
		}
		if grace > 0 {
			// Stale serving forgets what other processes change, on a store
			// that reports changes (the near cache hides the namespace's
			// watch from above: it is taken below it).
			if m.watch = backend.OptimizationsOf(nsb).Watch; m.watch != nil {
				m.seen.watched = true
			}
		}
	}
	return m, nil
}

// NearCacheStats returns the counters of the Map's near cache
// (WithNearCache), and false when it has none.
func (m *Map[V]) NearCacheStats() (nearcache.Stats, bool) {
	if m.near == nil {
		return nearcache.Stats{}, false
	}
	return m.near.Stats(), true
}

// Namespace returns the Map's namespace.
func (m *Map[V]) Namespace() string { return m.ns }

// TTLDefault returns the TTL that writes without one of their own get.
func (m *Map[V]) TTLDefault() time.Duration { return m.ttl }

// Set stores value under key with the Map's TTL.
func (m *Map[V]) Set(ctx context.Context, key string, value V) error {
	ctx, c := m.begin(ctx, opSet, key, -1)
	err := m.set(ctx, key, value, m.writeTTL())
	return m.end(ctx, &c, err)
}

// SetWithTTL stores value under key with its own TTL: positive, or NoTTL for
// a key that never expires. A TTL of 0 or another negative value is refused
// with ErrInvalidTTL and nothing is written.
func (m *Map[V]) SetWithTTL(ctx context.Context, key string, value V, ttl time.Duration) error {
	ctx, c := m.begin(ctx, opSetWithTTL, key, -1)
	var err error
	if ttl == 0 {
		err = fmt.Errorf("%w: 0 (want a positive duration or NoTTL)", ErrInvalidTTL)
	} else {
		err = m.set(ctx, key, value, ttl)
	}
	return m.end(ctx, &c, err)
}

func (m *Map[V]) set(ctx context.Context, key string, value V, ttl time.Duration) error {
	if key == "" {
		return ErrEmptyKey
	}
	data, err := m.codec.Encode(value)
	if err != nil {
		return fmt.Errorf("encode value of key %s: %w", backend.QuoteKey(key), codecError{err})
	}
	m.loads.revoke(key)
	m.seen.forget(key)
	t := m.seen.begin(key)
	if err := m.b.MSet(ctx, []backend.Entry{{Key: key, Value: data, TTL: ttl}}); err != nil {
		m.seen.forget(key)
		return err
	}
	if ttl == 0 {
		ttl = m.ttl
	}
	if ttl == NoTTL {
		m.seen.end(t, key)
	} else {
		m.seen.wrote(t, key, m.clock.Now().Add(ttl))
	}
	return nil
}

// Get returns the value stored under key. ok is false, with a nil error, when
// the key does not exist or has expired. A stored value that does not decode
// is reported as a *DecodeError.
func (m *Map[V]) Get(ctx context.Context, key string) (V, bool, error) {
	ctx, c := m.begin(ctx, opGet, key, -1)
	v, ok, local, err := m.getValue(ctx, key)
	c.setHit(ok)
	c.local = local
	return v, ok, m.end(ctx, &c, err)
}

func (m *Map[V]) get(ctx context.Context, key string) (V, bool, error) {
	v, ok, _, err := m.getValue(ctx, key)
	return v, ok, err
}

// getValue is get, also reporting a value served by the near cache.
func (m *Map[V]) getValue(ctx context.Context, key string) (V, bool, bool, error) {
	var zero V
	if key == "" {
		return zero, false, false, ErrEmptyKey
	}
	val, err := m.b.Get(ctx, key)
	if err != nil {
		return zero, false, false, err
	}
	if !val.Found {
		return zero, false, false, nil
	}
	v, err := m.codec.Decode(val.Bytes)
	if err != nil {
		return zero, false, false, &DecodeError{Key: key, Err: err}
	}
	return v, true, val.Local, nil
}

// Has reports whether key exists and has not expired.
func (m *Map[V]) Has(ctx context.Context, key string) (bool, error) {
	ctx, c := m.begin(ctx, opHas, key, -1)
	var ok bool
	var err error
	if key == "" {
		err = ErrEmptyKey
	} else {
		var val backend.Value
		val, err = m.b.Get(ctx, key)
		if errors.Is(err, ErrWrongType) {
			err = nil // data of another kind is not a value
		}
		ok = err == nil && val.Found
	}
	c.setHit(ok)
	return ok, m.end(ctx, &c, err)
}

// Delete removes key. Deleting a missing key is not an error.
func (m *Map[V]) Delete(ctx context.Context, key string) error {
	ctx, c := m.begin(ctx, opDelete, key, -1)
	var err error
	if key == "" {
		err = ErrEmptyKey
	} else {
		m.loads.revoke(key)
		m.seen.forget(key)
		err = m.b.Delete(ctx, []string{key})
		m.seen.forget(key)
	}
	return m.end(ctx, &c, err)
}

// Expire sets the remaining TTL of key: positive, or NoTTL to make it never
// expire. It reports false, changing nothing, when the key does not exist. A
// TTL of 0 or another negative value is refused with ErrInvalidTTL.
func (m *Map[V]) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, c := m.begin(ctx, opExpire, key, -1)
	var ok bool
	var err error
	switch {
	case key == "":
		err = ErrEmptyKey
	case ttl == 0:
		err = fmt.Errorf("%w: 0 (want a positive duration or NoTTL)", ErrInvalidTTL)
	default:
		m.loads.revoke(key)
		m.seen.forget(key)
		ok, err = m.b.Expire(ctx, key, ttl)
		m.seen.forget(key)
	}
	c.setHit(ok)
	return ok, m.end(ctx, &c, err)
}

// TTL returns the remaining TTL of key, or NoTTL when it never expires. ok is
// false when the key does not exist.
func (m *Map[V]) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	ctx, c := m.begin(ctx, opTTL, key, -1)
	var d time.Duration
	var ok bool
	var err error
	if key == "" {
		err = ErrEmptyKey
	} else {
		d, ok, err = m.b.TTL(ctx, key)
	}
	c.setHit(ok)
	return d, ok, m.end(ctx, &c, err)
}

// Clear deletes every key of the namespace, and only those.
func (m *Map[V]) Clear(ctx context.Context) error {
	ctx, c := m.begin(ctx, opClear, "", -1)
	m.loads.revokeAll()
	m.seen.purge()
	err := backend.DeletePrefix(ctx, m.b, "", m.pageSize)
	m.seen.purge()
	return m.end(ctx, &c, err)
}

// Size returns the number of keys in the namespace, each counted once, without
// reading any value.
func (m *Map[V]) Size(ctx context.Context) (int, error) {
	ctx, c := m.begin(ctx, opSize, "", -1)
	n, err := backend.CountPrefix(ctx, m.b, "", m.pageSize)
	c.n = n
	return n, m.end(ctx, &c, err)
}

// SetMany stores entries with the Map's TTL. Every key is checked and every
// value encoded first; nothing is written if any fails. Each key is written
// atomically; the batch as a whole is not.
//
// After an error, a caller can rely on this: a store that writes a batch in
// one transaction (memory, bbolt) wrote nothing; a store that writes it in
// parts (Redis) returns a *BatchError (errors.As) that lists the keys written,
// the keys certainly not written, and the keys whose outcome is unknown
// because a reply was lost. Writing the not-written and unknown keys again is
// always safe.
func (m *Map[V]) SetMany(ctx context.Context, entries []Entry[V]) error {
	ctx, c := m.begin(ctx, opSetMany, "", len(entries))
	err := m.setMany(ctx, entries)
	return m.end(ctx, &c, err)
}

func (m *Map[V]) setMany(ctx context.Context, entries []Entry[V]) error {
	if len(entries) == 0 {
		return nil
	}
	out := make([]backend.Entry, len(entries))
	for i, e := range entries {
		if e.Key == "" {
			return fmt.Errorf("entry %d: %w", i, ErrEmptyKey)
		}
		data, err := m.codec.Encode(e.Value)
		if err != nil {
			return fmt.Errorf("encode value of key %s: %w", backend.QuoteKey(e.Key), codecError{err})
		}
		out[i] = backend.Entry{Key: e.Key, Value: data, TTL: m.writeTTL()}
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	m.loads.revoke(keys...)
	m.seen.forget(keys...)
	err := m.b.MSet(ctx, out)
	m.seen.forget(keys...)
	return err
}

// GetMany returns the values stored under keys; missing keys are absent from
// the result. Values that do not decode are absent too, and the error joins
// their *DecodeErrors; the values that decoded are returned with it.
func (m *Map[V]) GetMany(ctx context.Context, keys []string) (map[string]V, error) {
	ctx, c := m.begin(ctx, opGetMany, "", len(keys))
	out, err := m.getMany(ctx, keys)
	if err == nil || len(out) > 0 {
		c.hits, c.miss = len(out), max(len(keys)-len(out), 0)
	}
	return out, m.end(ctx, &c, err)
}

func (m *Map[V]) getMany(ctx context.Context, keys []string) (map[string]V, error) {
	out := make(map[string]V, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if err := backend.CheckKeys(keys); err != nil {
		return nil, err
	}
	vals, err := m.b.MGet(ctx, keys, false)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, val := range vals {
		if !val.Found {
			continue
		}
		v, err := m.codec.Decode(val.Bytes)
		if err != nil {
			errs = append(errs, &DecodeError{Key: keys[i], Err: err})
			continue
		}
		out[keys[i]] = v
	}
	return out, errors.Join(errs...)
}

// DeleteMany removes keys. Missing keys are not an error. Every key is checked
// first; nothing is deleted if any is empty. After a failure part-way on a
// store that deletes in parts (a Redis Cluster, one UNLINK per slot), the
// error is a *BatchError, as for SetMany.
func (m *Map[V]) DeleteMany(ctx context.Context, keys []string) error {
	ctx, c := m.begin(ctx, opDeleteMany, "", len(keys))
	var err error
	if len(keys) > 0 {
		m.loads.revoke(keys...)
		m.seen.forget(keys...)
		err = m.b.Delete(ctx, keys)
		m.seen.forget(keys...)
	}
	return m.end(ctx, &c, err)
}
