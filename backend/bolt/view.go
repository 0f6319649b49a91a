package bolt

import (
	"context"
	"time"

	"github.com/kvmap/kv/backend"
)

var (
	_ backend.Backend   = (*view)(nil)
	_ backend.Optimizer = (*view)(nil)
	_ backend.Capable   = (*view)(nil)
)

// namespace is Capabilities.Namespace: a view of the bucket of namespace
// ns, whose key k is the Backend's key "ns:k". The namespace layer of a
// kv.Map works on it, so a key is neither prefixed nor split on its way to
// the bucket.
func (b *Backend) namespace(ns string) (backend.Backend, error) {
	if err := backend.CheckNamespace(ns, ""); err != nil {
		return nil, err
	}
	return &view{b: b, ns: ns, prefix: ns + ":", at: func(k string) loc { return loc{ns: ns, key: k} }}, nil
}

// view is the Backend of one namespace's bucket.
type view struct {
	b      *Backend
	ns     string
	prefix string // ns + ":", for the calls served by the flat key space
	at     func(string) loc
}

// MGet implements backend.Backend.MGet.
func (v *view) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	return v.b.mget(ctx, keys, withTTL, v.at)
}

// Get implements backend.Backend.Get.Get.
func (v *view) Get(ctx context.Context, key string) (backend.Value, error) {
	return v.b.get(ctx, key, v.at)
}

// MSet implements backend.Backend.MSet.
func (v *view) MSet(ctx context.Context, entries []backend.Entry) error {
	return v.b.mset(ctx, entries, v.at)
}

// Delete implements backend.Backend.Delete.
func (v *view) Delete(ctx context.Context, keys []string) error {
	return v.b.del(ctx, keys, v.at)
}

// Expire implements backend.Backend.Expire.
func (v *view) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return v.b.expire(ctx, key, ttl, v.at)
}

// TTL implements backend.Backend.TTL.
func (v *view) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	return v.b.ttl(ctx, key, v.at)
}

// strip removes the namespace from the flat keys of a page, in place.
func (v *view) strip(keys []string) []string {
	for i, k := range keys {
		keys[i] = k[len(v.prefix):]
	}
	return keys
}

// Scan implements backend.Backend.Scan.
func (v *view) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	page, err := v.b.Scan(ctx, v.prefix+prefix, cursor, count)
	page.Keys = v.strip(page.Keys)
	return page, err
}

// Describe implements backend.Backend.Describe.
func (v *view) Describe() backend.Description { return v.b.Describe() }

// Optimizations implements backend.Optimizer: the store's, on the bucket.
func (v *view) Optimizations() backend.Optimizations {
	return backend.PrefixOptimizations(v.b.Optimizations(), v.prefix)
}

// Capabilities implements backend.Capable: the Backend's leases of "ns:k"
// (lease.go), and conditional writes in the bucket.
func (v *view) Capabilities() backend.Capabilities {
	return backend.Capabilities{AcquireLeases: v.acquireLeases, SetIf: v.setIf}
}

// setIf implements backend.Capabilities.SetIf in the bucket.
func (v *view) setIf(ctx context.Context, e backend.GuardedEntry) (bool, error) {
	return v.b.setIf(ctx, e, v.at)
}

// Close implements backend.Backend.Close, closing the whole store.
func (v *view) Close() error { return v.b.Close() }
