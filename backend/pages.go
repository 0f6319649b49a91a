package backend

import (
	"context"
	"iter"
	"strings"

	"github.com/kvmap/kv/internal/keyset"
)

// Pages returns the pages of one complete scan of the keys of b that start
// with prefix, pageSize being the page-size hint. It owns what every scan loop
// needs: the cursor, a check of the context before each page, keys outside
// the prefix dropped (even from a faulty store: a Clear must never reach
// another namespace), and each key yielded at most once. A Redis SCAN may
// return a key twice: the scan remembers a 72-bit fingerprint of each key
// yielded (internal/keyset, about 10 bytes a key, never the key), so that a
// key is wrongly taken for one already yielded, and skipped, with
// probability below n²/2^73 for a scan of n keys (1.1e-10 for a million),
// well below the odds of a memory error on the machine during the scan.
// Stores whose Description promises unique scans (Description.UniqueScan)
// are not de-duplicated and hold nothing per key. Empty pages are skipped.
// An error ends the sequence and is yielded once; breaking out of the loop
// ends the scan. The yielded Keys are the caller's; Cursor is the scan's
// cursor after the page.
func Pages(ctx context.Context, b Backend, prefix string, pageSize int) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		err := scan(ctx, b, prefix, pageSize, false, func(p EntryPage) bool {
			return yield(Page{Keys: p.Keys, Cursor: p.Cursor}, nil)
		})
		if err != nil {
			yield(Page{}, err)
		}
	}
}

// EntryPages is Pages with the values of each page's keys: through b's own
// ScanEntries (see [Optimizations]) when it has one, and otherwise with an MGet
// of the page after the scan, keys that vanished in between left out.
func EntryPages(ctx context.Context, b Backend, prefix string, pageSize int) iter.Seq2[EntryPage, error] {
	return func(yield func(EntryPage, error) bool) {
		err := scan(ctx, b, prefix, pageSize, true, func(p EntryPage) bool { return yield(p, nil) })
		if err != nil {
			yield(EntryPage{}, err)
		}
	}
}

// scan is the one scan loop of the module: Pages and EntryPages, and so
// every fallback and iteration, run on it. It calls yield with each
// non-empty page until yield returns false, and returns the error that ended
// the scan, if any.
func scan(ctx context.Context, b Backend, prefix string, pageSize int, values bool, yield func(EntryPage) bool) error {
	var seen *keyset.Set
	if !ScansUnique(b) {
		seen = new(keyset.Set)
	}
	scanEntries := func(ctx context.Context, prefix, cursor string, pageSize int) (EntryPage, error) {
		p, err := b.Scan(ctx, prefix, cursor, pageSize)
		return EntryPage{Keys: p.Keys, Cursor: p.Cursor}, err
	}
	native := false
	if values {
		if f := OptimizationsOf(b).ScanEntries; f != nil {
			scanEntries, native = f, true
		}
	}
	cursor := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := scanEntries(ctx, prefix, cursor, pageSize)
		if err != nil {
			return err
		}
		keep(&page, prefix, seen, native)
		if values && !native && len(page.Keys) > 0 {
			if err := readValues(ctx, b, &page); err != nil {
				return err
			}
		}
		if len(page.Keys) > 0 && !yield(page) {
			return nil
		}
		if page.Cursor == "" {
			return nil
		}
		cursor = page.Cursor
	}
}

// keep drops, in place, the keys of page outside prefix and those seen
// already (when seen is not nil), with their values when it has them.
func keep(page *EntryPage, prefix string, seen *keyset.Set, hasValues bool) {
	n := 0
	for i, k := range page.Keys {
		if !strings.HasPrefix(k, prefix) || (seen != nil && !seen.Add(k)) {
			continue
		}
		page.Keys[n] = k
		if hasValues {
			page.Values[n] = page.Values[i]
		}
		if page.Errs != nil {
			page.Errs[n] = page.Errs[i]
		}
		n++
	}
	page.Keys = page.Keys[:n]
	if hasValues {
		page.Values = page.Values[:n]
	}
	if page.Errs != nil {
		page.Errs = page.Errs[:n]
	}
}

// readValues fills page.Values with one MGet, leaving out the keys that
// vanished since the scan.
func readValues(ctx context.Context, b Backend, page *EntryPage) error {
	vals, err := b.MGet(ctx, page.Keys, false)
	if err != nil {
		return err
	}
	n := 0
	page.Values = make([][]byte, 0, len(vals))
	for i, v := range vals {
		if v.Found {
			if v.Err != nil {
				if page.Errs == nil {
					page.Errs = make([]error, len(vals))
				}
				page.Errs[n] = v.Err
			}
			page.Keys[n] = page.Keys[i]
			page.Values = append(page.Values, v.Bytes)
			n++
		}
	}
	page.Keys = page.Keys[:n]
	if page.Errs != nil {
		page.Errs = page.Errs[:n]
	}
	return nil
}
