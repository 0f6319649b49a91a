package bolt_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/clock"
)

// backtestFile writes a file under a simulated clock, with its time
// recorded, and returns its bytes.
func backtestFile(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	writeBacktest(t, path, 3)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestOptionMisuse: options that cannot take effect together make Open (or
// New) fail with ErrInvalidOption, in either order, naming both, before the
// file is touched.
func TestOptionMisuse(t *testing.T) {
	sim := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name  string
		opts  []bolt.Option
		names []string
	}{
		{"WithClock after WithFileTime", []bolt.Option{bolt.WithFileTime(), bolt.WithClock(clock.System())}, []string{"WithClock", "WithFileTime"}},
		{"WithSimulatedClock after WithFileTime", []bolt.Option{bolt.WithFileTime(), bolt.WithSimulatedClock(sim)}, []string{"WithSimulatedClock", "WithFileTime"}},
		{"two clocks", []bolt.Option{bolt.WithClock(clock.System()), bolt.WithSimulatedClock(sim)}, []string{"WithClock", "WithSimulatedClock"}},
		{"override read-only", []bolt.Option{bolt.WithClockOverride(), bolt.WithReadOnly()}, []string{"WithClockOverride", "WithReadOnly"}},
		{"override a simulated clock", []bolt.Option{bolt.WithClockOverride(), bolt.WithSimulatedClock(sim)}, []string{"WithClockOverride", "WithSimulatedClock"}},
		{"override the file's time", []bolt.Option{bolt.WithClockOverride(), bolt.WithFileTime()}, []string{"WithClockOverride", "WithFileTime"}},
		{"no sync read-only", []bolt.Option{bolt.WithNoSync(), bolt.WithReadOnly()}, []string{"WithNoSync", "WithReadOnly"}},
		{"sweep read-only", []bolt.Option{bolt.WithSweepInterval(time.Second), bolt.WithReadOnly()}, []string{"WithSweepInterval", "WithReadOnly"}},
		{"sweep at the file's time", []bolt.Option{bolt.WithSweepInterval(time.Second), bolt.WithFileTime()}, []string{"WithSweepInterval", "WithFileTime"}},
		{"a nil simulated clock", []bolt.Option{bolt.WithSimulatedClock(nil)}, []string{"WithSimulatedClock(nil)"}},
		{"lock timeout 0", []bolt.Option{bolt.WithLockTimeout(0)}, []string{"WithLockTimeout(0s)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kv.db")
			for _, opts := range [][]bolt.Option{tc.opts, {tc.opts[len(tc.opts)-1], tc.opts[0]}} {
				b, err := bolt.Open(path, opts...)
				if err == nil {
					_ = b.Close()
				}
				if !errors.Is(err, bolt.ErrInvalidOption) {
					t.Fatalf("Open = %v; want ErrInvalidOption", err)
				}
				for _, n := range tc.names {
					if !strings.Contains(err.Error(), n) {
						t.Errorf("Open = %q; want a message naming %s", err, n)
					}
				}
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Stat after a refused Open = %v; want no file", err)
				}
			}
		})
	}
}

// TestNewOptionMisuse: New, on the caller's DB, refuses the options of
// Open's file handling.
func TestNewOptionMisuse(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "kv.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		opt  bolt.Option
		name string
	}{
		{bolt.WithNoSync(), "WithNoSync"},
		{bolt.WithLockTimeout(time.Second), "WithLockTimeout"},
		{bolt.WithReadOnly(), "WithReadOnly"},
	} {
		b, err := bolt.New(db, tc.opt)
		if err == nil {
			_ = b.Close()
		}
		if !errors.Is(err, bolt.ErrInvalidOption) || !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), "New") {
			t.Errorf("New(db, %s) = %v; want ErrInvalidOption naming %s and New", tc.name, err, tc.name)
		}
	}
}

// TestOptionOrder: no order of two different options changes what Open
// makes of a backtest's file: the same clock, time, mode and file clock, or
// the same error.
func TestOptionOrder(t *testing.T) {
	data := backtestFile(t)
	path := filepath.Join(t.TempDir(), "kv.db")
	wall := clock.NewManual(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	sim := clock.NewManual(time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC))
	all := []struct {
		name string
		opt  bolt.Option
	}{
		{"WithClock", bolt.WithClock(wall)},
		{"WithSimulatedClock", bolt.WithSimulatedClock(sim)},
		{"WithFileTime", bolt.WithFileTime()},
		{"WithClockOverride", bolt.WithClockOverride()},
		{"WithReadOnly", bolt.WithReadOnly()},
		{"WithSweepInterval", bolt.WithSweepInterval(0)},
		{"WithNoSync", bolt.WithNoSync()},
		{"WithLockTimeout", bolt.WithLockTimeout(time.Second)},
	}
	open := func(opts ...bolt.Option) (string, error) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := bolt.Open(path, opts...)
		if err != nil {
			return "", err
		}
		defer b.Close()
		var now any = "the system clock"
		if c := b.Describe().Clock; c != clock.System() {
			now = c.Now()
		}
		return fmt.Sprintf("now %v read-only %v sync %v file %+v", now, b.ReadOnly(), b.Sync(), b.FileClock()), nil
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			ab, errAB := open(a.opt, b.opt)
			ba, errBA := open(b.opt, a.opt)
			if ab != ba || fmt.Sprint(errAB) != fmt.Sprint(errBA) {
				t.Errorf("%s, %s: %s (%v); reversed: %s (%v); want the same", a.name, b.name, ab, errAB, ba, errBA)
			}
		}
	}
}
