// Package namespace provides a [backend.Backend] decorator that keeps one
// namespace's keys apart from every other's by storing key k of namespace ns
// as "ns:k", byte for byte the format of backtest-kit's BaseMap, so data is
// shared with BaseMap services.
//
// A namespace is non-empty and holds no ":". Without that rule namespace "a"
// with key "b:x" and namespace "a:b" with key "x" would be the same stored key,
// and a scan of "a" would list "a:b"'s keys. Keys may hold any bytes, ":"
// included; an empty key is refused with [backend.ErrEmptyKey].
//
// Application code gets this layer from kv.New; use the package directly only
// to build a stack of decorators by hand.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kvmap/kv/backend"
)

// Separator is the byte between a namespace and a key in a stored key.
const Separator = ":"

var (
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Optimizer = (*Backend)(nil)
)

// Backend is a backend.Backend that stores its keys under a namespace of
// another Backend. Keys it takes and returns are those of the namespace,
// without the prefix.
type Backend struct {
	next   backend.Backend
	ns     string
	prefix string // ns + Separator; empty when next is the store's own view
	opt    backend.Optimizations
}

// Validate returns an error wrapping backend.ErrInvalidNamespace unless ns is
// a valid namespace: non-empty and free of Separator (backend.CheckNamespace).
func Validate(ns string) error { return backend.CheckNamespace(ns, "") }

// New returns next seen through namespace ns. It fails with an error wrapping
// backend.ErrInvalidNamespace when ns is not valid (see Validate), or holds a
// character the store reserves (Description.ReservedInNamespace).
//
// When next has a native view of namespaces (Optimizations.Namespace: a
// bbolt bucket), the Backend works on that view and adds no prefix;
// otherwise it stores key k as "ns:k" in next. The stored keys are the same
// either way.
func New(next backend.Backend, ns string) (*Backend, error) {
	if err := backend.CheckNamespace(ns, next.Describe().ReservedInNamespace); err != nil {
		return nil, err
	}
	b := &Backend{next: next, ns: ns, prefix: ns + Separator}
	if view := backend.OptimizationsOf(next).Namespace; view != nil {
		v, err := view(ns)
		if err != nil {
			return nil, err
		}
		b.next, b.prefix = v, ""
	}
	b.opt = b.forward(backend.OptimizationsOf(b.next))
	return b, nil
}

// Namespace returns the namespace.
func (b *Backend) Namespace() string { return b.ns }

// Unwrap returns the Backend that b decorates: the store's view of the
// namespace when the store has one.
func (b *Backend) Unwrap() backend.Backend { return b.next }

// Key returns the stored key of key k: the namespace, Separator, then k.
func (b *Backend) Key(k string) string { return b.ns + Separator + k }

func (b *Backend) keys(keys []string) ([]string, error) {
	if b.prefix == "" { // the store's own view: keys go down as they are
		if err := backend.CheckKeys(keys); err != nil {
			return nil, err
		}
		return keys, nil
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("key %d: %w", i, backend.ErrEmptyKey)
		}
		out[i] = b.prefix + k
	}
	return out, nil
}

// MGet implements backend.Backend.MGet.
func (b *Backend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	stored, err := b.keys(keys)
	if err != nil {
		return nil, err
	}
	return b.next.MGet(ctx, stored, withTTL)
}

// MSet implements backend.Backend.MSet. Every key is checked before anything
// is written.
func (b *Backend) MSet(ctx context.Context, entries []backend.Entry) error {
	if b.prefix == "" { // the store's own view: entries go down as they are
		for i, e := range entries {
			if e.Key == "" {
				return fmt.Errorf("entry %d: %w", i, backend.ErrEmptyKey)
			}
		}
		return b.next.MSet(ctx, entries)
	}
	stored := make([]backend.Entry, len(entries))
	for i, e := range entries {
		if e.Key == "" {
			return fmt.Errorf("entry %d: %w", i, backend.ErrEmptyKey)
		}
		e.Key = b.prefix + e.Key
		stored[i] = e
	}
	return b.unprefix(b.next.MSet(ctx, stored))
}

// unprefix returns err with the keys of a *backend.BatchError given back
// without the namespace, as the caller named them.
func (b *Backend) unprefix(err error) error {
	var be *backend.BatchError
	if b.prefix == "" || !errors.As(err, &be) {
		return err
	}
	return be.MapKeys(func(k string) string { return strings.TrimPrefix(k, b.prefix) })
}

// Get implements backend.Backend.Get.
func (b *Backend) Get(ctx context.Context, key string) (backend.Value, error) {
	if key == "" {
		return backend.Value{}, backend.ErrEmptyKey
	}
	return b.next.Get(ctx, b.prefix+key)
}

// Delete implements backend.Backend.Delete.
func (b *Backend) Delete(ctx context.Context, keys []string) error {
	stored, err := b.keys(keys)
	if err != nil {
		return err
	}
	return b.unprefix(b.next.Delete(ctx, stored))
}

// Expire implements backend.Backend.Expire.
func (b *Backend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if key == "" {
		return false, backend.ErrEmptyKey
	}
	return b.next.Expire(ctx, b.prefix+key, ttl)
}

// TTL implements backend.Backend.TTL.
func (b *Backend) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	if key == "" {
		return 0, false, backend.ErrEmptyKey
	}
	return b.next.TTL(ctx, b.prefix+key)
}

// Scan implements backend.Backend.Scan, returning keys without the namespace.
// A key the wrapped Backend returns outside the namespace is dropped, so a
// faulty store cannot leak another namespace's keys.
func (b *Backend) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	page, err := b.next.Scan(ctx, b.prefix+prefix, cursor, count)
	if err != nil {
		return backend.Page{}, err
	}
	keys := page.Keys[:0]
	for _, k := range page.Keys {
		if rest, ok := strings.CutPrefix(k, b.prefix); ok && strings.HasPrefix(rest, prefix) {
			keys = append(keys, rest)
		}
	}
	page.Keys = keys
	return page, nil
}

// Describe implements backend.Backend.Describe with the wrapped Backend's
// description.
func (b *Backend) Describe() backend.Description { return b.next.Describe() }

// Optimizations implements backend.Optimizer: those of the wrapped Backend,
// under the namespace's prefix. A namespace offers no views of its own.
func (b *Backend) Optimizations() backend.Optimizations { return b.opt }

func (b *Backend) forward(o backend.Optimizations) backend.Optimizations {
	var out backend.Optimizations
	if f := o.DeletePrefix; f != nil {
		out.DeletePrefix = func(ctx context.Context, prefix string, count int) error {
			return f(ctx, b.prefix+prefix, count)
		}
	}
	if f := o.CountPrefix; f != nil {
		out.CountPrefix = func(ctx context.Context, prefix string, count int) (int, error) {
			return f(ctx, b.prefix+prefix, count)
		}
	}
	if f := o.ScanEntries; f != nil {
		out.ScanEntries = func(ctx context.Context, prefix, cursor string, count int) (backend.EntryPage, error) {
			page, err := f(ctx, b.prefix+prefix, cursor, count)
			if err != nil {
				return backend.EntryPage{}, err
			}
			keys, vals := page.Keys[:0], page.Values[:0]
			for i, k := range page.Keys {
				if rest, ok := strings.CutPrefix(k, b.prefix); ok && strings.HasPrefix(rest, prefix) {
					keys = append(keys, rest)
					vals = append(vals, page.Values[i])
				}
			}
			page.Keys, page.Values = keys, vals
			return page, nil
		}
	}
	if f := o.Watch; f != nil {
		out.Watch = func(ctx context.Context, prefix string, report func(backend.Change)) (func(), error) {
			return f(ctx, b.prefix+prefix, func(c backend.Change) {
				if c.Kind == backend.ChangeKeys {
					keys := c.Keys[:0]
					for _, k := range c.Keys {
						if rest, ok := strings.CutPrefix(k, b.prefix); ok {
							keys = append(keys, rest)
						}
					}
					if len(keys) == 0 {
						return
					}
					c.Keys = keys
				}
				report(c)
			})
		}
	}
	if f := o.AcquireLeases; f != nil {
		out.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
			if err := backend.CheckKeys(keys); err != nil {
				return nil, nil, err
			}
			full := make([]string, len(keys))
			for i, k := range keys {
				full[i] = b.prefix + k
			}
			held, l, err := f(ctx, full, ttl)
			if l != nil && b.prefix != "" {
				l = &lease{Lease: l, b: b}
			}
			return held, l, err
		}
	}
	return out
}

// lease is a backend.Lease of the wrapped Backend, whose Store takes keys of
// the namespace.
type lease struct {
	backend.Lease
	b *Backend
}

// Store implements backend.Lease.Store: the entries' keys go down under the
// namespace, and the keys of a *backend.BatchError come back without it.
func (l *lease) Store(ctx context.Context, entries []backend.GuardedEntry) ([]bool, error) {
	stored := make([]backend.GuardedEntry, len(entries))
	for i, e := range entries {
		if e.Key == "" {
			return nil, fmt.Errorf("entry %d: %w", i, backend.ErrEmptyKey)
		}
		e.Key = l.b.prefix + e.Key
		stored[i] = e
	}
	ok, err := l.Lease.Store(ctx, stored)
	return ok, l.b.unprefix(err)
}

// Close implements backend.Backend.Close by closing the wrapped Backend.
func (b *Backend) Close() error { return b.next.Close() }
