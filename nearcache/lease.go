package nearcache

import (
	"context"
	"time"

	"github.com/kvmap/kv/backend"
)

// acquireLeases returns the store's AcquireLeases (nil when it has none)
// with leases whose Store removes the keys from the cache before and after
// the write, as MSet does: a read that follows a load's store sees it, and a
// fetch that raced it never stores what it read.
func (c *Backend) acquireLeases(f func(context.Context, []string, time.Duration) ([]bool, backend.Lease, error)) func(context.Context, []string, time.Duration) ([]bool, backend.Lease, error) {
	if f == nil {
		return nil
	}
	return func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
		held, l, err := f(ctx, keys, ttl)
		if l != nil {
			l = &lease{Lease: l, c: c}
		}
		return held, l, err
	}
}

// lease is a backend.Lease of the store seen through the cache.
type lease struct {
	backend.Lease
	c *Backend
}

// Store implements backend.Lease.Store, forgetting the keys before and
// after the write.
func (l *lease) Store(ctx context.Context, entries []backend.GuardedEntry) ([]bool, error) {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	l.c.forget(keys...)
	defer l.c.forget(keys...)
	return l.Lease.Store(ctx, entries)
}
