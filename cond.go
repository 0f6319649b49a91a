package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvmap/kv/backend"
)

// Conditional writes: SetIfAbsent, CompareAndSwap and Update write a key
// only if it is, when the store writes, as the caller expects, in one atomic
// step of the store (backend.Capabilities.SetIf: SET NX or a script on
// Redis, one transaction in bbolt, one locked step in memory). Like every
// write through the Map, each forgets the key in the local tier before and
// after, so that no near-cached or remembered value outlives it.
//
// A reply lost on the way back is an error matching ErrUnknownOutcome, never
// false: the write may have happened, and it is not sent again (a SET NX
// sent twice would report false for the write that the first one made).

// SetIfAbsent stores value under key with the Map's TTL if the key does not
// exist (a key that has expired does not), and reports whether it wrote: of
// several callers racing to write an absent key, in any process sharing the
// store, exactly one gets true. A key holding data of another kind (a Redis
// list) exists: false. A store without conditional writes fails with an
// error matching errors.ErrUnsupported.
func (m *Map[V]) SetIfAbsent(ctx context.Context, key string, value V) (bool, error) {
	return m.setIfAbsent(ctx, opSetIfAbsent, key, value, m.writeTTL())
}

// SetIfAbsentWithTTL is SetIfAbsent with a TTL of its own: positive, or
// NoTTL for a key that never expires; 0 or another negative TTL is refused
// with ErrInvalidTTL and nothing is written.
func (m *Map[V]) SetIfAbsentWithTTL(ctx context.Context, key string, value V, ttl time.Duration) (bool, error) {
	return m.setIfAbsent(ctx, opSetIfAbsent, key, value, ttl)
}

func (m *Map[V]) setIfAbsent(ctx context.Context, o op, key string, value V, ttl time.Duration) (bool, error) {
	return m.one(ctx, o, key, func(ctx context.Context) (bool, bool, error) {
		data, err := m.encode(key, value)
		if err != nil {
			return false, false, err
		}
		ok, err := m.setIf(ctx, backend.GuardedEntry{Entry: backend.Entry{Key: key, Value: data, TTL: ttl}})
		return ok, false, err
	})
}

// CompareAndSwap stores new under key with the Map's TTL if the key holds
// old, and reports whether it wrote. "Holds old" compares bytes: the stored
// value must equal the codec's encoding of old exactly, so that two values
// equal for the program but encoded differently (JSON with other spacing or
// key order, written by another program) do not match; Update, which
// compares against the bytes it read, does not have that limit. (With
// WithCompression the bytes compared are the decompressed ones.) A missing
// or expired key holds nothing: false. A store without conditional writes
// fails with an error matching errors.ErrUnsupported.
func (m *Map[V]) CompareAndSwap(ctx context.Context, key string, old, new V) (bool, error) {
	return m.compareAndSwap(ctx, key, old, new, m.writeTTL())
}

// CompareAndSwapWithTTL is CompareAndSwap with a TTL of its own for the
// value written: positive, or NoTTL; 0 or another negative TTL is refused
// with ErrInvalidTTL and nothing is written.
func (m *Map[V]) CompareAndSwapWithTTL(ctx context.Context, key string, old, new V, ttl time.Duration) (bool, error) {
	return m.compareAndSwap(ctx, key, old, new, ttl)
}

func (m *Map[V]) compareAndSwap(ctx context.Context, key string, old, new V, ttl time.Duration) (bool, error) {
	return m.one(ctx, opCompareAndSwap, key, func(ctx context.Context) (bool, bool, error) {
		prev, err := m.encode(key, old)
		if err != nil {
			return false, false, err
		}
		data, err := m.encode(key, new)
		if err != nil {
			return false, false, err
		}
		e := backend.GuardedEntry{Entry: backend.Entry{Key: key, Value: data, TTL: ttl}, PrevFound: true, Prev: prev}
		ok, err := m.setIf(ctx, e)
		return ok, false, err
	})
}

// Update changes the value of key with fn, atomically: it reads the key's
// value (found false when the key does not exist), calls fn with it, and
// writes the value fn returns, with the Map's TTL, only if the key still
// holds exactly the bytes it read (or is still absent); otherwise it reads
// again and calls fn again, until a write wins, fn declines (write false:
// nothing is written) or fails, or ctx ends. It returns the value the key
// holds after the call (written or declined) and whether fn's value was
// written. fn may be called several times and must have no other effect. A
// value that does not decode is returned as a *DecodeError without calling
// fn. A write whose reply was lost is not tried again: the error matches
// ErrUnknownOutcome. Reads go to the store, not to the near cache.
func (m *Map[V]) Update(ctx context.Context, key string, fn func(cur V, found bool) (next V, write bool, err error)) (V, bool, error) {
	var out V
	wrote, err := m.one(ctx, opUpdate, key, func(ctx context.Context) (bool, bool, error) {
		if fn == nil {
			return false, false, fmt.Errorf("%w: nil update function", ErrInvalidOption)
		}
		if _, err := m.setIfFunc(); err != nil {
			return false, false, err
		}
		for {
			val, err := m.b.Get(ctx, key)
			if err != nil {
				return false, false, err
			}
			prev := bytes.Clone(val.Bytes) // the guard: Decode owns val.Bytes, and fn may write to what it shares
			cur, found, err := m.decode(key, val)
			if err != nil {
				return false, false, err
			}
			next, write, err := fn(cur, found)
			if err != nil || !write {
				out = cur
				return false, false, err
			}
			data, err := m.encode(key, next)
			if err != nil {
				return false, false, err
			}
			e := backend.GuardedEntry{Entry: backend.Entry{Key: key, Value: data, TTL: m.writeTTL()}, PrevFound: found, Prev: prev}
			ok, err := m.setIf(ctx, e)
			if err != nil {
				return false, false, err
			}
			if ok {
				out = next
				return true, false, nil
			}
			if err := ctx.Err(); err != nil {
				return false, false, err
			}
		}
	})
	return out, wrote, err
}

// encode returns the encoding of v, the value of key.
func (m *Map[V]) encode(key string, v V) ([]byte, error) {
	data, err := m.codec.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("encode value of key %s: %w", backend.QuoteKey(key), codecError{err})
	}
	return data, nil
}

// errNoSetIf is returned by the conditional writes over a store without
// them.
var errNoSetIf = fmt.Errorf("the store, as wrapped, has no conditional writes (backend.Capabilities.SetIf; a wrapper must forward its Capabilities): %w", errors.ErrUnsupported)

// setIfFunc returns the store's conditional write, or errNoSetIf.
func (m *Map[V]) setIfFunc() (func(context.Context, backend.GuardedEntry) (bool, error), error) {
	if m.setIfFn == nil {
		return nil, errNoSetIf
	}
	return m.setIfFn, nil
}

// setIf writes e if its key is as its guard says, forgetting the key in
// the tier before and after, as write does, and then remembers its
// deadline when the tier keeps deadlines.
func (m *Map[V]) setIf(ctx context.Context, e backend.GuardedEntry) (bool, error) {
	f, err := m.setIfFunc()
	if err != nil {
		return false, err
	}
	if e.TTL == 0 {
		return false, errZeroTTL
	}
	m.tier.Forget(e.Key)
	if !m.tier.Keeps() {
		defer m.tier.Forget(e.Key)
		return f(ctx, e)
	}
	r := m.tier.Begin(e.Key)
	ok, err := f(ctx, e)
	if err != nil || !ok {
		m.tier.Forget(e.Key)
		return ok, err
	}
	m.tier.Wrote(r, []string{e.Key}, nil, m.deadlines([]backend.Entry{e.Entry}))
	return true, nil
}
