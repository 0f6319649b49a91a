// Package compress provides a [backend.Backend] decorator that stores values
// compressed, and reads both the values it compressed and those written
// without it.
//
// A value at least the threshold long (WithThreshold, 256 bytes by default)
// is stored as [Marker], a format byte and the value compressed (zstd by
// default; S2 with WithAlgorithm), when that is shorter than the value; any
// other value is stored as it is, unless it starts with Marker, and is then
// stored escaped (Marker, 'r', the value). A stored value that does not start
// with Marker is read as it is: values written before compression was turned
// on, and BaseMap's raw strings, read back unchanged. Marker starts with the
// byte 0xFF, which UTF-8 text and JSON never hold, so such values are never
// escaped; a value written raw by a program that does not know the format
// (BaseMap, redis-cli) and starts with Marker is misread, and its read fails
// with ErrCorrupt unless the byte after Marker names a format.
//
// A reader without the decorator, BaseMap included, sees the compressed
// bytes: leave compression off on the namespaces that BaseMap services read.
// Every format is read whatever the Algorithm of the reader, so the
// algorithm can change on a namespace that holds values.
//
// Application code turns it on with kv.WithCompression, which puts the
// decorator between the namespace and the Map's local tier: a near cache
// holds decoded values, and a hit pays no decompression. Use this package
// directly only to build a stack of decorators by hand.
package compress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvmap/kv/backend"
)

// Errors of the package. ErrCorrupt and ErrTooLarge wrap the errors of
// package backend of the same name, so that errors.Is matches either.
var (
	// ErrCorrupt is the failure of a key whose value starts with Marker but
	// cannot be decoded (damaged compressed data, or an unknown format),
	// reported in backend.Value.Err (EntryPage.Errs): the key's own, not
	// the call's.
	ErrCorrupt = fmt.Errorf("compress: stored value cannot be decoded: %w", backend.ErrCorrupt)
	// ErrTooLarge is returned by a write of a value longer than the maximum
	// size (WithMaxSize), nothing written, and is the failure of a key
	// whose value would decode to more (Value.Err), found before anything
	// is decompressed.
	ErrTooLarge = fmt.Errorf("compress: value larger than the maximum size: %w", backend.ErrTooLarge)
	// ErrContended is returned by a conditional write (SetIf, kv's
	// CompareAndSwap and Update) whose key kept holding the guard's value
	// in other encodings, rewritten by other writers between each try:
	// nothing was written, and the key still held the guard's value, so
	// false would be untrue.
	ErrContended = errors.New("compress: guarded value rewritten in other encodings at every try")
	// ErrInvalidOption is returned by New for an option out of range.
	ErrInvalidOption = errors.New("compress: invalid option")
)

// Algorithm is a compression format.
type Algorithm int

const (
	// S2 is the S2 block format (github.com/klauspost/compress/s2), an
	// extension of Snappy, without a checksum: on 1 KB JSON about eight
	// times as fast as Zstd, but it saves a third as many bytes (a ratio of
	// 1.1 against 1.55; see BenchmarkSignal1KB).
	S2 Algorithm = iota + 1
	// Zstd is Zstandard at its default level, one frame per value, with a
	// checksum: the default, for its ratio on small JSON values.
	Zstd
)

// String returns the name of a.
func (a Algorithm) String() string {
	switch a {
	case S2:
		return "s2"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// Defaults of the options.
const (
	// DefaultThreshold is the length under which a value is stored raw:
	// compressing shorter values saves few bytes, and often none (zstd
	// saves a sixth of a 256-byte JSON value, and lengthens a 128-byte one).
	DefaultThreshold = 256
	// DefaultMaxSize is the largest value written and read: 64 MiB.
	DefaultMaxSize = 64 << 20
	// maxMaxSize bounds WithMaxSize: 1 GiB, above what Redis holds.
	maxMaxSize = 1 << 30
)

// Option configures New.
type Option func(*codec)

// WithAlgorithm sets the format of the values compressed from now on: Zstd
// (the default) or S2. Values of either format are read whatever a is.
func WithAlgorithm(a Algorithm) Option { return func(c *codec) { c.alg = a } }

// WithThreshold sets the length from which a value is compressed: shorter
// values are stored raw (DefaultThreshold by default). n must not be
// negative; 0 compresses every non-empty value that compression shortens.
func WithThreshold(n int) Option { return func(c *codec) { c.threshold = n } }

// WithMaxSize sets the largest value, in bytes, written and read decoded
// (DefaultMaxSize by default; at most 1 GiB): a longer write fails with
// ErrTooLarge, nothing written, and so does a read of a compressed value
// that would decode to more, before it is decompressed, so that a small
// stored value (a decompression bomb) cannot make the process allocate
// more. Raw values are read whatever their length.
func WithMaxSize(n int) Option { return func(c *codec) { c.max = n } }

var (
	_ backend.Backend   = (*compressed)(nil)
	_ backend.Optimizer = (*compressed)(nil)
	_ backend.Capable   = (*compressed)(nil)
)

// New returns b with its values compressed as the package documentation
// says. Keys, TTLs and every other call are b's; the capabilities of b are
// kept (the values of SetIf and of a lease's Store compressed, their guards
// compared with what b holds), and its optimisations too (ScanEntries
// decompressing). It fails with an error wrapping ErrInvalidOption for a
// nil option, an unknown Algorithm, a negative threshold, or a maximum size
// below 1 or above 1 GiB.
func New(b backend.Backend, opts ...Option) (backend.Backend, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrInvalidOption)
	}
	c := &codec{alg: Zstd, threshold: DefaultThreshold, max: DefaultMaxSize}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidOption, i)
		}
		o(c)
	}
	switch {
	case c.alg != S2 && c.alg != Zstd:
		return nil, fmt.Errorf("%w: unknown algorithm %v", ErrInvalidOption, c.alg)
	case c.threshold < 0:
		return nil, fmt.Errorf("%w: threshold %d (want 0 or more)", ErrInvalidOption, c.threshold)
	case c.max < 1 || c.max > maxMaxSize:
		return nil, fmt.Errorf("%w: maximum size %d (want 1 to %d)", ErrInvalidOption, c.max, maxMaxSize)
	}
	if c.alg == Zstd {
		if _, err := zstdEncoder(); err != nil {
			return nil, fmt.Errorf("compress: zstd encoder: %w", err)
		}
	}
	return &compressed{Wrapper: backend.Wrapper{Backend: b}, c: c}, nil
}

// compressed is the decorator. Its Wrapper forwards the calls that do not
// carry values.
type compressed struct {
	backend.Wrapper
	c *codec
}

// keyErr names key in err.
func keyErr(key string, err error) error {
	return fmt.Errorf("key %s: %w", backend.QuoteKey(key), err)
}

// decodeValues replaces each found value of vals (those of keys) by its
// decoded form; one that cannot be decoded gets its error as Value.Err,
// the key's own failure.
func (b *compressed) decodeValues(keys []string, vals []backend.Value) {
	for i := range vals {
		if vals[i].Found {
			vals[i] = b.decodeValue(keys[i], vals[i])
		}
	}
}

// decodeValue returns v, the found value of key, decoded, or with Err set
// (Bytes nil) when it cannot be.
func (b *compressed) decodeValue(key string, v backend.Value) backend.Value {
	d, err := b.c.decode(v.Bytes)
	if err != nil {
		v.Bytes, v.Err = nil, keyErr(key, err)
		return v
	}
	v.Bytes = d
	return v
}

// MGet implements backend.Backend.MGet, decoding each value found. A value
// that cannot be decoded is reported for its key alone (Value.Err, an error
// matching ErrCorrupt or ErrTooLarge): the other keys are read.
func (b *compressed) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	vals, err := b.Backend.MGet(ctx, keys, withTTL)
	if err != nil || len(vals) != len(keys) {
		return vals, err
	}
	b.decodeValues(keys, vals)
	return vals, nil
}

// Get implements backend.Backend.Get, decoding the value found (Value.Err
// when it cannot be).
func (b *compressed) Get(ctx context.Context, key string) (backend.Value, error) {
	v, err := b.Backend.Get(ctx, key)
	if err != nil || !v.Found {
		return v, err
	}
	return b.decodeValue(key, v), nil
}

// MSet implements backend.Backend.MSet, encoding every value first: a value
// longer than the maximum size fails the call with ErrTooLarge and nothing
// is written.
func (b *compressed) MSet(ctx context.Context, entries []backend.Entry) error {
	out := make([]backend.Entry, len(entries))
	for i, e := range entries {
		v, err := b.c.encode(e.Value)
		if err != nil {
			return fmt.Errorf("entry %d (key %s): %w", i, backend.QuoteKey(e.Key), err)
		}
		e.Value = v
		out[i] = e
	}
	return b.Backend.MSet(ctx, out)
}

// Optimizations implements backend.Optimizer: those of the store below,
// ScanEntries decoding the values of its pages.
func (b *compressed) Optimizations() backend.Optimizations {
	o := backend.OptimizationsOf(b.Backend)
	if f := o.ScanEntries; f != nil {
		o.ScanEntries = func(ctx context.Context, prefix, cursor string, pageSize int) (backend.EntryPage, error) {
			page, err := f(ctx, prefix, cursor, pageSize)
			if err != nil {
				return backend.EntryPage{}, err
			}
			for i, v := range page.Values {
				d, err := b.c.decode(v)
				if err != nil {
					if page.Errs == nil {
						page.Errs = make([]error, len(page.Keys))
					}
					d, page.Errs[i] = nil, keyErr(page.Keys[i], err)
				}
				page.Values[i] = d
			}
			return page, nil
		}
	}
	return o
}

// Capabilities implements backend.Capable: those of the store below, with
// values compressed where they carry values (SetIf, a lease's Store) and a
// namespace view decorated too. Watch is the store's.
func (b *compressed) Capabilities() backend.Capabilities {
	c := backend.CapabilitiesOf(b.Backend)
	if f := c.AcquireLeases; f != nil {
		c.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
			held, l, err := f(ctx, keys, ttl)
			if l != nil {
				l = &lease{Lease: l, b: b}
			}
			return held, l, err
		}
	}
	if f := c.SetIf; f != nil {
		c.SetIf = func(ctx context.Context, e backend.GuardedEntry) (bool, error) { return b.setIf(ctx, f, e) }
	}
	if f := c.Namespace; f != nil {
		c.Namespace = func(ns string) (backend.Backend, error) {
			v, err := f(ns)
			if err != nil {
				return nil, err
			}
			return &compressed{Wrapper: backend.Wrapper{Backend: v}, c: b.c}, nil
		}
	}
	return c
}

// maxSetIfTries bounds the SetIf calls of one guarded write whose stored
// value keeps changing to other encodings of the guard's value.
const maxSetIfTries = 16

// setIf implements SetIf over f, the store's. The value is encoded. A guard
// on a value (PrevFound) is first tried with that value's canonical
// encoding (what this decorator writes); when the store reports the key
// changed, the key's stored bytes are read: if they decode to the guard's
// value (a raw value written before compression was on, one compressed with
// another algorithm or threshold), the write is tried again with them as
// the guard, as long as the stored bytes keep changing but still decode to
// it (up to maxSetIfTries tries, or until ctx ends: then an error matching
// ErrContended, nothing written, since the key kept holding the guard's
// value); otherwise the key did change, and false is reported.
func (b *compressed) setIf(ctx context.Context, f func(context.Context, backend.GuardedEntry) (bool, error), e backend.GuardedEntry) (bool, error) {
	v, err := b.c.encode(e.Value)
	if err != nil {
		return false, keyErr(e.Key, err)
	}
	e.Value = v
	if !e.PrevFound {
		return f(ctx, e)
	}
	want := e.Prev
	if e.Prev, err = b.c.encode(want); err != nil {
		// Longer than this decorator writes: only a raw value can match.
		e.Prev = want
	}
	for range maxSetIfTries {
		ok, err := f(ctx, e)
		if ok || err != nil {
			return ok, err
		}
		cur, err := b.Backend.Get(ctx, e.Key)
		switch {
		case errors.Is(err, backend.ErrWrongType):
			return false, nil // data of another kind: not the guard's value
		case err != nil:
			return false, fmt.Errorf("compress: reading the guarded value: %w", err)
		case !cur.Found:
			return false, nil
		}
		if got, err := b.c.decode(cur.Bytes); err != nil || !bytes.Equal(got, want) {
			return false, nil // the key holds another value
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("compress: guarded write: %w", context.Cause(ctx))
		}
		e.Prev = cur.Bytes
	}
	return false, keyErr(e.Key, fmt.Errorf("%w: %d tries", ErrContended, maxSetIfTries))
}

// lease is a Lease of the store below whose Store compresses.
type lease struct {
	backend.Lease
	b *compressed
}

// Store implements backend.Lease.Store: each value is encoded, and each
// guard on a value (PrevFound) is given as the bytes the key holds when they
// decode to the guard's value, read just before (one MGet of those keys),
// and as the value's canonical encoding otherwise (the key changed: the
// store finds it so). Store cannot be tried again as SetIf is, since a
// guard that fails ends the lease; the read before costs a round trip, on
// Stores with a guard on a value only (a refresh, not the load of a missing
// key).
func (l *lease) Store(ctx context.Context, entries []backend.GuardedEntry) ([]bool, error) {
	c := l.b.c
	out := make([]backend.GuardedEntry, len(entries))
	var guarded []string
	var at []int
	for i, e := range entries {
		v, err := c.encode(e.Value)
		if err != nil {
			return nil, fmt.Errorf("entry %d (key %s): %w", i, backend.QuoteKey(e.Key), err)
		}
		e.Value = v
		out[i] = e
		if e.PrevFound {
			guarded, at = append(guarded, e.Key), append(at, i)
		}
	}
	if len(guarded) > 0 {
		cur, err := l.b.Backend.MGet(ctx, guarded, false)
		if err != nil {
			return nil, fmt.Errorf("compress: reading the guarded values: %w", err)
		}
		for j, i := range at {
			e := &out[i]
			if j < len(cur) && cur[j].Found {
				if got, err := c.decode(cur[j].Bytes); err == nil && bytes.Equal(got, e.Prev) {
					e.Prev = cur[j].Bytes
					continue
				}
			}
			if g, err := c.encode(e.Prev); err == nil {
				e.Prev = g
			}
		}
	}
	return l.Lease.Store(ctx, out)
}
