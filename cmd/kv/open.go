package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	kvredis "github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/kvurl"
)

// open opens the backend of --url. Commands that only read open a bbolt file
// read-only: they never create, sweep or change it. A read of a file written
// under a simulated clock is made as of --at, or else as of the latest time
// that clock showed (said on stderr), never by the wall clock, by which every
// key of a backtest has long expired.
//
// --at moves only the clock that expiry is judged by: a key is live when it
// has no TTL or its deadline is after --at, and its TTL is its deadline less
// --at. The file holds one state, its latest: --at neither brings back keys
// deleted or overwritten since, nor hides keys written after it.
func (c *cmdCtx) open(write bool) (backend.Backend, error) {
	opts := &kvurl.Options{}
	if c.f.clockOverride && write {
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
		at, err := parseAt(c.f.at)
		if err != nil {
			return nil, err
		}
		opts.Bolt = append(opts.Bolt, bolt.WithSimulatedClock(clock.NewManual(at)))
	}
	b, err := kvurl.Open(c.f.url, opts)
	if err != nil {
		return nil, shellError(err)
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
	if fc.Latest.IsZero() {
		return nil, shellError(fmt.Errorf("%w (it was written under a simulated clock)", bolt.ErrNoFileTime))
	}
	fmt.Fprintf(c.stderr, "kv: the file was written under a simulated clock: reading it as of its latest time %s (--at chooses another)\n",
		fc.Latest.UTC().Format(time.RFC3339Nano))
	b, err = kvurl.Open(c.f.url, &kvurl.Options{Bolt: append(opts.Bolt, bolt.WithFileTime())})
	if err != nil {
		return nil, shellError(err)
	}
	return c.bounded(b), nil
}

// openCopyTarget opens the store that copy writes to (--to), honouring
// --clock-override.
func (c *cmdCtx) openCopyTarget(rawURL string) (backend.Backend, error) {
	opts := &kvurl.Options{}
	if c.f.clockOverride {
		opts.Bolt = append(opts.Bolt, bolt.WithClockOverride())
	}
	if strings.HasPrefix(rawURL, "mem://") {
		fmt.Fprintln(c.stderr, "kv: warning: --to mem:// is a store of this process: what the copy writes is gone when it exits")
	}
	b, err := kvurl.Open(rawURL, opts)
	if err != nil {
		return nil, shellError(err)
	}
	return c.bounded(b), nil
}

// parseAt reads --at: an RFC 3339 time inside the range a bolt file holds
// (years 1 to 9999).
func parseAt(s string) (time.Time, error) {
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usagef("--at %q: want an RFC 3339 time (2021-01-01T00:00:00Z) or \"file\"", s)
	}
	if err := bolt.CheckTime(at); err != nil {
		earliest, latest := bolt.TimeRange()
		return time.Time{}, usagef("--at %q: %s is outside the times a bolt file holds (%s to %s)", s,
			at.UTC().Format(time.RFC3339Nano), earliest.Format(time.RFC3339), latest.Format(time.RFC3339Nano))
	}
	return at, nil
}

// clockError is a bolt.ClockMismatchError said for the shell: in the
// command's flags, not in the Go options the library's message names.
type clockError struct{ err *bolt.ClockMismatchError }

func (e *clockError) Error() string {
	latest := "it records no time"
	if t := e.err.File.Latest; !t.IsZero() {
		latest = "its latest time " + t.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("the file was written under a simulated clock (a backtest's; %s): kv writes by the wall clock, by which its keys may have long expired; --clock-override writes anyway (then nothing is swept)", latest)
}

func (e *clockError) Unwrap() error { return e.err }

// shellError returns err with the library's advice to Go programs replaced
// by the command's own, or the command's advice added.
func shellError(err error) error {
	var cm *bolt.ClockMismatchError
	switch {
	case errors.As(err, &cm):
		return &clockError{cm}
	case errors.Is(err, bolt.ErrNoFileTime):
		return fmt.Errorf("%w: give --at TIME (RFC 3339) to judge expiry by a time of your choice", err)
	}
	return err
}

// bounded puts the --timeout deadline on every call to b.
func (c *cmdCtx) bounded(b backend.Backend) backend.Backend {
	if c.timeout <= 0 {
		return b
	}
	return timeoutBackend{Wrapper: backend.Wrapper{Backend: b}, d: c.timeout}
}

// unbounded returns the backend under the --timeout decorator.
func unbounded(b backend.Backend) backend.Backend {
	if t, ok := b.(timeoutBackend); ok {
		return t.Backend
	}
	return b
}

// boltOf returns the bbolt store under b, if b is one.
func boltOf(b backend.Backend) (*bolt.Backend, bool) {
	bb, ok := unbounded(b).(*bolt.Backend)
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

// storeID is what identifies the store a URL names, whatever its spelling:
// a bbolt file's cleaned absolute path and, when it exists, its device and
// inode; a Redis server's resolved addresses and database.
type storeID struct {
	kind   string // "bolt", "redis" (one server), "cluster", "sentinel", or the scheme
	path   string // bolt: the cleaned absolute path
	file   os.FileInfo
	addrs  []string // Redis: host:port, the host resolved to IP addresses (a loopback address as "loopback")
	db     int
	master string // sentinel: the master's name
	raw    string // any other scheme: the URL
}

// sameStore reports whether the URLs a and b name the same store (for a
// bbolt file: the same file; for Redis: a server or cluster reached at one
// of the same resolved addresses, with the same database).
func sameStore(ctx context.Context, a, b string) bool {
	if a == b {
		return true
	}
	ia, ib := identify(ctx, a), identify(ctx, b)
	switch {
	case ia.kind == "bolt" && ib.kind == "bolt":
		return ia.path == ib.path || (ia.file != nil && ib.file != nil && os.SameFile(ia.file, ib.file))
	case ia.kind == "sentinel" || ib.kind == "sentinel":
		return ia.kind == ib.kind && ia.master == ib.master && ia.db == ib.db && overlap(ia.addrs, ib.addrs)
	case isRedis(ia.kind) && isRedis(ib.kind):
		// A server that is also a seed of a cluster holds the cluster's keys
		// of its slots: the same store, for a copy.
		return ia.db == ib.db && overlap(ia.addrs, ib.addrs)
	}
	return ia.kind == ib.kind && ia.raw != "" && ia.raw == ib.raw
}

func isRedis(kind string) bool { return kind == "redis" || kind == "cluster" }

func overlap(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// identify returns the storeID of rawURL, as far as it can be read; a URL
// it cannot read is identified by its text (kvurl.Open then refuses it).
func identify(ctx context.Context, rawURL string) storeID {
	scheme, rest, _ := strings.Cut(rawURL, "://")
	switch scheme {
	case "bolt":
		path, _, _ := strings.Cut(rest, "?") // as kvurl reads it: a path cannot hold "?"
		id := storeID{kind: "bolt", path: filepath.Clean(path)}
		if abs, err := filepath.Abs(path); err == nil {
			id.path = abs
		}
		if st, err := os.Stat(path); err == nil {
			id.file = st
		}
		return id
	case "redis", "rediss", "redis+cluster", "redis+sentinel":
		u, err := url.Parse(rawURL)
		if err != nil {
			break
		}
		q := u.Query()
		q.Del("hashtag")
		switch scheme {
		case "redis", "rediss":
			u.RawQuery = q.Encode()
			o, err := goredis.ParseURL(u.String())
			if err != nil {
				break
			}
			if o.Network == "unix" {
				return storeID{kind: "redis", addrs: []string{"unix:" + filepath.Clean(o.Addr)}, db: o.DB}
			}
			return storeID{kind: "redis", addrs: resolve(ctx, []string{o.Addr}), db: o.DB}
		case "redis+cluster":
			return storeID{kind: "cluster", addrs: resolve(ctx, append([]string{u.Host}, q["addr"]...))}
		case "redis+sentinel":
			db, _ := strconv.Atoi(strings.Trim(u.Path, "/"))
			return storeID{kind: "sentinel", addrs: resolve(ctx, append([]string{u.Host}, q["addr"]...)), db: db, master: q.Get("master")}
		}
	}
	return storeID{kind: scheme, raw: rawURL}
}

// resolveTimeout bounds the name lookups of sameStore.
const resolveTimeout = 5 * time.Second

// resolve returns the addresses host:port resolved: each IP address of the
// host, with every loopback or unspecified address (127.0.0.1, ::1,
// 0.0.0.0: this machine) as "loopback"; a host that does not resolve stays
// as it is, in lower case. A port left out is Redis's, 6379.
func resolve(ctx context.Context, hostports []string) []string {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	var out []string
	for _, hp := range hostports {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			host, port = strings.Trim(hp, "[]"), "6379"
		}
		if host == "" {
			host = "localhost"
		}
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil || len(ips) == 0 {
			out = append(out, net.JoinHostPort(strings.ToLower(host), port))
			continue
		}
		for _, ip := range ips {
			name := ip.IP.String()
			if ip.IP.IsLoopback() || ip.IP.IsUnspecified() {
				name = "loopback"
			}
			out = append(out, net.JoinHostPort(name, port))
		}
	}
	return out
}

// sameServer reports whether two open Redis stores are one server's same
// database, whatever addresses reached them: the server's run_id (new at
// every start of a server) and the database. It answers false when it
// cannot tell (not one server each, or INFO failed).
func sameServer(ctx context.Context, a, b backend.Backend) bool {
	ca, oka := redisClient(a)
	cb, okb := redisClient(b)
	if !oka || !okb || ca.Options().DB != cb.Options().DB {
		return false
	}
	ida, erra := runID(ctx, ca)
	idb, errb := runID(ctx, cb)
	return erra == nil && errb == nil && ida != "" && ida == idb
}

// redisClient returns the client of a Redis store of one server.
func redisClient(b backend.Backend) (*goredis.Client, bool) {
	rb, ok := unbounded(b).(*kvredis.Backend)
	if !ok {
		return nil, false
	}
	c, ok := rb.Client().(*goredis.Client)
	return c, ok
}

// runID returns the run_id of INFO server.
func runID(ctx context.Context, c *goredis.Client) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", nil
}

// openSame opens the one store that copy reads and writes when --url and
// --to name the same store (two namespaces of one bbolt file cannot be
// opened twice). A bbolt file written under a simulated clock is read and
// written as of the latest time of its clock (said on stderr), as a read
// command reads it; --clock-override copies by the wall clock instead.
func (c *cmdCtx) openSame() (backend.Backend, error) {
	b, err := c.open(true)
	var ce *clockError
	if !errors.As(err, &ce) || ce.err.File.Latest.IsZero() {
		return b, err
	}
	fmt.Fprintf(c.stderr, "kv: the file was written under a simulated clock: copying as of its latest time %s (--clock-override copies by the wall clock)\n",
		ce.err.File.Latest.UTC().Format(time.RFC3339Nano))
	b, err = kvurl.Open(c.f.url, &kvurl.Options{Bolt: []bolt.Option{bolt.WithFileTime()}})
	if err != nil {
		return nil, shellError(err)
	}
	return c.bounded(b), nil
}
