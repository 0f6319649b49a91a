package kv

import (
	"context"
	"fmt"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/namespace"
)

// ReadRaw calls fn with each page of the keys of namespace ns of b (without
// the namespace), their raw values and their remaining TTLs (NoTTL for
// none), each page read in one round trip: a scan, then one MGet with TTLs.
// Keys that expire or vanish between the two are left out, and each key comes
// once. pageSize is the scan's page hint (DefaultPageSize when < 1). It is
// what export and copy are built on; fn owns the slices it is given.
func ReadRaw(ctx context.Context, b backend.Backend, ns string, pageSize int, fn func(keys []string, vals []backend.Value) error) error {
	nb, err := namespace.New(b, ns)
	if err != nil {
		return err
	}
	if pageSize < 1 {
		pageSize = DefaultPageSize
	}
	for page, err := range backend.Pages(ctx, nb, "", pageSize) {
		if err != nil {
			return err
		}
		keys := page.Keys
		vals, err := nb.MGet(ctx, keys, true)
		if err != nil {
			return err
		}
		found, fvals := keys[:0], vals[:0]
		for i, v := range vals {
			if v.Found {
				found = append(found, keys[i])
				fvals = append(fvals, v)
			}
		}
		if len(found) > 0 {
			if err := fn(found, fvals); err != nil {
				return err
			}
		}
	}
	return nil
}

// CopyOptions tune Copy.
type CopyOptions struct {
	// ToNamespace is the namespace written in dst (the source namespace when
	// empty).
	ToNamespace string
	// DropTTL writes every key without expiry, so that a snapshot does not
	// expire before it is used; by default each key keeps its remaining TTL.
	DropTTL bool
	// PageSize is the page hint (DefaultPageSize when < 1).
	PageSize int
	// Progress, when set, is called with the number of keys written by each
	// page.
	Progress func(keys int)
}

// CopyResult is what Copy did.
type CopyResult struct {
	// Keys is the number of keys written.
	Keys int
	// CappedTTLs is the number of those keys whose remaining TTL in the
	// source was longer than MaxTTL (a store other than this library's may
	// hold one): they were written with MaxTTL instead.
	CappedTTLs int
}

// Copy copies every key of namespace ns of src, with its value and remaining
// TTL, into dst, and reports how many keys it wrote. Each key is written
// atomically and a key already in dst is overwritten, so an interrupted copy
// is completed by running it again; on error the result counts the keys
// written before it. A key that expires during the copy may be left out. A
// remaining TTL above MaxTTL is written as MaxTTL and counted in
// CopyResult.CappedTTLs, instead of failing the copy. src and dst may be
// different stores (Redis into a bolt file for an offline backtest, say).
func Copy(ctx context.Context, dst, src backend.Backend, ns string, opts CopyOptions) (CopyResult, error) {
	var res CopyResult
	to := opts.ToNamespace
	if to == "" {
		to = ns
	}
	dnb, err := namespace.New(dst, to)
	if err != nil {
		return res, err
	}
	entries := make([]backend.Entry, 0, max(opts.PageSize, 1))
	err = ReadRaw(ctx, src, ns, opts.PageSize, func(keys []string, vals []backend.Value) error {
		entries = entries[:0]
		capped := 0
		for i, k := range keys {
			ttl := vals[i].TTL
			switch {
			case opts.DropTTL:
				ttl = NoTTL
			case ttl > MaxTTL:
				ttl = MaxTTL
				capped++
			}
			entries = append(entries, backend.Entry{Key: k, Value: vals[i].Bytes, TTL: ttl})
		}
		if err := dnb.MSet(ctx, entries); err != nil {
			return err
		}
		res.Keys += len(entries)
		res.CappedTTLs += capped
		if opts.Progress != nil {
			opts.Progress(len(entries))
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("kv: Copy %s to %s after %d keys: %w", ns, to, res.Keys, err)
	}
	return res, nil
}
