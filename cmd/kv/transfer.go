package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/kvurl"
	"github.com/kvmap/kv/namespace"
	"github.com/kvmap/kv/transfer"
)

// pageSize is how many keys export, import and copy move per round trip.
const pageSize = 1000

// maxTTLms is kv.MaxTTL in milliseconds: import caps a longer ttl_ms to it.
const maxTTLms = int64(kv.MaxTTL / time.Millisecond)

// cappedNote is the words a copy or an import adds when it capped TTLs.
func cappedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d TTLs above the maximum (%v) capped to it", n, kv.MaxTTL)
}

// ttlMS returns a remaining TTL in whole milliseconds, rounded up so that a
// live key never reads 0; -1 for none.
func ttlMS(d time.Duration) int64 {
	if d == backend.NoTTL {
		return -1
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// sizeForProgress returns the number of keys of the namespace, for a
// progress bar; 0 when not drawing one.
func (c *cmdCtx) sizeForProgress(ctx context.Context, b backend.Backend, ns string) int64 {
	if !c.terminal {
		return 0
	}
	nb, err := namespace.New(b, ns)
	if err != nil {
		return 0
	}
	n, err := backend.CountPrefix(ctx, nb, "", pageSize)
	if err != nil {
		return 0
	}
	return int64(n)
}

// export writes JSON lines to standard output (no argument, or "-"), or to
// a file: through a temporary file in the same directory, renamed over the
// target only once every line is written and synced, so an interrupted or
// failed export leaves no file (and no half-written one that looks whole).
func (c *cmdCtx) export(ctx context.Context) error {
	b, err := c.open(false)
	if err != nil {
		return err
	}
	defer b.Close()
	out, commit, abort, err := c.output()
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	p := newProgress(c.stderr, c.terminal, "export", c.sizeForProgress(ctx, b, c.f.ns))
	c.done = func() string { return plural(int(p.Count()), "key") + " exported" + abort() }
	err = exportPages(ctx, b, c.f.ns, enc, p)
	p.Done()
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = commit()
	}
	if err != nil {
		if ctx.Err() == nil {
			err = fmt.Errorf("%w%s", err, abort())
		}
		return err
	}
	fmt.Fprintf(c.stderr, "exported %s\n", plural(int(p.Count()), "key"))
	return nil
}

// output returns where export writes: standard output, or a temporary file
// beside the target, with commit (sync, close, rename over the target) and
// abort (remove the temporary file, once; it returns the words that say so).
func (c *cmdCtx) output() (io.Writer, func() error, func() string, error) {
	if len(c.args) == 0 || c.args[0] == "-" {
		return c.stdout, func() error { return nil }, func() string { return "" }, nil
	}
	target := c.args[0]
	f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".*.tmp")
	if err != nil {
		return nil, nil, nil, err
	}
	done := false
	commit := func() error {
		err := errors.Join(f.Sync(), f.Close())
		if err == nil {
			err = os.Rename(f.Name(), target)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", target, errors.Join(err, os.Remove(f.Name())))
		}
		done = true
		return nil
	}
	abort := func() string {
		if done {
			return ""
		}
		done = true
		if err := errors.Join(f.Close(), os.Remove(f.Name())); err != nil {
			return fmt.Sprintf("; the partial file %s could not be removed: %v", f.Name(), err)
		}
		return "; no file written"
	}
	return f, commit, abort, nil
}

// importCmd reads JSON lines, one record a line, and writes them in
// batches. Line numbers are exact; a bad line stops the import after writing
// every good line before it (and says how many keys were written), or is
// skipped and counted with --skip-bad.
func (c *cmdCtx) importCmd(ctx context.Context) error {
	in, total, closeIn, err := c.input()
	if err != nil {
		return err
	}
	defer closeIn()
	defTTL, err := c.ttl()
	if err != nil {
		return err
	}
	b, err := c.open(true)
	if err != nil {
		return err
	}
	defer b.Close()
	nb, err := namespace.New(b, c.f.ns)
	if err != nil {
		return err
	}
	// The bar counts the bytes of a file (its total known), else the keys.
	label := "import"
	if total > 0 {
		label = "import (bytes)"
	}
	p := newProgress(c.stderr, c.terminal, label, total)
	byBytes := total > 0
	written, capped, bad := 0, 0, 0
	var badLines []int
	c.done = func() string { return plural(written, "key") + " imported" }
	batch := make([]backend.Entry, 0, pageSize)
	lastLine := 0 // the line of the last record in batch
	// flush writes the batch; a failure says up to which line and how many
	// keys were written (a part of a Redis batch may have been).
	flush := func(ctx context.Context) error {
		if len(batch) == 0 {
			return nil
		}
		err := nb.MSet(ctx, batch)
		if err != nil {
			var be *kv.BatchError
			if errors.As(err, &be) {
				written += len(be.Written)
			}
			return fmt.Errorf("write of the lines up to %d: %w (%s written; writes can be repeated, import again)", lastLine, err, plural(written, "key"))
		}
		written += len(batch)
		if !byBytes {
			p.Add(len(batch))
		}
		batch = batch[:0]
		return nil
	}
	stopped := func(line int, err error) error {
		if ferr := flush(ctx); ferr != nil {
			return fmt.Errorf("line %d: %w; %w", line, err, ferr)
		}
		return fmt.Errorf("line %d: %w (%s written from the lines before it; fix the line and import again)", line, err, plural(written, "key"))
	}
	// Lines are read in a goroutine of their own, so that an interrupt is
	// seen even while the input stalls.
	type item struct {
		line int
		data []byte
		err  error
	}
	items := make(chan item, pageSize)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		defer close(items)
		r := bufio.NewReaderSize(in, 64<<10)
		for line := 1; ; line++ {
			data, err := r.ReadBytes('\n')
			if len(data) > 0 || (err != nil && !errors.Is(err, io.EOF)) {
				select {
				case items <- item{line, data, err}:
				case <-readCtx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	var idle <-chan time.Time // fires when the input stalls with keys pending
	for {
		if len(batch) > 0 && idle == nil {
			idle = time.After(50 * time.Millisecond)
		}
		var it item
		var more bool
		select {
		case it, more = <-items:
		case <-idle:
			// The input stalls: write what is pending, so that it is not
			// held back waiting for a full batch.
			idle = nil
			if err := flush(ctx); err != nil {
				return err
			}
			continue
		case <-ctx.Done():
			// Lines read so far are written whole; the rest is left for a
			// second run.
			if err := flush(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			return ctx.Err()
		}
		if !more {
			break
		}
		if it.err != nil && !errors.Is(it.err, io.EOF) {
			return stopped(it.line, it.err)
		}
		if byBytes {
			p.Add(len(it.data))
		}
		if len(bytes.TrimSpace(it.data)) == 0 {
			continue // a blank line
		}
		e, wasCapped, err := parseLine(it.data, defTTL, c.f.noTTL)
		if err != nil {
			if !c.f.skipBad {
				return stopped(it.line, err)
			}
			bad++
			if len(badLines) < 10 {
				badLines = append(badLines, it.line)
			}
			continue
		}
		if wasCapped {
			capped++
		}
		batch = append(batch, e)
		lastLine = it.line
		if len(batch) == cap(batch) {
			idle = nil
			if err := flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := flush(ctx); err != nil {
		return err
	}
	p.Done()
	msg := "imported " + plural(written, "key")
	if bad > 0 {
		msg += fmt.Sprintf(", skipped %s (%v)", plural(bad, "bad line"), badLines)
	}
	if c.f.json {
		return c.printJSON(map[string]any{"imported": written, "bad_lines": bad, "capped_ttls": capped})
	}
	fmt.Fprintf(c.stderr, "%s%s\n", msg, cappedNote(capped))
	return nil
}

// parseLine reads one import line: a single JSON record with a key (key or
// key_b64). A record without ttl_ms gets def; ttl_ms -1 is no expiry, a
// positive ttl_ms above kv.MaxTTL is capped to it (reported), and 0 or a
// value below -1 is an error. With noTTL every key is written without
// expiry (ttl_ms is still checked).
func parseLine(data []byte, def time.Duration, noTTL bool) (backend.Entry, bool, error) {
	var r struct {
		record
		TTLms *int64 `json:"ttl_ms"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return backend.Entry{}, false, fmt.Errorf("not a JSON record: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return backend.Entry{}, false, errors.New("more than one JSON value on the line")
	}
	key, value, err := r.record.decode()
	if err != nil {
		return backend.Entry{}, false, err
	}
	if key == "" {
		return backend.Entry{}, false, errors.New(`no key (want "key" or "key_b64")`)
	}
	e := backend.Entry{Key: key, Value: value, TTL: def}
	capped := false
	switch ms := r.TTLms; {
	case ms == nil:
	case *ms == -1:
		e.TTL = backend.NoTTL
	case *ms > maxTTLms:
		e.TTL, capped = kv.MaxTTL, true
	case *ms > 0:
		e.TTL = time.Duration(*ms) * time.Millisecond
	default:
		return backend.Entry{}, false, fmt.Errorf("ttl_ms %d: want -1 (no expiry) or 1 to %d", *ms, maxTTLms)
	}
	if noTTL {
		e.TTL, capped = backend.NoTTL, false
	}
	return e, capped, nil
}

// input returns what import reads: standard input for no argument or "-",
// else the file, with its size for the progress bar (0 when unknown).
func (c *cmdCtx) input() (io.Reader, int64, func(), error) {
	if len(c.args) == 0 || c.args[0] == "-" {
		return c.stdin, 0, func() {}, nil
	}
	f, err := os.Open(c.args[0])
	if err != nil {
		return nil, 0, nil, err
	}
	var size int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, func() { f.Close() }, nil
}

// plural says n things: "1 key", "2 keys".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func (c *cmdCtx) copyCmd(ctx context.Context) error {
	if c.f.to == "" {
		return usagef("copy needs --to URL")
	}
	toNS := c.f.toNS
	if toNS == "" {
		toNS = c.f.ns
	}
	if err := namespace.Validate(toNS); err != nil {
		return err
	}
	if c.f.to == c.f.url && toNS == c.f.ns {
		return usagef("copy onto itself: --to and --to-ns name the source namespace")
	}
	// Two namespaces of one store are copied through one handle, opened for
	// writing: a bbolt file cannot be opened twice.
	same := c.f.to == c.f.url
	src, err := c.open(same)
	if err != nil {
		return err
	}
	defer src.Close()
	dst := src
	if !same {
		if dst, err = kvurl.Open(c.f.to, nil); err != nil {
			return fmt.Errorf("--to %s: %w", redact(c.f.to), err)
		}
		dst = c.bounded(dst)
		defer dst.Close()
	}
	p := newProgress(c.stderr, c.terminal, "copy", c.sizeForProgress(ctx, src, c.f.ns))
	c.done = func() string { return plural(int(p.Count()), "key") + " copied" }
	res, err := transfer.Copy(ctx, dst, src, c.f.ns, transfer.Options{
		ToNamespace: toNS, DropTTL: c.f.noTTL, PageSize: pageSize, Progress: p.Add,
	})
	p.Done()
	if err != nil {
		return err
	}
	if c.f.json {
		return c.printJSON(map[string]any{"copied": res.Keys, "capped_ttls": res.CappedTTLs, "to": redact(c.f.to), "to_ns": toNS})
	}
	fmt.Fprintf(c.stderr, "copied %s to %s ns=%s%s\n", plural(res.Keys, "key"), redact(c.f.to), toNS, cappedNote(res.CappedTTLs))
	return nil
}

// exportPages writes every entry of namespace ns of b to enc as a record.
func exportPages(ctx context.Context, b backend.Backend, ns string, enc *json.Encoder, p *progress) error {
	for page, err := range transfer.Entries(ctx, b, ns, pageSize) {
		if err != nil {
			return err
		}
		for i, k := range page.Keys {
			if err := enc.Encode(newRecord(k, page.Values[i].Bytes, ttlMS(page.Values[i].TTL))); err != nil {
				return err
			}
		}
		p.Add(len(page.Keys))
	}
	return nil
}
