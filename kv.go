package kv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/internal/tier"
	"github.com/kvmap/kv/namespace"
	"github.com/kvmap/kv/nearcache"
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
	tel      *telemetry // nil: no spans, no metrics
	ns       string
	b        backend.Backend // the namespace over the store
	ttl      time.Duration
	pageSize int
	codec    Codec[V]
	logger   *slog.Logger
	jitter   *jitter // nil: writes get the default TTL as it is
	clock    clock.Clock
	refresh  time.Duration // a hit with less TTL left is refreshed; 0: never
	syncRef  bool          // refresh inside the call
	leaseTTL time.Duration // WithLoadLease
	acquire  func(context.Context, []string, time.Duration) ([]bool, backend.Lease, error)
	// rawString: V is string, stored raw by the default codec; near hits
	// then share the tier's bytes (getTTL).
	rawString bool
	// setIfFn is the store's conditional write; nil when it has none.
	setIfFn     func(context.Context, backend.GuardedEntry) (bool, error)
	tier        *tier.Tier[V] // what the process knows of each key
	loadTimeout time.Duration
	failOpen    bool // WithFailOpen
	// watch reports the store's changes to the tier; nil when the store
	// reports none or nothing needs them.
	watch     func(context.Context, string, func(backend.Change)) (func(), error)
	watching  atomic.Bool // the watch started (or will never)
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
	if b == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrInvalidOption)
	}
	o, err := newOptions(opts, b.Describe().Clock)
	if err != nil {
		return nil, err
	}
	codec := defaultCodec[V]()
	if o.codec != nil {
		c, ok := o.codec.(Codec[V])
		if !ok {
			return nil, fmt.Errorf("%w: codec %T is not a Codec[%T]", ErrInvalidOption, o.codec, *new(V))
		}
		codec = c
	}
	var nsb backend.Backend // the namespace, under WithCompression's decorator
	nsb, err = namespace.New(b, ns)
	if err != nil {
		return nil, err
	}
	if nsb, err = o.wrapCompression(nsb); err != nil {
		return nil, err
	}
	def, err := backend.CheckTTL(o.ttl)
	if err != nil {
		return nil, fmt.Errorf("default TTL: %w", err)
	}
	o.clock = cmp.Or(o.clock, nsb.Describe().Clock, clock.System())
	caps := backend.CapabilitiesOf(nsb)
	var tel *telemetry
	if !o.noTelemetry {
		// A nil tracer provider follows the global one at each call.
		mp := cmp.Or(o.meterProvider, otel.GetMeterProvider())
		if tel, err = newTelemetry(ns, nsb.Describe(), o.tracerProvider, mp, o.recordKeys, o.near != nil); err != nil {
			return nil, err
		}
	}
	m := &Map[V]{
		tel:      tel,
		ns:       ns,
		b:        nsb,
		ttl:      def,
		pageSize: o.pageSize,
		codec:    codec,
		logger:   o.logger,
		clock:    o.clock,
		quit:     make(chan struct{}),
		runs:     runs{cancels: map[uint64]context.CancelCauseFunc{}},
		syncRef:  o.syncRefresh,
		setIfFn:  caps.SetIf,

		loadTimeout: o.loadTimeout,
	}
	if o.leaseTTL > 0 {
		m.leaseTTL, m.acquire = o.leaseTTL, caps.AcquireLeases
		if m.acquire == nil {
			return nil, fmt.Errorf("%w: WithLoadLease: the store %s, as wrapped, keeps no leases (backend.Capabilities.AcquireLeases; a wrapper must forward its Capabilities)",
				ErrInvalidOption, nsb.Describe().System)
		}
	}
	if o.jitter > 0 && m.ttl != NoTTL {
		m.jitter = newJitter(o.jitter, o.seed)
	}
	if o.refresh > 0 && m.ttl != NoTTL {
		m.refresh = time.Duration(float64(m.ttl) * o.refresh)
	}
	to := tier.Options{
		Remember:   m.ttl != NoTTL && (m.refresh > 0 || o.staleGrace > 0),
		Grace:      o.staleGrace,
		MaxEntries: max(o.staleSize, rememberCap),
		MaxBytes:   tier.DefaultMaxBytes,
		MissTTL:    o.missTTL,
		Clock:      o.clock,
	}
	if o.near != nil {
		n := *o.near
		if caps.Watch == nil {
			return nil, fmt.Errorf("%w: near cache: %w", ErrInvalidOption, nearcache.ErrNoWatch)
		}
		near, err := tier.Near(n.MaxEntries, n.MaxBytes, n.MaxLag, n.MaxStaleness)
		if err != nil {
			return nil, fmt.Errorf("%w: near cache: %w: %w", ErrInvalidOption, nearcache.ErrInvalidOptions, err)
		}
		near.Remember, near.Grace, near.MissTTL, near.Clock = to.Remember, to.Grace, to.MissTTL, cmp.Or(n.Clock, to.Clock)
		near.MaxEntries = max(near.MaxEntries, o.staleSize)
		to = near
	}
	// The Map watches its namespace where the store reports changes and
	// something in the process depends on them: the near cache, stale
	// serving (which forgets what other processes change), and lease waits
	// (which learn of a stored value from its report: see pause).
	if to.Near || o.staleGrace > 0 || m.acquire != nil {
		m.watch = caps.Watch
	}
	to.Watched = m.watch != nil
	m.tier = tier.New[V](to)
	_, m.rawString = any(codec).(rawCodec[string])
	m.rawString = m.rawString && m.tier.Near()
	m.failOpen = o.failOpen
	if err := m.observeLocal(o); err != nil {
		return nil, err
	}
	return m, nil
}

// NearCacheStats returns the counters of the Map's near cache
// (WithNearCache), and false when it has none. Entries and Bytes are the
// Map's whole local tier: near-cached values, and what stale serving and
// WithMissTTL remember.
func (m *Map[V]) NearCacheStats() (nearcache.Stats, bool) {
	if !m.tier.Near() {
		return nearcache.Stats{}, false
	}
	return nearcache.Stats(m.tier.Stats()), true
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
	err := errZeroTTL
	if ttl != 0 {
		err = m.set(ctx, key, value, ttl)
	}
	return m.end(ctx, &c, err)
}

// errZeroTTL refuses a TTL of 0 given to SetWithTTL or Expire.
var errZeroTTL = fmt.Errorf("%w: 0 (want a positive duration or NoTTL)", ErrInvalidTTL)

func (m *Map[V]) set(ctx context.Context, key string, value V, ttl time.Duration) error {
	if key == "" {
		return ErrEmptyKey
	}
	data, err := m.encode(key, value)
	if err != nil {
		return err
	}
	return m.write(ctx, []backend.Entry{{Key: key, Value: data, TTL: ttl}})
}

// write writes entries, forgetting their keys before and after, and then
// remembers their deadlines (WithRefreshAhead, WithStaleWhileRevalidate).
func (m *Map[V]) write(ctx context.Context, entries []backend.Entry) error {
	if len(entries) == 1 && !m.tier.Keeps() { // the hot single write: no slice
		k := entries[0].Key
		m.tier.Forget(k)
		defer m.tier.Forget(k)
		return m.b.MSet(ctx, entries)
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	m.tier.Forget(keys...)
	if !m.tier.Keeps() {
		// Nothing to remember of the write: forgetting is all.
		defer m.tier.Forget(keys...)
		return m.b.MSet(ctx, entries)
	}
	r := m.tier.Begin(keys...)
	if err := m.b.MSet(ctx, entries); err != nil {
		m.tier.Forget(keys...)
		return err
	}
	m.tier.Wrote(r, keys, nil, m.deadlines(entries))
	return nil
}

// deadlines returns the deadlines (Unix ns; 0 for none) of entries just
// written.
func (m *Map[V]) deadlines(entries []backend.Entry) []int64 {
	now := m.clock.Now()
	out := make([]int64, len(entries))
	for i, e := range entries {
		if e.TTL != NoTTL {
			out[i] = now.Add(e.TTL).UnixNano()
		}
	}
	return out
}

// Get returns the value stored under key. ok is false, with a nil error, when
// the key does not exist or has expired. A stored value that does not decode
// is reported as a *DecodeError.
func (m *Map[V]) Get(ctx context.Context, key string) (V, bool, error) {
	var v V
	ok, err := m.one(ctx, opGet, key, func(ctx context.Context) (ok, local bool, err error) {
		v, ok, local, err = m.get(ctx, key)
		return ok, local, err
	})
	return v, ok, err
}

// GetWithTTL returns the value stored under key and its remaining TTL
// (positive, or NoTTL for a key that never expires), read together in one
// round trip, or from the near cache when it holds the key (its TTL then
// counted from the deadline read with it). ok is false, with a nil error,
// when the key does not exist or has expired; a value that does not decode
// is reported as a *DecodeError, as Get does.
func (m *Map[V]) GetWithTTL(ctx context.Context, key string) (V, time.Duration, bool, error) {
	var v V
	var ttl time.Duration
	ok, err := m.one(ctx, opGetWithTTL, key, func(ctx context.Context) (ok, local bool, err error) {
		v, ttl, ok, local, err = m.getTTL(ctx, key, true)
		return ok, local, err
	})
	return v, ttl, ok, err
}

// get reads key and decodes its value; it also reports a value served by
// the near cache.
func (m *Map[V]) get(ctx context.Context, key string) (V, bool, bool, error) {
	v, _, ok, local, err := m.getTTL(ctx, key, false)
	return v, ok, local, err
}

// getTTL is get that returns the key's TTL too, when withTTL asks for it
// or the read was served from the tier (0 otherwise).
func (m *Map[V]) getTTL(ctx context.Context, key string, withTTL bool) (V, time.Duration, bool, bool, error) {
	if key == "" {
		return *new(V), 0, false, false, ErrEmptyKey
	}
	var val backend.Value
	var err error
	if m.rawString {
		// A string stored raw is served from the near cache as a view of
		// the tier's bytes: no copy, no decoding (rawCodec's Decode would
		// share a copy anyway).
		m.startWatch(ctx)
		if s, ttl, ok := m.tier.CachedString(key); ok {
			var v V
			*any(&v).(*string) = s
			return v, ttl, true, true, nil
		}
		val, err = m.readStore(ctx, key, withTTL)
	} else {
		val, err = m.read(ctx, key, withTTL)
	}
	if err != nil {
		return *new(V), 0, false, false, err
	}
	v, ok, err := m.decode(key, val)
	if !ok {
		val.TTL = 0
	}
	return v, val.TTL, ok, ok && val.Local, err
}

// decode returns the value of key that val holds, if found.
func (m *Map[V]) decode(key string, val backend.Value) (V, bool, error) {
	var zero V
	if !val.Found {
		return zero, false, nil
	}
	if val.Err != nil {
		return zero, false, &DecodeError{Key: key, Err: val.Err}
	}
	v, err := m.codec.Decode(val.Bytes)
	if err != nil {
		return zero, false, &DecodeError{Key: key, Err: err}
	}
	return v, true, nil
}

// one runs fn as the single-key call o of key, which it refuses with
// ErrEmptyKey when empty; fn's ok is the call's hit, local a hit served by
// the near cache. fn gets no pointer to the call, so that the call stays on
// the stack (a hot Get allocates nothing of its own).
func (m *Map[V]) one(ctx context.Context, o op, key string, fn func(context.Context) (ok, local bool, err error)) (bool, error) {
	ctx, c := m.begin(ctx, o, key, -1)
	ok, err := false, ErrEmptyKey
	if key != "" {
		ok, c.local, err = fn(ctx)
	}
	c.setHit(ok)
	return ok, m.end(ctx, &c, err)
}

// Has reports whether key exists and has not expired.
func (m *Map[V]) Has(ctx context.Context, key string) (bool, error) {
	return m.one(ctx, opHas, key, func(ctx context.Context) (bool, bool, error) {
		val, err := m.read(ctx, key, false)
		if errors.Is(err, ErrWrongType) {
			return false, false, nil // data of another kind is not a value
		}
		return err == nil && val.Found, false, err
	})
}

// Delete removes key. Deleting a missing key is not an error.
func (m *Map[V]) Delete(ctx context.Context, key string) error {
	_, err := m.one(ctx, opDelete, key, func(ctx context.Context) (bool, bool, error) {
		m.tier.Forget(key)
		defer m.tier.Forget(key)
		return false, false, m.b.Delete(ctx, []string{key})
	})
	return err
}

// Expire sets the remaining TTL of key: positive, or NoTTL to make it never
// expire. It reports false, changing nothing, when the key does not exist. A
// TTL of 0 or another negative value is refused with ErrInvalidTTL.
func (m *Map[V]) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return m.one(ctx, opExpire, key, func(ctx context.Context) (bool, bool, error) {
		if ttl == 0 {
			return false, false, errZeroTTL
		}
		m.tier.Forget(key) // before and after, as every change
		defer m.tier.Forget(key)
		ok, err := m.b.Expire(ctx, key, ttl)
		return ok, false, err
	})
}

// TTL returns the remaining TTL of key, or NoTTL when it never expires. ok is
// false when the key does not exist.
func (m *Map[V]) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	var d time.Duration
	ok, err := m.one(ctx, opTTL, key, func(ctx context.Context) (ok, _ bool, err error) {
		d, ok, err = m.b.TTL(ctx, key)
		return ok, false, err
	})
	return d, ok, err
}

// Clear deletes every key of the namespace, and only those.
func (m *Map[V]) Clear(ctx context.Context) error {
	ctx, c := m.begin(ctx, opClear, "", -1)
	m.tier.Purge(true)
	err := backend.DeletePrefix(ctx, m.b, "", m.pageSize)
	m.tier.Purge(true)
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
		data, err := m.encode(e.Key, e.Value)
		if err != nil {
			return err
		}
		out[i] = backend.Entry{Key: e.Key, Value: data, TTL: m.writeTTL()}
	}
	return m.write(ctx, out)
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
	vals, err := m.readMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, val := range vals {
		v, ok, err := m.decode(keys[i], val)
		if err != nil {
			errs = append(errs, err)
		} else if ok {
			out[keys[i]] = v
		}
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
		m.tier.Forget(keys...)
		err = m.b.Delete(ctx, keys)
		m.tier.Forget(keys...)
	}
	return m.end(ctx, &c, err)
}
