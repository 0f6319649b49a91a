package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/internal/leaktest"
	"github.com/kvmap/kv/internal/testkv"
	"github.com/kvmap/kv/transfer"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// mustNew returns a Map or fails the test.
func mustNew[V any](t testing.TB, b backend.Backend, ns string, opts ...kv.Option) *kv.Map[V] {
	t.Helper()
	return testkv.MustNew[V](t, b, ns, opts...)
}

// failAfter fails every write after the first n.
type failAfter struct {
	backend.Backend
	n int
}

func (f *failAfter) MSet(ctx context.Context, es []backend.Entry) error {
	if f.n <= 0 {
		return errors.New("connection lost")
	}
	f.n--
	return f.Backend.MSet(ctx, es)
}

func TestCopy(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Unix(0, 0))
	src := memory.New(memory.WithClock(clk))
	dst := memory.New(memory.WithClock(clk))
	defer src.Close()
	defer dst.Close()
	m := mustNew[string](t, src, "ns", kv.WithTTL(time.Hour))
	for i := range 250 {
		if err := m.Set(ctx, fmt.Sprintf("k%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SetWithTTL(ctx, "never", "v", kv.NoTTL); err != nil {
		t.Fatal(err)
	}

	// Interrupted after the first page of 100, then run again.
	res, err := transfer.Copy(ctx, &failAfter{Backend: dst, n: 1}, src, "ns", transfer.Options{PageSize: 100, ToNamespace: "snap"})
	if err == nil || res.Keys != 100 {
		t.Fatalf("interrupted Copy = %+v, %v; want 100 and an error", res, err)
	}
	res, err = transfer.Copy(ctx, dst, src, "ns", transfer.Options{PageSize: 100, ToNamespace: "snap"})
	if err != nil || res != (transfer.Result{Keys: 251}) {
		t.Fatalf("second Copy = %+v, %v; want 251 keys, none capped", res, err)
	}
	snap := mustNew[string](t, dst, "snap")
	if size, _ := snap.Size(ctx); size != 251 {
		t.Errorf("snapshot size = %d; want 251", size)
	}
	if d, _, _ := snap.TTL(ctx, "k007"); d != time.Hour {
		t.Errorf("copied TTL = %v; want 1h", d)
	}
	if d, _, _ := snap.TTL(ctx, "never"); d != kv.NoTTL {
		t.Errorf("copied TTL of a key without one = %v; want NoTTL", d)
	}
	if _, err := transfer.Copy(ctx, dst, src, "ns", transfer.Options{ToNamespace: "frozen", DropTTL: true}); err != nil {
		t.Fatal(err)
	}
	frozen := mustNew[string](t, dst, "frozen")
	if d, _, _ := frozen.TTL(ctx, "k007"); d != kv.NoTTL {
		t.Errorf("TTL with DropTTL = %v; want NoTTL", d)
	}
	if _, err := transfer.Copy(ctx, dst, src, "ns", transfer.Options{ToNamespace: "a:b"}); !errors.Is(err, kv.ErrInvalidNamespace) {
		t.Errorf("Copy to namespace a:b = %v; want ErrInvalidNamespace", err)
	}
}

// longTTL reports every remaining TTL as longer than MaxTTL, as a foreign
// store could.
type longTTL struct{ backend.Backend }

func (b longTTL) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	vals, err := b.Backend.MGet(ctx, keys, withTTL)
	for i := range vals {
		if withTTL && vals[i].Found && vals[i].TTL != kv.NoTTL {
			vals[i].TTL = kv.MaxTTL + 24*time.Hour
		}
	}
	return vals, err
}

func TestCopyCapsTTLAboveMax(t *testing.T) {
	ctx := context.Background()
	src, dst := memory.New(), memory.New(memory.WithClock(clock.NewManual(time.Unix(1e9, 0))))
	t.Cleanup(func() { src.Close(); dst.Close() })
	m := mustNew[string](t, src, "ns")
	for _, k := range []string{"a", "b"} {
		if err := m.Set(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SetWithTTL(ctx, "forever", "v", kv.NoTTL); err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Copy(ctx, dst, longTTL{src}, "ns", transfer.Options{})
	if want := (transfer.Result{Keys: 3, CappedTTLs: 2}); err != nil || res != want {
		t.Fatalf("Copy = %+v, %v; want %+v", res, err, want)
	}
	d := mustNew[string](t, dst, "ns")
	for _, k := range []string{"a", "b"} {
		if got, ok, err := d.TTL(ctx, k); err != nil || !ok || got != kv.MaxTTL {
			t.Errorf("TTL(%s) in the copy = %v, %v, %v; want MaxTTL", k, got, ok, err)
		}
	}
	if n, err := d.Size(ctx); err != nil || n != 3 {
		t.Errorf("copy Size = %d, %v; want 3", n, err)
	}
}

// TestEntries: the raw entries of a namespace, page by page, with their
// TTLs, each key once, only the namespace's.
func TestEntries(t *testing.T) {
	ctx := context.Background()
	store := memory.New(memory.WithClock(clock.NewManual(time.Unix(1e9, 0))))
	t.Cleanup(func() { store.Close() })
	m := mustNew[string](t, store, "ns", kv.WithTTL(time.Hour))
	other := mustNew[string](t, store, "ns2")
	for i := range 25 {
		if err := m.Set(ctx, fmt.Sprintf("k%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SetWithTTL(ctx, "never", "raw", kv.NoTTL); err != nil {
		t.Fatal(err)
	}
	if err := other.Set(ctx, "x", "y"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]backend.Value{}
	pages := 0
	for page, err := range transfer.Entries(ctx, store, "ns", 10) {
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for i, k := range page.Keys {
			if _, dup := seen[k]; dup {
				t.Errorf("key %q came twice", k)
			}
			seen[k] = page.Values[i]
		}
	}
	if len(seen) != 26 || pages < 3 {
		t.Errorf("Entries gave %d keys in %d pages; want 26 in at least 3", len(seen), pages)
	}
	if v := seen["never"]; string(v.Bytes) != "raw" || v.TTL != kv.NoTTL {
		t.Errorf("entry never = %+v; want raw with NoTTL", v)
	}
	if v := seen["k03"]; v.TTL != time.Hour {
		t.Errorf("entry k03 TTL = %v; want 1h", v.TTL)
	}
	for _, err := range transfer.Entries(ctx, store, "a:b", 10) {
		if !errors.Is(err, kv.ErrInvalidNamespace) {
			t.Errorf("Entries of namespace a:b yielded %v; want ErrInvalidNamespace", err)
		}
	}
}
