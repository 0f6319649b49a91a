package kv

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
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
type seen[V any] struct {
	grace time.Duration // 0: nothing is served stale
	c     *lru.Cache[string, seenEntry[V]]
}

type seenEntry[V any] struct {
	deadline time.Time // when the stored key expires
	v        V
	hasV     bool // v was read or loaded by GetOrLoad (a write records none)
}

func newSeen[V any](grace time.Duration, size int) (*seen[V], error) {
	c, err := lru.New[string, seenEntry[V]](size)
	if err != nil {
		return nil, err
	}
	return &seen[V]{grace: grace, c: c}, nil
}

// wrote records that key, just written, expires at deadline; its value is
// not one to serve stale.
func (s *seen[V]) wrote(key string, deadline time.Time) {
	if s != nil {
		s.c.Add(key, seenEntry[V]{deadline: deadline})
	}
}

// read records v as the value of key, which expires at deadline.
func (s *seen[V]) read(key string, v V, deadline time.Time) {
	if s != nil {
		s.c.Add(key, seenEntry[V]{deadline: deadline, v: v, hasV: true})
	}
}

// loaded attaches v, just loaded and written, to the deadline its write
// recorded.
func (s *seen[V]) loaded(key string, v V) {
	if s == nil {
		return
	}
	if e, ok := s.c.Peek(key); ok {
		e.v, e.hasV = v, true
		s.c.Add(key, e)
	}
}

// far returns the deadline of key when it is known and not before until.
func (s *seen[V]) far(key string, until time.Time) (time.Time, bool) {
	if s == nil {
		return time.Time{}, false
	}
	e, ok := s.c.Get(key)
	if !ok || e.deadline.Before(until) {
		return time.Time{}, false
	}
	return e.deadline, true
}

// serve returns the value of key if its deadline has passed less than the
// grace period ago at now. A key missing before its deadline was deleted,
// not expired: it is not served, and forgotten.
func (s *seen[V]) serve(key string, now time.Time) (V, bool) {
	var zero V
	if s == nil || s.grace == 0 {
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

// forget drops what is remembered of keys: the Map is writing or deleting
// them.
func (s *seen[V]) forget(keys ...string) {
	if s != nil {
		for _, k := range keys {
			s.c.Remove(k)
		}
	}
}

// purge drops everything: the Map cleared its namespace.
func (s *seen[V]) purge() {
	if s != nil {
		s.c.Purge()
	}
}
