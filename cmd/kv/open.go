package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/kvurl"
)

// open opens the backend of --url. Commands that only read open a bbolt file
// read-only: they never create, sweep or change it. A read of a file written
// under a simulated clock is made as of --at, or else as of the latest time
// that clock showed (said on stderr), never by the wall clock, by which every
// key of a backtest has long expired.
func (c *cmdCtx) open(write bool) (backend.Backend, error) {
	opts := &kvurl.Options{}
	if c.f.clockOverride {
		opts.Bolt = append(opts.Bolt, bolt.WithClockOverride())
	}
	if !write {
		opts.Bolt = append(opts.Bolt, bolt.WithReadOnly())
	}
	if write && strings.HasPrefix(c.f.url, "mem://") {
		fmt.Fprintln(c.stderr, "kv: warning: mem:// is a store of this process: what the command writes is gone when it exits")
	}
	switch {
	case c.f.at == "":
	case write:
		return nil, usagef("--at is for commands that read")
	case c.f.at == "file":
		opts.Bolt = append(opts.Bolt, bolt.WithFileTime())
	default:
		at, err := time.Parse(time.RFC3339Nano, c.f.at)
		if err != nil {
			return nil, usagef("--at %q: want an RFC 3339 time (2021-01-01T00:00:00Z) or \"file\"", c.f.at)
		}
		opts.Bolt = append(opts.Bolt, bolt.WithSimulatedClock(clock.NewManual(at)))
	}
	b, err := kvurl.Open(c.f.url, opts)
	if err != nil {
		return nil, err
	}
	bb, isBolt := b.(*bolt.Backend)
	if c.f.at != "" && !isBolt {
		return nil, errors.Join(usagef("--at applies to bolt:// files"), b.Close())
	}
	if write || c.f.at != "" || !isBolt || bb.FileClock().Kind != bolt.SimulatedClock {
		return c.bounded(b), nil
	}
	fc := bb.FileClock()
	if err := b.Close(); err != nil {
		return nil, err
	}
	fmt.Fprintf(c.stderr, "kv: the file was written under a simulated clock: reading it as of its latest time %s (--at chooses another)\n",
		fc.Latest.UTC().Format(time.RFC3339Nano))
	b, err = kvurl.Open(c.f.url, &kvurl.Options{Bolt: append(opts.Bolt, bolt.WithFileTime())})
	if err != nil {
		return nil, err
	}
	return c.bounded(b), nil
}

// bounded puts the --timeout deadline on every call to b.
func (c *cmdCtx) bounded(b backend.Backend) backend.Backend {
	if c.timeout <= 0 {
		return b
	}
	return timeoutBackend{Backend: b, d: c.timeout}
}

// boltOf returns the bbolt store under b, if b is one.
func boltOf(b backend.Backend) (*bolt.Backend, bool) {
	if t, ok := b.(timeoutBackend); ok {
		b = t.Backend
	}
	bb, ok := b.(*bolt.Backend)
	return bb, ok
}

// check runs the full consistency check of a bbolt file.
func (c *cmdCtx) checkCmd(ctx context.Context) error {
	b, err := c.open(false)
	if err != nil {
		return err
	}
	defer b.Close()
	bb, ok := boltOf(b)
	if !ok {
		return usagef("check applies to bolt:// files")
	}
	if err := bb.Check(ctx); err != nil {
		return err
	}
	if c.f.json {
		return c.printJSON(map[string]any{"ok": true})
	}
	fmt.Fprintln(c.stdout, "ok")
	return nil
}
