package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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

func (c *cmdCtx) export(ctx context.Context) error {
	b, err := c.open(false)
	if err != nil {
		return err
	}
	defer b.Close()
	out := c.stdout
	if len(c.args) == 1 {
		f, err := os.OpenFile(c.args[0], os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	p := newProgress(c.stderr, c.terminal, "export", c.sizeForProgress(ctx, b, c.f.ns))
	c.done = func() string { return fmt.Sprintf("%d keys exported", p.Count()) }
	err = exportPages(ctx, b, c.f.ns, enc, p)
	p.Done()
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "exported %d keys\n", p.Count())
	return nil
}

func (c *cmdCtx) importCmd(ctx context.Context) error {
	in := c.stdin
	if len(c.args) == 1 {
		f, err := os.Open(c.args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
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
	p := newProgress(c.stderr, c.terminal, "import", 0)
	c.done = func() string { return fmt.Sprintf("%d keys imported", p.Count()) }
	batch := make([]backend.Entry, 0, pageSize)
	skipped, capped := 0, 0
	flush := func(ctx context.Context) error {
		if len(batch) == 0 {
			return nil
		}
		if err := nb.MSet(ctx, batch); err != nil {
			return err
		}
		p.Add(len(batch))
		batch = batch[:0]
		return nil
	}
	// Records are read in a goroutine of their own, so that an interrupt
	// is seen even while the input stalls.
	type item struct {
		r    record
		line int
		err  error
	}
	items := make(chan item, pageSize)
	go func() {
		defer close(items)
		dec := json.NewDecoder(bufio.NewReader(in))
		for line := 1; ; line++ {
			var r record
			err := dec.Decode(&r)
			if errors.Is(err, io.EOF) {
				return
			}
			select {
			case items <- item{r, line, err}:
			case <-ctx.Done():
				return
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
			// Keys read so far are written whole; the rest is left for a
			// second run.
			if err := flush(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			return ctx.Err()
		}
		if !more {
			break
		}
		if it.err != nil {
			return fmt.Errorf("line %d: %w", it.line, it.err)
		}
		key, value, err := it.r.decode()
		if err != nil {
			return fmt.Errorf("line %d: %w", it.line, err)
		}
		var ttl time.Duration
		switch {
		case it.r.TTLms == 0:
			skipped++ // it expired while being exported
			continue
		case c.f.noTTL || it.r.TTLms == -1:
			ttl = backend.NoTTL
		case it.r.TTLms > maxTTLms:
			ttl = kv.MaxTTL // a longer TTL would overflow; counted and said
			capped++
		case it.r.TTLms > 0:
			ttl = time.Duration(it.r.TTLms) * time.Millisecond
		default:
			return fmt.Errorf("line %d: ttl_ms %d: want -1, 0 or a positive number", it.line, it.r.TTLms)
		}
		if key == "" {
			return fmt.Errorf("line %d: empty key", it.line)
		}
		batch = append(batch, backend.Entry{Key: key, Value: value, TTL: ttl})
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
	fmt.Fprintf(c.stderr, "imported %d keys, skipped %d expired%s\n", p.Count(), skipped, cappedNote(capped))
	return nil
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
		defer dst.Close()
	}
	p := newProgress(c.stderr, c.terminal, "copy", c.sizeForProgress(ctx, src, c.f.ns))
	c.done = func() string { return fmt.Sprintf("%d keys copied", p.Count()) }
	res, err := transfer.Copy(ctx, dst, src, c.f.ns, transfer.Options{
		ToNamespace: toNS, DropTTL: c.f.noTTL, PageSize: pageSize, Progress: p.Add,
	})
	p.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "copied %d keys to %s ns=%s%s\n", res.Keys, redact(c.f.to), toNS, cappedNote(res.CappedTTLs))
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
