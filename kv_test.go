package kv_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
)

func newMem(t *testing.T) *memory.Backend {
	t.Helper()
	b := memory.New()
	t.Cleanup(func() { _ = b.Close() })
	return b
}

type (
	myString string
	myBytes  []byte
	myByte   byte
	odd      []myByte
)

// stored returns the bytes stored for key of namespace ns.
func stored(t *testing.T, b backend.Backend, ns, key string) string {
	t.Helper()
	vals, err := b.MGet(context.Background(), []string{ns + ":" + key}, false)
	if err != nil || !vals[0].Found {
		t.Fatalf("MGet(%s:%s) = %+v, %v", ns, key, vals, err)
	}
	return string(vals[0].Bytes)
}

func TestDefaultCodec(t *testing.T) {
	ctx := context.Background()
	b := newMem(t)
	check := func(name, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: stored %q; want %q", name, got, want)
		}
	}
	s, _ := kv.New[string](b, "s")
	_ = s.Set(ctx, "k", `a "raw" string`)
	check("string", stored(t, b, "s", "k"), `a "raw" string`)

	ms, _ := kv.New[myString](b, "ms")
	_ = ms.Set(ctx, "k", "named")
	check("named string", stored(t, b, "ms", "k"), "named")
	if v, ok, err := ms.Get(ctx, "k"); err != nil || !ok || v != "named" {
		t.Errorf("named string Get = %q, %v, %v", v, ok, err)
	}

	by, _ := kv.New[[]byte](b, "by")
	_ = by.Set(ctx, "k", []byte{0, 1, 2})
	check("[]byte", stored(t, b, "by", "k"), "\x00\x01\x02")

	mb, _ := kv.New[myBytes](b, "mb")
	_ = mb.Set(ctx, "k", myBytes("xy"))
	check("named []byte", stored(t, b, "mb", "k"), "xy")
	if v, ok, err := mb.Get(ctx, "k"); err != nil || !ok || string(v) != "xy" {
		t.Errorf("named []byte Get = %q, %v, %v", v, ok, err)
	}

	// A slice of a named byte type has another underlying type: JSON (which
	// writes byte slices as base64).
	o, _ := kv.New[odd](b, "odd")
	_ = o.Set(ctx, "k", odd{1, 2})
	check("[]myByte", stored(t, b, "odd", "k"), `"AQI="`)

	a, _ := kv.New[any](b, "any")
	_ = a.Set(ctx, "k", "str")
	check("any", stored(t, b, "any", "k"), `"str"`)

	i, _ := kv.New[int](b, "int")
	_ = i.Set(ctx, "k", 42)
	check("int", stored(t, b, "int", "k"), "42")
}

type upperCodec struct{}

func (upperCodec) Encode(v string) ([]byte, error) { return []byte(strings.ToUpper(v)), nil }
func (upperCodec) Decode(b []byte) (string, error) { return strings.ToLower(string(b)), nil }

func TestWithCodec(t *testing.T) {
	ctx := context.Background()
	b := newMem(t)
	m, err := kv.New[string](b, "c", kv.WithCodec[string](upperCodec{}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_ = m.Set(ctx, "k", "hello")
	if got := stored(t, b, "c", "k"); got != "HELLO" {
		t.Errorf("stored %q; want HELLO", got)
	}
	j, _ := kv.New[string](b, "j", kv.WithCodec(kv.JSON[string]()))
	_ = j.Set(ctx, "k", "x")
	if got := stored(t, b, "j", "k"); got != `"x"` {
		t.Errorf("JSON codec stored %q; want %q", got, `"x"`)
	}
}

func TestNewInvalidOptions(t *testing.T) {
	b := newMem(t)
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"codec of another type", func() error {
			_, err := kv.New[int](b, "ns", kv.WithCodec[string](upperCodec{}))
			return err
		}, kv.ErrInvalidOption},
		{"scan count 0", func() error { _, err := kv.New[int](b, "ns", kv.WithScanCount(0)); return err }, kv.ErrInvalidOption},
		{"nil backend", func() error { _, err := kv.New[int](nil, "ns"); return err }, kv.ErrInvalidOption},
		{"TTL 0", func() error { _, err := kv.New[int](b, "ns", kv.WithTTL(0)); return err }, kv.ErrInvalidTTL},
		{"namespace with colon", func() error { _, err := kv.New[int](b, "a:b"); return err }, kv.ErrInvalidNamespace},
	}
	for _, tt := range tests {
		if err := tt.do(); !errors.Is(err, tt.want) {
			t.Errorf("%s: New error = %v; want %v", tt.name, err, tt.want)
		}
	}
}

func TestErrorsNameOperationNamespaceAndKey(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	m, _ := kv.New[string](b, "signal_cache")
	_ = b.Close()
	err := m.Set(ctx, "binance:s:BTC", "v")
	for _, want := range []string{"Set", "signal_cache", `"binance:s:BTC"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if !errors.Is(err, kv.ErrClosed) {
		t.Errorf("errors.Is(%v, ErrClosed) = false", err)
	}
}

// failingSet is a store whose writes fail.
type failingSet struct {
	backend.Backend
	err error
}

func (f *failingSet) MSet(context.Context, []backend.Entry) error { return f.err }

func TestGetOrLoadStoreFailure(t *testing.T) {
	boom := errors.New("disk full")
	m, _ := kv.New[string](&failingSet{Backend: newMem(t), err: boom}, "ns")
	v, err := m.GetOrLoad(context.Background(), "k", func(context.Context) (string, error) { return "loaded", nil })
	if v != "loaded" || !errors.Is(err, boom) {
		t.Errorf("GetOrLoad = %q, %v; want the loaded value and the store error", v, err)
	}
}

// wrongType reports a key of another kind the way backend/redis does: Get
// fails with ErrWrongType, MGet reports it absent.
type wrongType struct{ backend.Backend }

func (w *wrongType) Get(ctx context.Context, key string) (backend.Value, error) {
	if key == "ns:list" {
		return backend.Value{}, backend.ErrWrongType
	}
	return w.Backend.Get(ctx, key)
}

func TestWrongType(t *testing.T) {
	ctx := context.Background()
	m, _ := kv.New[string](&wrongType{newMem(t)}, "ns")
	if _, _, err := m.Get(ctx, "list"); !errors.Is(err, kv.ErrWrongType) {
		t.Errorf("Get = %v; want ErrWrongType", err)
	}
	if ok, err := m.Has(ctx, "list"); ok || err != nil {
		t.Errorf("Has = %v, %v; want false, nil", ok, err)
	}
	if got, err := m.GetMany(ctx, []string{"list"}); len(got) != 0 || err != nil {
		t.Errorf("GetMany = %v, %v; want empty, nil", got, err)
	}
}

// failingScan fails the scan of its second page.
type failingScan struct {
	backend.Backend
	calls atomic.Int32
	err   error
}

func (f *failingScan) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	if f.calls.Add(1) == 2 {
		return backend.Page{}, f.err
	}
	return f.Backend.Scan(ctx, prefix, cursor, count)
}

func TestIterationErrorEndsPass(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("connection reset")
	mem := newMem(t)
	fill, _ := kv.New[string](mem, "ns")
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		_ = fill.Set(ctx, k, k)
	}
	m, _ := kv.New[string](&failingScan{Backend: mem, err: boom}, "ns", kv.WithScanCount(2))
	n, errs := 0, 0
	for _, err := range m.Iterate(ctx) {
		if err != nil {
			errs++
			if !errors.Is(err, boom) {
				t.Errorf("Iterate error = %v; want the scan error", err)
			}
			continue
		}
		n++
	}
	if n != 2 || errs != 1 {
		t.Errorf("Iterate yielded %d entries and %d errors; want 2 (the first page) and 1", n, errs)
	}
}

func TestSetWithTTLRoundsUp(t *testing.T) {
	ctx := context.Background()
	m, _ := kv.New[string](newMem(t), "ns")
	if err := m.SetWithTTL(ctx, "k", "v", time.Nanosecond); err != nil {
		t.Fatalf("SetWithTTL(1ns) = %v", err)
	}
	if d, ok, err := m.TTL(ctx, "k"); ok && (err != nil || d > time.Millisecond || d <= 0) {
		t.Errorf("TTL = %v, %v; want at most 1ms", d, err)
	}
}

func TestGetOrLoadPanic(t *testing.T) {
	m, _ := kv.New[string](newMem(t), "ns")
	_, err := m.GetOrLoad(context.Background(), "k", func(context.Context) (string, error) { panic("bug in loader") })
	if err == nil || !strings.Contains(err.Error(), "bug in loader") {
		t.Errorf("GetOrLoad with a panicking load = %v; want an error naming the panic", err)
	}
	if ok, _ := m.Has(context.Background(), "k"); ok {
		t.Errorf("a panicking load stored a value")
	}
}
