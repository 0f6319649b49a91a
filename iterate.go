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
	return seq(m, ctx, opIterate, true, func(e Entry[V]) Entry[V] { return e })
}

// Keys returns an iterator over the keys of the namespace, without the
// namespace. It reads no values. Errors are yielded as by Iterate.
func (m *Map[V]) Keys(ctx context.Context) iter.Seq2[string, error] {
	return seq(m, ctx, opKeys, false, func(e Entry[V]) string { return e.Key })
}

// Values returns an iterator over the values of the namespace. Errors are
// yielded as by Iterate.
func (m *Map[V]) Values(ctx context.Context) iter.Seq2[V, error] {
	return seq(m, ctx, opValues, true, func(e Entry[V]) V { return e.Value })
}

// seq is the iterator of Iterate, Keys (values false: nothing is read but
// the keys) and Values, which yield of each entry what out returns.
func seq[V, T any](m *Map[V], ctx context.Context, o op, values bool, out func(Entry[V]) T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		ctx, c := m.begin(ctx, o, "", 0)
		err := m.iterate(ctx, o, values, func(e Entry[V], err error) bool {
			if err == nil {
				c.n++
			}
			if !yield(out(e), err) {
				c.early = true
				return false
			}
			return true
		})
		if err != nil && !c.early {
			var zero T
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
	err := m.iterate(ctx, c.op, true, func(e Entry[V], err error) bool {
		if err != nil {
			decodeErrs = append(decodeErrs, err)
		} else {
			out = append(out, e)
		}
		return true
	})
	if err != nil {
		return nil, m.end(ctx, &c, err)
	}
	c.n = len(out)
	return out, m.end(ctx, &c, errors.Join(decodeErrs...))
}

// iterate runs one pass over the entries of the namespace, calling yield for
// each entry and for each decode error, until yield returns false; without
// values, each entry has its key only and nothing is decoded. It returns the
// error that ended the pass, if any; the caller yields it. The context is
// checked before each entry.
func (m *Map[V]) iterate(ctx context.Context, o op, values bool, yield func(Entry[V], error) bool) error {
	return m.pass(ctx, o, values, func(page backend.EntryPage) (bool, error) {
		for i, k := range page.Keys {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			e := Entry[V]{Key: k}
			var err error
			if values && page.Errs != nil && page.Errs[i] != nil {
				e, err = Entry[V]{}, &DecodeError{Key: k, Err: page.Errs[i]}
			} else if values {
				if e.Value, err = m.codec.Decode(page.Values[i]); err != nil {
					e, err = Entry[V]{}, &DecodeError{Key: k, Err: err}
				}
			}
			if !yield(e, err) {
				return false, ctx.Err()
			}
		}
		return true, nil
	})
}

// pageResult is one page of a pass, or the error that ended it.
type pageResult struct {
	page backend.EntryPage
	err  error
}

// readAhead is how many pages the reader of a pass may run ahead of the page
// being yielded: a remote store works on the next pages while this one is
// decoded and yielded, instead of idling between round trips.
const readAhead = 2

// pass is the one engine of every walk of the namespace by the Map: one
// complete scan (backend.EntryPages with values, backend.Pages without: each
// key once) of the namespace's store (m.b), below the near cache: a pass
// neither fills the near cache nor evicts its hot keys, nor reads TTLs. It calls fn with each page
// until fn returns false or an error. The pages are read by a goroutine of
// the pass, up to readAhead pages ahead of fn, on a context that pass cancels
// when it returns (the loop broke, fn failed, or the pass ended): a read
// under way is abandoned at once instead of waited for, and the goroutine has
// ended when pass returns. The context is checked before each page. pass
// returns the error that ended the pass, if any.
func (m *Map[V]) pass(ctx context.Context, o op, values bool, fn func(backend.EntryPage) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	results := make(chan pageResult, readAhead-1)
	stop := make(chan struct{})
	rctx, cancel := context.WithCancel(ctx)
	pages := backend.EntryPages(rctx, m.b, "", m.pageSize)
	if !values {
		pages = func(yield func(backend.EntryPage, error) bool) {
			for p, err := range backend.Pages(rctx, m.b, "", m.pageSize) {
				if !yield(backend.EntryPage{Keys: p.Keys}, err) {
					return
				}
			}
		}
	}
	go func() {
		defer close(results)
		for p, err := range pages {
			select {
			case results <- pageResult{p, err}:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		cancel() // abandon a read under way
		close(stop)
		for range results { // wait for the reader to end
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
		if cont, err := fn(r.page); err != nil || !cont {
			return err
		}
	}
}
