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
	"context"
	"fmt"
	"time"

	"github.com/kvmap/kv/backend"
)

var (
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Optimizer = (*Backend)(nil)
)

// Backend is a backend.Backend that fills in a default TTL.
type Backend struct {
	next backend.Backend
	def  time.Duration
	opt  backend.Optimizations
}

// New returns next with writes whose TTL is 0 given def. def must be positive
// or backend.NoTTL; otherwise New fails with an error wrapping
// backend.ErrInvalidTTL.
func New(next backend.Backend, def time.Duration) (*Backend, error) {
	d, err := backend.CheckTTL(def)
	if err != nil {
		return nil, fmt.Errorf("default TTL: %w", err)
	}
	b := &Backend{next: next, def: d}
	b.opt = b.forward(backend.OptimizationsOf(next))
	return b, nil
}

// Default returns the default TTL.
func (b *Backend) Default() time.Duration { return b.def }

// Unwrap returns the Backend that b decorates.
func (b *Backend) Unwrap() backend.Backend { return b.next }

// MSet implements backend.Backend.MSet: an entry with TTL 0 gets the default.
// Every entry is checked before anything is written.
func (b *Backend) MSet(ctx context.Context, entries []backend.Entry) error {
	out := make([]backend.Entry, len(entries))
	for i, e := range entries {
		if e.TTL == 0 {
			e.TTL = b.def
		}
		ttl, err := backend.CheckTTL(e.TTL)
		if err != nil {
			return fmt.Errorf("entry %d (key %s): %w", i, backend.QuoteKey(e.Key), err)
		}
		e.TTL = ttl
		out[i] = e
	}
	return b.next.MSet(ctx, out)
}

// Expire implements backend.Backend.Expire; ttl must be positive or NoTTL.
func (b *Backend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ttl, err := backend.CheckTTL(ttl)
	if err != nil {
		return false, err
	}
	return b.next.Expire(ctx, key, ttl)
}

// MGet implements backend.Backend.MGet.
func (b *Backend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	return b.next.MGet(ctx, keys, withTTL)
}

// Get implements backend.Backend.Get.
func (b *Backend) Get(ctx context.Context, key string) (backend.Value, error) {
	return b.next.Get(ctx, key)
}

// Delete implements backend.Backend.Delete.
func (b *Backend) Delete(ctx context.Context, keys []string) error {
	return b.next.Delete(ctx, keys)
}

// TTL implements backend.Backend.TTL.
func (b *Backend) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	return b.next.TTL(ctx, key)
}

// Scan implements backend.Backend.Scan.
func (b *Backend) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	return b.next.Scan(ctx, prefix, cursor, count)
}

// Describe implements backend.Backend.Describe with the wrapped Backend's
// description.
func (b *Backend) Describe() backend.Description { return b.next.Describe() }

// Optimizations implements backend.Optimizer: those of the wrapped Backend,
// which take the same keys, its leases storing with the default TTL, and
// its namespace views given the same default TTL.
func (b *Backend) Optimizations() backend.Optimizations { return b.opt }

func (b *Backend) forward(o backend.Optimizations) backend.Optimizations {
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
	out := make([]backend.GuardedEntry, len(entries))
	for i, e := range entries {
		if e.TTL == 0 {
			e.TTL = l.b.def
		}
		ttl, err := backend.CheckTTL(e.TTL)
		if err != nil {
			return nil, fmt.Errorf("entry %d (key %s): %w", i, backend.QuoteKey(e.Key), err)
		}
		e.TTL = ttl
		out[i] = e
	}
	return l.Lease.Store(ctx, out)
}

// Close implements backend.Backend.Close by closing the wrapped Backend.
func (b *Backend) Close() error { return b.next.Close() }
