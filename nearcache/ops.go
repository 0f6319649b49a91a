package nearcache

import (
	"context"
	"strings"
	"time"

	"github.com/kvmap/kv/backend"
)

// lookup returns a copy of the cached value of key and its remaining TTL,
// if the cache is live, the store's reports are proved up to date within
// MaxLag, and the cache holds an unexpired, fresh enough value.
func (c *Backend) lookup(key string, now int64) ([]byte, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return nil, 0, false
	}
	if c.async && time.Since(c.synced) >= c.o.MaxLag {
		// A report of this key may be on its way: the store has not
		// proved within δ that none is. The entry stays, for when it has.
		c.stats.Unsynced++
		return nil, 0, false
	}
	e, ok := c.lru.Get(key)
	if !ok {
		c.stats.Misses++
		return nil, 0, false
	}
	stale := c.o.MaxStaleness > 0 && now-e.read >= int64(c.o.MaxStaleness)
	if (e.deadline != 0 && now >= e.deadline) || stale {
		c.lru.Remove(key)
		c.stats.Misses++
		return nil, 0, false
	}
	c.stats.Hits++
	ttl := backend.NoTTL
	if e.deadline != 0 {
		ttl = time.Duration(e.deadline - now)
	}
	return append([]byte(nil), e.val...), ttl, true
}

// fetch is a read of keys from the store that may fill the cache.
type fetch struct {
	epoch   uint64
	tickets []uint64 // per key; 0: not to be stored
	sent    int64    // Unix ns, before the request
}

// begin registers a fetch of keys.
func (c *Backend) begin(keys []string) fetch {
	f := fetch{tickets: make([]uint64, len(keys))}
	c.mu.Lock()
	defer c.mu.Unlock()
	f.epoch = c.epoch
	if !c.live {
		return f
	}
	for i, k := range keys {
		if strings.HasPrefix(k, c.prefix) {
			c.ticket++
			f.tickets[i] = c.ticket
			c.pending[k] = c.ticket
		}
	}
	f.sent = c.o.Clock.Now().UnixNano()
	return f
}

// end stores what a fetch read, unless a change report, a write through the
// cache or a loss of reports came in between, and forgets the fetch.
func (c *Backend) end(f fetch, keys []string, vals []backend.Value) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		t := f.tickets[i]
		if t == 0 || c.pending[k] != t {
			continue
		}
		delete(c.pending, k)
		if vals == nil || !vals[i].Found || !c.live || c.epoch != f.epoch || int64(len(vals[i].Bytes)) > c.o.MaxBytes/16 {
			continue
		}
		e := &entry{val: append([]byte(nil), vals[i].Bytes...), read: f.sent}
		if ttl := vals[i].TTL; ttl > 0 {
			// A TTL read in whole milliseconds (Redis's PTTL) may be up to
			// one over what remains: one is taken off, so that the cached
			// copy never outlives the stored key.
			if ttl <= time.Millisecond {
				continue
			}
			e.deadline = backend.Deadline(f.sent, ttl-time.Millisecond)
		}
		c.lru.Remove(k) // its bytes leave with it
		c.lru.Add(k, e)
		c.bytes += e.size(k)
		for c.bytes > c.o.MaxBytes {
			c.lru.RemoveOldest()
		}
	}
}

// Get implements backend.Backend.Get: from the cache when it holds key, and
// otherwise from the store, value and TTL in one round trip (a key that is
// not found is read again with Get, for its kind).
func (c *Backend) Get(ctx context.Context, key string) (backend.Value, error) {
	c.start(ctx)
	if v, _, ok := c.lookup(key, c.o.Clock.Now().UnixNano()); ok {
		return backend.Value{Bytes: v, Found: true, Local: true}, nil
	}
	keys := []string{key}
	f := c.begin(keys)
	vals, err := c.next.MGet(ctx, keys, true)
	if err != nil {
		c.end(f, keys, nil)
		return backend.Value{}, err
	}
	c.end(f, keys, vals)
	if !vals[0].Found {
		return c.next.Get(ctx, key)
	}
	return backend.Value{Bytes: vals[0].Bytes, Found: true}, nil
}

// MGet implements backend.Backend.MGet: the keys the cache holds from it,
// the others from the store in one call.
func (c *Backend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	c.start(ctx)
	out := make([]backend.Value, len(keys))
	now := c.o.Clock.Now().UnixNano()
	var miss []int
	for i, k := range keys {
		if v, ttl, ok := c.lookup(k, now); ok {
			out[i] = backend.Value{Bytes: v, Found: true, Local: true}
			if withTTL {
				out[i].TTL = ttl
			}
		} else {
			miss = append(miss, i)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	mk := make([]string, len(miss))
	for j, i := range miss {
		mk[j] = keys[i]
	}
	f := c.begin(mk)
	vals, err := c.next.MGet(ctx, mk, true)
	if err != nil {
		c.end(f, mk, nil)
		return nil, err
	}
	c.end(f, mk, vals)
	for j, i := range miss {
		out[i] = vals[j]
		if !withTTL {
			out[i].TTL = 0
		}
	}
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
	return c.next.MSet(ctx, entries)
}

// Delete implements backend.Backend.Delete, as MSet.
func (c *Backend) Delete(ctx context.Context, keys []string) error {
	c.forget(keys...)
	defer c.forget(keys...)
	return c.next.Delete(ctx, keys)
}

// Expire implements backend.Backend.Expire, as MSet.
func (c *Backend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	c.forget(key)
	defer c.forget(key)
	return c.next.Expire(ctx, key, ttl)
}

// TTL implements backend.Backend.TTL from the store.
func (c *Backend) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	return c.next.TTL(ctx, key)
}

// Scan implements backend.Backend.Scan from the store.
func (c *Backend) Scan(ctx context.Context, prefix, cursor string, n int) (backend.Page, error) {
	return c.next.Scan(ctx, prefix, cursor, n)
}
