package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/namespace"
)

func harness(opts ...bolt.Option) conformance.Harness {
	return conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			dir, err := os.MkdirTemp("", "kvbolt")
			if err != nil {
				t.Fatalf("MkdirTemp: %v", err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			b, err := bolt.Open(filepath.Join(dir, "kv.db"), append([]bolt.Option{bolt.WithClock(clk), bolt.WithNoSync()}, opts...)...)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return conformance.Store{Backend: b, Advance: clk.Advance}
		},
		PageHint: true,
	}
}

func TestConformance(t *testing.T) {
	h := harness()
	h.Faults = conformance.FaultsAround(h.New)
	conformance.Run(t, h)
}

// TestConformanceCoreOnly runs the suite with the backend's optimisations
// hidden: every one is a pure optimisation, so the results must be the same.
func TestConformanceCoreOnly(t *testing.T) {
	h := harness()
	h.Faults = conformance.FaultsAround(h.New)
	conformance.Run(t, conformance.WithoutOptimizations(h))
}

func open(t *testing.T, path string, opts ...bolt.Option) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestDefaultsAreDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	b := open(t, path)
	if !b.Sync() || b.DB().NoSync {
		t.Errorf("a default Open does not sync writes (NoSync = %v)", b.DB().NoSync)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("new file mode = %o; want 600", mode)
	}
	nb := open(t, filepath.Join(t.TempDir(), "bulk.db"), bolt.WithNoSync())
	if nb.Sync() {
		t.Errorf("WithNoSync still syncs")
	}
}

func TestLockedFileFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	open(t, path)
	start := time.Now()
	_, err := bolt.Open(path, bolt.WithLockTimeout(100*time.Millisecond))
	if !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("second Open = %v; want ErrLocked", err)
	}
	if time.Since(start) > 30*time.Second { // a hang, not a timing assertion
		t.Errorf("second Open took %v", time.Since(start))
	}
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	b := open(t, filepath.Join(t.TempDir(), "kv.db"), bolt.WithNoSync())
	m := mustNew[[]byte](t, b, "ns")
	long := string(bytes.Repeat([]byte("k"), bbolt.MaxKeySize))
	err := m.SetMany(ctx, []kv.Entry[[]byte]{{Key: "ok", Value: []byte("v")}, {Key: long, Value: []byte("v")}})
	var le *bolt.LimitError
	if !errors.Is(err, kv.ErrTooLarge) || !errors.As(err, &le) || le.What != "key" || le.Limit != bbolt.MaxKeySize-8 {
		t.Fatalf("SetMany with a %d-byte key = %v; want a key LimitError wrapping ErrTooLarge", len(long), err)
	}
	if n, _ := m.Size(ctx); n != 0 {
		t.Errorf("Size after a refused batch = %d; want 0", n)
	}
	if err := m.Set(ctx, long[:bbolt.MaxKeySize-8], []byte("v")); err != nil {
		t.Errorf("Set with a key at the limit = %v; want nil", err)
	}
}

func TestDeadlinesSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kv.db")
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, err := bolt.Open(path, bolt.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	m := mustNew[string](t, b, "ns")
	if err := m.SetWithTTL(ctx, "short", "v", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.SetWithTTL(ctx, "long", "v", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := m.SetWithTTL(ctx, "never", "v", kv.NoTTL); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	b2 := open(t, path, bolt.WithClock(clk))
	m2 := mustNew[string](t, b2, "ns")
	for key, want := range map[string]bool{"short": false, "long": true, "never": true} {
		if ok, err := m2.Has(ctx, key); err != nil || ok != want {
			t.Errorf("after reopening 2s later Has(%q) = %v, %v; want %v", key, ok, err, want)
		}
	}
	// The sweep at open deleted the expired key from the file.
	err = b2.DB().View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte("kv.d:ns")).Get([]byte("short")); v != nil {
			t.Errorf("the expired key is still in the file after the sweep at open")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok, _ := m2.TTL(ctx, "long"); !ok || d != time.Hour-2*time.Second {
		t.Errorf("TTL(long) = %v, %v; want 59m58s", d, ok)
	}
}

func TestNamespaceIsABucket(t *testing.T) {
	ctx := context.Background()
	b := open(t, filepath.Join(t.TempDir(), "kv.db"), bolt.WithNoSync())
	m := mustNew[string](t, b, "signal_cache")
	if err := m.Set(ctx, "binance:s:BTC/USDT:USDT", "id"); err != nil {
		t.Fatal(err)
	}
	_ = b.MSet(ctx, []backend.Entry{{Key: "plain", Value: []byte("v"), TTL: backend.NoTTL}})
	err := b.DB().View(func(tx *bbolt.Tx) error {
		bk := tx.Bucket([]byte("kv.d:signal_cache"))
		if bk == nil || bk.Get([]byte("binance:s:BTC/USDT:USDT")) == nil {
			t.Errorf("key not found as binance:s:BTC/USDT:USDT in bucket signal_cache")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	page, err := b.Scan(ctx, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"signal_cache:binance:s:BTC/USDT:USDT", "plain"}; !slices.Equal(page.Keys, want) {
		t.Errorf("flat scan = %q; want %q", page.Keys, want)
	}
}

func TestSweeperDeletesExpiredKeys(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Unix(1_000_000, 0))
	b := open(t, filepath.Join(t.TempDir(), "kv.db"), bolt.WithClock(clk), bolt.WithNoSync(), bolt.WithSweepInterval(time.Millisecond))
	m := mustNew[string](t, b, "ns", kv.WithTTL(time.Minute))
	var entries []kv.Entry[string]
	for i := range 25_000 { // more than one sweep transaction
		entries = append(entries, kv.Entry[string]{Key: time.Duration(i).String(), Value: "v"})
	}
	if err := m.SetMany(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := m.SetWithTTL(ctx, "stays", "v", kv.NoTTL); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	count := func() (data, index int) {
		_ = b.DB().View(func(tx *bbolt.Tx) error {
			data = tx.Bucket([]byte("kv.d:ns")).Stats().KeyN
			index = tx.Bucket([]byte("kv.x:ns")).Stats().KeyN
			return nil
		})
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, x := count()
		if d == 1 && x == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s the file holds %d keys and %d index entries; want 1 and 0", d, x)
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
	}
	if n, err := m.Size(ctx); n != 1 || err != nil {
		t.Errorf("Size = %d, %v; want 1", n, err)
	}
}

func TestWrapsCallersDB(t *testing.T) {
	ctx := context.Background()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "kv.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := bolt.New(db)
	if err != nil {
		t.Fatal(err)
	}
	m := mustNew[string](t, b, "ns")
	if err := m.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The caller's DB is still open.
	if err := db.View(func(tx *bbolt.Tx) error { return nil }); err != nil {
		t.Errorf("the caller's DB was closed by Backend.Close: %v", err)
	}
}

// TestNamespaceView: a kv.Map over bbolt works on the bucket's own view, and
// the view and the flat key space agree both ways.
func TestNamespaceView(t *testing.T) {
	ctx := context.Background()
	b := open(t, filepath.Join(t.TempDir(), "kv.db"), bolt.WithNoSync(), bolt.WithClock(clock.NewManual(time.Unix(1e9, 0))))
	nb, err := namespace.New(b, "sig")
	if err != nil {
		t.Fatal(err)
	}
	if _, isView := nb.Unwrap().(*bolt.Backend); isView {
		t.Fatalf("namespace.New over bolt prefixes keys instead of using the bucket's view")
	}
	_ = nb.MSet(ctx, []backend.Entry{{Key: "a:b", Value: []byte("1"), TTL: backend.NoTTL}})
	_ = b.MSet(ctx, []backend.Entry{{Key: "sig:c", Value: []byte("2"), TTL: time.Hour}})
	flat, _ := b.MGet(ctx, []string{"sig:a:b"}, false)
	viewed, _ := nb.MGet(ctx, []string{"c"}, true)
	if !flat[0].Found || !viewed[0].Found || viewed[0].TTL != time.Hour {
		t.Errorf("flat sig:a:b %+v, view c %+v; want both found, c with its TTL", flat[0], viewed[0])
	}
	page, _ := nb.Scan(ctx, "", "", 10)
	if !slices.Equal(page.Keys, []string{"a:b", "c"}) {
		t.Errorf("view scan = %q; want [a:b c]", page.Keys)
	}
	if _, err := backend.CapabilitiesOf(b).Namespace("a:b"); !errors.Is(err, backend.ErrInvalidNamespace) {
		t.Errorf("Namespace(a:b) = %v; want ErrInvalidNamespace", err)
	}
}

// TestCloseStopsSweeper: Close returns only once the sweeper's goroutine has.
func TestCloseStopsSweeper(t *testing.T) {
	b, err := bolt.Open(filepath.Join(t.TempDir(), "kv.db"), bolt.WithSweepInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	done := bolt.SweepDone(b)
	if done == nil {
		t.Fatal("no sweeper with a sweep interval set")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Errorf("Close returned while the sweeper still runs")
	}
	if err := b.DB().View(func(*bbolt.Tx) error { return nil }); err == nil {
		t.Errorf("the file Open opened is still open after Close")
	}
}
