package kv

import (
	"context"
	"errors"
	"iter"

	"github.com/kvmap/kv/backend"
)

// Iterate returns an iterator over the entries of the namespace, streamed page
// by page: only one page of values is held at a time, whatever the size of the
// namespace.
//
// A pass yields each key at most once, skips keys that expired or were deleted
// between the scan and the read, and may or may not yield keys written during
// the pass. It stops when the loop body breaks. The context is checked between
// pages and between entries; when it ends, ctx.Err() is yielded and the pass
// ends. A value that does not decode is yielded as a *DecodeError for its key,
// and the pass goes on if the loop does; any other error is yielded once and
// ends the pass. The iterator can be ranged over again; each range is a new
// pass over the namespace.
func (m *Map[V]) Iterate(ctx context.Context) iter.Seq2[Entry[V], error] {
	return func(yield func(Entry[V], error) bool) {
		ctx, c := m.begin(ctx, opIterate, "", 0)
		err := m.iterate(ctx, c.op, func(e Entry[V], err error) bool {
			if err == nil {
				c.n++
			}
			if !yield(e, err) {
				c.early = true
				return false
			}
			return true
		})
		if err != nil && !c.early {
			yield(Entry[V]{}, m.end(ctx, &c, err))
			return
		}
		m.end(ctx, &c, nil)
	}
}

// Keys returns an iterator over the keys of the namespace, without the
// namespace. It reads no values. Errors are yielded as by Iterate.
func (m *Map[V]) Keys(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		ctx, c := m.begin(ctx, opKeys, "", 0)
		err := m.pages(ctx, c.op, func(keys []string) (bool, error) {
			for _, k := range keys {
				if err := ctx.Err(); err != nil {
					return false, err
				}
				c.n++
				if !yield(k, nil) {
					c.early = true
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil && !c.early {
			yield("", m.end(ctx, &c, err))
			return
		}
		m.end(ctx, &c, nil)
	}
}

// Values returns an iterator over the values of the namespace. Errors are
// yielded as by Iterate.
func (m *Map[V]) Values(ctx context.Context) iter.Seq2[V, error] {
	return func(yield func(V, error) bool) {
		ctx, c := m.begin(ctx, opValues, "", 0)
		err := m.iterate(ctx, c.op, func(e Entry[V], err error) bool {
			if err == nil {
				c.n++
			}
			if !yield(e.Value, err) {
				c.early = true
				return false
			}
			return true
		})
		if err != nil && !c.early {
			var zero V
			yield(zero, m.end(ctx, &c, err))
			return
		}
		m.end(ctx, &c, nil)
	}
}

// ToArray returns every entry of the namespace (BaseMap's toArray). Values
// that do not decode are left out and their *DecodeErrors joined into the
// error returned with the rest; any other error returns no entries.
func (m *Map[V]) ToArray(ctx context.Context) ([]Entry[V], error) {
	ctx, c := m.begin(ctx, opToArray, "", 0)
	var out []Entry[V]
	var decodeErrs []error
	err := m.iterate(ctx, c.op, func(e Entry[V], err error) bool {
		if err != nil {
			decodeErrs = append(decodeErrs, err)
			return true
		}
		out = append(out, e)
		return true
	})
	if err != nil {
		return nil, m.end(ctx, &c, err)
	}
	c.n = len(out)
	return out, m.end(ctx, &c, errors.Join(decodeErrs...))
}

// iterate runs one pass over the entries of the namespace, calling yield for
// each entry and for each decode error, until yield returns false. It returns
// the error that ended the pass, if any; the caller yields it.
func (m *Map[V]) iterate(ctx context.Context, o op, yield func(Entry[V], error) bool) error {
	if m.entries {
		return m.iterateEntries(ctx, o, yield)
	}
	return m.pages(ctx, o, func(keys []string) (bool, error) {
		vals, err := m.b.MGet(ctx, keys, false)
		if err != nil {
			return false, err
		}
		for i, val := range vals {
			if !val.Found {
				continue // expired or deleted since the scan
			}
			if !m.yieldValue(ctx, keys[i], val.Bytes, yield) {
				return false, ctx.Err()
			}
		}
		return true, nil
	})
}

// iterateEntries is iterate over a store that returns each scan page with
// its values (Optimizations.ScanEntries): one call per page, in this goroutine.
func (m *Map[V]) iterateEntries(ctx context.Context, o op, yield func(Entry[V], error) bool) error {
	for page, err := range backend.EntryPages(ctx, m.b, "", m.pageSize) {
		if err != nil {
			return err
		}
		m.logPage(ctx, o, len(page.Keys))
		for i, k := range page.Keys {
			if !m.yieldValue(ctx, k, page.Values[i], yield) {
				return ctx.Err()
			}
		}
	}
	return nil
}

// yieldValue decodes one value and yields it, or its decode error. It
// reports whether the pass goes on: false when the loop broke or the context
// ended.
func (m *Map[V]) yieldValue(ctx context.Context, key string, data []byte, yield func(Entry[V], error) bool) bool {
	if ctx.Err() != nil {
		return false
	}
	v, err := m.codec.Decode(data)
	if err != nil {
		return yield(Entry[V]{}, &DecodeError{Key: key, Err: err})
	}
	return yield(Entry[V]{Key: key, Value: v}, nil)
}

// scanResult is one page of a scan, or the error that ended it.
type scanResult struct {
	page backend.Page
	err  error
}

// scanAhead is how many pages of keys the scan of a pass may run ahead of
// the page being read and yielded. Keys only: values are still read one page
// at a time. Running ahead keeps a remote store busy with the next scans
// while this page is read and yielded, instead of idle between round trips.
const scanAhead = 2

// pages runs one scan of the namespace (backend.Pages: each key once) and
// calls fn with each page's keys until fn returns false or an error. The
// scan runs in a goroutine of its own, up to scanAhead pages ahead of fn, on
// a context that pages cancels when it returns (the loop broke, fn failed,
// or the pass ended), so a scan under way is abandoned at once instead of
// waited for; the goroutine has ended when pages returns. The context is
// checked before each page. pages returns the error that ended the pass, if
// any.
func (m *Map[V]) pages(ctx context.Context, o op, fn func(keys []string) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	results := make(chan scanResult, scanAhead-1)
	stop := make(chan struct{})
	sctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(results)
		for page, err := range backend.Pages(sctx, m.b, "", m.pageSize) {
			select {
			case results <- scanResult{page, err}:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		cancel() // abandon a scan under way
		close(stop)
		for range results { // wait for the scan goroutine to end
		}
	}()

	for {
		r, ok := <-results
		if err := ctx.Err(); err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if r.err != nil {
			return r.err
		}
		m.logPage(ctx, o, len(r.page.Keys))
		if cont, err := fn(r.page.Keys); err != nil || !cont {
			return err
		}
	}
}
