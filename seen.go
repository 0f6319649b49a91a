package kv

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/kvmap/kv/backend"
)

// seenCap bounds what a Map remembers for WithRefreshAhead alone; with
// WithStaleWhileRevalidate its size is the bound.
const seenCap = 10_000

// seen remembers, in this process, the deadlines of keys the Map wrote or
// read with their TTL, and the values GetOrLoad read or loaded, least
// recently used out first. It serves two options: WithRefreshAhead, whose
// hit on a key known to be far from its deadline is a plain Get (no TTL to
// read), and WithStaleWhileRevalidate, which serves a remembered value for
// a grace period after its deadline. A nil *seen remembers nothing.
//
// One rule keeps it true: every write, delete, expiry change or clear
// through the Map, and every change report of the store, forgets the keys
// it touches before and after, and a read or write that raced one records
// nothing. A recording takes a ticket before its I/O (begin) and records
// only if the ticket is still the key's pending one afterwards; forget
// voids the tickets of its keys, purge every ticket.
type seen[V any] struct {
	grace time.Duration // 0: nothing is served stale

	mu      sync.Mutex
	c       *simplelru.LRU[string, seenEntry[V]]
	pending map[string]uint64 // key -> the ticket that may record it
	ticket  uint64
	// watched: the store reports changes, and stale values are served only
	// while its reports are live (a key deleted or written by another
	// process before its deadline is then forgotten, never served).
	watched bool
	live    bool
	// own counts, by key, the writes of this Map whose change reports have
	// not arrived yet: a report of one of them is not another client's
	// change (watched stores only).
	own map[string]int
}

type seenEntry[V any] struct {
	deadline time.Time // when the stored key expires
	v        V
	hasV     bool // v was read or loaded by GetOrLoad (a write records none)
}

func newSeen[V any](grace time.Duration, size int) (*seen[V], error) {
	c, err := simplelru.NewLRU[string, seenEntry[V]](size, nil)
	if err != nil {
		return nil, err
	}
	return &seen[V]{grace: grace, c: c, pending: map[string]uint64{}, own: map[string]int{}}, nil
}

// begin returns the ticket of a read or write of key about to start.
func (s *seen[V]) begin(key string) uint64 {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ticket++
	s.pending[key] = s.ticket
	return s.ticket
}

// end drops ticket t of key without recording anything.
func (s *seen[V]) end(t uint64, key string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.pending[key] == t {
		delete(s.pending, key)
	}
	s.mu.Unlock()
}

// record stores e under key if ticket t is still the key's.
func (s *seen[V]) record(t uint64, key string, e seenEntry[V]) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[key] != t {
		return
	}
	delete(s.pending, key)
	s.c.Add(key, e)
}

// wrote records that key, just written, expires at deadline; its value is
// not one to serve stale.
func (s *seen[V]) wrote(t uint64, key string, deadline time.Time) {
	s.record(t, key, seenEntry[V]{deadline: deadline})
}

// read records v, read or loaded, as the value of key, which expires at
// deadline.
func (s *seen[V]) read(t uint64, key string, v V, deadline time.Time) {
	s.record(t, key, seenEntry[V]{deadline: deadline, v: v, hasV: true})
}

// far returns the deadline of key when it is known and not before until.
func (s *seen[V]) far(key string, until time.Time) (time.Time, bool) {
	if s == nil {
		return time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.c.Get(key)
	if !ok || e.deadline.Before(until) {
		return time.Time{}, false
	}
	return e.deadline, true
}

// serve returns the value of key if its deadline has passed less than the
// grace period ago at now. A key missing before its deadline was deleted,
// not expired: it is not served, and forgotten. On a store that reports
// changes, nothing is served while its reports are not live.
func (s *seen[V]) serve(key string, now time.Time) (V, bool) {
	var zero V
	if s == nil || s.grace == 0 {
		return zero, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watched && !s.live {
		return zero, false
	}
	e, ok := s.c.Get(key)
	if !ok || !e.hasV {
		return zero, false
	}
	if now.Before(e.deadline) || !now.Before(e.deadline.Add(s.grace)) {
		s.c.Remove(key)
		return zero, false
	}
	return e.v, true
}

// forget drops what is remembered of keys, and voids the tickets of the
// reads and writes of them under way: the Map is writing or deleting them,
// or the store reported a change.
func (s *seen[V]) forget(keys ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.c.Remove(k)
		delete(s.pending, k)
	}
}

// reported applies the store's report that keys changed, at now: a key
// whose remembered deadline has passed is reported because it expired (its
// value stays, to be served stale); any other was written or deleted by
// some client before its deadline, and is forgotten. The tickets of reads
// and writes under way are voided either way.
func (s *seen[V]) reported(now time.Time, keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if n := s.own[k]; n > 0 {
			// The report of this Map's own write, recorded by that write.
			if n == 1 {
				delete(s.own, k)
			} else {
				s.own[k] = n - 1
			}
			continue
		}
		delete(s.pending, k)
		if e, ok := s.c.Peek(k); ok && now.Before(e.deadline) {
			s.c.Remove(k)
		}
	}
}

// writing counts writes of keys by this Map about to start, so that their
// change reports are not taken for another client's (watched stores only).
func (s *seen[V]) writing(keys ...string) {
	if s == nil || !s.watched {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.own[k]++
	}
}

// writeFailed forgets keys whose write by this Map failed: a report of it
// may or may not come, so none is expected and nothing is kept.
func (s *seen[V]) writeFailed(keys ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.own, k)
		delete(s.pending, k)
		s.c.Remove(k)
	}
}

// purge drops everything and voids every ticket: the Map cleared its
// namespace, or the store's reports were lost.
func (s *seen[V]) purge() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked()
}

func (s *seen[V]) purgeLocked() {
	s.c.Purge()
	clear(s.pending)
	clear(s.own)
}

// setLive records whether the store's change reports are live; a change of
// state drops everything.
func (s *seen[V]) setLive(live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = live
	s.purgeLocked()
}

// startWatch starts the watch of the Map's namespace, for stale serving
// and lease waits, once, on the values of ctx but not its cancellation; Close stops it. A
// watch that cannot start leaves stale serving off; the next call tries
// again.
func (m *Map[V]) startWatch(ctx context.Context) {
	if m.watch == nil {
		return
	}
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	if m.watchStop != nil {
		return
	}
	m.bgMu.Lock()
	closed := m.closed
	m.bgMu.Unlock()
	if closed {
		return
	}
	stop, err := m.watch(context.WithoutCancel(ctx), "", m.changed)
	if err != nil {
		m.warn(ctx, "watching the namespace for stale serving failed; nothing is served stale", err)
		return
	}
	m.watchStop = stop
}

// changed applies a change report of the store: to what stale serving
// remembers, and to the lease waits it wakes.
func (m *Map[V]) changed(ch backend.Change) {
	switch ch.Kind {
	case backend.ChangeKeys:
		m.wakers.wake(false, ch.Keys...)
		if m.seen != nil {
			m.seen.reported(m.clock.Now(), ch.Keys...)
		}
	case backend.ChangeAll:
		m.wakers.wake(true)
		m.seen.purge()
	case backend.ChangeLost:
		m.wakers.wake(true)
		if m.seen != nil {
			m.seen.setLive(false)
		}
	case backend.ChangeLive:
		if m.seen != nil {
			m.seen.setLive(true)
		}
	}
}

// stopWatch stops the watch of startWatch; no report arrives after it
// returns.
func (m *Map[V]) stopWatch() {
	m.watchMu.Lock()
	stop := m.watchStop
	m.watchStop = func() {} // never started again
	m.watchMu.Unlock()
	if stop != nil {
		stop()
	}
}
