package kv

import (
	"context"
	"sync"
	"time"

	"github.com/kvmap/kv/backend"
)

// The Map's local tier (internal/tier) is one structure that holds what the
// process knows of each key: its near-cached value (WithNearCache), the
// deadline and value remembered for refresh-ahead and stale serving, the
// load under way, a remembered miss, and the waits for another process's
// load. Every write, delete, expiry change or clear through the Map forgets
// the keys it touches before and after; every change report of the store
// forgets (or, for stale serving, unverifies) the keys it names; a read that
// raced either never records what it read as fresh.

// rememberCap bounds what a Map remembers for WithRefreshAhead alone, and
// the misses of WithMissTTL; a near cache's or stale serving's bound is
// used when larger.
const rememberCap = 10_000

// read reads key: from the near cache when it holds it, else from the
// store, with its TTL when the tier keeps what it reads or withTTL asks for
// it (one round trip either way).
func (m *Map[V]) read(ctx context.Context, key string, withTTL bool) (backend.Value, error) {
	m.startWatch(ctx)
	if raw, ttl, ok := m.tier.Cached(key, false); ok {
		return backend.Value{Bytes: raw, TTL: ttl, Found: true, Local: true}, nil
	}
	return m.readStore(ctx, key, withTTL)
}

// readStore is read past the near cache: from the store.
func (m *Map[V]) readStore(ctx context.Context, key string, withTTL bool) (backend.Value, error) {
	keeps := m.tier.Keeps()
	if !keeps && !withTTL {
		return m.b.Get(ctx, key)
	}
	keys := []string{key}
	r := m.tier.Begin(keys...)
	vals, err := m.b.MGet(ctx, keys, true)
	if err != nil {
		m.tier.Abort(r, keys)
		return backend.Value{}, err
	}
	if keeps {
		m.verify(ctx, m.tier.End(r, keys, vals, false)...)
	}
	if !vals[0].Found && vals[0].OtherKind {
		// Get tells a missing key from one of another kind.
		v, err := m.b.Get(ctx, key)
		if err != nil || !v.Found || !withTTL {
			return v, err
		}
		// Written since: read it again with its TTL, which Get does not
		// read (a value found must come with its TTL).
		if vals, err = m.b.MGet(ctx, keys, true); err != nil {
			return backend.Value{}, err
		}
		if !vals[0].Found {
			return backend.Value{}, nil // changed again: absent when read
		}
	}
	return vals[0], nil
}

// readMany reads keys as read does, the keys the near cache does not hold
// in one call of the store; a bulk read (more keys than a sixteenth of the
// tier's bound) records nothing.
func (m *Map[V]) readMany(ctx context.Context, keys []string) ([]backend.Value, error) {
	m.startWatch(ctx)
	if !m.tier.Keeps() {
		return m.b.MGet(ctx, keys, false)
	}
	out := make([]backend.Value, len(keys))
	var miss []int
	for i, k := range keys {
		if raw, _, ok := m.tier.Cached(k, false); ok {
			out[i] = backend.Value{Bytes: raw, Found: true, Local: true}
		} else {
			miss = append(miss, i)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	mk := make([]string, len(miss))
	for j, i := range miss {
		mk[j] = keys[i]
	}
	if m.tier.Bulk(len(mk)) {
		// A bulk read neither evicts what the tier holds nor reads TTLs.
		vals, err := m.b.MGet(ctx, mk, false)
		if err != nil {
			return nil, err
		}
		for j, i := range miss {
			out[i] = vals[j]
		}
		return out, nil
	}
	r := m.tier.Begin(mk...)
	vals, err := m.b.MGet(ctx, mk, true)
	if err != nil {
		m.tier.Abort(r, mk)
		return nil, err
	}
	m.verify(ctx, m.tier.End(r, mk, vals, false)...)
	for j, i := range miss {
		out[i] = vals[j]
		out[i].TTL = 0
	}
	return out, nil
}

// verify reads keys again, in the caller, and verifies or forgets what a
// recording that a change report raced recorded of them (on a store that
// reports changes from the writing call, as memory does, this Map's own
// write is reported during it).
func (m *Map[V]) verify(ctx context.Context, keys ...string) {
	if len(keys) == 0 {
		return
	}
	r := m.tier.BeginVerify(keys)
	vals, err := m.b.MGet(ctx, keys, true)
	if err != nil {
		vals = nil // every key forgotten
	}
	m.tier.Verified(r, keys, vals)
}

// verifier reads again the keys whose remembered values a change report
// made unverified, while any are queued and ctx lasts.
func (m *Map[V]) verifier(ctx context.Context) {
	for {
		keys, r := m.tier.TakeVerify(ctx.Err() != nil)
		if keys == nil {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		vals, err := m.b.MGet(rctx, keys, true)
		cancel()
		if err != nil {
			vals = nil // every key forgotten
		}
		m.tier.Verified(r, keys, vals)
	}
}

// verifyTimeout bounds each read of the verifier, whose context is the
// watch's (values only, cancelled by Close): a stalled store makes it forget
// the keys, not wait.
const verifyTimeout = 5 * time.Second

// startWatch starts the watch of the Map's namespace that keeps its tier
// true, once, on the values of ctx but not its cancellation; Close stops it.
// A watch that cannot start leaves the near cache and stale serving unused;
// the next call tries again.
func (m *Map[V]) startWatch(ctx context.Context) {
	if m.watch == nil || m.watching.Load() {
		return
	}
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	if m.watchStop != nil {
		return
	}
	if m.isClosed() {
		return
	}
	wctx := context.WithoutCancel(ctx)
	report := m.tier.Changed
	if m.tel != nil && m.tel.local != nil && m.tel.local.invalidations != nil {
		report = m.tel.local.counted(wctx, m.tier.Apply)
	}
	stop, err := m.watch(wctx, "", report)
	if err != nil {
		m.warn(ctx, "watching the namespace failed; the near cache and stale serving stay unused", err)
		return
	}
	m.watchStop = stop
	m.watching.Store(true)
	if m.tier.Serves() {
		vctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		m.tier.SetVerifier(func() { wg.Go(func() { m.verifier(vctx) }) })
		m.watchStop = func() {
			stop()
			cancel()
			wg.Wait()
		}
	}
}

// stopWatch stops the watch of startWatch; no report arrives after it
// returns.
func (m *Map[V]) stopWatch() {
	m.watchMu.Lock()
	stop := m.watchStop
	m.watchStop = func() {} // never started again
	m.watching.Store(true)
	m.watchMu.Unlock()
	if stop != nil {
		stop()
	}
}
