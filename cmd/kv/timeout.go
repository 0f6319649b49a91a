package main

import (
	"context"
	"time"

	"github.com/kvmap/kv/backend"
)

// DefaultTimeout is how long one store round trip (a key, a page, a batch)
// may take before the command fails, unless --timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// timeoutBackend bounds every call to the store it wraps by its own
// deadline: --timeout bounds each round trip, never a whole command, so an
// export or a clear of a large namespace goes on as long as it makes
// progress, while a server that accepts connections and never answers fails
// the command after one timeout.
type timeoutBackend struct {
	backend.Wrapper
	d time.Duration
}

var (
	_ backend.Backend   = timeoutBackend{}
	_ backend.Optimizer = timeoutBackend{}
	_ backend.Capable   = timeoutBackend{}
)

func (t timeoutBackend) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.d)
}

func (t timeoutBackend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Backend.MGet(ctx, keys, withTTL)
}

func (t timeoutBackend) Get(ctx context.Context, key string) (backend.Value, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Backend.Get(ctx, key)
}

func (t timeoutBackend) MSet(ctx context.Context, entries []backend.Entry) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Backend.MSet(ctx, entries)
}

func (t timeoutBackend) Delete(ctx context.Context, keys []string) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Backend.Delete(ctx, keys)
}

func (t timeoutBackend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Backend.Expire(ctx, key, ttl)
}

func (t timeoutBackend) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Backend.TTL(ctx, key)
}

func (t timeoutBackend) Scan(ctx context.Context, prefix, cursor string, pageSize int) (backend.Page, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Backend.Scan(ctx, prefix, cursor, pageSize)
}

// Optimizations forwards the store's: each page of ScanEntries under its
// own deadline. A remote store's DeletePrefix and CountPrefix walk a whole
// namespace in one call, which no per-round-trip deadline can bound: they
// are left to their fallbacks, page by page, each page bounded. An
// in-process store's (one bbolt transaction) are kept.
func (t timeoutBackend) Optimizations() backend.Optimizations {
	o := backend.OptimizationsOf(t.Backend)
	out := backend.Optimizations{}
	if !t.Backend.Describe().Remote {
		out.DeletePrefix, out.CountPrefix = o.DeletePrefix, o.CountPrefix
	}
	if f := o.ScanEntries; f != nil {
		out.ScanEntries = func(ctx context.Context, prefix, cursor string, pageSize int) (backend.EntryPage, error) {
			ctx, cancel := t.ctx(ctx)
			defer cancel()
			return f(ctx, prefix, cursor, pageSize)
		}
	}
	return out
}

// Capabilities forwards the store's: AcquireLeases and SetIf under their
// own deadline, namespace views bounded the same way; a watch runs until
// stopped, so no per-call deadline applies to it.
func (t timeoutBackend) Capabilities() backend.Capabilities {
	c := t.Wrapper.Capabilities()
	if f := c.AcquireLeases; f != nil {
		c.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
			ctx, cancel := t.ctx(ctx)
			defer cancel()
			return f(ctx, keys, ttl)
		}
	}
	if f := c.SetIf; f != nil {
		c.SetIf = func(ctx context.Context, e backend.GuardedEntry) (bool, error) {
			ctx, cancel := t.ctx(ctx)
			defer cancel()
			return f(ctx, e)
		}
	}
	if f := c.Namespace; f != nil {
		c.Namespace = func(ns string) (backend.Backend, error) {
			view, err := f(ns)
			if err != nil {
				return nil, err
			}
			return timeoutBackend{Wrapper: backend.Wrapper{Backend: view}, d: t.d}, nil
		}
	}
	return c
}
