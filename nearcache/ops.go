package nearcache

import (
	"context"
	"strings"
	"time"

	"github.com/kvmap/kv/backend"
)

// cached splits keys into those under the prefix (mine, to fetch through
// the tier) and the others.
func (c *Backend) mine(key string) bool { return strings.HasPrefix(key, c.prefix) }

// Get implements backend.Backend.Get: from the cache when it holds key, and
// otherwise from the store, value and TTL in one round trip (a key that is
// not found is read again with Get, for its kind).
func (c *Backend) Get(ctx context.Context, key string) (backend.Value, error) {
	vals, err := c.MGet(ctx, []string{key}, false)
	if err != nil {
		return backend.Value{}, err
	}
	if !vals[0].Found && vals[0].OtherKind {
		return c.Backend.Get(ctx, key) // tells a key of another kind
	}
	return vals[0], nil
}

// MGet implements backend.Backend.MGet: the keys the cache holds from it,
// the others from the store in one call.
func (c *Backend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	c.start(ctx)
	out := make([]backend.Value, len(keys))
	var miss, fetch []string
	var idx []int
	for i, k := range keys {
		if !c.mine(k) {
			miss = append(miss, k)
			idx = append(idx, i)
			continue
		}
		if v, ttl, ok := c.t.Cached(k, false); ok {
			out[i] = backend.Value{Bytes: v, Found: true, Local: true}
			if withTTL {
				out[i].TTL = ttl
			}
			continue
		}
		miss, fetch = append(miss, k), append(fetch, k)
		idx = append(idx, i)
	}
	if len(miss) == 0 {
		return out, nil
	}
	r := c.t.Begin(fetch...)
	vals, err := c.Backend.MGet(ctx, miss, true)
	if err != nil {
		c.t.Abort(r, fetch)
		return nil, err
	}
	fv := make([]backend.Value, 0, len(fetch))
	for j, k := range miss {
		if c.mine(k) {
			fv = append(fv, vals[j])
		}
		out[idx[j]] = vals[j]
		if !withTTL {
			out[idx[j]].TTL = 0
		}
	}
	c.t.End(r, fetch, fv, false)
	return out, nil
}

// MSet implements backend.Backend.MSet, removing the keys from the cache
// before and after the write: a read that follows it sees it.
func (c *Backend) MSet(ctx context.Context, entries []backend.Entry) error {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	c.forget(keys...)
	defer c.forget(keys...)
	return c.Backend.MSet(ctx, entries)
}

// Delete implements backend.Backend.Delete, as MSet.
func (c *Backend) Delete(ctx context.Context, keys []string) error {
	c.forget(keys...)
	defer c.forget(keys...)
	return c.Backend.Delete(ctx, keys)
}

// Expire implements backend.Backend.Expire, as MSet.
func (c *Backend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	c.forget(key)
	defer c.forget(key)
	return c.Backend.Expire(ctx, key, ttl)
}
