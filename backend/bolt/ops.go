package bolt

import (
	"context"
	"encoding/binary"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv/backend"
)

// checkLimits refuses a key or value that bbolt cannot hold.
func checkLimits(k string, l loc, value []byte) error {
	if !l.root && len(dataPrefix)+len(l.ns) > bbolt.MaxKeySize {
		return &LimitError{What: "namespace", Key: k, Size: len(l.ns), Limit: bbolt.MaxKeySize - len(dataPrefix)}
	}
	// The key is also stored in the expiry index behind its deadline.
	if len(l.key)+headerLength > bbolt.MaxKeySize {
		return &LimitError{What: "key", Key: k, Size: len(l.key), Limit: bbolt.MaxKeySize - headerLength}
	}
	if int64(len(value))+int64(headerLength) > bbolt.MaxValueSize {
		return &LimitError{What: "value", Key: k, Size: len(value), Limit: bbolt.MaxValueSize - headerLength}
	}
	return nil
}

// get returns the stored value of l in tx, or nil.
func get(tx *bbolt.Tx, l loc) []byte {
	bk := tx.Bucket(l.dataName())
	if bk == nil {
		return nil
	}
	return bk.Get([]byte(l.key))
}

// MGet implements backend.Backend.MGet in one read transaction.
func (b *Backend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	return b.mget(ctx, keys, withTTL, locate)
}

// The methods below take at, which maps a key to its location: locate for
// the flat key space of the Backend, a fixed bucket for a namespace view.

func (b *Backend) mget(ctx context.Context, keys []string, withTTL bool, at func(string) loc) ([]backend.Value, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if err := backend.CheckKeys(keys); err != nil {
		return nil, err
	}
	out := make([]backend.Value, len(keys))
	err := b.read(func(tx *bbolt.Tx, now instant) error {
		var (
			buf      [128]byte // bucket names up to this size cost no allocation
			lastNS   string
			bk       *bbolt.Bucket
			resolved bool
		)
		for i, k := range keys {
			l := at(k)
			if !resolved || l.ns != lastNS || l.root {
				bk, lastNS, resolved = tx.Bucket(l.appendDataName(buf[:0])), l.ns, !l.root
			}
			if bk == nil {
				continue
			}
			v := bk.Get([]byte(l.key))
			if v == nil {
				continue
			}
			d := deadlineOf(v)
			if expired(d, now) {
				continue
			}
			out[i] = backend.Value{Bytes: append(make([]byte, 0, len(v)-headerLength), v[headerLength:]...), Found: true}
			if withTTL {
				ttl, err := remaining(d, now)
				if err != nil {
					return err
				}
				out[i].TTL = ttl
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Get implements backend.Backend.Get in one read transaction.
func (b *Backend) Get(ctx context.Context, key string) (backend.Value, error) {
	return b.get(ctx, key, locate)
}

// get is mget of one key, without its TTL.
func (b *Backend) get(ctx context.Context, key string, at func(string) loc) (backend.Value, error) {
	vals, err := b.mget(ctx, []string{key}, false, at)
	if err != nil {
		return backend.Value{}, err
	}
	return vals[0], nil
}

// MSet implements backend.Backend.MSet in one write transaction.
func (b *Backend) MSet(ctx context.Context, entries []backend.Entry) error {
	return b.mset(ctx, entries, locate)
}

func (b *Backend) mset(ctx context.Context, entries []backend.Entry, at func(string) loc) error {
	if err := b.checkWrite(ctx); err != nil {
		return err
	}
	entries, err := backend.CheckEntries(entries)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	locs := make([]loc, len(entries))
	for i, e := range entries {
		locs[i] = at(e.Key)
		if err := checkLimits(e.Key, locs[i], e.Value); err != nil {
			return err
		}
	}
	// bbolt keeps the keys and values given to Put until the transaction
	// ends: they are carved from one block instead of allocated one by one.
	size := 0
	for i, e := range entries {
		size += 2*len(locs[i].key) + 2*headerLength + len(e.Value)
	}
	block := make([]byte, 0, size)
	carve := func(n int) []byte {
		start := len(block)
		block = block[:start+n]
		return block[start : start+n : start+n]
	}
	var scratch []byte // index keys to delete: bbolt does not keep them
	return b.write(func(tx *bbolt.Tx, now instant) error {
		var (
			data, idx *bbolt.Bucket
			lastNS    string
			resolved  bool
		)
		for i, e := range entries {
			l := locs[i]
			if !resolved || l.ns != lastNS || l.root {
				var err error
				if data, err = tx.CreateBucketIfNotExists(l.dataName()); err != nil {
					return err
				}
				if idx, err = tx.CreateBucketIfNotExists(l.indexName()); err != nil {
					return err
				}
				lastNS, resolved = l.ns, !l.root
			}
			if err := put(data, idx, l, e, now, carve, &scratch); err != nil {
				return err
			}
		}
		return nil
	})
}

// put writes e at l in its buckets data and idx: the value with its
// deadline, and its expiry index entry in place of the old one. bbolt keeps
// the keys and values given to Put until the transaction ends: put takes
// them from alloc. The index key it deletes, which bbolt does not keep, is
// built in *scratch.
func put(data, idx *bbolt.Bucket, l loc, e backend.Entry, now instant, alloc func(n int) []byte, scratch *[]byte) error {
	key := alloc(len(l.key))
	copy(key, l.key)
	if old := data.Get(key); old != nil {
		if od := deadlineOf(old); od != 0 {
			*scratch = appendIndexKey((*scratch)[:0], od, l.key)
			if err := idx.Delete(*scratch); err != nil {
				return err
			}
		}
	}
	d := deadlineCode(now, e.TTL)
	if d != 0 {
		if err := idx.Put(appendIndexKey(alloc(headerLength + len(l.key))[:0], d, l.key), nil); err != nil {
			return err
		}
	}
	value := alloc(headerLength + len(e.Value))
	binary.BigEndian.PutUint64(value, d)
	copy(value[headerLength:], e.Value)
	return data.Put(key, value)
}

// Delete implements backend.Backend.Delete in one write transaction.
func (b *Backend) Delete(ctx context.Context, keys []string) error {
	return b.del(ctx, keys, locate)
}

func (b *Backend) del(ctx context.Context, keys []string, at func(string) loc) error {
	if err := b.checkWrite(ctx); err != nil {
		return err
	}
	if err := backend.CheckKeys(keys); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	b.endLeases(keys, at) // lease.go
	return b.write(func(tx *bbolt.Tx, _ instant) error {
		for _, k := range keys {
			if err := deleteKey(tx, at(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteKey deletes l and its index entry, if any.
func deleteKey(tx *bbolt.Tx, l loc) error {
	data := tx.Bucket(l.dataName())
	if data == nil {
		return nil
	}
	key := []byte(l.key)
	old := data.Get(key)
	if old == nil {
		return nil
	}
	if od := deadlineOf(old); od != 0 {
		if idx := tx.Bucket(l.indexName()); idx != nil {
			if err := idx.Delete(indexKey(od, l.key)); err != nil {
				return err
			}
		}
	}
	return data.Delete(key)
}

// putEntry writes e at l in tx, as MSet does: the value with its deadline,
// and its expiry index entry in place of the old one.
func putEntry(tx *bbolt.Tx, l loc, e backend.Entry, now instant) error {
	data, err := tx.CreateBucketIfNotExists(l.dataName())
	if err != nil {
		return err
	}
	idx, err := tx.CreateBucketIfNotExists(l.indexName())
	if err != nil {
		return err
	}
	return put(data, idx, l, e, now, func(n int) []byte { return make([]byte, n) }, new([]byte))
}

// Expire implements backend.Backend.Expire.
func (b *Backend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return b.expire(ctx, key, ttl, locate)
}

func (b *Backend) expire(ctx context.Context, key string, ttl time.Duration, at func(string) loc) (bool, error) {
	if err := b.checkWrite(ctx); err != nil {
		return false, err
	}
	if err := backend.CheckKey(key); err != nil {
		return false, err
	}
	ttl, err := backend.CheckTTL(ttl)
	if err != nil {
		return false, err
	}
	b.endLeases([]string{key}, at) // lease.go
	l := at(key)
	found := false
	err = b.write(func(tx *bbolt.Tx, _ instant) error {
		// The clock is read again under the write lock: a key that expired
		// while this call waited for the lock is not revived.
		now, err := b.now()
		if err != nil {
			return err
		}
		old := get(tx, l)
		if old == nil || expired(deadlineOf(old), now) {
			return nil
		}
		found = true
		// The value is copied before putEntry changes the file.
		val := append([]byte(nil), old[headerLength:]...)
		return putEntry(tx, l, backend.Entry{Value: val, TTL: ttl}, now)
	})
	return found, err
}

// TTL implements backend.Backend.TTL.
func (b *Backend) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	return b.ttl(ctx, key, locate)
}

func (b *Backend) ttl(ctx context.Context, key string, at func(string) loc) (time.Duration, bool, error) {
	if err := b.check(ctx); err != nil {
		return 0, false, err
	}
	if err := backend.CheckKey(key); err != nil {
		return 0, false, err
	}
	l := at(key)
	var left time.Duration // 0: not found (remaining is never 0)
	err := b.read(func(tx *bbolt.Tx, now instant) (err error) {
		if v := get(tx, l); v != nil && !expired(deadlineOf(v), now) {
			left, err = remaining(deadlineOf(v), now)
		}
		return err
	})
	if err != nil || left == 0 {
		return 0, false, err
	}
	return left, true, nil
}

// setIf implements backend.Capabilities.SetIf in one write transaction:
// the key is read, compared with the guard and written in it.
func (b *Backend) setIf(ctx context.Context, e backend.GuardedEntry, at func(string) loc) (bool, error) {
	if err := b.checkWrite(ctx); err != nil {
		return false, err
	}
	checked, err := backend.CheckEntries([]backend.Entry{e.Entry})
	if err != nil {
		return false, err
	}
	l := at(e.Key)
	if err := checkLimits(e.Key, l, e.Value); err != nil {
		return false, err
	}
	wrote := false
	err = b.write(func(tx *bbolt.Tx, now instant) error {
		var cur []byte
		found := false
		if v := get(tx, l); v != nil && !expired(deadlineOf(v), now) {
			cur, found = v[headerLength:], true
		}
		if wrote = e.Matches(found, cur); !wrote {
			return nil
		}
		return putEntry(tx, l, checked[0], now)
	})
	if err != nil {
		return false, err
	}
	return wrote, nil
}
