package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/internal/tier"
)

// jitter spreads TTLs by a seeded random fraction.
type jitter struct {
	f   float64
	mu  sync.Mutex
	rnd *rand.Rand
}

func newJitter(f float64, seed uint64) *jitter {
	return &jitter{f: f, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// spread returns d times a random factor in [1-f, 1+f], within the TTL
// range.
func (j *jitter) spread(d time.Duration) time.Duration {
	j.mu.Lock()
	r := j.rnd.Float64()
	j.mu.Unlock()
	out := time.Duration(float64(d) * (1 + j.f*(2*r-1)))
	return min(max(out, time.Millisecond), MaxTTL)
}

// writeTTL is the TTL of a write that takes the Map's: the default, spread
// by WithTTLJitter. It is where a Map decides a TTL.
func (m *Map[V]) writeTTL() time.Duration {
	if m.jitter == nil || m.ttl == NoTTL {
		return m.ttl
	}
	return m.jitter.spread(m.ttl)
}

// GetOrLoad returns the value stored under key; on a miss it calls load, stores
// its value with the Map's TTL and returns it. This is BaseMap's use: get an
// id from the cache, else from the database.
//
// Concurrent misses of the same key in one Map share one call of load, and
// a miss of a key that a GetManyOrLoad is loading waits for that load. load
// runs with a context that carries the first caller's values but not its
// cancellation; it ends at the Map's load timeout (WithLoadTimeout, the
// error then matches ErrLoadTimeout) or at Close. Each caller stops waiting,
// with its own ctx.Err(), when its ctx ends; the load goes on and stores its
// value for later calls. A load error is returned and nothing is stored; a
// load error wrapping ErrNotFound is remembered for WithMissTTL. If storing
// the loaded value fails, the value is returned together with the store
// error. A loaded value whose key was written, deleted, given another TTL or
// cleared through this Map while it loaded, before its write began
// (through any Map on the store, at any moment, with WithLoadLease) is
// returned but not stored: it may be older than what
// that write reflects. A stored value that does not decode is returned as
// its *DecodeError; load is not called. A panic in load is returned as an
// error. After Close, a miss returns ErrClosed. With WithFailOpen, a read
// of the store that fails is taken for a miss, and a loaded value that
// cannot be stored is returned without the store error, which is recorded
// (span event, metric, log) instead.
func (m *Map[V]) GetOrLoad(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	ctx, c := m.begin(ctx, opGetOrLoad, key, -1)
	v, hit, err := m.getOrLoad(ctx, key, load)
	c.setHit(hit)
	return v, m.end(ctx, &c, err)
}

func (m *Map[V]) getOrLoad(ctx context.Context, key string, load func(context.Context) (V, error)) (V, bool, error) {
	var zero V
	if load == nil {
		return zero, false, fmt.Errorf("%w: nil load function", ErrInvalidOption)
	}
	m.startWatch(ctx)
	v, ok, err := m.hit(ctx, key, load)
	// reread: the load reads the key again before loading (loadOne), but
	// not after a read that failed open: a store that hangs until its
	// client gives up would take that time again.
	reread := true
	if m.mayFailOpen(ctx, err) {
		m.failedOpen(ctx, failOpenRead, err, 1)
		ok, err, reread = false, nil, false // a miss: loaded below
	}
	if err != nil || ok {
		return v, ok, err
	}
	if m.isClosed() {
		// A miss would start a load, and stale serving a reload; the watch
		// that keeps stale values true has stopped too.
		return zero, false, fmt.Errorf("load: %w", ErrClosed)
	}
	if raw, ok := m.tier.Stale(key); ok {
		if v, err := m.codec.Decode(raw); err == nil {
			m.recordLoad(ctx, loadStale, 1)
			m.startLoad(ctx, key, load, false, nil)
			return v, false, nil
		}
	}
	for {
		if m.tier.Missing(key) {
			return zero, false, fmt.Errorf("load (remembered miss): %w", ErrNotFound)
		}
		f, leader := m.tier.Join(key, true)
		if leader {
			ok := m.startRun(ctx, true, func(rctx context.Context) {
				m.loadOne(rctx, key, f, load, false, nil, reread)
			})
			if !ok {
				m.tier.Leave(f)
				m.tier.Finish(key, f)
				return zero, false, fmt.Errorf("load: %w", ErrClosed)
			}
		}
		select {
		case <-f.Done:
			m.tier.Leave(f)
			if f.Found || f.Err != nil {
				return f.V, false, f.Err
			}
			// A batch load that did not produce this key: load it here.
		case <-ctx.Done():
			m.tier.Leave(f)
			return zero, false, ctx.Err()
		}
	}
}

// hit reads key for GetOrLoad. With WithRefreshAhead or
// WithStaleWhileRevalidate it remembers the key's deadline and the value it
// read, for stale serving; a key known to be far from its deadline is read
// with a plain Get, any other with its remaining TTL in the same round trip,
// and when it is in the last part of its TTL one refresh of it starts.
func (m *Map[V]) hit(ctx context.Context, key string, load func(context.Context) (V, error)) (V, bool, error) {
	var zero V
	if !m.tier.Keeps() {
		v, ok, _, err := m.get(ctx, key)
		return v, ok, err
	}
	if key == "" {
		return zero, false, ErrEmptyKey
	}
	val, err := m.readKept(ctx, key)
	if err != nil {
		return zero, false, err
	}
	due := val.Found && val.TTL != NoTTL && val.TTL < m.refresh
	var guard []byte
	if due {
		guard = bytes.Clone(val.Bytes) // the refresh's guard: Decode owns val.Bytes
	}
	v, ok, err := m.decode(key, val)
	if ok && due {
		m.startLoad(ctx, key, load, true, guard)
	}
	return v, ok, err
}

// readKept reads key with its remaining TTL for GetOrLoad, keeping the
// value to serve stale: from the near cache when it holds it; with a plain
// Get when the tier knows the key's deadline is far off (no near cache,
// whose copies need a TTL read with them); else with its TTL.
func (m *Map[V]) readKept(ctx context.Context, key string) (backend.Value, error) {
	if raw, ttl, ok := m.tier.Cached(key, true); ok {
		return backend.Value{Bytes: raw, Found: true, TTL: ttl, Local: true}, nil
	}
	keys := []string{key}
	r := m.tier.Begin(keys...)
	now := m.clock.Now()
	var val backend.Value
	var err error
	if deadline, far := m.tier.Far(key, now.Add(m.refresh).UnixNano()); far && !m.tier.Near() {
		val, err = m.b.Get(ctx, key)
		val.TTL = NoTTL
		if deadline != 0 {
			// From after the reply, as End counts it: the deadline stays.
			val.TTL = time.Duration(deadline - m.clock.Now().UnixNano())
		}
	} else {
		var vals []backend.Value
		if vals, err = m.b.MGet(ctx, keys, true); err == nil {
			val = vals[0]
		}
	}
	if err != nil || !val.Found {
		m.tier.Abort(r, keys)
		if err == nil && val.OtherKind {
			_, err = m.b.Get(ctx, key) // ErrWrongType, as a plain Get says
		}
		return backend.Value{}, err
	}
	m.verify(ctx, m.tier.End(r, keys, []backend.Value{val}, true)...)
	return val, nil
}

// startLoad starts one load of key, unless one is under way or the Map is
// closed: a refresh ahead of expiry of the stored bytes prev (refresh
// true), or the reload of a value served stale (the key is gone). It runs
// inside the call with WithSynchronousRefresh, else in the background,
// counted for Close.
func (m *Map[V]) startLoad(ctx context.Context, key string, load func(context.Context) (V, error), refresh bool, prev []byte) {
	f, leader := m.tier.Join(key, false)
	if !leader {
		return
	}
	ok := m.startRun(ctx, !m.syncRef, func(rctx context.Context) {
		m.loadOne(rctx, key, f, load, refresh, prev, true)
	})
	if !ok {
		m.tier.Finish(key, f)
	}
}

// loadOne runs load for key in flight f and finishes f, on the run's
// context ctx: the load of a miss, or a refresh ahead of expiry of the
// stored bytes prev (a stale reload is a miss). reread: a miss reads the
// key again first (false after a read that failed open).
func (m *Map[V]) loadOne(ctx context.Context, key string, f *tier.Flight[V], load func(context.Context) (V, error), refresh bool, prev []byte, reread bool) {
	defer m.tier.Finish(key, f)
	// A flight that finished just before this one may have stored the
	// value: read again so that load runs once per miss (with leases, once
	// the lease is taken).
	if !refresh && reread && m.acquire == nil && m.settle(ctx, key, f) {
		return
	}
	l, ok := m.leaseOne(ctx, key, f, refresh)
	if !ok {
		return
	}
	// Deferred after Finish, the lease is released before the flight ends,
	// so that a call that follows in this process never finds its own lease
	// still held (a stored value's lease was ended by Lease.Store already).
	defer m.keepLease(ctx, l)()
	v, err := callLoad(m, ctx, load)
	if err != nil {
		outcome := loadError
		switch {
		case errors.Is(err, ErrNotFound):
			m.tier.AddMiss(key)
			outcome = loadNotFound
		case errors.Is(err, ErrLoadTimeout):
			outcome = loadTimeout
		}
		m.failLoad(ctx, []*tier.Flight[V]{f}, outcome, fmt.Errorf("load: %w", err))
		return
	}
	m.tier.Found(key)
	f.V, f.Found = v, true
	stored, err := m.storeLoaded(ctx, l, []*tier.Flight[V]{f}, []Entry[V]{{Key: key, Value: v}}, []guard{{refresh, prev}})
	if m.mayFailOpen(ctx, err) {
		// The value is returned, not stored: the load's outcome is error.
		m.failedOpen(ctx, failOpenWrite, err, 1)
		m.recordLoad(ctx, loadError, 1)
		return
	}
	if err != nil {
		m.failLoad(ctx, []*tier.Flight[V]{f}, loadError, fmt.Errorf("store loaded value: %w", err))
		return
	}
	outcome := loadLoaded
	if refresh {
		outcome = loadRefreshed
	}
	m.recordLoad(ctx, loadSuperseded, 1-stored)
	m.recordLoad(ctx, outcome, stored)
}

// GetManyOrLoad returns the values stored under keys, loading the missing
// ones: one read of all keys, one call of loadMany with the keys that missed
// (and are not being loaded already), and one batched write of what it
// returned, with the Map's TTL. A miss of a key that another GetOrLoad or
// GetManyOrLoad is loading waits for that load instead. Keys that loadMany
// leaves out of its result are absent from the result (and remembered with
// WithMissTTL). loadMany runs as GetOrLoad's load does: with the caller's
// values, without its cancellation; a panic in it is returned as an error.
// A loadMany error is returned, with the values that were found; nothing it
// would have loaded is stored. When storing the loaded values fails, they
// are returned with the store error. A stored value that does not decode is
// returned as its *DecodeError, with the values that did, and nothing is
// loaded. With WithFailOpen, a read of the store that fails is taken for a
// miss of every key, and loaded values that cannot be stored are returned
// without the store error, which is recorded (span event, metric, log)
// instead.
func (m *Map[V]) GetManyOrLoad(ctx context.Context, keys []string, loadMany func(ctx context.Context, missing []string) (map[string]V, error)) (map[string]V, error) {
	ctx, c := m.begin(ctx, opGetManyOrLoad, "", len(keys))
	out, hits, err := m.getManyOrLoad(ctx, keys, loadMany)
	if err == nil || len(out) > 0 {
		c.hits, c.miss = hits, max(len(keys)-hits, 0)
	}
	return out, m.end(ctx, &c, err)
}

func (m *Map[V]) getManyOrLoad(ctx context.Context, keys []string, loadMany func(context.Context, []string) (map[string]V, error)) (map[string]V, int, error) {
	out, hits, retry, err := m.getManyOrLoadOnce(ctx, keys, loadMany)
	// A key whose flight was another call's (a refresh that left it to
	// another process, a batch that did not produce it) and ended without a
	// value or an error is loaded here, as GetOrLoad does; a few rounds at
	// most, as each round is a new flight of its own for the keys left.
	for round := 0; round < 3 && err == nil && len(retry) > 0; round++ {
		var more map[string]V
		var h int
		more, h, retry, err = m.getManyOrLoadOnce(ctx, retry, loadMany)
		hits += h
		maps.Copy(out, more)
	}
	return out, hits, err
}

func (m *Map[V]) getManyOrLoadOnce(ctx context.Context, keys []string, loadMany func(context.Context, []string) (map[string]V, error)) (map[string]V, int, []string, error) {
	if loadMany == nil {
		return nil, 0, nil, fmt.Errorf("%w: nil load function", ErrInvalidOption)
	}
	m.startWatch(ctx)
	out, err := m.getMany(ctx, keys)
	if out == nil && m.mayFailOpen(ctx, err) {
		m.failedOpen(ctx, failOpenRead, err, len(keys))
		out, err = make(map[string]V, len(keys)), nil // all missed: loaded below
	}
	if err != nil {
		return out, len(out), nil, err
	}
	hits := len(out)
	waits := map[string]*tier.Flight[V]{}
	var mine []string        // the keys this call loads
	var fs []*tier.Flight[V] // their flights
	for _, k := range keys {
		if _, ok := out[k]; ok || waits[k] != nil || m.tier.Missing(k) {
			continue
		}
		f, leader := m.tier.Join(k, true)
		waits[k] = f
		if leader {
			mine, fs = append(mine, k), append(fs, f)
		}
	}
	defer func() {
		for _, f := range waits {
			m.tier.Leave(f)
		}
	}()
	if len(mine) > 0 {
		ok := m.startRun(ctx, true, func(rctx context.Context) {
			m.loadMany(rctx, mine, fs, loadMany)
		})
		if !ok {
			for i, k := range mine {
				fs[i].Err = fmt.Errorf("load: %w", ErrClosed)
				m.tier.Finish(k, fs[i])
			}
		}
	}
	var errs []error
	var retry []string
	for k, f := range waits {
		select {
		case <-f.Done:
		case <-ctx.Done():
			return out, hits, nil, ctx.Err()
		}
		if f.Found {
			out[k] = f.V
		}
		if f.Err != nil {
			errs = append(errs, f.Err)
		}
		if !f.Found && f.Err == nil && !slices.Contains(mine, k) {
			retry = append(retry, k)
		}
	}
	return out, hits, retry, errors.Join(dedupErrors(errs)...)
}

// loadMany loads keys, whose flights are fs, and finishes each flight as
// soon as its key is settled, on the run's context ctx. With WithLoadLease
// it loads, with one call of loadMany, the keys whose leases it takes, and
// waits for the others to be loaded by the processes that hold them
// (loading a key itself when its holder's lease ends), for as long as a
// caller waits for the key.
func (m *Map[V]) loadMany(ctx context.Context, keys []string, fs []*tier.Flight[V], loadMany func(context.Context, []string) (map[string]V, error)) {
	finished := make([]bool, len(keys))
	finish := func(i int) {
		if !finished[i] {
			finished[i] = true
			m.tier.Finish(keys[i], fs[i])
		}
	}
	defer func() {
		for i := range keys {
			finish(i)
		}
	}()
	pending := make([]int, len(keys))
	for i := range keys {
		pending[i] = i
	}
	wait, noLease := leaseWaitMin, false
	for len(pending) > 0 {
		mine, others, l := m.leaseMany(ctx, keys, pending, noLease)
		if l != nil {
			// Another process may have stored keys and released their
			// leases since the first read: read them again.
			if mine = m.settleMany(ctx, keys, fs, mine, finish); len(mine) == 0 {
				m.release(ctx, l)
				l = nil
			}
		}
		if len(mine) > 0 {
			release := m.keepLease(ctx, l)
			m.loadBatch(ctx, l, keys, fs, mine, loadMany)
			release() // before the flights end, as in loadOne
			for _, i := range mine {
				finish(i)
			}
		}
		// Keys no caller waits for any more are not waited for.
		others = slices.DeleteFunc(others, func(i int) bool {
			if m.tier.DropUnwanted(keys[i], fs[i]) {
				fs[i].Err = fmt.Errorf("load: %w", context.Canceled)
				finish(i)
				return true
			}
			return false
		})
		if len(others) == 0 {
			return
		}
		if !m.pause(ctx, wait, pick(keys, others)...) {
			for _, i := range others {
				fs[i].Err = fmt.Errorf("load: %w", context.Cause(ctx))
				finish(i)
			}
			return
		}
		wait = m.nextWait(wait)
		n := len(others)
		pending = m.settleMany(ctx, keys, fs, others, finish)
		m.recordLoad(ctx, loadWaited, n-len(pending))
	}
}

// settleMany reads keys[i] for i in idx into their flights, finishes those
// found, and returns the indexes still missing (in idx's array). A read
// error is every flight's: they are all finished, and none is left.
func (m *Map[V]) settleMany(ctx context.Context, keys []string, fs []*tier.Flight[V], idx []int, finish func(int)) []int {
	got, err := m.getMany(ctx, pick(keys, idx))
	if got == nil && m.mayFailOpen(ctx, err) {
		m.failedOpen(ctx, failOpenRead, err, len(idx))
		return idx // none settled: loaded, or waited for, as missing
	}
	if err != nil {
		for _, i := range idx {
			fs[i].Err = err
			finish(i)
		}
		return nil
	}
	return slices.DeleteFunc(idx, func(i int) bool {
		v, ok := got[keys[i]]
		if ok {
			fs[i].V, fs[i].Found = v, true
			finish(i)
		}
		return ok
	})
}

// loadBatch calls loadMany with keys[i] for i in idx, stores what it
// returns in one batch (through the leases l when not nil), and records the
// outcome in their flights.
func (m *Map[V]) loadBatch(ctx context.Context, l backend.Lease, keys []string, fs []*tier.Flight[V], idx []int, loadMany func(context.Context, []string) (map[string]V, error)) {
	ks := pick(keys, idx)
	loaded, err := callLoad(m, ctx, func(ctx context.Context) (map[string]V, error) {
		return loadMany(ctx, ks)
	})
	if err != nil {
		outcome := loadError
		if errors.Is(err, ErrLoadTimeout) {
			outcome = loadTimeout
		}
		m.failLoad(ctx, pick(fs, idx), outcome, fmt.Errorf("load: %w", err))
		return
	}
	entries := make([]Entry[V], 0, len(loaded))
	efs := make([]*tier.Flight[V], 0, len(loaded))
	for _, i := range idx {
		v, ok := loaded[keys[i]]
		if !ok {
			m.tier.AddMiss(keys[i])
			continue
		}
		m.tier.Found(keys[i])
		fs[i].V, fs[i].Found = v, true
		entries = append(entries, Entry[V]{Key: keys[i], Value: v})
		efs = append(efs, fs[i])
	}
	m.recordLoad(ctx, loadNotFound, len(idx)-len(entries))
	if len(entries) == 0 {
		return
	}
	stored, err := m.storeLoaded(ctx, l, efs, entries, make([]guard, len(entries)))
	if m.mayFailOpen(ctx, err) {
		// The values are returned, not stored: the loads' outcome is error.
		m.failedOpen(ctx, failOpenWrite, err, len(entries))
		m.recordLoad(ctx, loadError, len(entries))
		return
	}
	if err != nil {
		m.failLoad(ctx, efs, loadError, fmt.Errorf("store loaded values: %w", err))
		return
	}
	m.recordLoad(ctx, loadSuperseded, len(entries)-stored)
	m.recordLoad(ctx, loadLoaded, stored)
}

// failLoad records outcome for the flights fs, and gives each of them err.
func (m *Map[V]) failLoad(ctx context.Context, fs []*tier.Flight[V], outcome string, err error) {
	m.recordLoad(ctx, outcome, len(fs))
	for _, f := range fs {
		f.Err = err
	}
}

// pick returns s[i] for each i in idx.
func pick[T any](s []T, idx []int) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = s[i]
	}
	return out
}

// dedupErrors leaves one error of each message: a batch's error is shared by
// the flights of all its keys.
func dedupErrors(errs []error) []error {
	seen := map[string]bool{}
	out := errs[:0]
	for _, e := range errs {
		if !seen[e.Error()] {
			seen[e.Error()] = true
			out = append(out, e)
		}
	}
	return out
}

// guard is what a load found of its key before loading: the stored bytes
// of a refresh (found), or nothing (a miss).
type guard struct {
	found bool
	prev  []byte
}

// storeLoaded stores loaded entries, whose flights are fs, with the Map's
// TTL, and returns how many it stored. Through the leases l (WithLoadLease),
// each is stored in one step on the store only while its lease holds and
// its key is as the load found it (gs): a write, delete, expiry change or
// clear of the key through any Map on the store since the lease was taken
// cancels it. Without leases, a write, delete, expiry change or clear
// through this Map since the load began cancels it.
func (m *Map[V]) storeLoaded(ctx context.Context, l backend.Lease, fs []*tier.Flight[V], entries []Entry[V], gs []guard) (int, error) {
	out := make([]backend.GuardedEntry, 0, len(entries))
	for i, e := range entries {
		if !m.tier.MayStore(fs[i]) {
			continue
		}
		data, err := m.codec.Encode(e.Value)
		if err != nil {
			return 0, fmt.Errorf("encode value of key %s: %w", backend.QuoteKey(e.Key), codecError{err})
		}
		out = append(out, backend.GuardedEntry{
			Entry:     backend.Entry{Key: e.Key, Value: data, TTL: m.writeTTL()},
			PrevFound: gs[i].found,
			Prev:      gs[i].prev,
		})
	}
	if len(out) == 0 {
		return 0, nil
	}
	keys := make([]string, len(out))
	plain := make([]backend.Entry, len(out))
	for i, e := range out {
		keys[i], plain[i] = e.Key, e.Entry
	}
	m.tier.Forget(keys...)
	r := m.tier.Begin(keys...)
	var stored []bool
	var err error
	if l != nil {
		stored, err = l.Store(ctx, out)
	} else if err = m.b.MSet(ctx, plain); err == nil {
		stored = slices.Repeat([]bool{true}, len(out))
	}
	if err != nil {
		m.tier.Forget(keys...)
		return 0, err
	}
	raws, deadlines := make([][]byte, len(out)), m.deadlines(plain)
	n := 0
	for i, ok := range stored {
		if ok {
			raws[i] = out[i].Value
			n++
		} else {
			deadlines[i] = 0 // not written: forgotten
		}
	}
	m.verify(ctx, m.tier.Wrote(r, keys, raws, deadlines)...)
	return n, nil
}
