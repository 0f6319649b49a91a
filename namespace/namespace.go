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
// without the prefix. Its Wrapper's Backend is the Backend it decorates: the
// store's view of the namespace when the store has one.
type Backend struct {
	backend.Wrapper
	ns     string
	prefix string // ns + Separator; empty when Backend is the store's own view
}

// Validate returns an error wrapping backend.ErrInvalidNamespace unless ns is
// a valid namespace: non-empty and free of Separator (backend.CheckNamespace).
func Validate(ns string) error { return backend.CheckNamespace(ns, "") }

// New returns next seen through namespace ns. It fails with an error wrapping
// backend.ErrInvalidNamespace when ns is not valid (see Validate), or holds a
// character the store reserves (Description.ReservedInNamespace).
//
// When next has a native view of namespaces (Capabilities.Namespace: a
// bbolt bucket), the Backend works on that view and adds no prefix;
// otherwise it stores key k as "ns:k" in next. The stored keys are the same
// either way.
func New(next backend.Backend, ns string) (*Backend, error) {
	if err := backend.CheckNamespace(ns, next.Describe().ReservedInNamespace); err != nil {
		return nil, err
	}
	b := &Backend{Wrapper: backend.Wrapper{Backend: next}, ns: ns, prefix: ns + Separator}
	if view := backend.CapabilitiesOf(next).Namespace; view != nil {
		v, err := view(ns)
		if err != nil {
			return nil, err
		}
		b.Backend, b.prefix = v, ""
	}
	return b, nil
}

// Namespace returns the namespace.
func (b *Backend) Namespace() string { return b.ns }

// Key returns the stored key of key k: the namespace, Separator, then k.
func (b *Backend) Key(k string) string { return b.ns + Separator + k }

// MGet implements backend.Backend.MGet.
func (b *Backend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	stored, err := backend.PrefixKeys(b.prefix, keys)
	if err != nil {
		return nil, err
	}
	return b.Backend.MGet(ctx, stored, withTTL)
}

// MSet implements backend.Backend.MSet. Every key is checked before anything
// is written.
func (b *Backend) MSet(ctx context.Context, entries []backend.Entry) error {
	stored, err := backend.Prefixed(b.prefix, entries, func(e *backend.Entry) *string { return &e.Key })
	if err != nil {
		return err
	}
	return backend.TrimKeys(b.Backend.MSet(ctx, stored), b.prefix)
}

// Get implements backend.Backend.Get.
func (b *Backend) Get(ctx context.Context, key string) (backend.Value, error) {
	if key == "" {
		return backend.Value{}, backend.ErrEmptyKey
	}
	return b.Backend.Get(ctx, b.prefix+key)
}

// Delete implements backend.Backend.Delete.
func (b *Backend) Delete(ctx context.Context, keys []string) error {
	stored, err := backend.PrefixKeys(b.prefix, keys)
	if err != nil {
		return err
	}
	return backend.TrimKeys(b.Backend.Delete(ctx, stored), b.prefix)
}

// Expire implements backend.Backend.Expire.
func (b *Backend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if key == "" {
		return false, backend.ErrEmptyKey
	}
	return b.Backend.Expire(ctx, b.prefix+key, ttl)
}

// TTL implements backend.Backend.TTL.
func (b *Backend) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	if key == "" {
		return 0, false, backend.ErrEmptyKey
	}
	return b.Backend.TTL(ctx, b.prefix+key)
}

// Scan implements backend.Backend.Scan, returning keys without the namespace.
// A key the wrapped Backend returns outside the namespace is dropped, so a
// faulty store cannot leak another namespace's keys.
func (b *Backend) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	page, err := b.Backend.Scan(ctx, b.prefix+prefix, cursor, count)
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

// Capabilities implements backend.Capable: those of the wrapped Backend,
// under the namespace's prefix (backend.PrefixCapabilities). A namespace
// offers no views of its own.
func (b *Backend) Capabilities() backend.Capabilities {
	return backend.PrefixCapabilities(backend.CapabilitiesOf(b.Backend), b.prefix)
}

// Optimizations implements backend.Optimizer: those of the wrapped Backend,
// under the namespace's prefix (backend.PrefixOptimizations).
func (b *Backend) Optimizations() backend.Optimizations {
	return backend.PrefixOptimizations(backend.OptimizationsOf(b.Backend), b.prefix)
}
