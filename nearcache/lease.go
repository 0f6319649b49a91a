package nearcache

import (
	"context"
	"time"

	"github.com/kvmap/kv/backend"
)

// Capabilities implements backend.Capable: the wrapped store's, with a
// SetIf and leases whose Store remove the keys from the cache before and
// after the write, as MSet does (a read that follows sees the write, and a
// fetch that raced it never stores what it read); no watch of its own to offer
// (a watch is taken below the cache) and no namespace views (which would
// bypass it).
func (c *Backend) Capabilities() backend.Capabilities {
	caps := c.Wrapper.Capabilities()
	caps.Watch, caps.Namespace = nil, nil
	if f := caps.SetIf; f != nil {
		caps.SetIf = func(ctx context.Context, e backend.GuardedEntry) (bool, error) {
			c.forget(e.Key)
			defer c.forget(e.Key)
			return f(ctx, e)
		}
	}
	if f := caps.AcquireLeases; f != nil {
		caps.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
			held, l, err := f(ctx, keys, ttl)
			if l != nil {
				l = &lease{Lease: l, c: c}
			}
			return held, l, err
		}
	}
	return caps
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
