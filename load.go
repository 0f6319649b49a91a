package kv

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/kvmap/kv/backend"
)

// flight is one load under way: GetOrLoad's of one key, or GetManyOrLoad's
// of several, each key with a flight of its own. Callers that miss a key
// while its flight is under way wait for it instead of loading again.
type flight[V any] struct {
	done  chan struct{} // closed when the fields below are final
	v     V
	found bool // the load produced a value for the key
	err   error

	// Guarded by flights.mu.
	refs    int  // callers waiting for the flight
	revoked bool // the Map wrote, deleted or cleared the key since the load began
}

// flights are the loads under way, by key.
type flights[V any] struct {
	mu sync.Mutex
	m  map[string]*flight[V]
}

// join returns the flight of key, and whether the caller started it (and so
// must run the load and finish it). A caller (caller true) is counted as
// waiting for the flight until it calls leave.
func (fs *flights[V]) join(key string, caller bool) (*flight[V], bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f, ok := fs.m[key]
	if !ok {
		if fs.m == nil {
			fs.m = map[string]*flight[V]{}
		}
		f = &flight[V]{done: make(chan struct{})}
		fs.m[key] = f
	}
	if caller {
		f.refs++
	}
	return f, !ok
}

// leave ends a caller's wait for f.
func (fs *flights[V]) leave(f *flight[V]) {
	fs.mu.Lock()
	f.refs--
	fs.mu.Unlock()
}

// dropUnwanted removes the flight f of key when no caller waits for it any
// more, and reports whether it did: a later miss of the key starts a new
// flight, so the one dropped can end without a result.
func (fs *flights[V]) dropUnwanted(key string, f *flight[V]) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f.refs > 0 {
		return false
	}
	if fs.m[key] == f {
		delete(fs.m, key)
	}
	return true
}

// revoke takes from the loads of keys under way the right to store their
// result: the Map is writing, deleting or changing the expiry of the keys.
func (fs *flights[V]) revoke(keys ...string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, k := range keys {
		if f, ok := fs.m[k]; ok {
			f.revoked = true
		}
	}
}

// revokeAll is revoke for every load under way: the Map cleared its
// namespace.
func (fs *flights[V]) revokeAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.m {
		f.revoked = true
	}
}

// mayStore reports whether the load of f still has the right to store its
// result.
func (fs *flights[V]) mayStore(f *flight[V]) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return !f.revoked
}

// finish ends the flight of key: later misses start a new one.
func (fs *flights[V]) finish(key string, f *flight[V]) {
	fs.mu.Lock()
	if fs.m[key] == f {
		delete(fs.m, key)
	}
	fs.mu.Unlock()
	close(f.done)
}

// missSet remembers, in this process, keys a load reported missing.
type missSet struct {
	ttl time.Duration // 0: remember nothing
	mu  sync.Mutex
	m   map[string]time.Time // key -> when the miss is forgotten
}

func (s *missSet) add(key string, now time.Time) {
	if s.ttl <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]time.Time{}
	}
	s.m[key] = now.Add(s.ttl)
}

func (s *missSet) has(key string, now time.Time) bool {
	if s.ttl <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.m[key]
	if ok && !now.Before(until) {
		delete(s.m, key)
		ok = false
	}
	return ok
}

func (s *missSet) forget(key string) {
	if s.ttl <= 0 {
		return
	}
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

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

// writeTTL is the TTL of a write that takes the Map's: 0 (the ttl layer
// fills in the default), or the default spread by WithTTLJitter.
func (m *Map[V]) writeTTL() time.Duration {
	if m.jitter == nil {
		return 0
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
// error. After Close, a miss returns ErrClosed.
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
	if m.watch != nil {
		m.startWatch(ctx)
	}
	v, ok, err := m.hit(ctx, key, load)
	if err != nil || ok {
		return v, ok, err
	}
	if m.isClosed() {
		// A miss would start a load, and stale serving a reload; the watch
		// that keeps stale values true has stopped too.
		return zero, false, fmt.Errorf("load: %w", ErrClosed)
	}
	if v, ok := m.seen.serve(key, m.clock.Now()); ok {
		m.recordLoad(ctx, loadStale, 1)
		m.startLoad(ctx, key, load, false, nil)
		return v, false, nil
	}
	for {
		if m.misses.has(key, m.clock.Now()) {
			return zero, false, fmt.Errorf("load (remembered miss): %w", ErrNotFound)
		}
		f, leader := m.loads.join(key, true)
		if leader {
			rctx, done, ok := m.startRun(ctx, true)
			if !ok {
				m.loads.leave(f)
				m.loads.finish(key, f)
				return zero, false, fmt.Errorf("load: %w", ErrClosed)
			}
			go func() {
				defer done()
				m.loadOne(rctx, key, f, load, false, nil)
			}()
		}
		select {
		case <-f.done:
			m.loads.leave(f)
			if f.found || f.err != nil {
				return f.v, false, f.err
			}
			// A batch load that did not produce this key: load it here.
		case <-ctx.Done():
			m.loads.leave(f)
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
	if m.seen == nil {
		return m.get(ctx, key)
	}
	t := m.seen.begin(key)
	if deadline, ok := m.seen.far(key, m.clock.Now().Add(m.refresh)); ok {
		var zero V
		val, err := m.b.Get(ctx, key)
		if err != nil || !val.Found {
			m.seen.end(t, key)
			return zero, false, err
		}
		v, err := m.codec.Decode(val.Bytes)
		if err != nil {
			m.seen.end(t, key)
			return zero, false, &DecodeError{Key: key, Err: err}
		}
		if m.seen.read(t, key, v, val.Bytes, deadline) {
			m.verify(ctx, key)
		}
		return v, true, nil
	}
	var zero V
	if key == "" {
		return zero, false, ErrEmptyKey
	}
	vals, err := m.b.MGet(ctx, []string{key}, true)
	if err != nil || !vals[0].Found {
		m.seen.end(t, key)
		return zero, false, err
	}
	v, err := m.codec.Decode(vals[0].Bytes)
	if err != nil {
		m.seen.end(t, key)
		return zero, false, &DecodeError{Key: key, Err: err}
	}
	ttl := vals[0].TTL
	if ttl == NoTTL {
		m.seen.end(t, key)
		return v, true, nil
	}
	if m.seen.read(t, key, v, vals[0].Bytes, m.clock.Now().Add(ttl)) {
		m.verify(ctx, key)
	}
	if ttl < m.refresh {
		m.startLoad(ctx, key, load, true, vals[0].Bytes)
	}
	return v, true, nil
}

// startLoad starts one load of key, unless one is under way or the Map is
// closed: a refresh ahead of expiry of the stored bytes prev (refresh
// true), or the reload of a value served stale (the key is gone). It runs
// inside the call with WithSynchronousRefresh, else in the background,
// counted for Close.
func (m *Map[V]) startLoad(ctx context.Context, key string, load func(context.Context) (V, error), refresh bool, prev []byte) {
	f, leader := m.loads.join(key, false)
	if !leader {
		return
	}
	rctx, done, ok := m.startRun(ctx, !m.syncRef)
	if !ok {
		m.loads.finish(key, f)
		return
	}
	if m.syncRef {
		defer done()
		m.loadOne(rctx, key, f, load, refresh, prev)
		return
	}
	go func() {
		defer done()
		m.loadOne(rctx, key, f, load, refresh, prev)
	}()
}

// loadOne runs load for key in flight f and finishes f, on the run's
// context ctx: the load of a miss, or a refresh ahead of expiry of the
// stored bytes prev (a stale reload is a miss).
func (m *Map[V]) loadOne(ctx context.Context, key string, f *flight[V], load func(context.Context) (V, error), refresh bool, prev []byte) {
	// The lease is released before the flight ends, so that a call that
	// follows in this process never finds its own lease still held (a
	// stored value's lease was ended by Lease.Store already).
	var release func()
	defer func() {
		if release != nil {
			release()
		}
		m.loads.finish(key, f)
	}()
	// A flight that finished just before this one may have stored the
	// value: read again so that load runs once per miss (with leases, once
	// the lease is taken).
	if !refresh && m.acquire == nil && m.settle(ctx, key, f) {
		return
	}
	l, ok := m.leaseOne(ctx, key, f, refresh)
	if !ok {
		return
	}
	if l != nil {
		release = m.keepLease(ctx, l)
	}
	v, err := callLoad(m, ctx, load)
	if err != nil {
		outcome := loadError
		switch {
		case errors.Is(err, ErrNotFound):
			m.misses.add(key, m.clock.Now())
			outcome = loadNotFound
		case errors.Is(err, ErrLoadTimeout):
			outcome = loadTimeout
		}
		m.recordLoad(ctx, outcome, 1)
		f.err = fmt.Errorf("load: %w", err)
		return
	}
	m.misses.forget(key)
	f.v, f.found = v, true
	stored, err := m.storeLoaded(ctx, l, []*flight[V]{f}, []Entry[V]{{Key: key, Value: v}}, []guard{{refresh, prev}})
	if err != nil {
		m.recordLoad(ctx, loadError, 1)
		f.err = fmt.Errorf("store loaded value: %w", err)
		return
	}
	if stored == 0 {
		m.recordLoad(ctx, loadSuperseded, 1)
		return
	}
	if refresh {
		m.recordLoad(ctx, loadRefreshed, 1)
	} else {
		m.recordLoad(ctx, loadLoaded, 1)
	}
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
// loaded.
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
	for range 3 {
		if err != nil || len(retry) == 0 {
			break
		}
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
	if m.watch != nil {
		m.startWatch(ctx)
	}
	out, err := m.getMany(ctx, keys)
	if err != nil {
		return out, len(out), nil, err
	}
	hits := len(out)
	now := m.clock.Now()
	waits := map[string]*flight[V]{}
	var mine []string
	for _, k := range keys {
		if _, ok := out[k]; ok || waits[k] != nil || m.misses.has(k, now) {
			continue
		}
		f, leader := m.loads.join(k, true)
		waits[k] = f
		if leader {
			mine = append(mine, k)
		}
	}
	defer func() {
		for _, f := range waits {
			m.loads.leave(f)
		}
	}()
	if len(mine) > 0 {
		fs := make([]*flight[V], len(mine))
		for i, k := range mine {
			fs[i] = waits[k]
		}
		rctx, done, ok := m.startRun(ctx, true)
		if !ok {
			for i, k := range mine {
				fs[i].err = fmt.Errorf("load: %w", ErrClosed)
				m.loads.finish(k, fs[i])
			}
		} else {
			go func() {
				defer done()
				m.loadMany(rctx, mine, fs, loadMany)
			}()
		}
	}
	var errs []error
	var retry []string
	for k, f := range waits {
		select {
		case <-f.done:
		case <-ctx.Done():
			return out, hits, nil, ctx.Err()
		}
		if f.found {
			out[k] = f.v
		}
		if f.err != nil {
			errs = append(errs, f.err)
		}
		if !f.found && f.err == nil && !slices.Contains(mine, k) {
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
func (m *Map[V]) loadMany(ctx context.Context, keys []string, fs []*flight[V], loadMany func(context.Context, []string) (map[string]V, error)) {
	finished := make([]bool, len(keys))
	finish := func(i int) {
		if !finished[i] {
			finished[i] = true
			m.loads.finish(keys[i], fs[i])
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
			release := func() {}
			if l != nil {
				release = m.keepLease(ctx, l)
			}
			m.loadBatch(ctx, l, keys, fs, mine, loadMany)
			release() // before the flights end, as in loadOne
			for _, i := range mine {
				finish(i)
			}
		}
		// Keys no caller waits for any more are not waited for.
		others = slices.DeleteFunc(others, func(i int) bool {
			if m.loads.dropUnwanted(keys[i], fs[i]) {
				fs[i].err = fmt.Errorf("load: %w", context.Canceled)
				finish(i)
				return true
			}
			return false
		})
		if len(others) == 0 {
			return
		}
		waitKeys := make([]string, len(others))
		for j, i := range others {
			waitKeys[j] = keys[i]
		}
		if !m.pause(ctx, wait, waitKeys...) {
			for _, i := range others {
				fs[i].err = fmt.Errorf("load: %w", context.Cause(ctx))
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
// found, and returns the indexes still missing. A read error is every
// flight's: they are all finished, and none is left.
func (m *Map[V]) settleMany(ctx context.Context, keys []string, fs []*flight[V], idx []int, finish func(int)) []int {
	ks := make([]string, len(idx))
	for j, i := range idx {
		ks[j] = keys[i]
	}
	got, err := m.getMany(ctx, ks)
	if err != nil {
		for _, i := range idx {
			fs[i].err = err
			finish(i)
		}
		return nil
	}
	var missing []int
	for _, i := range idx {
		if v, ok := got[keys[i]]; ok {
			fs[i].v, fs[i].found = v, true
			finish(i)
		} else {
			missing = append(missing, i)
		}
	}
	return missing
}

// loadBatch calls loadMany with keys[i] for i in idx, stores what it
// returns in one batch (through the leases l when not nil), and records the
// outcome in their flights.
func (m *Map[V]) loadBatch(ctx context.Context, l backend.Lease, keys []string, fs []*flight[V], idx []int, loadMany func(context.Context, []string) (map[string]V, error)) {
	ks := make([]string, len(idx))
	for j, i := range idx {
		ks[j] = keys[i]
	}
	loaded, err := callLoad(m, ctx, func(ctx context.Context) (map[string]V, error) {
		return loadMany(ctx, ks)
	})
	if err != nil {
		outcome := loadError
		if errors.Is(err, ErrLoadTimeout) {
			outcome = loadTimeout
		}
		m.recordLoad(ctx, outcome, len(idx))
		err = fmt.Errorf("load: %w", err)
		for _, i := range idx {
			fs[i].err = err
		}
		return
	}
	entries := make([]Entry[V], 0, len(loaded))
	efs := make([]*flight[V], 0, len(loaded))
	now := m.clock.Now()
	for _, i := range idx {
		v, ok := loaded[keys[i]]
		if !ok {
			m.misses.add(keys[i], now)
			continue
		}
		m.misses.forget(keys[i])
		fs[i].v, fs[i].found = v, true
		entries = append(entries, Entry[V]{Key: keys[i], Value: v})
		efs = append(efs, fs[i])
	}
	m.recordLoad(ctx, loadNotFound, len(idx)-len(entries))
	if len(entries) == 0 {
		return
	}
	stored, err := m.storeLoaded(ctx, l, efs, entries, make([]guard, len(entries)))
	if err != nil {
		m.recordLoad(ctx, loadError, len(entries))
		err = fmt.Errorf("store loaded values: %w", err)
		for _, f := range efs {
			f.err = err
		}
		return
	}
	m.recordLoad(ctx, loadSuperseded, len(entries)-stored)
	m.recordLoad(ctx, loadLoaded, stored)
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
func (m *Map[V]) storeLoaded(ctx context.Context, l backend.Lease, fs []*flight[V], entries []Entry[V], gs []guard) (int, error) {
	out := make([]backend.GuardedEntry, 0, len(entries))
	vals := make([]V, 0, len(entries))
	for i, e := range entries {
		if !m.loads.mayStore(fs[i]) {
			continue
		}
		data, err := m.codec.Encode(e.Value)
		if err != nil {
			return 0, fmt.Errorf("encode value of key %s: %w", backend.QuoteKey(e.Key), codecError{err})
		}
		ttl := m.writeTTL()
		if ttl == 0 {
			ttl = m.ttl // Lease.Store takes the TTL as it is
		}
		out = append(out, backend.GuardedEntry{
			Entry:     backend.Entry{Key: e.Key, Value: data, TTL: ttl},
			PrevFound: gs[i].found,
			Prev:      gs[i].prev,
		})
		vals = append(vals, e.Value)
	}
	if len(out) == 0 {
		return 0, nil
	}
	keys := make([]string, len(out))
	tickets := make([]uint64, len(out))
	for i, e := range out {
		keys[i] = e.Key
	}
	m.seen.forget(keys...)
	for i, k := range keys {
		tickets[i] = m.seen.begin(k)
	}
	var stored []bool
	var err error
	if l != nil {
		stored, err = l.Store(ctx, out)
	} else {
		plain := make([]backend.Entry, len(out))
		for i, e := range out {
			plain[i] = e.Entry
		}
		if err = m.b.MSet(ctx, plain); err == nil {
			stored = make([]bool, len(out))
			for i := range stored {
				stored[i] = true
			}
		}
	}
	if err != nil {
		m.seen.forget(keys...)
		return 0, err
	}
	n := 0
	now := m.clock.Now()
	var raced []string // recordings a change report raced
	defer func() { m.verify(ctx, raced...) }()
	for i, ok := range stored {
		ttl := out[i].TTL
		switch {
		case !ok:
			m.seen.forget(keys[i]) // not written
		case ttl == NoTTL:
			m.seen.end(tickets[i], keys[i])
		default:
			if m.seen.read(tickets[i], keys[i], vals[i], out[i].Value, now.Add(ttl)) {
				raced = append(raced, keys[i])
			}
		}
		if ok {
			n++
		}
	}
	return n, nil
}
