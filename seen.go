package kv

import (
	"bytes"
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
// Two rules keep it true. Every write, delete, expiry change or clear
// through the Map forgets the keys it touches before and after, and a read
// or write that raced one records nothing: a recording takes a ticket before
// its I/O (begin) and records only if the ticket is still the key's pending
// one afterwards. And a change report of the store for a key before its
// deadline (a write or delete by any client, this Map's own included: the
// two cannot be told apart, and Redis may report several writes of a key in
// one message) makes what is remembered of the key unverified, and a
// recording that raced the report records it unverified: an unverified
// value is never served stale, until the verifier has read the key again
// and found the same bytes (the report was of this Map's own write);
// otherwise it is forgotten.
type seen[V any] struct {
	grace time.Duration // 0: nothing is served stale

	mu      sync.Mutex
	c       *simplelru.LRU[string, seenEntry[V]]
	pending map[string]pendingRecord // key -> the recording under way
	ticket  uint64
	// watched: the store reports changes, and stale values are served only
	// while its reports are live.
	watched bool
	live    bool
	verify  map[string]bool // keys whose entries wait for the verifier
	// spawn starts the verifier, which runs while keys are queued; nil
	// until the Map's watch starts (an unverified value then stays so).
	spawn   func()
	running bool // the verifier runs
}

type pendingRecord struct {
	ticket  uint64
	tainted bool // a change report of the key came during the recording's I/O
}

type seenEntry[V any] struct {
	deadline   time.Time // when the stored key expires
	v          V
	raw        []byte // the stored bytes of v
	hasV       bool   // v was read or loaded by GetOrLoad (a write records none)
	unverified bool   // a change report came since: not to be served until verified
}

func newSeen[V any](grace time.Duration, size int) (*seen[V], error) {
	c, err := simplelru.NewLRU[string, seenEntry[V]](size, nil)
	if err != nil {
		return nil, err
	}
	return &seen[V]{grace: grace, c: c, pending: map[string]pendingRecord{}, verify: map[string]bool{}}, nil
}

// begin returns the ticket of a read or write of key about to start.
func (s *seen[V]) begin(key string) uint64 {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.beginLocked(key)
}

func (s *seen[V]) beginLocked(key string) uint64 {
	s.ticket++
	s.pending[key] = pendingRecord{ticket: s.ticket}
	return s.ticket
}

// end drops ticket t of key without recording anything.
func (s *seen[V]) end(t uint64, key string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.pending[key].ticket == t {
		delete(s.pending, key)
	}
	s.mu.Unlock()
}

// record stores e under key if ticket t is still the key's; unverified when
// a change report came during its I/O, and it then reports true: the caller
// verifies the key (Map.verify).
func (s *seen[V]) record(t uint64, key string, e seenEntry[V]) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[key]
	if !ok || p.ticket != t {
		return false
	}
	delete(s.pending, key)
	if p.tainted {
		if !e.hasV {
			s.c.Remove(key) // a deadline another client may have changed
			return false
		}
		e.unverified = true
	}
	s.c.Add(key, e)
	return p.tainted
}

// wrote records that key, just written, expires at deadline; its value is
// not one to serve stale.
func (s *seen[V]) wrote(t uint64, key string, deadline time.Time) {
	s.record(t, key, seenEntry[V]{deadline: deadline})
}

// read records v, read or loaded, as the value of key, stored as raw, which
// expires at deadline.
// It reports whether the key is to be verified (see record).
func (s *seen[V]) read(t uint64, key string, v V, raw []byte, deadline time.Time) bool {
	return s.record(t, key, seenEntry[V]{deadline: deadline, v: v, raw: raw, hasV: true})
}

// far returns the deadline of key when it is known (and verified) and not
// before until.
func (s *seen[V]) far(key string, until time.Time) (time.Time, bool) {
	if s == nil {
		return time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.c.Get(key)
	if !ok || e.unverified || e.deadline.Before(until) {
		return time.Time{}, false
	}
	return e.deadline, true
}

// serve returns the value of key if its deadline has passed less than the
// grace period ago at now. A key missing before its deadline was deleted,
// not expired: it is not served, and forgotten. On a store that reports
// changes, nothing is served while its reports are not live, and no value
// that a report made unverified.
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
	if !ok || !e.hasV || e.unverified {
		return zero, false
	}
	if now.Before(e.deadline) || !now.Before(e.deadline.Add(s.grace)) {
		s.c.Remove(key)
		return zero, false
	}
	return e.v, true
}

// forget drops what is remembered of keys, and voids the tickets of the
// reads and writes of them under way: the Map is writing or deleting them.
func (s *seen[V]) forget(keys ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.c.Remove(k)
		delete(s.pending, k)
		delete(s.verify, k)
	}
}

// reported applies the store's report that keys changed, at now. A key
// whose remembered deadline has passed is reported because it expired: its
// value stays, to be served stale. Any other was written or deleted by some
// client before its deadline: what is remembered of it becomes unverified,
// and so does what a recording under way records.
func (s *seen[V]) reported(now time.Time, keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if p, ok := s.pending[k]; ok {
			p.tainted = true
			s.pending[k] = p
		}
		e, ok := s.c.Peek(k)
		if !ok || !now.Before(e.deadline) {
			continue
		}
		if !e.hasV {
			s.c.Remove(k)
			continue
		}
		e.unverified = true
		s.c.Add(k, e)
		s.queueLocked(k)
	}
}

// queueLocked queues key for the verifier.
func (s *seen[V]) queueLocked(key string) {
	s.verify[key] = true
	if !s.running && s.spawn != nil {
		s.running = true
		s.spawn()
	}
}

// beginVerify returns tickets for reading keys again in the caller (a
// recording that a report raced).
func (s *seen[V]) beginVerify(keys []string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	tickets := make([]uint64, len(keys))
	for i, k := range keys {
		delete(s.verify, k)
		tickets[i] = s.beginLocked(k)
	}
	return tickets
}

// takeVerify returns the keys queued for the verifier, each with the ticket
// of its read; none, when the verifier is to end (nothing queued, or stop).
func (s *seen[V]) takeVerify(stop bool) ([]string, []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.verify) == 0 || stop {
		s.running = false
		return nil, nil
	}
	keys := make([]string, 0, len(s.verify))
	tickets := make([]uint64, 0, len(s.verify))
	for k := range s.verify {
		keys = append(keys, k)
		tickets = append(tickets, s.beginLocked(k))
	}
	clear(s.verify)
	return keys, tickets
}

// verified applies what the verifier read of keys at now: an unverified
// value whose key still holds the same bytes and deadline is verified; any
// other is forgotten. A key reported, written or deleted during the read is
// left to the next verification (or forgotten already).
func (s *seen[V]) verified(now time.Time, keys []string, tickets []uint64, vals []backend.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range keys {
		p, ok := s.pending[k]
		if !ok || p.ticket != tickets[i] {
			continue
		}
		delete(s.pending, k)
		if p.tainted {
			s.queueLocked(k) // reported again during the read
			continue
		}
		e, ok := s.c.Peek(k)
		if !ok || !e.unverified {
			continue
		}
		// Only a key that still holds the same bytes with the same deadline
		// is verified: a report comes before the deadline (see reported),
		// so a key gone since was deleted, or its expiry changed, even if
		// its deadline has passed by the time of this read.
		if vals != nil && vals[i].Found && vals[i].TTL != NoTTL && bytes.Equal(vals[i].Bytes, e.raw) &&
			absDuration(now.Add(vals[i].TTL).Sub(e.deadline)) <= deadlineSlack {
			e.unverified = false
			s.c.Add(k, e)
			continue
		}
		s.c.Remove(k)
	}
}

// deadlineSlack is how far the deadline the verifier reads may be from the
// one remembered for the same write: the two are measured on this process's
// clock at different moments, from TTLs read in whole milliseconds, a round
// trip apart. Another client's expiry change moves it further.
const deadlineSlack = 100 * time.Millisecond

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
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
	clear(s.verify)
}

// setLive records whether the store's change reports are live; a change of
// state drops everything.
func (s *seen[V]) setLive(live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = live
	s.purgeLocked()
}

// verify reads keys again, in the caller, and verifies or forgets what a
// recording that a change report raced recorded of them (on a store that
// reports changes from the writing call, as memory does, this Map's own
// write is reported during it).
func (m *Map[V]) verify(ctx context.Context, keys ...string) {
	if len(keys) == 0 {
		return
	}
	tickets := m.seen.beginVerify(keys)
	vals, err := m.under.MGet(ctx, keys, true)
	if err != nil {
		vals = nil // every key forgotten
	}
	m.seen.verified(m.clock.Now(), keys, tickets, vals)
}

// verifier reads again the keys whose remembered values a change report
// made unverified, while any are queued and ctx lasts. It reads below the
// near cache, whose own reports may come later than the Map's.
func (m *Map[V]) verifier(ctx context.Context) {
	for {
		keys, tickets := m.seen.takeVerify(ctx.Err() != nil)
		if keys == nil {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		vals, err := m.under.MGet(rctx, keys, true)
		cancel()
		if err != nil {
			vals = nil // every key forgotten
		}
		m.seen.verified(m.clock.Now(), keys, tickets, vals)
	}
}

// verifyTimeout bounds each read of the verifier, whose context is the
// watch's (values only, cancelled by Close): a stalled store makes it forget
// the keys, not wait.
const verifyTimeout = 5 * time.Second

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
	if m.seen != nil && m.seen.grace > 0 {
		vctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		m.seen.mu.Lock()
		m.seen.spawn = func() { wg.Go(func() { m.verifier(vctx) }) }
		m.seen.mu.Unlock()
		m.watchStop = func() {
			stop()
			cancel()
			wg.Wait()
		}
	}
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
