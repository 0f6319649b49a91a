package bolt

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv/backend"
)

// A scan walks the namespaces' buckets in name order, then the bucket of keys
// without ":", each in key order. Its cursor is the position of the last key
// returned: "d" followed by the backend key "ns:k", or "r" followed by a key of
// the root bucket.

type position struct {
	kind byte // 0: start; 'd': in a namespace bucket; 'r': in the root bucket
	ns   string
	key  string
}

func parsePosition(cursor string) (position, error) {
	if cursor == "" {
		return position{}, nil
	}
	switch cursor[0] {
	case 'd':
		if ns, key, ok := strings.Cut(cursor[1:], ":"); ok {
			return position{kind: 'd', ns: ns, key: key}, nil
		}
	case 'r':
		return position{kind: 'r', key: cursor[1:]}, nil
	}
	return position{}, fmt.Errorf("bolt: invalid scan cursor %q", cursor)
}

// positionOf returns the position of a location.
func positionOf(l loc) position {
	if l.root {
		return position{kind: 'r', key: l.key}
	}
	return position{kind: 'd', ns: l.ns, key: l.key}
}

func (p position) String() string {
	if p.kind == 'r' {
		return "r" + p.key
	}
	return "d" + p.ns + ":" + p.key
}

// walk calls fn, in scan order, for every stored key under prefix that comes
// after pos, with its location (whose key is left empty: k holds it) and its
// key and stored value (both valid in tx only), until fn returns false.
func walk(tx *bbolt.Tx, prefix string, pos position, fn func(l loc, k, v []byte) bool) {
	ns, rest, hasNS := strings.Cut(prefix, ":")
	keys := func(bk *bbolt.Bucket, l loc, keyPrefix, after string, skipAfter bool) bool {
		c := bk.Cursor()
		start := keyPrefix
		if skipAfter && after > start {
			start = after
		}
		for k, v := c.Seek([]byte(start)); k != nil && bytes.HasPrefix(k, []byte(keyPrefix)); k, v = c.Next() {
			if skipAfter && string(k) <= after {
				continue
			}
			if v == nil { // a nested bucket: not ours
				continue
			}
			if !fn(l, k, v) {
				return false
			}
		}
		return true
	}
	// Namespace buckets.
	if pos.kind != 'r' {
		if hasNS {
			if pos.kind == 0 || pos.ns <= ns {
				if bk := tx.Bucket(append(append([]byte(nil), dataPrefix...), ns...)); bk != nil {
					if !keys(bk, loc{ns: ns}, rest, pos.key, pos.kind == 'd' && pos.ns == ns) {
						return
					}
				}
			}
			return // a prefix with a namespace never reaches the root bucket
		}
		first := append(append([]byte(nil), dataPrefix...), prefix...)
		if pos.kind == 'd' {
			if at := append(append([]byte(nil), dataPrefix...), pos.ns...); bytes.Compare(at, first) > 0 {
				first = at
			}
		}
		tc := tx.Cursor()
		for name, v := tc.Seek(first); name != nil && bytes.HasPrefix(name, dataPrefix) && bytes.HasPrefix(name[len(dataPrefix):], []byte(prefix)); name, v = tc.Next() {
			if v != nil {
				continue
			}
			bns := string(name[len(dataPrefix):])
			bk := tx.Bucket(name)
			if !keys(bk, loc{ns: bns}, "", pos.key, pos.kind == 'd' && pos.ns == bns) {
				return
			}
		}
	}
	// Keys without ":".
	if bk := tx.Bucket(rootBucket); bk != nil {
		keys(bk, loc{root: true}, prefix, pos.key, pos.kind == 'r')
	}
}

// Scan implements backend.Backend.Scan in one read transaction per page. Keys
// come in a fixed order, each at most once; expired keys are skipped.
func (b *Backend) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	page, err := b.scanPage(ctx, prefix, cursor, count, false)
	return backend.Page{Keys: page.Keys, Cursor: page.Cursor}, err
}

// scanEntries is Optimizations.ScanEntries: one cursor walk returns the
// keys and their values.
func (b *Backend) scanEntries(ctx context.Context, prefix, cursor string, count int) (backend.EntryPage, error) {
	return b.scanPage(ctx, prefix, cursor, count, true)
}

func (b *Backend) scanPage(ctx context.Context, prefix, cursor string, count int, values bool) (backend.EntryPage, error) {
	if err := b.check(ctx); err != nil {
		return backend.EntryPage{}, err
	}
	pos, err := parsePosition(cursor)
	if err != nil {
		return backend.EntryPage{}, err
	}
	if count <= 0 {
		count = 1
	}
	page := backend.EntryPage{Keys: make([]string, 0, min(count, 1024))}
	if values {
		page.Values = make([][]byte, 0, min(count, 1024))
	}
	var last loc
	var mem arena
	err = b.read(func(tx *bbolt.Tx, now instant) error {
		walk(tx, prefix, pos, func(l loc, k, v []byte) bool {
			if expired(deadlineOf(v), now) {
				return true
			}
			if len(page.Keys) == count {
				page.Cursor = positionOf(last).String()
				return false
			}
			var flat string
			if l.root {
				flat = mem.string(k)
			} else {
				flat = mem.string2(l.ns, k)
			}
			page.Keys = append(page.Keys, flat)
			if values {
				page.Values = append(page.Values, mem.bytes(v[headerLength:]))
			}
			last = l
			last.key = flat[len(flat)-len(k):]
			return true
		})
		return nil
	})
	return page, err
}

// deletePrefix is Optimizations.DeletePrefix. The prefix of a whole
// namespace ("ns:") deletes the namespace's buckets, at a cost that does not
// grow with the number of keys; other prefixes delete key by key, in one
// write transaction.
func (b *Backend) deletePrefix(ctx context.Context, prefix string, _ int) error {
	if err := b.checkWrite(ctx); err != nil {
		return err
	}
	b.leases.EndPrefix(prefix) // lease.go
	ns, rest, hasNS := strings.Cut(prefix, ":")
	return b.write(func(tx *bbolt.Tx, _ instant) error {
		deleteBuckets := func(ns string) error {
			for _, name := range [][]byte{loc{ns: ns}.dataName(), loc{ns: ns}.indexName()} {
				if err := tx.DeleteBucket(name); err != nil && tx.Bucket(name) != nil {
					return err
				}
			}
			return nil
		}
		if hasNS && rest == "" {
			return deleteBuckets(ns)
		}
		if !hasNS {
			// Whole namespaces whose name starts with prefix, then the root
			// keys under prefix.
			var names []string
			tc := tx.Cursor()
			first := append(append([]byte(nil), dataPrefix...), prefix...)
			for name, v := tc.Seek(first); name != nil && bytes.HasPrefix(name, first); name, v = tc.Next() {
				if v == nil {
					names = append(names, string(name[len(dataPrefix):]))
				}
			}
			for _, n := range names {
				if err := deleteBuckets(n); err != nil {
					return err
				}
			}
		}
		var locs []loc
		walk(tx, prefix, position{}, func(l loc, k, _ []byte) bool {
			l.key = string(k)
			locs = append(locs, l)
			return true
		})
		for _, l := range locs {
			if err := deleteKey(tx, l); err != nil {
				return err
			}
		}
		return nil
	})
}

// countPrefix is Optimizations.CountPrefix. For a whole namespace ("ns:")
// it reads no value: the bucket's key count less the index entries already
// past their deadline.
func (b *Backend) countPrefix(ctx context.Context, prefix string, _ int) (int, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	ns, rest, hasNS := strings.Cut(prefix, ":")
	n := 0
	err := b.read(func(tx *bbolt.Tx, now instant) error {
		if hasNS && rest == "" {
			l := loc{ns: ns}
			data := tx.Bucket(l.dataName())
			if data == nil {
				return nil
			}
			n = data.Stats().KeyN
			if idx := tx.Bucket(l.indexName()); idx != nil {
				n -= countExpired(idx, now)
			}
			return nil
		}
		walk(tx, prefix, position{}, func(_ loc, _, v []byte) bool {
			if !expired(deadlineOf(v), now) {
				n++
			}
			return true
		})
		return nil
	})
	return n, err
}
