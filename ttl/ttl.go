// Package ttl provides a [backend.Backend] decorator that gives every write
// without a TTL of its own the map's default TTL, the way BaseMap applies its
// ttlExpireSeconds on every set.
//
// The default is a positive duration or [backend.NoTTL] (the key never
// expires). An entry's TTL of 0 means "unset" and becomes the default; any
// other TTL is checked as every Backend checks it (positive or NoTTL, a
// positive TTL under one millisecond rounded up) before anything is written.
// Unlike BaseMap, a TTL of 0 or a negative TTL never deletes a key: it is
// refused with [backend.ErrInvalidTTL].
//
// Application code gets this layer from kv.New; use the package directly only
// to build a stack of decorators by hand.
package ttl

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kvmap/kv/backend"
)

var (
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Optimizer = (*Backend)(nil)
)

// Backend is a backend.Backend that fills in a default TTL. Its Wrapper's
// Backend is the Backend it decorates.
type Backend struct {
	backend.Wrapper
	def time.Duration
}

// New returns next with writes whose TTL is 0 given def. def must be positive
// or backend.NoTTL; otherwise New fails with an error wrapping
// backend.ErrInvalidTTL.
func New(next backend.Backend, def time.Duration) (*Backend, error) {
	d, err := backend.CheckTTL(def)
	if err != nil {
		return nil, fmt.Errorf("default TTL: %w", err)
	}
	return &Backend{Wrapper: backend.Wrapper{Backend: next}, def: d}, nil
}

// Default returns the default TTL.
func (b *Backend) Default() time.Duration { return b.def }

// MSet implements backend.Backend.MSet: an entry with TTL 0 gets the default.
// Every entry is checked before anything is written.
func (b *Backend) MSet(ctx context.Context, entries []backend.Entry) error {
	out, err := withDefault(b.def, entries, func(e *backend.Entry) *backend.Entry { return e })
	if err != nil {
		return err
	}
	return b.Backend.MSet(ctx, out)
}

// withDefault returns a copy of items whose entries (entry returns a
// pointer to each) have the default TTL def for a TTL of 0, every TTL
// checked and rounded as CheckTTL does.
func withDefault[E any](def time.Duration, items []E, entry func(*E) *backend.Entry) ([]E, error) {
	out := slices.Clone(items)
	for i := range out {
		e := entry(&out[i])
		ttl, err := backend.CheckTTL(cmp.Or(e.TTL, def))
		if err != nil {
			return nil, fmt.Errorf("entry %d (key %s): %w", i, backend.QuoteKey(e.Key), err)
		}
		e.TTL = ttl
	}
	return out, nil
}

// Expire implements backend.Backend.Expire; ttl must be positive or NoTTL.
func (b *Backend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ttl, err := backend.CheckTTL(ttl)
	if err != nil {
		return false, err
	}
	return b.Backend.Expire(ctx, key, ttl)
}

// Optimizations implements backend.Optimizer: those of the wrapped Backend,
// which take the same keys and write nothing.
func (b *Backend) Optimizations() backend.Optimizations { return backend.OptimizationsOf(b.Backend) }

// Capabilities implements backend.Capable: those of the wrapped Backend,
// its leases storing with the default TTL, and its namespace views given
// the same default TTL.
func (b *Backend) Capabilities() backend.Capabilities {
	o := b.Wrapper.Capabilities()
	if f := o.AcquireLeases; f != nil {
		o.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
			held, l, err := f(ctx, keys, ttl)
			if l != nil {
				l = &lease{Lease: l, b: b}
			}
			return held, l, err
		}
	}
	if ns := o.Namespace; ns != nil {
		o.Namespace = func(name string) (backend.Backend, error) {
			view, err := ns(name)
			if err != nil {
				return nil, err
			}
			return New(view, b.def)
		}
	}
	return o
}

// lease is a backend.Lease of the wrapped Backend whose Store gives the
// default TTL as MSet does.
type lease struct {
	backend.Lease
	b *Backend
}

// Store implements backend.Lease.Store: an entry with TTL 0 gets the
// default, and every TTL is checked before anything is written.
func (l *lease) Store(ctx context.Context, entries []backend.GuardedEntry) ([]bool, error) {
	out, err := withDefault(l.b.def, entries, func(e *backend.GuardedEntry) *backend.Entry { return &e.Entry })
	if err != nil {
		return nil, err
	}
	return l.Lease.Store(ctx, out)
}
