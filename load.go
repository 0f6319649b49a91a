package kv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// flight is one load under way: GetOrLoad's of one key, or GetManyOrLoad's
// of several, each key with a flight of its own. Callers that miss a key
// while its flight is under way wait for it instead of loading again.
type flight[V any] struct {
	done  chan struct{} // closed when the fields below are final
	v     V
	found bool // the load produced a value for the key
	err   error
}

// flights are the loads under way, by key.
type flights[V any] struct {
	mu sync.Mutex
	m  map[string]*flight[V]
}

// join returns the flight of key, and whether the caller started it (and so
// must run the load and finish it).
func (fs *flights[V]) join(key string) (*flight[V], bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok {
		return f, false
	}
	if fs.m == nil {
		fs.m = map[string]*flight[V]{}
	}
	f := &flight[V]{done: make(chan struct{})}
	fs.m[key] = f
	return f, true
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
// cancellation or deadline; each caller stops waiting, with its own
// ctx.Err(), when its ctx ends. A load error is returned and nothing is
// stored; a load error wrapping ErrNotFound is remembered for WithMissTTL. If
// storing the loaded value fails, the value is returned together with the
// store error. A stored value that does not decode is returned as its
// *DecodeError; load is not called. A panic in load is returned as an error.
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
	v, ok, err := m.hit(ctx, key, load)
	if err != nil || ok {
		return v, ok, err
	}
	if v, ok := m.seen.serve(key, m.clock.Now()); ok {
		m.recordLoad(ctx, loadStale, 1)
		m.startLoad(context.WithoutCancel(ctx), key, load, false)
		return v, false, nil
	}
	for {
		if m.misses.has(key, m.clock.Now()) {
			return zero, false, fmt.Errorf("load (remembered miss): %w", ErrNotFound)
		}
		f, leader := m.loads.join(key)
		if leader {
			go m.loadOne(context.WithoutCancel(ctx), key, f, load, false)
		}
		select {
		case <-f.done:
			if f.found || f.err != nil {
				return f.v, false, f.err
			}
			// A batch load that did not produce this key: load it here.
		case <-ctx.Done():
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
	if deadline, ok := m.seen.far(key, m.clock.Now().Add(m.refresh)); ok {
		v, ok, err := m.get(ctx, key)
		if ok {
			m.seen.read(key, v, deadline)
		}
		return v, ok, err
	}
	var zero V
	if key == "" {
		return zero, false, ErrEmptyKey
	}
	vals, err := m.b.MGet(ctx, []string{key}, true)
	if err != nil || !vals[0].Found {
		return zero, false, err
	}
	v, err := m.codec.Decode(vals[0].Bytes)
	if err != nil {
		return zero, false, &DecodeError{Key: key, Err: err}
	}
	if ttl := vals[0].TTL; ttl != NoTTL {
		m.seen.read(key, v, m.clock.Now().Add(ttl))
		if ttl < m.refresh {
			m.startLoad(context.WithoutCancel(ctx), key, load, true)
		}
	}
	return v, true, nil
}

// startLoad starts one load of key, unless one is under way or the Map is
// closed: a refresh ahead of expiry, or the reload of a value served stale.
// It runs inside the call with WithSynchronousRefresh, else in the
// background, counted for Close.
func (m *Map[V]) startLoad(ctx context.Context, key string, load func(context.Context) (V, error), refresh bool) {
	m.bgMu.Lock()
	if m.closed {
		m.bgMu.Unlock()
		return
	}
	f, leader := m.loads.join(key)
	if !leader {
		m.bgMu.Unlock()
		return
	}
	if m.syncRef {
		m.bgMu.Unlock()
		m.loadOne(ctx, key, f, load, refresh)
		return
	}
	m.bg.Add(1) // under bgMu, so never once Close has begun to wait
	m.bgMu.Unlock()
	go func() {
		defer m.bg.Done()
		m.loadOne(ctx, key, f, load, refresh)
	}()
}

// Close stops the Map's near cache (WithNearCache), waits for the loads a
// Map runs in the background (refreshes of
// WithRefreshAhead, reloads of WithStaleWhileRevalidate) and starts none
// after it; it stops renewing the leases of WithLoadLease (a load under way
// finishes, its lease expires by itself) and ends every wait for another
// process's load (the waiting load goes on without a lease). Every other
// call keeps working; Close does not close the Backend. Closing twice is not
// an error.
func (m *Map[V]) Close() error {
	m.bgMu.Lock()
	if !m.closed {
		m.closed = true
		close(m.quit)
	}
	m.bgMu.Unlock()
	m.bg.Wait()
	if m.near != nil {
		m.near.Stop()
	}
	return nil
}

// loadOne runs load for key in flight f and finishes f: the load of a miss,
// or a refresh ahead of expiry.
func (m *Map[V]) loadOne(ctx context.Context, key string, f *flight[V], load func(context.Context) (V, error), refresh bool) {
	// The flight ends before the lease is released: the callers waiting in
	// this process get the value without waiting for that round trip.
	var release func()
	defer func() {
		m.loads.finish(key, f)
		if release != nil {
			release()
		}
	}()
	// A panic in load would otherwise crash the process from a goroutine no
	// caller can recover in: every waiter gets it as an error.
	defer func() {
		if r := recover(); r != nil {
			f.err = fmt.Errorf("load panicked: %v", r)
			m.recordLoad(ctx, loadError, 1)
		}
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
	v, err := load(ctx)
	if err != nil {
		outcome := loadError
		if errors.Is(err, ErrNotFound) {
			m.misses.add(key, m.clock.Now())
			outcome = loadNotFound
		}
		m.recordLoad(ctx, outcome, 1)
		f.err = fmt.Errorf("load: %w", err)
		return
	}
	m.misses.forget(key)
	f.v, f.found = v, true
	if err := m.set(ctx, key, v, m.writeTTL()); err != nil {
		m.recordLoad(ctx, loadError, 1)
		f.err = fmt.Errorf("store loaded value: %w", err)
		return
	}
	m.seen.loaded(key, v)
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
	if loadMany == nil {
		return nil, 0, fmt.Errorf("%w: nil load function", ErrInvalidOption)
	}
	out, err := m.getMany(ctx, keys)
	if err != nil {
		return out, len(out), err
	}
	hits := len(out)
	now := m.clock.Now()
	waits := map[string]*flight[V]{}
	var mine []string
	for _, k := range keys {
		if _, ok := out[k]; ok || waits[k] != nil || m.misses.has(k, now) {
			continue
		}
		f, leader := m.loads.join(k)
		waits[k] = f
		if leader {
			mine = append(mine, k)
		}
	}
	if len(mine) > 0 {
		fs := make([]*flight[V], len(mine))
		for i, k := range mine {
			fs[i] = waits[k]
		}
		go m.loadMany(context.WithoutCancel(ctx), mine, fs, loadMany)
	}
	var errs []error
	for k, f := range waits {
		select {
		case <-f.done:
		case <-ctx.Done():
			return out, hits, ctx.Err()
		}
		if f.found {
			out[k] = f.v
		}
		if f.err != nil {
			errs = append(errs, f.err)
		}
	}
	return out, hits, errors.Join(dedupErrors(errs)...)
}

// loadMany loads keys, whose flights are fs, and finishes each flight as
// soon as its key is settled. With WithLoadLease it loads, with one call of
// loadMany, the keys whose leases it takes, and waits for the others to be
// loaded by the processes that hold them (loading a key itself when its
// holder's lease expires).
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
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("load panicked: %v", r)
			for i, f := range fs {
				if !finished[i] {
					f.v, f.found, f.err = *new(V), false, err
				}
			}
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
			func() {
				// After the flights end, and on a panic in loadMany too:
				// no renewal outlives the load.
				defer release()
				m.loadBatch(ctx, keys, fs, mine, loadMany)
				for _, i := range mine {
					finish(i)
				}
			}()
		}
		if len(others) == 0 {
			return
		}
		noLease = !m.pause(wait)
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
// returns in one batch, and records the outcome in their flights.
func (m *Map[V]) loadBatch(ctx context.Context, keys []string, fs []*flight[V], idx []int, loadMany func(context.Context, []string) (map[string]V, error)) {
	ks := make([]string, len(idx))
	for j, i := range idx {
		ks[j] = keys[i]
	}
	loaded, err := loadMany(ctx, append([]string(nil), ks...))
	if err != nil {
		m.recordLoad(ctx, loadError, len(idx))
		err = fmt.Errorf("load: %w", err)
		for _, i := range idx {
			fs[i].err = err
		}
		return
	}
	entries := make([]Entry[V], 0, len(loaded))
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
	}
	m.recordLoad(ctx, loadNotFound, len(idx)-len(entries))
	if err := m.setMany(ctx, entries); err != nil {
		m.recordLoad(ctx, loadError, len(entries))
		err = fmt.Errorf("store loaded values: %w", err)
		for _, i := range idx {
			if fs[i].found {
				fs[i].err = err
			}
		}
		return
	}
	m.recordLoad(ctx, loadLoaded, len(entries))
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
