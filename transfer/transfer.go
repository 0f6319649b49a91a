// Package transfer moves the raw data of a namespace between backends, with
// each key's remaining TTL: a snapshot of production Redis into a bbolt file
// for an offline backtest, an export to JSON lines, a copy between two
// namespaces. It works on backend.Backend values, below any kv.Map and codec,
// so a value is copied byte for byte, whatever type the services that wrote
// it hold.
package transfer

import (
	"context"
	"fmt"
	"iter"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/namespace"
)

// DefaultPageSize is the page-size hint used when none is given: the same as
// kv.DefaultPageSize.
const DefaultPageSize = 1000

// Page is one page of the raw entries of a namespace.
type Page struct {
	// Keys are the keys, without the namespace; each comes once per pass.
	Keys []string
	// Values are aligned with Keys: the stored bytes and the remaining TTL
	// (backend.NoTTL for none) of each key.
	Values []backend.Value
}

// Entries returns the raw entries of namespace ns of b, page by page: keys
// without the namespace, their values and remaining TTLs, each page read in
// one round trip (a scan, then one MGet with TTLs). Keys that expire or
// vanish between the two are left out, and each key comes once. pageSize is
// the scan's page hint (DefaultPageSize when < 1). An error ends the
// sequence, yielded once; an invalid namespace is that error.
func Entries(ctx context.Context, b backend.Backend, ns string, pageSize int) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		nb, err := namespace.New(b, ns)
		if err != nil {
			yield(Page{}, err)
			return
		}
		if pageSize < 1 {
			pageSize = DefaultPageSize
		}
		for page, err := range backend.Pages(ctx, nb, "", pageSize) {
			if err != nil {
				yield(Page{}, err)
				return
			}
			vals, err := nb.MGet(ctx, page.Keys, true)
			if err != nil {
				yield(Page{}, err)
				return
			}
			out := Page{Keys: page.Keys[:0], Values: vals[:0]}
			for i, v := range vals {
				if v.Found {
					out.Keys = append(out.Keys, page.Keys[i])
					out.Values = append(out.Values, v)
				}
			}
			if len(out.Keys) > 0 && !yield(out, nil) {
				return
			}
		}
	}
}

// Options tune Copy.
type Options struct {
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

// Result is what Copy did.
type Result struct {
	// Keys is the number of keys written.
	Keys int
	// CappedTTLs is the number of those keys whose remaining TTL in the
	// source was longer than backend.MaxTTL (kv.MaxTTL) (a store other than this library's may
	// hold one): they were written with MaxTTL instead.
	CappedTTLs int
}

// Copy copies every key of namespace ns of src, with its value and remaining
// TTL, into dst, and reports how many keys it wrote. Each key is written
// atomically and a key already in dst is overwritten, so an interrupted copy
// is completed by running it again; on error the result counts the keys
// written before it. A key that expires during the copy may be left out. A
// remaining TTL above backend.MaxTTL is written as MaxTTL and counted in
// Result.CappedTTLs, instead of failing the copy. src and dst may be
// different stores (Redis into a bolt file for an offline backtest, say).
func Copy(ctx context.Context, dst, src backend.Backend, ns string, opts Options) (Result, error) {
	var res Result
	to := opts.ToNamespace
	if to == "" {
		to = ns
	}
	dnb, err := namespace.New(dst, to)
	if err != nil {
		return res, err
	}
	var entries []backend.Entry
	for page, err := range Entries(ctx, src, ns, opts.PageSize) {
		if err == nil {
			entries = entries[:0]
			capped := 0
			for i, k := range page.Keys {
				ttl := page.Values[i].TTL
				switch {
				case opts.DropTTL:
					ttl = backend.NoTTL
				case ttl > backend.MaxTTL:
					ttl = backend.MaxTTL
					capped++
				}
				entries = append(entries, backend.Entry{Key: k, Value: page.Values[i].Bytes, TTL: ttl})
			}
			if err = dnb.MSet(ctx, entries); err == nil {
				res.Keys += len(entries)
				res.CappedTTLs += capped
				if opts.Progress != nil {
					opts.Progress(len(entries))
				}
				continue
			}
		}
		return res, fmt.Errorf("transfer: Copy %s to %s after %d keys: %w", ns, to, res.Keys, err)
	}
	return res, nil
}
