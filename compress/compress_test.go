package compress_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/compress"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/namespace"
	"github.com/kvmap/kv/nearcache"
)

// jsonValue returns a compressible JSON document of about n bytes.
func jsonValue(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"signals":[`)
	for i := 0; b.Len() < n-2; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"symbol":"BTCUSDT","position":"long","priceOpen":%d.25}`, i, 40000+i*7)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// random returns n bytes that do not compress (and do not start with the
// marker).
func random(n int) []byte {
	out := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = byte(x)
	}
	out[0] = 'R'
	return out
}

// stack returns a memory store and the decorator over it.
func stack(t *testing.T, opts ...compress.Option) (*memory.Backend, backend.Backend) {
	t.Helper()
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	c, err := compress.New(store, opts...)
	if err != nil {
		t.Fatalf("compress.New: %v", err)
	}
	return store, c
}

// rawGet returns the bytes that b holds under key.
func rawGet(t *testing.T, b backend.Backend, key string) []byte {
	t.Helper()
	v, err := b.Get(t.Context(), key)
	if err != nil || !v.Found {
		t.Fatalf("raw Get(%q) = %v, %v; want found", key, v.Found, err)
	}
	return v.Bytes
}

func set(t *testing.T, b backend.Backend, key string, value []byte) {
	t.Helper()
	if err := b.MSet(t.Context(), []backend.Entry{{Key: key, Value: value, TTL: backend.NoTTL}}); err != nil {
		t.Fatalf("MSet(%q): %v", key, err)
	}
}

// readAll reads key through every read of b (Get, MGet, MGet with TTLs, a
// scan with values) and fails unless each returns want.
func readAll(t *testing.T, b backend.Backend, key string, want []byte) {
	t.Helper()
	ctx := t.Context()
	if v, err := b.Get(ctx, key); err != nil || !v.Found || !bytes.Equal(v.Bytes, want) {
		t.Errorf("Get(%q) = %.24q, %v, %v; want %.24q", key, v.Bytes, v.Found, err, want)
	}
	for _, withTTL := range []bool{false, true} {
		vals, err := b.MGet(ctx, []string{"absent", key}, withTTL)
		if err != nil || len(vals) != 2 || vals[0].Found || !vals[1].Found || !bytes.Equal(vals[1].Bytes, want) {
			t.Errorf("MGet(absent, %q, withTTL %v) = %+v, %v; want absent, then %.24q", key, withTTL, vals, err, want)
		}
	}
	found := false
	for page, err := range backend.EntryPages(ctx, b, key, 100) {
		if err != nil {
			t.Fatalf("EntryPages(%q): %v", key, err)
		}
		for i, k := range page.Keys {
			if k == key {
				found = true
				if !bytes.Equal(page.Values[i], want) {
					t.Errorf("EntryPages: %q holds %.24q; want %.24q", key, page.Values[i], want)
				}
			}
		}
	}
	if !found {
		t.Errorf("EntryPages(%q) did not return the key", key)
	}
}

// TestRoundTrip: every value reads back as written, through every read;
// what is stored is the value itself when it is under the threshold or
// does not compress, the value escaped when it starts with the marker, and
// the marker, the format byte and the compressed value otherwise.
func TestRoundTrip(t *testing.T) {
	const threshold = 64
	long := jsonValue(1024)
	marked := append([]byte(compress.Marker+"z"), jsonValue(1024)...) // starts as a zstd value would
	for _, alg := range []compress.Algorithm{compress.Zstd, compress.S2} {
		t.Run(alg.String(), func(t *testing.T) {
			store, c := stack(t, compress.WithAlgorithm(alg), compress.WithThreshold(threshold))
			tag := map[compress.Algorithm]string{compress.Zstd: "z", compress.S2: "s"}[alg]
			for _, tc := range []struct {
				name   string
				value  []byte
				stored string // "raw", "escaped", "compressed"
			}{
				{"empty", []byte{}, "raw"},
				{"nil", nil, "raw"},
				{"short json", []byte(`{"a":1}`), "raw"},
				{"just under the threshold", bytes.Repeat([]byte("a"), threshold-1), "raw"},
				{"at the threshold", bytes.Repeat([]byte("a"), threshold), "compressed"},
				{"long json", long, "compressed"},
				{"long, incompressible", random(4096), "raw"},
				{"marker alone", []byte(compress.Marker), "escaped"},
				{"short, starting with the marker", []byte(compress.Marker + "r"), "escaped"},
				{"long, starting with the marker, incompressible", append([]byte(compress.Marker), random(2000)...), "escaped"},
				{"long, starting with a format", marked, "compressed"},
				{"0xFF, not the marker", []byte("\xff\xfe UTF-16"), "raw"},
				{"a part of the marker", []byte(compress.Marker[:2]), "raw"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					key := "k-" + tc.name
					set(t, c, key, tc.value)
					readAll(t, c, key, tc.value)
					got := rawGet(t, store, key)
					switch tc.stored {
					case "raw":
						if !bytes.Equal(got, tc.value) {
							t.Errorf("stored %.24q; want the value as it is", got)
						}
					case "escaped":
						if want := append([]byte(compress.Marker+"r"), tc.value...); !bytes.Equal(got, want) {
							t.Errorf("stored %.24q; want %.24q", got, want)
						}
					case "compressed":
						if !bytes.HasPrefix(got, []byte(compress.Marker+tag)) || len(got) >= len(tc.value) {
							t.Errorf("stored %d bytes %.8q; want %q then less than %d bytes", len(got), got, compress.Marker+tag, len(tc.value))
						}
					}
				})
			}
		})
	}
}

// TestReadsOtherWriters: values another writer stored (before compression
// was on, BaseMap's raw strings, a decorator with the other algorithm) read
// back through every read as they were written.
func TestReadsOtherWriters(t *testing.T) {
	store, c := stack(t) // zstd
	_, other := stack(t, compress.WithAlgorithm(compress.S2), compress.WithThreshold(0))
	long := jsonValue(2048)
	otherStored := func() []byte {
		// What the S2 decorator stores, moved into this store.
		set(t, other, "x", long)
		v, err := other.(interface{ Unwrap() backend.Backend }).Unwrap().Get(t.Context(), "x")
		if err != nil || !bytes.HasPrefix(v.Bytes, []byte(compress.Marker+"s")) {
			t.Fatalf("the S2 decorator stored %.8q, %v", v.Bytes, err)
		}
		return v.Bytes
	}()
	for _, tc := range []struct {
		name   string
		stored []byte
		want   []byte
	}{
		{"BaseMap id", []byte("66f1c0ffee0123456789abcd"), []byte("66f1c0ffee0123456789abcd")},
		{"long JSON written raw", long, long},
		{"binary starting with 0xFF", []byte("\xff\x00\x01\x02"), []byte("\xff\x00\x01\x02")},
		{"empty", []byte{}, []byte{}},
		{"S2 by another decorator", otherStored, long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "w-" + tc.name
			set(t, store, key, tc.stored)
			readAll(t, c, key, tc.want)
		})
	}
}

// TestCorrupt: a stored value that starts with the marker but is not valid
// fails every read with an error matching compress.ErrCorrupt and
// backend.ErrCorrupt (kv.ErrCorrupt), naming the key; nothing panics.
func TestCorrupt(t *testing.T) {
	zst := func() []byte {
		e, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		return e.EncodeAll(jsonValue(4096), nil)
	}()
	flipped := bytes.Clone(zst)
	flipped[len(flipped)/2] ^= 0x55
	for _, tc := range []struct {
		name   string
		stored []byte
	}{
		{"marker without a format", []byte(compress.Marker)},
		{"unknown format", []byte(compress.Marker + "q" + "data")},
		{"zstd, empty", []byte(compress.Marker + "z")},
		{"zstd, garbage", []byte(compress.Marker + "z" + "not a zstd frame at all")},
		{"zstd, truncated", append([]byte(compress.Marker+"z"), zst[:len(zst)/2]...)},
		{"zstd, a byte changed", append([]byte(compress.Marker+"z"), flipped...)},
		{"zstd, trailing garbage", append(append([]byte(compress.Marker+"z"), zst...), "garbage"...)},
		{"s2, empty", []byte(compress.Marker + "s")},
		{"s2, garbage", []byte(compress.Marker + "s" + "\x10\xff\xff\xff\xff")},
		{"s2, truncated", append([]byte(compress.Marker+"s"), s2.Encode(nil, jsonValue(4096))[:100]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, c := stack(t)
			set(t, store, "bad", tc.stored)
			ctx := t.Context()
			check := func(call string, err error) {
				t.Helper()
				if !errors.Is(err, compress.ErrCorrupt) || !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), `"bad"`) {
					t.Errorf("%s = %v; want an error matching compress.ErrCorrupt and kv.ErrCorrupt, naming the key", call, err)
				}
			}
			// The failure is the key's own (Value.Err, EntryPage.Errs):
			// the call succeeds and reads its other keys.
			set(t, store, "good", []byte("fine"))
			v, err := c.Get(ctx, "bad")
			if err != nil || !v.Found || v.Bytes != nil {
				t.Errorf("Get = %+v, %v; want found, no bytes, its error in Err", v, err)
			}
			check("Get", v.Err)
			vals, err := c.MGet(ctx, []string{"bad", "good"}, false)
			if err != nil || len(vals) != 2 || string(vals[1].Bytes) != "fine" || vals[1].Err != nil {
				t.Fatalf("MGet = %+v, %v; want bad's error for bad alone, good read", vals, err)
			}
			check("MGet", vals[0].Err)
			check("EntryPages", func() error {
				var keyErr error
				good := false
				for page, err := range backend.EntryPages(ctx, c, "", 10) {
					if err != nil {
						return fmt.Errorf("the pass failed: %w", err)
					}
					for i, k := range page.Keys {
						switch {
						case k == "good":
							good = string(page.Values[i]) == "fine" && (page.Errs == nil || page.Errs[i] == nil)
						case k == "bad" && page.Errs != nil:
							keyErr = page.Errs[i]
						}
					}
				}
				if !good {
					return errors.New("the good key was not read with the bad one")
				}
				return keyErr
			}())
		})
	}
}

// TestMaxSize: a write longer than the maximum fails with ErrTooLarge and
// writes nothing, and a stored value that would decode to more than the
// maximum (a decompression bomb: 64 MiB of zeros in a few KB) fails its
// read with ErrTooLarge, before it is decompressed.
func TestMaxSize(t *testing.T) {
	const max = 1 << 20
	bomb := make([]byte, 64<<20)
	zst, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	bombs := map[string][]byte{
		"zstd": append([]byte(compress.Marker+"z"), zst.EncodeAll(bomb, nil)...),
		"s2":   append([]byte(compress.Marker+"s"), s2.Encode(nil, bomb)...),
		// A header that claims 1 GiB, with no data behind it.
		"s2, forged length": append([]byte(compress.Marker+"s"), 0x80, 0x80, 0x80, 0x80, 0x04),
	}
	for name, stored := range bombs {
		t.Run(name, func(t *testing.T) {
			if len(stored) > 1<<20 {
				t.Fatalf("the bomb is %d bytes; want a small one", len(stored))
			}
			store, c := stack(t, compress.WithMaxSize(max))
			set(t, store, "bomb", stored)
			before := compress.Decompressions()
			v, err := c.Get(t.Context(), "bomb")
			if err != nil || !errors.Is(v.Err, compress.ErrTooLarge) || !errors.Is(v.Err, kv.ErrTooLarge) {
				t.Errorf("Get(bomb) = %v, Err %v; want the key's error matching compress.ErrTooLarge and kv.ErrTooLarge", err, v.Err)
			}
			if n := compress.Decompressions() - before; n != 0 {
				t.Errorf("%d values decompressed; want none: the size is checked first", n)
			}
		})
	}
	t.Run("write", func(t *testing.T) {
		store, c := stack(t, compress.WithMaxSize(max))
		err := c.MSet(t.Context(), []backend.Entry{
			{Key: "ok", Value: []byte("fits"), TTL: backend.NoTTL},
			{Key: "big", Value: make([]byte, max+1), TTL: backend.NoTTL},
		})
		if !errors.Is(err, compress.ErrTooLarge) || !errors.Is(err, kv.ErrTooLarge) {
			t.Errorf("MSet of %d bytes = %v; want ErrTooLarge", max+1, err)
		}
		if n := store.Len(); n != 0 {
			t.Errorf("the store holds %d keys after the refused MSet; want none", n)
		}
		set(t, c, "max", make([]byte, max))
		readAll(t, c, "max", make([]byte, max))
	})
}

// TestOptions: New refuses options out of range with ErrInvalidOption, and
// kv.New refuses them in WithCompression with kv.ErrInvalidOption.
func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []compress.Option
	}{
		{"nil option", []compress.Option{nil}},
		{"unknown algorithm", []compress.Option{compress.WithAlgorithm(7)}},
		{"negative threshold", []compress.Option{compress.WithThreshold(-1)}},
		{"zero maximum", []compress.Option{compress.WithMaxSize(0)}},
		{"maximum above 1 GiB", []compress.Option{compress.WithMaxSize(1<<30 + 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := memory.New()
			defer store.Close()
			if _, err := compress.New(store, tc.opts...); !errors.Is(err, compress.ErrInvalidOption) {
				t.Errorf("compress.New = %v; want ErrInvalidOption", err)
			}
			if _, err := kv.New[string](store, "ns", kv.WithCompression(tc.opts...)); !errors.Is(err, kv.ErrInvalidOption) {
				t.Errorf("kv.New = %v; want kv.ErrInvalidOption", err)
			}
		})
	}
	if _, err := compress.New(nil); !errors.Is(err, compress.ErrInvalidOption) {
		t.Errorf("compress.New(nil) = %v; want ErrInvalidOption", err)
	}
}

// TestForwards: the decorator forwards every capability of the store below
// it, keys unchanged, a namespace view included.
func TestForwards(t *testing.T) {
	conformance.CheckForwards(t, "compress", conformance.Decorator{
		Wrap: func(b backend.Backend) (backend.Backend, error) { return compress.New(b) },
	})
}

// TestSetIf: a guarded write whose guard is a value matches the key's value
// however it is stored (raw from before compression, escaped, compressed
// with the other algorithm or as this decorator does), and does not match
// another value, an absent key, or a corrupt one.
func TestSetIf(t *testing.T) {
	long, next := jsonValue(2048), jsonValue(3000)
	_, s2dec := stack(t, compress.WithAlgorithm(compress.S2), compress.WithThreshold(0))
	set(t, s2dec, "x", long)
	s2Stored := rawGet(t, s2dec.(interface{ Unwrap() backend.Backend }).Unwrap(), "x")
	for _, tc := range []struct {
		name   string
		stored []byte // written below the decorator; nil: absent
		prev   []byte // the guard (PrevFound)
		want   bool
	}{
		{"raw long value", long, long, true},
		{"raw short value", []byte("66f1c0ffee"), []byte("66f1c0ffee"), true},
		{"escaped value", []byte(compress.Marker + "r" + compress.Marker + "x"), []byte(compress.Marker + "x"), true},
		{"compressed by S2", s2Stored, long, true},
		{"raw empty value", []byte{}, nil, true},
		{"another raw value", bytes.ToUpper(long), long, false},
		{"absent", nil, long, false},
		{"corrupt", []byte(compress.Marker + "zjunk"), long, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, c := stack(t)
			ctx := t.Context()
			if tc.stored != nil {
				set(t, store, "k", tc.stored)
			}
			setIf := backend.CapabilitiesOf(c).SetIf
			ok, err := setIf(ctx, backend.GuardedEntry{Entry: backend.Entry{Key: "k", Value: next, TTL: backend.NoTTL}, PrevFound: true, Prev: tc.prev})
			if err != nil || ok != tc.want {
				t.Fatalf("SetIf = %v, %v; want %v", ok, err, tc.want)
			}
			if !tc.want {
				if tc.stored != nil && !bytes.Equal(rawGet(t, store, "k"), tc.stored) {
					t.Errorf("the refused SetIf changed the stored value")
				}
				return
			}
			readAll(t, c, "k", next)
			if got := rawGet(t, store, "k"); !bytes.HasPrefix(got, []byte(compress.Marker+"z")) {
				t.Errorf("stored %.8q after SetIf; want it compressed", got)
			}
			// The value it wrote matches at the first try, in its
			// canonical encoding.
			ok, err = setIf(ctx, backend.GuardedEntry{Entry: backend.Entry{Key: "k", Value: long, TTL: backend.NoTTL}, PrevFound: true, Prev: next})
			if err != nil || !ok {
				t.Errorf("SetIf over its own write = %v, %v; want true", ok, err)
			}
		})
	}
	t.Run("absent guard", func(t *testing.T) {
		store, c := stack(t)
		setIf := backend.CapabilitiesOf(c).SetIf
		e := backend.GuardedEntry{Entry: backend.Entry{Key: "k", Value: long, TTL: backend.NoTTL}}
		if ok, err := setIf(t.Context(), e); err != nil || !ok {
			t.Fatalf("SetIf on an absent key = %v, %v; want true", ok, err)
		}
		if !bytes.HasPrefix(rawGet(t, store, "k"), []byte(compress.Marker+"z")) {
			t.Errorf("SetIf stored the value uncompressed")
		}
		if ok, err := setIf(t.Context(), e); err != nil || ok {
			t.Errorf("SetIf absent on a present key = %v, %v; want false", ok, err)
		}
	})
}

// TestMapCompareAndSwap: through a Map, CompareAndSwap and Update act on a
// value written before compression was on.
func TestMapCompareAndSwap(t *testing.T) {
	store := memory.New()
	defer store.Close()
	ctx := t.Context()
	old := string(jsonValue(1500))
	plain := newMap(t, store)
	if err := plain.Set(ctx, "sig", old); err != nil {
		t.Fatal(err)
	}
	m := newMap(t, store, kv.WithCompression())
	if ok, err := m.CompareAndSwap(ctx, "sig", old, old+"1"); err != nil || !ok {
		t.Fatalf("CompareAndSwap over a raw value = %v, %v; want true", ok, err)
	}
	if err := plain.Set(ctx, "sig", old); err != nil { // raw again
		t.Fatal(err)
	}
	got, wrote, err := m.Update(ctx, "sig", func(cur string, found bool) (string, bool, error) { return cur + "2", true, nil })
	if err != nil || !wrote || got != old+"2" {
		t.Fatalf("Update over a raw value = %.20q, %v, %v; want it written", got, wrote, err)
	}
	if v, _, err := m.Get(ctx, "sig"); err != nil || v != old+"2" {
		t.Errorf("Get after Update = %.20q, %v", v, err)
	}
}

func newMap(t *testing.T, b backend.Backend, opts ...kv.Option) *kv.Map[string] {
	t.Helper()
	m, err := kv.New[string](b, "ns", append([]kv.Option{kv.WithTTL(kv.NoTTL)}, opts...)...)
	if err != nil {
		t.Fatalf("kv.New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// TestLeaseStore: a lease's Store compresses the value, and its guard on a
// value matches the key however it is stored (raw from before compression,
// compressed by this decorator or with the other algorithm), and only
// then.
func TestLeaseStore(t *testing.T) {
	long, next := jsonValue(2048), jsonValue(3000)
	_, zdec := stack(t) // what this decorator stores
	set(t, zdec, "x", long)
	zStored := rawGet(t, zdec.(interface{ Unwrap() backend.Backend }).Unwrap(), "x")
	_, s2dec := stack(t, compress.WithAlgorithm(compress.S2), compress.WithThreshold(0))
	set(t, s2dec, "x", long)
	s2Stored := rawGet(t, s2dec.(interface{ Unwrap() backend.Backend }).Unwrap(), "x")
	for _, tc := range []struct {
		name   string
		stored []byte
		prev   []byte
		want   bool
	}{
		{"raw value", long, long, true},
		{"compressed as this decorator does", zStored, long, true},
		{"compressed by S2", s2Stored, long, true},
		{"another value", bytes.ToUpper(long), long, false},
		{"absent", nil, long, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, c := stack(t)
			ctx := t.Context()
			if tc.stored != nil {
				set(t, store, "k", tc.stored)
			}
			held, l, err := backend.CapabilitiesOf(c).AcquireLeases(ctx, []string{"k", "new"}, time.Minute)
			if err != nil || len(held) != 2 || !held[0] || !held[1] {
				t.Fatalf("AcquireLeases = %v, %v", held, err)
			}
			stored, err := l.Store(ctx, []backend.GuardedEntry{
				{Entry: backend.Entry{Key: "k", Value: next, TTL: backend.NoTTL}, PrevFound: true, Prev: tc.prev},
				{Entry: backend.Entry{Key: "new", Value: next, TTL: backend.NoTTL}},
			})
			if err != nil || len(stored) != 2 || stored[0] != tc.want || !stored[1] {
				t.Fatalf("Store = %v, %v; want [%v true]", stored, err, tc.want)
			}
			readAll(t, c, "new", next)
			if !bytes.HasPrefix(rawGet(t, store, "new"), []byte(compress.Marker+"z")) {
				t.Errorf("Store wrote the value uncompressed")
			}
			if tc.want {
				readAll(t, c, "k", next)
			}
		})
	}
}

// TestNearCacheHoldsDecoded: a Map with compression and a near cache keeps
// the values compressed in the store, and serves a hot hit from the near
// cache without decompressing: the first read decompresses once, the next
// ones not at all. It fails if the decorator is put above the local tier.
func TestNearCacheHoldsDecoded(t *testing.T) {
	store := memory.New()
	defer store.Close()
	ctx := t.Context()
	value := string(jsonValue(1024))
	m := newMap(t, store, kv.WithCompression(), kv.WithNearCache(nearcache.Options{}))
	// Written by another Map, so that the first Get reads the store.
	writer := newMap(t, store, kv.WithCompression())
	if err := writer.Set(ctx, "sig", value); err != nil {
		t.Fatal(err)
	}
	if got := rawGet(t, store, "ns:sig"); !bytes.HasPrefix(got, []byte(compress.Marker+"z")) || len(got) >= len(value) {
		t.Fatalf("the store holds %d bytes %.8q; want the value compressed", len(got), got)
	}
	before := compress.Decompressions()
	for i := range 10 {
		got, ok, err := m.Get(ctx, "sig")
		if err != nil || !ok || got != value {
			t.Fatalf("Get %d = %.20q, %v, %v; want the value", i, got, ok, err)
		}
	}
	if n := compress.Decompressions() - before; n != 1 {
		t.Errorf("10 Gets decompressed %d times; want 1, the first (the others are near-cache hits)", n)
	}
	if st, _ := m.NearCacheStats(); st.Hits < 9 {
		t.Errorf("near cache hits = %d; want 9", st.Hits)
	}
}

// TestScanDecodes: Iterate-style reads of a Map (Values, ToArray through
// ScanEntries) return decoded values for compressed, escaped and raw keys
// alike.
func TestScanDecodes(t *testing.T) {
	store := memory.New()
	defer store.Close()
	ctx := t.Context()
	m := newMap(t, store, kv.WithCompression(compress.WithThreshold(16)))
	want := map[string]string{
		"compressed": string(jsonValue(600)),
		"escaped":    compress.Marker + "r and more",
		"short":      "66f1",
	}
	for k, v := range want {
		if err := m.Set(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	set(t, store, "ns:raw", jsonValue(700)) // written before compression
	want["raw"] = string(jsonValue(700))
	got := map[string]string{}
	for e, err := range m.Iterate(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got[e.Key] = e.Value
	}
	if len(got) != len(want) {
		t.Errorf("Iterate returned %d keys; want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Iterate: %s = %.20q; want %.20q", k, got[k], v)
		}
	}
}

// TestConcurrent: encoders and decoders are shared safely (run with -race).
func TestConcurrent(t *testing.T) {
	for _, alg := range []compress.Algorithm{compress.Zstd, compress.S2} {
		_, c := stack(t, compress.WithAlgorithm(alg), compress.WithThreshold(0))
		ctx := t.Context()
		errs := make(chan error, 8)
		for g := range 8 {
			go func() {
				var err error
				defer func() { errs <- err }()
				for i := range 50 {
					key, v := fmt.Sprintf("g%d-%d", g, i), jsonValue(200+g*100+i)
					if err = c.MSet(ctx, []backend.Entry{{Key: key, Value: v, TTL: backend.NoTTL}}); err != nil {
						return
					}
					got, gerr := c.Get(ctx, key)
					if gerr != nil || !bytes.Equal(got.Bytes, v) {
						err = fmt.Errorf("Get(%s) = %v; want the value written", key, gerr)
						return
					}
				}
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Errorf("%v: %v", alg, err)
			}
		}
	}
}

// TestNamespaceView: over a store with native namespace views (a bbolt
// bucket), the view that package namespace uses is decorated too: values
// written through it are stored compressed, and read back decoded.
func TestNamespaceView(t *testing.T) {
	store, err := bolt.Open(filepath.Join(t.TempDir(), "kv.db"), bolt.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c, err := compress.New(store)
	if err != nil {
		t.Fatal(err)
	}
	view, err := namespace.New(c, "ns")
	if err != nil {
		t.Fatal(err)
	}
	long := jsonValue(2048)
	set(t, view, "sig", long)
	readAll(t, view, "sig", long)
	raw, err := namespace.New(store, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if got := rawGet(t, raw, "sig"); !bytes.HasPrefix(got, []byte(compress.Marker+"z")) {
		t.Errorf("the bucket holds %.8q; want the value compressed", got)
	}
}

// reencoding is a store whose key always holds "v" (escaped) and whose
// SetIf never finds the bytes it is given, as if other writers rewrote the
// value in another encoding between every try.
type reencoding struct {
	backend.Wrapper
	n int
}

func (r *reencoding) Get(ctx context.Context, key string) (backend.Value, error) {
	r.n++
	return backend.Value{Bytes: []byte(compress.Marker + "rv"), Found: true}, nil // "v", escaped
}

func (r *reencoding) Capabilities() backend.Capabilities {
	c := r.Wrapper.Capabilities()
	c.SetIf = func(context.Context, backend.GuardedEntry) (bool, error) { return false, nil }
	return c
}

// TestSetIfContended: a guarded write whose key keeps holding the guard's
// value in encodings that change at every try gives up with ErrContended,
// not false (the key held the guard's value all along).
func TestSetIfContended(t *testing.T) {
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	below := &reencoding{Wrapper: backend.Wrapper{Backend: store}}
	c, err := compress.New(below)
	if err != nil {
		t.Fatal(err)
	}
	setIf := backend.CapabilitiesOf(c).SetIf
	e := backend.GuardedEntry{Entry: backend.Entry{Key: "k", Value: []byte("w"), TTL: time.Minute}, PrevFound: true, Prev: []byte("v")}
	ok, err := setIf(t.Context(), e)
	if ok || !errors.Is(err, compress.ErrContended) {
		t.Errorf("SetIf = %v, %v; want false, ErrContended", ok, err)
	}
	if below.n == 0 {
		t.Errorf("the decorator never read the stored value")
	}
}
