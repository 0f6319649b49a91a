package bolt_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/internal/testkv"
)

// sum returns the SHA-256 of a file, to prove a call did not change it.
func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// mustNew returns a Map or fails the test.
func mustNew[V any](t testing.TB, b backend.Backend, ns string, opts ...kv.Option) *kv.Map[V] {
	t.Helper()
	return testkv.MustNew[V](t, b, ns, opts...)
}

func mustMap(t *testing.T, b *bolt.Backend, ns string, opts ...kv.Option) *kv.Map[string] {
	t.Helper()
	return testkv.MustNew[string](t, b, ns, opts...)
}

func mustClose(t *testing.T, b *bolt.Backend) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// writeBacktest writes n keys at simulated 2021-01-01 with the default
// 5-minute TTL, as a backtest does, and closes the file.
func writeBacktest(t *testing.T, path string, n int) time.Time {
	t.Helper()
	at := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := bolt.Open(path, bolt.WithSimulatedClock(clock.NewManual(at)), bolt.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	m := mustMap(t, b, "bt")
	entries := make([]kv.Entry[string], n)
	for i := range entries {
		entries[i] = kv.Entry[string]{Key: "k" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Value: "v"}
	}
	if err := m.SetMany(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	mustClose(t, b)
	return at
}

func sizeAt(t *testing.T, path string, opts ...bolt.Option) int {
	t.Helper()
	b, err := bolt.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer mustClose(t, b)
	n, err := mustMap(t, b, "bt").Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestInspectingNeverDeletes: a backtest file opened by the wall clock used
// to be swept at open, deleting every key "expired" by wall time. Now the
// file remembers its simulated clock: a wall-clock writer is refused, a
// read-only opener changes nothing, and the data is intact for the
// simulated clock afterwards.
func TestInspectingNeverDeletes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "backtest.db")
	at := writeBacktest(t, path, 100)
	sim := bolt.WithSimulatedClock(clock.NewManual(at.Add(time.Minute)))
	if n := sizeAt(t, path, sim); n != 100 {
		t.Fatalf("Size under the simulated clock = %d; want 100", n)
	}
	before := sum(t, path)

	// The wall clock may not open it for writing...
	if _, err := bolt.Open(path); !errors.Is(err, bolt.ErrClockMismatch) {
		t.Fatalf("Open with the wall clock = %v; want ErrClockMismatch", err)
	}
	// ...and reading it with the wall clock changes nothing.
	if n := sizeAt(t, path, bolt.WithReadOnly()); n != 0 {
		t.Errorf("read-only Size by wall time = %d; want 0 (every key expired in 2021)", n)
	}
	if sum(t, path) != before {
		t.Errorf("the file changed under a refused or read-only open")
	}
	// As of the file's own latest time, the backtest is visible.
	ro, err := bolt.Open(path, bolt.WithReadOnly(), bolt.WithFileTime())
	if err != nil {
		t.Fatal(err)
	}
	if fc := ro.FileClock(); fc.Kind != bolt.SimulatedClock || !fc.Latest.Equal(at.Add(time.Minute)) {
		t.Errorf("FileClock = %+v; want simulated, latest %v", fc, at.Add(time.Minute))
	}
	if n, err := mustMap(t, ro, "bt").Size(context.Background()); err != nil || n != 100 {
		t.Errorf("Size at the file's time = %d, %v; want 100", n, err)
	}
	mustClose(t, ro)
	// An explicit override may write with the wall clock, and sweeps nothing.
	ov, err := bolt.Open(path, bolt.WithClockOverride())
	if err != nil {
		t.Fatalf("Open with WithClockOverride: %v", err)
	}
	mustClose(t, ov)
	if n := sizeAt(t, path, sim); n != 100 {
		t.Errorf("Size under the simulated clock after the inspections = %d; want 100", n)
	}
}

// TestLegacyFileNeverSwept: a file without clock metadata (written before
// clocks were recorded) is not swept at open, by any clock.
func TestLegacyFileNeverSwept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "legacy.db")
	writeBacktest(t, path, 10)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("kv.meta")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b := open(t, path) // the wall clock, read-write: accepted, never sweeps
	if fc := b.FileClock(); fc.Kind != "" {
		t.Errorf("FileClock of a legacy file = %+v; want no kind", fc)
	}
	mustClose(t, b)
	if n := sizeAt(t, path, bolt.WithSimulatedClock(clock.NewManual(time.Date(2021, 1, 1, 0, 1, 0, 0, time.UTC)))); n != 10 {
		t.Errorf("Size after a wall-clock open of a legacy file = %d; want 10 (nothing swept)", n)
	}
}

// TestReadOnly: read-only opening creates nothing, fails on a missing
// file, reads a 0444 file beside another reader, refuses every write with
// ErrReadOnly, and never changes the file.
func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo.db")
	if _, err := bolt.Open(missing, bolt.WithReadOnly()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only Open of a missing file = %v; want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only Open created %s", missing)
	}

	path := filepath.Join(dir, "kv.db")
	b := open(t, path)
	if err := mustMap(t, b, "ns").Set(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	mustClose(t, b)
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	before := sum(t, path)
	r1, err := bolt.Open(path, bolt.WithReadOnly())
	if err != nil {
		t.Fatalf("read-only Open of a 0444 file: %v", err)
	}
	defer mustClose(t, r1)
	r2, err := bolt.Open(path, bolt.WithReadOnly())
	if err != nil {
		t.Fatalf("a second read-only Open: %v", err)
	}
	defer mustClose(t, r2)
	ctx := context.Background()
	m := mustMap(t, r1, "ns")
	if v, ok, err := m.Get(ctx, "k"); err != nil || !ok || v != "v" {
		t.Errorf("Get = %q, %v, %v; want v", v, ok, err)
	}
	writes := map[string]error{
		"Set":    m.Set(ctx, "k", "w"),
		"Delete": m.Delete(ctx, "k"),
		"Clear":  m.Clear(ctx),
	}
	_, writes["Expire"] = m.Expire(ctx, "k", time.Hour)
	for name, err := range writes {
		if !errors.Is(err, kv.ErrReadOnly) {
			t.Errorf("%s through a read-only Backend = %v; want ErrReadOnly", name, err)
		}
	}
	if v, ok, err := mustMap(t, r2, "ns").Get(ctx, "k"); err != nil || !ok || v != "v" {
		t.Errorf("Get through the second reader = %q, %v, %v; want v", v, ok, err)
	}
	if sum(t, path) != before {
		t.Errorf("the file changed under read-only use")
	}
}

// TestReadOnlyBesideWriter: a read-only open waits for a writer's lock and
// then fails with ErrLocked, saying that a writer holds the file.
func TestReadOnlyBesideWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	open(t, path)
	_, err := bolt.Open(path, bolt.WithReadOnly(), bolt.WithLockTimeout(50*time.Millisecond))
	if !errors.Is(err, bolt.ErrLocked) || !strings.Contains(err.Error(), "writer") {
		t.Errorf("read-only Open beside a writer = %v; want ErrLocked naming the writer", err)
	}
}

// TestSizeMatchesIterate: Size equals the number of entries Iterate yields,
// after a reopen and with deadlines far away (the expiry index must never
// hold an entry that sorts out of order).
func TestSizeMatchesIterate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := open(t, path, bolt.WithClock(clk))
	m := mustMap(t, b, "ns")
	ctx := context.Background()
	ttls := []time.Duration{time.Second, time.Hour, kv.MaxTTL - time.Hour, kv.MaxTTL, kv.NoTTL}
	for i, ttl := range ttls {
		if err := m.SetWithTTL(ctx, string(rune('a'+i)), "v", ttl); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, m *kv.Map[string], want int) {
		t.Helper()
		all, err := m.ToArray(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := m.Size(ctx); err != nil || n != len(all) || n != want {
			t.Errorf("%s: Size = %d, %v; ToArray has %d; want %d", when, n, err, len(all), want)
		}
	}
	check("fresh", m, 5)
	clk.Advance(2 * time.Second)
	check("after the first deadline", m, 4)
	mustClose(t, b)
	b2 := open(t, path, bolt.WithClock(clk))
	check("after a reopen", mustMap(t, b2, "ns"), 4)
}

// TestDamagedFileOpenFails: a truncated file is refused at Open with
// ErrCorrupt, and the file is released (a writer can take it afterwards).
func TestDamagedFileOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	b := open(t, path, bolt.WithNoSync())
	m := mustMap(t, b, "ns")
	entries := make([]kv.Entry[string], 3000)
	for i := range entries {
		entries[i] = kv.Entry[string]{Key: strings.Repeat("k", 1+i%40) + string(rune('0'+i%10)) + string(rune(i)), Value: strings.Repeat("v", 300)}
	}
	if err := m.SetMany(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	mustClose(t, b)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{8 << 10, 16 << 10, 200_000, len(data) / 2} {
		cut := filepath.Join(t.TempDir(), "cut.db")
		if err := os.WriteFile(cut, data[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			var opts []bolt.Option
			if ro {
				opts = append(opts, bolt.WithReadOnly())
			}
			_, err := bolt.Open(cut, opts...)
			if !errors.Is(err, kv.ErrCorrupt) {
				t.Errorf("Open of the file cut to %d bytes (read-only %v) = %v; want ErrCorrupt", size, ro, err)
			}
		}
		// The refused open released the lock: a writer with no wait gets
		// the same answer, not ErrLocked.
		if _, err := bolt.Open(cut, bolt.WithLockTimeout(time.Millisecond)); errors.Is(err, bolt.ErrLocked) {
			t.Errorf("the file stayed locked after a refused open")
		}
	}
}

// TestPeriodicSweeperFollowsTheFileClock: the background sweeper obeys the
// rule of the sweep at open: a wall-clock writer of a simulated-clock file
// (WithClockOverride) deletes nothing, however often its ticker fires.
// synctest's clock fires it without waiting.
func TestPeriodicSweeperFollowsTheFileClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "backtest.db")
	at := writeBacktest(t, path, 20)
	synctest.Test(t, func(t *testing.T) {
		// A wall-kind clock set to today, by which every key of 2021 has
		// expired (the bubble's own time starts in 2000); the ticker runs on
		// the bubble's time.
		wall := clock.NewManual(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))
		b, err := bolt.Open(path, bolt.WithClock(wall), bolt.WithClockOverride(), bolt.WithSweepInterval(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute) // ten ticks of the sweeper, on the bubble's clock
		synctest.Wait()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	})
	if n := sizeAt(t, path, bolt.WithSimulatedClock(clock.NewManual(at))); n != 20 {
		t.Errorf("after a wall-clock writer's sweeper ran, Size under the simulated clock = %d; want 20", n)
	}
}
