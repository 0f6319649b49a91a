package kv

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// staleSet remembers, in this process, the values GetOrLoad read or loaded
// with their deadlines, to serve one for a grace period after its deadline
// (WithStaleWhileRevalidate). A nil *staleSet remembers nothing.
type staleSet[V any] struct {
	grace time.Duration
	c     *lru.Cache[string, staleEntry[V]]
}

type staleEntry[V any] struct {
	v        V
	deadline time.Time // when the stored key expires
}

func newStaleSet[V any](grace time.Duration, size int) (*staleSet[V], error) {
	c, err := lru.New[string, staleEntry[V]](size)
	if err != nil {
		return nil, err
	}
	return &staleSet[V]{grace: grace, c: c}, nil
}

// remember records v as the value of key until deadline.
func (s *staleSet[V]) remember(key string, v V, deadline time.Time) {
	if s != nil {
		s.c.Add(key, staleEntry[V]{v: v, deadline: deadline})
	}
}

// serve returns the value of key if its deadline has passed less than the
// grace period ago at now. A key missing before its deadline was deleted,
// not expired: it is not served, and forgotten.
func (s *staleSet[V]) serve(key string, now time.Time) (V, bool) {
	var zero V
	if s == nil {
		return zero, false
	}
	e, ok := s.c.Get(key)
	if !ok {
		return zero, false
	}
	if now.Before(e.deadline) || !now.Before(e.deadline.Add(s.grace)) {
		s.c.Remove(key)
		return zero, false
	}
	return e.v, true
}

// forget drops what is remembered of keys: the Map wrote or deleted them.
func (s *staleSet[V]) forget(keys ...string) {
	if s != nil {
		for _, k := range keys {
			s.c.Remove(k)
		}
	}
}

// purge drops everything: the Map cleared its namespace.
func (s *staleSet[V]) purge() {
	if s != nil {
		s.c.Purge()
	}
}
