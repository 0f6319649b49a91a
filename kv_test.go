package kv_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
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
	s := mustNew[string](t, b, "s")
	if err := s.Set(ctx, "k", `a "raw" string`); err != nil {
		t.Fatal(err)
	}
	check("string", stored(t, b, "s", "k"), `a "raw" string`)

	ms := mustNew[myString](t, b, "ms")
	if err := ms.Set(ctx, "k", "named"); err != nil {
		t.Fatal(err)
	}
	check("named string", stored(t, b, "ms", "k"), "named")
	if v, ok, err := ms.Get(ctx, "k"); err != nil || !ok || v != "named" {
		t.Errorf("named string Get = %q, %v, %v", v, ok, err)
	}

	by := mustNew[[]byte](t, b, "by")
	if err := by.Set(ctx, "k", []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	check("[]byte", stored(t, b, "by", "k"), "\x00\x01\x02")

	mb := mustNew[myBytes](t, b, "mb")
	if err := mb.Set(ctx, "k", myBytes("xy")); err != nil {
		t.Fatal(err)
	}
	check("named []byte", stored(t, b, "mb", "k"), "xy")
	if v, ok, err := mb.Get(ctx, "k"); err != nil || !ok || string(v) != "xy" {
		t.Errorf("named []byte Get = %q, %v, %v", v, ok, err)
	}

	// A slice of a named byte type has another underlying type: JSON (which
	// writes byte slices as base64).
	o := mustNew[odd](t, b, "odd")
	if err := o.Set(ctx, "k", odd{1, 2}); err != nil {
		t.Fatal(err)
	}
	check("[]myByte", stored(t, b, "odd", "k"), `"AQI="`)

	a := mustNew[any](t, b, "any")
	if err := a.Set(ctx, "k", "str"); err != nil {
		t.Fatal(err)
	}
	check("any", stored(t, b, "any", "k"), `"str"`)

	i := mustNew[int](t, b, "int")
	if err := i.Set(ctx, "k", 42); err != nil {
		t.Fatal(err)
	}
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
	if err := m.Set(ctx, "k", "hello"); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, b, "c", "k"); got != "HELLO" {
		t.Errorf("stored %q; want HELLO", got)
	}
	j := mustNew[string](t, b, "j", kv.WithCodec(kv.JSON[string]()))
	if err := j.Set(ctx, "k", "x"); err != nil {
		t.Fatal(err)
	}
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
		{"page size 0", func() error { _, err := kv.New[int](b, "ns", kv.WithPageSize(0)); return err }, kv.ErrInvalidOption},
		{"deprecated scan count 0", func() error { _, err := kv.New[int](b, "ns", kv.WithScanCount(0)); return err }, kv.ErrInvalidOption},
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
	m := mustNew[string](t, b, "signal_cache")
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
	m := mustNew[string](t, &failingSet{Backend: newMem(t), err: boom}, "ns")
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
	m := mustNew[string](t, &wrongType{newMem(t)}, "ns")
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
	fill := mustNew[string](t, mem, "ns")
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if err := fill.Set(ctx, k, k); err != nil {
			t.Fatal(err)
		}
	}
	m := mustNew[string](t, &failingScan{Backend: mem, err: boom}, "ns", kv.WithPageSize(2))
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

// TestSetWithTTLRoundsUp: a TTL under one millisecond is rounded up to one
// millisecond, on a fake clock, so the check cannot pass by luck.
func TestSetWithTTLRoundsUp(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(clk))
	t.Cleanup(func() { store.Close() })
	m := mustNew[string](t, store, "ns")
	if err := m.SetWithTTL(ctx, "k", "v", time.Nanosecond); err != nil {
		t.Fatalf("SetWithTTL(1ns) = %v", err)
	}
	if d, ok, err := m.TTL(ctx, "k"); err != nil || !ok || d != time.Millisecond {
		t.Errorf("TTL = %v, %v, %v; want exactly 1ms", d, ok, err)
	}
	clk.Advance(999 * time.Microsecond)
	if ok, err := m.Has(ctx, "k"); err != nil || !ok {
		t.Errorf("Has after 999µs = %v, %v; want true (the TTL is 1ms)", ok, err)
	}
	clk.Advance(time.Microsecond)
	if ok, err := m.Has(ctx, "k"); err != nil || ok {
		t.Errorf("Has after 1ms = %v, %v; want false", ok, err)
	}
}

// TestGetOrLoadConcurrentSynctest: concurrent misses share one load.
// synctest makes "every caller is waiting" exact: the load is released only
// once every goroutine of the bubble is blocked.
func TestGetOrLoadConcurrentSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memory.New(memory.WithSweepInterval(0))
		defer store.Close()
		m := mustNew[string](t, store, "ns")
		var calls atomic.Int32
		release := make(chan struct{})
		load := func(context.Context) (string, error) {
			calls.Add(1)
			<-release
			return "once", nil
		}
		const n = 16
		results := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i], errs[i] = m.GetOrLoad(context.Background(), "id", load) })
		}
		synctest.Wait() // every caller is blocked: in the flight, or in load
		close(release)
		wg.Wait()
		if c := calls.Load(); c != 1 {
			t.Errorf("load called %d times by %d concurrent callers; want 1", c, n)
		}
		for i := range n {
			if errs[i] != nil || results[i] != "once" {
				t.Errorf("caller %d: GetOrLoad = %q, %v; want once, nil", i, results[i], errs[i])
			}
		}
	})
}

func TestGetOrLoadPanic(t *testing.T) {
	m := mustNew[string](t, newMem(t), "ns")
	_, err := m.GetOrLoad(context.Background(), "k", func(context.Context) (string, error) { panic("bug in loader") })
	if err == nil || !strings.Contains(err.Error(), "bug in loader") {
		t.Errorf("GetOrLoad with a panicking load = %v; want an error naming the panic", err)
	}
	if ok, _ := m.Has(context.Background(), "k"); ok {
		t.Errorf("a panicking load stored a value")
	}
}
