package bolt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/conformance"
)

// farHarness is the conformance harness with a clock far from the Unix
// nanosecond range (1678 to 2262) of the file format's first deadlines.
func farHarness(start time.Time) conformance.Harness {
	return conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			dir, err := os.MkdirTemp("", "kvbolt")
			if err != nil {
				t.Fatalf("MkdirTemp: %v", err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			clk := clock.NewManual(start)
			b, err := bolt.Open(filepath.Join(dir, "kv.db"), bolt.WithSimulatedClock(clk), bolt.WithNoSync())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return conformance.Store{Backend: b, Advance: clk.Advance}
		},
		PageHint: true,
	}
}

// TestConformanceFarTimes: the whole contract holds for a backtest's clock
// in 1500, 1969 and 2900. Deadlines used to be Unix nanoseconds, which
// overflow outside 1678 to 2262 (and were clamped to 1970 before it).
func TestConformanceFarTimes(t *testing.T) {
	for _, start := range []time.Time{
		time.Date(1500, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC),
		time.Date(2900, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(start.Format("2006"), func(t *testing.T) {
			conformance.Run(t, farHarness(start))
		})
	}
}

// TestDeadlinesAcrossTheTimeRange: a key written under a clock anywhere in
// bolt.TimeRange, with any TTL up to kv.MaxTTL, lives exactly its TTL (to
// the microsecond outside 1970 to 2262, never less), and is swept after it.
func TestDeadlinesAcrossTheTimeRange(t *testing.T) {
	ctx := context.Background()
	earliest, latest := bolt.TimeRange()
	for _, at := range []time.Time{
		earliest,
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1677, 9, 21, 0, 12, 43, 145224191, time.UTC), // just before the earliest Unix nanosecond
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2262, 4, 11, 23, 47, 16, 854775000, time.UTC), // 807 ns before the last Unix nanosecond
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
		latest.Add(-kv.MaxTTL), // a clock that a MaxTTL key from now outlives 9999
		latest,
	} {
		for _, ttl := range []time.Duration{time.Millisecond, 5 * time.Minute, kv.MaxTTL} {
			name := at.Format(time.RFC3339Nano) + "+" + ttl.String()
			clk := clock.NewManual(at)
			b := open(t, filepath.Join(t.TempDir(), "kv.db"), bolt.WithSimulatedClock(clk), bolt.WithNoSync(), bolt.WithSweepInterval(0))
			m := mustMap(t, b, "ns", kv.WithTTL(ttl))
			if err := m.Set(ctx, "k", "v"); err != nil {
				t.Fatalf("%s: Set: %v", name, err)
			}
			got, found, err := m.TTL(ctx, "k")
			if err != nil || !found || got < ttl || got > ttl+time.Microsecond {
				t.Errorf("%s: TTL right after the write = %v, %v, %v; want %v (up to 1µs more)", name, got, found, err, ttl)
			}
			if at.Add(ttl + time.Microsecond).After(latest) {
				// The clock cannot reach the deadline: it stops at the end
				// of 9999 (TestClockOutsideTheRange).
				mustClose(t, b)
				continue
			}
			clk.Advance(ttl - time.Nanosecond)
			if _, found, err := m.Get(ctx, "k"); err != nil || !found {
				t.Errorf("%s: Get 1ns before the deadline = %v, %v; want found", name, found, err)
			}
			clk.Advance(time.Nanosecond + time.Microsecond)
			if _, found, err := m.Get(ctx, "k"); err != nil || found {
				t.Errorf("%s: Get 1µs after the deadline = %v, %v; want gone", name, found, err)
			}
			if n, err := m.Size(ctx); err != nil || n != 0 {
				t.Errorf("%s: Size after the deadline = %d, %v; want 0", name, n, err)
			}
			path := b.DB().Path()
			mustClose(t, b)
			// The sweep at open deletes it, by the same clock.
			b = open(t, path, bolt.WithSimulatedClock(clk), bolt.WithSweepInterval(0))
			if n := rawIndexEntries(t, b, "ns"); n != 0 {
				t.Errorf("%s: %d index entries after the sweep; want 0", name, n)
			}
			mustClose(t, b)
		}
	}
}

// rawIndexEntries counts the entries of the expiry index of namespace ns.
func rawIndexEntries(t *testing.T, b *bolt.Backend, ns string) int {
	t.Helper()
	n := 0
	err := b.DB().View(func(tx *bbolt.Tx) error {
		if idx := tx.Bucket([]byte("kv.x:" + ns)); idx != nil {
			n = idx.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestExpiryOrderAcrossRanges: deadlines before 1970, from 1970 to 2262 and
// after 2262 in one namespace expire in time order, by reads and by the
// sweeper (whose index walk goes range by range). Before 1970 they used to
// be clamped to 1970-01-01, after 2262 to 2262-04-11.
func TestExpiryOrderAcrossRanges(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kv.db")
	day := func(y int, mo time.Month, d, h int) time.Time { return time.Date(y, mo, d, h, 0, 0, 0, time.UTC) }
	clk := clock.NewManual(day(1969, 12, 31, 22))
	b := open(t, path, bolt.WithSimulatedClock(clk), bolt.WithSweepInterval(0))
	m := mustMap(t, b, "ns")
	write := func(k string, ttl time.Duration) {
		t.Helper()
		if err := m.SetWithTTL(ctx, k, "v", ttl); err != nil {
			t.Fatal(err)
		}
	}
	write("early", time.Hour) // 1969-12-31T23:00
	write("mid", 3*time.Hour) // 1970-01-01T01:00
	write("none", kv.NoTTL)   // never
	clk.Set(day(2262, 4, 11, 22))
	write("late", 3*time.Hour) // 2262-04-12T01:00
	write("mid2", time.Hour)   // 2262-04-11T23:00, just inside Unix nanoseconds
	mustClose(t, b)

	for _, tc := range []struct {
		at   time.Time
		live []string
	}{
		{day(1969, 12, 31, 22), []string{"early", "late", "mid", "mid2", "none"}},
		{day(1969, 12, 31, 23), []string{"late", "mid", "mid2", "none"}},
		{day(1970, 1, 1, 1), []string{"late", "mid2", "none"}},
		{day(2262, 4, 11, 23), []string{"late", "none"}},
		{day(2262, 4, 12, 1), []string{"none"}},
	} {
		ro := open(t, path, bolt.WithReadOnly(), bolt.WithSimulatedClock(clock.NewManual(tc.at)))
		var keys []string
		for k, err := range mustMap(t, ro, "ns").Keys(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if got := strings.Join(keys, ","); got != strings.Join(tc.live, ",") {
			t.Errorf("keys as of %v = %s; want %s", tc.at, got, strings.Join(tc.live, ","))
		}
		mustClose(t, ro)
		// The sweeper, by the same time, leaves exactly the live keys' index
		// entries ("none" has none).
		w := open(t, path, bolt.WithSimulatedClock(clock.NewManual(tc.at)), bolt.WithSweepInterval(0))
		if got, want := rawIndexEntries(t, w, "ns"), len(tc.live)-1; got != want {
			t.Errorf("index entries after a sweep as of %v = %d; want %d", tc.at, got, want)
		}
		n, err := mustMap(t, w, "ns").Size(ctx)
		if err != nil || n != len(tc.live) {
			t.Errorf("Size after a sweep as of %v = %d, %v; want %d", tc.at, n, err, len(tc.live))
		}
		mustClose(t, w)
	}
}

// TestClockOutsideTheRange: a clock outside bolt.TimeRange is a typed error
// on every call that reads it, never a wrong answer; a TTL longer than a
// time.Duration holds (a read 400 years before the key was written) too,
// while the key's value still reads.
func TestClockOutsideTheRange(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kv.db")
	b := open(t, path, bolt.WithClock(clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))))
	if err := mustMap(t, b, "ns").Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	mustClose(t, b)
	earliest, latest := bolt.TimeRange()
	for _, at := range []time.Time{earliest.Add(-time.Nanosecond), latest.Add(time.Nanosecond), time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if w, err := bolt.Open(path, bolt.WithClock(clock.NewManual(at))); !errors.Is(err, bolt.ErrTimeRange) {
			t.Errorf("Open for writing with the clock at %v = %v; want ErrTimeRange", at, err)
			if err == nil {
				mustClose(t, w)
			}
		}
		ro := open(t, path, bolt.WithReadOnly(), bolt.WithSimulatedClock(clock.NewManual(at)))
		m := mustMap(t, ro, "ns")
		if _, _, err := m.Get(ctx, "k"); !errors.Is(err, bolt.ErrTimeRange) {
			t.Errorf("Get with the clock at %v = %v; want ErrTimeRange", at, err)
		}
		if _, err := m.Size(ctx); !errors.Is(err, bolt.ErrTimeRange) {
			t.Errorf("Size with the clock at %v = %v; want ErrTimeRange", at, err)
		}
		mustClose(t, ro)
	}
	ro := open(t, path, bolt.WithReadOnly(), bolt.WithSimulatedClock(clock.NewManual(time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC))))
	m := mustMap(t, ro, "ns")
	if v, found, err := m.Get(ctx, "k"); err != nil || !found || v != "v" {
		t.Errorf("Get as of 1600 of a key written in 2021 = %q, %v, %v; want v (its deadline is ahead)", v, found, err)
	}
	if _, _, err := m.TTL(ctx, "k"); !errors.Is(err, bolt.ErrTimeRange) {
		t.Errorf("TTL as of 1600 of a key written in 2021 = %v; want ErrTimeRange (421 years do not fit a time.Duration)", err)
	}
	mustClose(t, ro)
	if err := bolt.CheckTime(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Errorf("CheckTime(2021) = %v", err)
	}
}

// TestBacktestWithoutAdvanceRecordsTime (issue 22, item 2): a backtest
// that writes under a simulated clock and closes without moving it used to
// record no time (the clock was stamped before the Backend recorded times,
// and the stamp still counted as recorded): the file then read "as of
// 0001-01-01", with a 5-minute TTL 2,334,673 hours long.
func TestBacktestWithoutAdvanceRecordsTime(t *testing.T) {
	ctx := context.Background()
	for _, at := range []time.Time{
		time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC), // a "latest" record of 12 bytes
	} {
		path := filepath.Join(t.TempDir(), "bt.db")
		b := open(t, path, bolt.WithSimulatedClock(clock.NewManual(at)))
		if err := mustMap(t, b, "bt").SetWithTTL(ctx, "k", "v", 5*time.Minute); err != nil {
			t.Fatal(err)
		}
		mustClose(t, b)
		ro := open(t, path, bolt.WithReadOnly(), bolt.WithFileTime())
		if fc := ro.FileClock(); fc.Kind != bolt.SimulatedClock || !fc.Latest.Equal(at) {
			t.Errorf("FileClock = %+v; want simulated, latest %v", fc, at)
		}
		if ttl, found, err := mustMap(t, ro, "bt").TTL(ctx, "k"); err != nil || !found || ttl != 5*time.Minute {
			t.Errorf("TTL as of the file's time = %v, %v, %v; want 5m", ttl, found, err)
		}
		mustClose(t, ro)
	}
	// A file that records no time (as that bug left them) is an error as of
	// its time, not a read as of year 1.
	path := filepath.Join(t.TempDir(), "bt.db")
	writeBacktest(t, path, 3)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("kv.meta")).Delete([]byte("latest")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Open(path, bolt.WithReadOnly(), bolt.WithFileTime()); !errors.Is(err, bolt.ErrNoFileTime) {
		t.Errorf("Open WithFileTime of a file that records no time = %v; want ErrNoFileTime", err)
	}
}

// TestClockMismatchErrorCarriesTheFileClock: the refusal of a wall-clock
// writer names the file's clock in a typed error, for callers (the kv
// command) that say it in their own words.
func TestClockMismatchErrorCarriesTheFileClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bt.db")
	at := writeBacktest(t, path, 1)
	_, err := bolt.Open(path)
	var cm *bolt.ClockMismatchError
	if !errors.As(err, &cm) || !errors.Is(err, bolt.ErrClockMismatch) || !cm.File.Latest.Equal(at) {
		t.Fatalf("Open with the wall clock = %v; want a ClockMismatchError with latest %v", err, at)
	}
}

// TestEmptyFile (issue 22, item 14): an empty file opened read-only used to
// fail with "write ...: bad file descriptor" (bbolt tried to initialise
// it); it is ErrCorrupt saying the file is empty. Opened for writing, it
// becomes a new database, as before.
func TestEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bolt.Open(path, bolt.WithReadOnly())
	if !errors.Is(err, backend.ErrCorrupt) || !strings.Contains(err.Error(), "empty") || strings.Contains(err.Error(), "bad file descriptor") {
		t.Errorf("read-only Open of an empty file = %v; want ErrCorrupt saying it is empty", err)
	}
	b := open(t, path)
	mustClose(t, b)
	b = open(t, path, bolt.WithReadOnly())
	mustClose(t, b)
}

// TestOpenRefusesWhatIsNotARegularFile (issue 22, item 11): a directory or
// a device is refused at once with ErrNotRegularFile, read-only or not.
// (A named pipe, which used to hang the open for ever, is in the _unix
// test.)
func TestOpenRefusesWhatIsNotARegularFile(t *testing.T) {
	paths := []string{t.TempDir()}
	if _, err := os.Stat(os.DevNull); err == nil {
		paths = append(paths, os.DevNull)
	}
	for _, p := range paths {
		for _, ro := range []bool{false, true} {
			var opts []bolt.Option
			if ro {
				opts = append(opts, bolt.WithReadOnly())
			}
			if _, err := bolt.Open(p, opts...); !errors.Is(err, bolt.ErrNotRegularFile) {
				t.Errorf("Open(%s, read-only %v) = %v; want ErrNotRegularFile", p, ro, err)
			}
		}
	}
}
