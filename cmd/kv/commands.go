package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/kvurl"
	"github.com/kvmap/kv/namespace"
)

const defaultURL = kvurl.Default

func redact(u string) string { return kvurl.Redact(u) }

// isUsage reports the errors that are mistakes on the command line.
func isUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u) || errors.Is(err, kv.ErrInvalidNamespace) || errors.Is(err, kv.ErrEmptyKey) ||
		errors.Is(err, kv.ErrInvalidTTL) || errors.Is(err, kvurl.ErrInvalidURL)
}

// cmdCtx is one command being run.
type cmdCtx struct {
	*env
	f       flags
	name    string
	args    []string
	done    func() string // how far a long command got, for the interrupt message
	timeout time.Duration // --timeout: the deadline of one store round trip
}

type command struct {
	run     func(*cmdCtx, context.Context) error
	args    string // the positional arguments, for messages
	minArgs int
	maxArgs int // -1: any
	needsNS bool
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"set":        {(*cmdCtx).set, "KEY VALUE|-", 2, 2, true},
		"get":        {(*cmdCtx).get, "KEY", 1, 1, true},
		"has":        {(*cmdCtx).has, "KEY", 1, 1, true},
		"del":        {(*cmdCtx).del, "KEY...", 1, -1, true},
		"ttl":        {(*cmdCtx).ttlCmd, "KEY", 1, 1, true},
		"expire":     {(*cmdCtx).expire, "KEY TTL", 2, 2, true},
		"keys":       {(*cmdCtx).keys, "", 0, 0, true},
		"ls":         {(*cmdCtx).ls, "", 0, 0, true},
		"size":       {(*cmdCtx).size, "", 0, 0, true},
		"clear":      {(*cmdCtx).clear, "", 0, 0, true},
		"namespaces": {(*cmdCtx).namespaces, "", 0, 0, false},
		"stats":      {(*cmdCtx).stats, "", 0, 0, false},
		"check":      {(*cmdCtx).checkCmd, "", 0, 0, false},
		"version":    {(*cmdCtx).versionCmd, "", 0, 0, false},
		"export":     {(*cmdCtx).export, "[FILE]", 0, 1, true},
		"import":     {(*cmdCtx).importCmd, "[FILE]", 0, 1, true},
		"copy":       {(*cmdCtx).copyCmd, "", 0, 0, true},
		"bench":      {(*cmdCtx).bench, "", 0, 0, false},
		"demo":       {(*cmdCtx).demo, "", 0, 0, false},
	}
}

// dispatch checks the flags a command depends on and runs it. Every number
// and duration of the command line is checked here, before anything is
// read or opened: a bad one is a usage error (exit 2), never a panic.
func (c *cmdCtx) dispatch(ctx context.Context, cmd command) error {
	c.timeout = DefaultTimeout
	if c.f.timeout != "" {
		d, err := time.ParseDuration(c.f.timeout)
		if err != nil || d < 0 {
			return usagef("--timeout %q: want a Go duration such as 5s, or 0 for none", c.f.timeout)
		}
		c.timeout = d
	}
	if hasFlag(c.name, "n") && (c.f.n < 1 || c.f.n > maxBenchN) {
		return usagef("--n %d: want 1 to %d operations per kind", c.f.n, maxBenchN)
	}
	if hasFlag(c.name, "ttl") {
		if _, err := c.ttl(); err != nil {
			return err
		}
	}
	if cmd.needsNS && c.f.ns == "" {
		return usagef("--ns is required (or set KV_NS)")
	}
	if cmd.needsNS {
		if err := namespace.Validate(c.f.ns); err != nil {
			return err // a usage error, said before the store is opened
		}
	}
	if hasFlag(c.name, "url") {
		if err := c.checkOutputs(); err != nil {
			return err
		}
	}
	if c.name == "check" && strings.HasPrefix(c.f.url, "bolt://") {
		// A check judges no expiry: the file is opened as of now, whatever
		// clock wrote it, so that a backtest file that records no time of
		// its clock is checked too (and no --at is needed or taken).
		c.f.at = time.Now().UTC().Format(time.RFC3339Nano)
	}
	return cmd.run(c, ctx)
}

// errQuietUsage fails the command as a usage error (exit 2) without a
// message: standard error is the store's file, which a message would
// damage.
var errQuietUsage = errors.New("standard error is the store's file")

// checkOutputs refuses to run a command whose standard output or error is
// the file of its store (--url, or copy's --to): what it prints would be
// written over the store (kv ls 1<>kv.db, kv export /dev/stdout >>kv.db).
func (c *cmdCtx) checkOutputs() error {
	urls := []string{c.f.url}
	if hasFlag(c.name, "to") && c.f.to != "" {
		urls = append(urls, c.f.to)
	}
	for _, u := range urls {
		if c.errFile != nil {
			if st, err := c.errFile.Stat(); err == nil && isStoreFile(u, st) {
				return errQuietUsage
			}
		}
		if c.outFile != nil {
			if st, err := c.outFile.Stat(); err == nil && isStoreFile(u, st) {
				return usagef("standard output is the file of the store %s: what the command prints would be written over it; redirect it elsewhere", redact(u))
			}
		}
	}
	return nil
}

// ttl returns the TTL of writes: --ttl, else the library's default.
func (c *cmdCtx) ttl() (time.Duration, error) {
	if c.f.ttl == "" {
		return kv.DefaultTTL, nil
	}
	d, err := parseTTL(c.f.ttl)
	if err != nil && c.f.ttlFromEnv {
		return 0, usagef("KV_TTL=%q (the environment's --ttl): %v", c.f.ttl, err)
	}
	return d, err
}

// withMap opens the backend (read-only unless write) and the Map of --ns,
// and runs fn with them.
func (c *cmdCtx) withMap(write bool, fn func(b backend.Backend, m *kv.Map[[]byte]) error) error {
	ttl, err := c.ttl()
	if err != nil {
		return err
	}
	b, err := c.open(write)
	if err != nil {
		return err
	}
	defer b.Close()
	m, err := kv.New[[]byte](b, c.f.ns, kv.WithTTL(ttl))
	if err != nil {
		return err
	}
	return fn(b, m)
}

// set stores a value; "-" reads it from standard input, whatever its size
// (redis-cli's -x).
func (c *cmdCtx) set(ctx context.Context) error {
	value := []byte(c.args[1])
	if c.args[1] == "-" {
		var err error
		if value, err = readAll(ctx, c.stdin); err != nil {
			return fmt.Errorf("read the value from standard input: %w", err)
		}
	}
	return c.withMap(true, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		if err := m.Set(ctx, c.args[0], value); err != nil {
			return err
		}
		if c.f.json {
			return c.printJSON(c.withKey(map[string]any{"bytes": len(value)}))
		}
		return nil
	})
}

// readAll reads r to its end in a goroutine of its own, so that the end of
// ctx (a signal) ends a read that waits for a writer that writes nothing:
// the command then exits, and the process's exit ends the read.
func readAll(ctx context.Context, r io.Reader) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(r)
		ch <- result{data, err}
	}()
	select {
	case res := <-ch:
		return res.data, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// printJSON writes v as one JSON line on standard output.
func (c *cmdCtx) printJSON(v any) error { return json.NewEncoder(c.stdout).Encode(v) }

// withKey adds the command's key to m: "key", or "key_b64" when it is not
// UTF-8 (see setText).
func (c *cmdCtx) withKey(m map[string]any) map[string]any {
	setText(m, "key", c.args[0])
	return m
}

// withNS adds --ns to m: "namespace", or "namespace_b64".
func (c *cmdCtx) withNS(m map[string]any) map[string]any {
	setText(m, "namespace", c.f.ns)
	return m
}

func (c *cmdCtx) get(ctx context.Context) error {
	return c.withMap(false, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		v, ok, err := m.Get(ctx, c.args[0])
		if err != nil {
			return err
		}
		if !ok {
			return &notFound{c.args[0]}
		}
		if c.f.json {
			return json.NewEncoder(c.stdout).Encode(newRecord(c.args[0], v, 0).entry())
		}
		if c.ttyOut {
			v = append(v, '\n') // a terminal gets its line; a pipe gets the bytes
		}
		_, err = c.stdout.Write(v)
		return err
	})
}

func (c *cmdCtx) has(ctx context.Context) error {
	return c.withMap(false, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		ok, err := m.Has(ctx, c.args[0])
		if err != nil {
			return err
		}
		if c.f.json {
			err = c.printJSON(c.withKey(map[string]any{"exists": ok}))
		} else {
			_, err = fmt.Fprintln(c.stdout, ok)
		}
		if err != nil {
			return err
		}
		if !ok {
			return errQuiet
		}
		return nil
	})
}

// errQuiet fails the command (exit 1) without a message: has of a missing
// key has said so already.
var errQuiet = errors.New("")

func (c *cmdCtx) del(ctx context.Context) error {
	return c.withMap(true, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		if err := m.DeleteMany(ctx, c.args); err != nil {
			return err
		}
		if c.f.json {
			m := map[string]any{}
			setTexts(m, "deleted", c.args)
			return c.printJSON(m)
		}
		return nil
	})
}

func (c *cmdCtx) ttlCmd(ctx context.Context) error {
	return c.withMap(false, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		d, ok, err := m.TTL(ctx, c.args[0])
		if err != nil {
			return err
		}
		if !ok {
			return &notFound{c.args[0]}
		}
		ms := int64(-1)
		if d != kv.NoTTL {
			ms = ttlMS(d)
		}
		if c.f.json {
			return c.printJSON(c.withKey(map[string]any{"ttl_ms": ms}))
		}
		if d == kv.NoTTL {
			_, err = fmt.Fprintln(c.stdout, "-1")
		} else {
			_, err = fmt.Fprintln(c.stdout, d.Round(time.Millisecond))
		}
		return err
	})
}

func (c *cmdCtx) expire(ctx context.Context) error {
	d, err := parseTTL(c.args[1])
	if err != nil {
		return err
	}
	return c.withMap(true, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		ok, err := m.Expire(ctx, c.args[0], d)
		if err != nil {
			return err
		}
		if !ok {
			return &notFound{c.args[0]}
		}
		if c.f.json {
			ms := int64(-1)
			if d != kv.NoTTL {
				ms = d.Milliseconds()
			}
			return c.printJSON(c.withKey(map[string]any{"ttl_ms": ms}))
		}
		return nil
	})
}

func (c *cmdCtx) keys(ctx context.Context) error {
	return c.withMap(false, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		w := bufio.NewWriter(c.stdout)
		defer w.Flush()
		for k, err := range m.Keys(ctx) {
			if err != nil {
				return err
			}
			if c.f.json {
				line, _ := json.Marshal(newRecord(k, nil, 0).keyOnly())
				w.Write(append(line, '\n'))
			} else {
				fmt.Fprintln(w, c.show(k))
			}
		}
		return nil
	})
}

// entry is the JSON of a key and value, without a TTL.
func (r record) entry() any {
	return struct {
		Key      string  `json:"key,omitempty"`
		KeyB64   string  `json:"key_b64,omitempty"`
		Value    *string `json:"value,omitempty"`
		ValueB64 *string `json:"value_b64,omitempty"`
	}{r.Key, r.KeyB64, r.Value, r.ValueB64}
}

// keyOnly is the JSON of a key alone.
func (r record) keyOnly() map[string]string {
	if r.KeyB64 != "" {
		return map[string]string{"key_b64": r.KeyB64}
	}
	return map[string]string{"key": r.Key}
}

func (c *cmdCtx) ls(ctx context.Context) error {
	return c.withMap(false, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		w := bufio.NewWriter(c.stdout)
		defer w.Flush()
		enc := json.NewEncoder(w)
		for e, err := range m.Iterate(ctx) {
			var de *kv.DecodeError
			if errors.As(err, &de) {
				continue // raw bytes always decode; kept for other codecs
			}
			if err != nil {
				return err
			}
			if c.f.json {
				if err := enc.Encode(newRecord(e.Key, e.Value, 0).entry()); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(w, "%s\t%s\n", c.show(e.Key), c.show(string(e.Value)))
		}
		return nil
	})
}

func (c *cmdCtx) size(ctx context.Context) error {
	return c.withMap(false, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		n, err := m.Size(ctx)
		if err != nil {
			return err
		}
		if c.f.json {
			return c.printJSON(c.withNS(map[string]any{"keys": n}))
		}
		_, err = fmt.Fprintln(c.stdout, n)
		return err
	})
}

func (c *cmdCtx) clear(ctx context.Context) error {
	if !c.f.yes {
		return usagef("clear deletes every key of namespace %q: confirm with --yes", c.f.ns)
	}
	return c.withMap(true, func(_ backend.Backend, m *kv.Map[[]byte]) error {
		n, err := m.Size(ctx)
		if err != nil {
			return err
		}
		p := newProgress(c.stderr, c.terminal, "clear", int64(n))
		err = m.Clear(ctx)
		if err == nil {
			p.Add(n)
		}
		p.Done()
		if err != nil {
			return err
		}
		if c.f.json {
			return c.printJSON(c.withNS(map[string]any{"cleared": n}))
		}
		fmt.Fprintf(c.stderr, "cleared %s\n", plural(n, "key"))
		return nil
	})
}

// namespaces lists the text before the first ":" of every key of the
// backend, with key counts.
func (c *cmdCtx) namespaces(ctx context.Context) error {
	b, err := c.open(false)
	if err != nil {
		return err
	}
	defer b.Close()
	counts := map[string]int{}
	p := newProgress(c.stderr, c.terminal, "scan", 0)
	for page, err := range backend.Pages(ctx, b, "", pageSize) {
		if err != nil {
			return err
		}
		for _, k := range page.Keys {
			if ns, _, ok := strings.Cut(k, ":"); ok {
				counts[ns]++
			}
		}
		p.Add(len(page.Keys))
	}
	p.Done()
	names := make([]string, 0, len(counts))
	for ns := range counts {
		names = append(names, ns)
	}
	sort.Strings(names)
	w := bufio.NewWriter(c.stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	for _, ns := range names {
		if c.f.json {
			m := map[string]any{"keys": counts[ns]}
			setText(m, "namespace", ns)
			if err := enc.Encode(m); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(w, "%s\t%s\n", c.show(ns), strconv.Itoa(counts[ns]))
		}
	}
	return nil
}
