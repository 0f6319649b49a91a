package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
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

// export writes JSON lines to standard output (no argument, "-" or
// /dev/stdout), or to FILE (see openExport): a regular file, a new path,
// or a symbolic link to one through a temporary file beside the file,
// renamed over it only once every line is written and synced, so that an
// interrupted or failed export leaves no file (and no half-written one that
// looks whole); a FIFO or a character device directly.
func (c *cmdCtx) export(ctx context.Context) error {
	b, err := c.open(false)
	if err != nil {
		return err
	}
	defer b.Close()
	t, err := c.openExport(ctx)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(t.w)
	enc := json.NewEncoder(w)
	p := newProgress(c.stderr, c.terminal, "export", c.sizeForProgress(ctx, b, c.f.ns))
	c.done = func() string { return plural(int(p.Count()), "key") + " exported" + t.abort() }
	err = exportPages(ctx, b, c.f.ns, enc, p)
	p.Done()
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = t.commit(ctx)
	}
	if err != nil {
		// Removed here, whatever ended the export; an interrupt's message
		// says so through c.done.
		return fmt.Errorf("%w%s", err, t.abort())
	}
	if c.f.json {
		// On stdout, unless the records went there: a summary line among
		// them would be imported as a bad record.
		out := c.stdout
		if t.w == c.stdout {
			out = c.stderr
		}
		m := map[string]any{"exported": p.Count()}
		if len(c.args) > 0 && t.w != c.stdout {
			setText(m, "file", c.args[0])
		}
		return json.NewEncoder(out).Encode(m)
	}
	fmt.Fprintf(c.stderr, "exported %s\n", plural(int(p.Count()), "key"))
	return nil
}

// exportTarget is where export writes: standard output (file nil), a file
// written directly (a FIFO, a character device), or a temporary file
// beside the target, which commit renames over it. abort ends it without
// commit, once.
type exportTarget struct {
	w      io.Writer
	file   *os.File
	path   string      // the target; for a temporary file, with its symbolic links followed
	temp   bool        // file is a temporary file beside path
	stop   func() bool // stops the interrupt's watch of a direct write
	closed bool
	ended  bool   // committed or aborted
	words  string // what abort said, for the messages that ask again
}

// commit ends the export: it closes a file written directly, or syncs,
// closes and renames the temporary file over the target, unless ctx ended
// (a signal) before the rename: an interrupted export writes no file. On
// failure the temporary file is left for abort to remove.
func (t *exportTarget) commit(ctx context.Context) error {
	if t.file == nil {
		return nil
	}
	if t.stop != nil {
		t.stop()
	}
	t.closed = true
	if !t.temp {
		t.ended = true
		if err := t.file.Close(); err != nil {
			return fmt.Errorf("write %s: %w", t.path, err)
		}
		return nil
	}
	if err := errors.Join(t.file.Sync(), t.file.Close()); err != nil {
		return fmt.Errorf("write %s: %w", t.path, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(t.file.Name(), t.path); err != nil {
		return fmt.Errorf("write %s: %w", t.path, err)
	}
	t.ended = true
	return nil
}

// abort ends an export that was not committed: it removes the temporary
// file, or closes the file written directly. It returns the words that say
// what is left, the same on every call; it acts on the first only.
func (t *exportTarget) abort() string {
	if t.ended || t.file == nil {
		return t.words
	}
	t.ended = true
	if t.stop != nil {
		t.stop()
	}
	var closeErr error
	if !t.closed {
		t.closed = true
		closeErr = t.file.Close()
	}
	switch {
	case !t.temp:
		t.words = fmt.Sprintf("; the lines written before that went to %s, written directly", t.path)
		if closeErr != nil {
			t.words += fmt.Sprintf(" (close: %v)", closeErr)
		}
	default:
		if err := os.Remove(t.file.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.words = fmt.Sprintf("; the partial file %s could not be removed: %v", t.file.Name(), errors.Join(err, closeErr))
		} else {
			t.words = "; no file written" // a close error of a removed file leaves nothing
		}
	}
	return t.words
}

// openExport returns where export writes. A regular file, a new path, and
// a symbolic link to either are written through a temporary file in the
// directory of the file the links end at (the links are kept: their target
// is replaced); the file keeps its permissions. A FIFO or a character
// device is written directly (a FIFO with no reader is waited for, until
// an interrupt), as is a regular file named through /proc (/dev/fd/N, an
// open descriptor), appended to: its opener chose truncation or not. A
// directory, a socket, a block device and the store's own file are
// refused.
func (c *cmdCtx) openExport(ctx context.Context) (*exportTarget, error) {
	if len(c.args) == 0 {
		return &exportTarget{w: c.stdout}, nil
	}
	name := c.args[0]
	switch filepath.Clean(name) {
	case "-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1":
		return &exportTarget{w: c.stdout}, nil
	case "/dev/stderr", "/dev/fd/2", "/proc/self/fd/2":
		return &exportTarget{w: c.rawErr}, nil // as is: c.stderr redacts messages
	}
	st, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A new file, or the missing target of a symbolic link.
	case err != nil:
		return nil, err
	case st.IsDir():
		return nil, usagef("%s is a directory: give a file name, or - for standard output", name)
	case st.Mode().IsRegular():
		if c.isStoreFile(st) {
			return nil, usagef("%s is the file of the store exported (--url): give another file name", name)
		}
	case st.Mode()&fs.ModeNamedPipe != 0, st.Mode()&fs.ModeCharDevice != 0:
		return c.openDirect(ctx, name, st)
	default:
		return nil, usagef("%s is a %s: export writes to a file, a FIFO, a character device, or - for standard output", name, fileKind(st.Mode()))
	}
	path, viaProc, err := resolveLinks(name)
	if err != nil {
		return nil, err
	}
	if st != nil && viaProc {
		return c.openDirect(ctx, name, st) // an open file of a process: its descriptor's file
	}
	if st != nil {
		// The file is replaced, not written: check that it could be
		// written, as the shell's > does. Opening it for writing, without
		// truncation, changes nothing (O_NONBLOCK: should the path have
		// become a FIFO since, the open does not wait for its reader).
		w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	dir, base := splitPath(path)
	pattern := "." + base + ".*.tmp"
	if len(pattern)+9 > maxNameLen { // "*" becomes up to 10 digits
		pattern = ".kv-export.*.tmp"
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("create a temporary file beside %s (export writes through one, so that an interrupted export leaves no partial file; to write the file in place: kv export - > FILE): %w", path, err)
	}
	t := &exportTarget{w: f, file: f, path: path, temp: true}
	if st != nil {
		if err := keepOwnerAndMode(f, st); err != nil {
			return nil, fmt.Errorf("%s: %w%s", path, err, t.abort())
		}
	}
	return t, nil
}

// maxNameLen is the longest file name (NAME_MAX of Linux and the BSDs).
const maxNameLen = 255

// keepOwnerAndMode gives the temporary file f that replaces the file st
// describes st's owner, group and mode. An owner or group that cannot be
// kept (a user replacing another user's file) is an error: the file would
// change hands.
func keepOwnerAndMode(f *os.File, st fs.FileInfo) error {
	if uid, gid, ok := fileOwner(st); ok {
		tst, err := f.Stat()
		if err != nil {
			return err
		}
		if tuid, tgid, ok := fileOwner(tst); ok && (tuid != uid || tgid != gid) {
			if err := f.Chown(uid, gid); err != nil {
				return fmt.Errorf("export replaces the file with a new one, which cannot be given its owner and group (%d:%d) (%w); to write the file in place: kv export - > FILE", uid, gid, err)
			}
		}
	}
	// After Chown, which clears the set-user-ID and set-group-ID bits.
	return f.Chmod(st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky))
}

// openDirect opens name, which st describes, to be written directly: a
// FIFO (waiting for its reader, see openFIFO), a character device, or a
// regular file of a process's open descriptors (appended to). An interrupt
// ends a write that waits for a slow reader.
func (c *cmdCtx) openDirect(ctx context.Context, name string, st fs.FileInfo) (*exportTarget, error) {
	var f *os.File
	var err error
	switch {
	case st.Mode()&fs.ModeNamedPipe != 0:
		f, err = c.openFIFO(ctx, name)
	case st.Mode().IsRegular():
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	default:
		f, err = os.OpenFile(name, os.O_WRONLY, 0)
	}
	if err != nil {
		return nil, err
	}
	t := &exportTarget{w: f, file: f, path: name}
	// A file that takes a deadline (a FIFO, a terminal) can block a write:
	// the interrupt ends it. One that does not (/dev/null) never blocks.
	if f.SetWriteDeadline(time.Time{}) == nil {
		t.stop = context.AfterFunc(ctx, func() {
			// Fails only once the file is closed, when no write is left to end.
			f.SetWriteDeadline(time.Now()) //nolint:errcheck
		})
	}
	return t, nil
}

// openFIFO opens the FIFO name for writing. With no reader yet, it says so
// and waits for one, or for ctx to end: the waiting open is then released
// by opening the FIFO for reading, which does not block.
func (c *cmdCtx) openFIFO(ctx context.Context, name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if !errors.Is(err, syscall.ENXIO) { // ENXIO: no reader
		return f, err
	}
	fmt.Fprintf(c.stderr, "kv: export: waiting for a reader of the FIFO %s\n", name)
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		ch <- opened{f, err}
	}()
	select {
	case o := <-ch:
		return o.f, o.err
	case <-ctx.Done():
	}
	r, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		// The open cannot be released (no read permission): it ends with
		// the process, which is ending.
		return nil, ctx.Err()
	}
	o := <-ch
	var closeW error
	if o.f != nil {
		closeW = o.f.Close()
	}
	if err := errors.Join(closeW, r.Close()); err != nil {
		return nil, fmt.Errorf("%w (closing the FIFO: %v)", ctx.Err(), err)
	}
	return nil, ctx.Err()
}

// fifoPatience is how long opening a FIFO may wait for the other end
// before the command says that it waits.
const fifoPatience = 200 * time.Millisecond

// openFIFOReader opens the FIFO name for reading. Like the shell's <, it
// waits for a writer; with none soon it says so, and waits for one or for
// ctx to end (a signal). The waiting open is then released by opening the
// FIFO for writing, which does not block with a reader waiting.
func (c *cmdCtx) openFIFOReader(ctx context.Context, name string) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.Open(name)
		ch <- opened{f, err}
	}()
	patience := time.NewTimer(fifoPatience)
	defer patience.Stop()
	for {
		select {
		case o := <-ch:
			return o.f, o.err
		case <-patience.C:
			fmt.Fprintf(c.stderr, "kv: import: waiting for a writer of the FIFO %s\n", name)
			continue
		case <-ctx.Done():
		}
		break
	}
	w, err := os.OpenFile(name, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		// The open cannot be released (no write permission, or it has not
		// begun to wait): it ends with the process, which is ending.
		return nil, ctx.Err()
	}
	o := <-ch
	var closeR error
	if o.f != nil {
		closeR = o.f.Close()
	}
	if err := errors.Join(closeR, w.Close()); err != nil {
		return nil, fmt.Errorf("%w (closing the FIFO: %v)", ctx.Err(), err)
	}
	return nil, ctx.Err()
}

// isStoreFile reports whether st is the file of the --url store (bolt://).
func (c *cmdCtx) isStoreFile(st fs.FileInfo) bool { return isStoreFile(c.f.url, st) }

// isStoreFile reports whether st is the file of the store of rawURL (a
// bolt:// URL).
func isStoreFile(rawURL string, st fs.FileInfo) bool {
	rest, ok := strings.CutPrefix(rawURL, "bolt://")
	if !ok {
		return false
	}
	path, _, _ := strings.Cut(rest, "?")
	store, err := os.Stat(path)
	return err == nil && os.SameFile(st, store)
}

// resolveLinks follows name while it is a symbolic link, and returns the
// path it ends at, which may not exist (a link to a file to make), and
// whether a link on the way was in /proc (a process's open descriptor,
// whose target is not a path to rename over). A relative link is read from
// the link's directory without cleaning the path: the kernel resolves
// "..", as it does when it follows the link.
func resolveLinks(name string) (string, bool, error) {
	p, viaProc := name, false
	for range 40 {
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, viaProc, nil
		}
		if err != nil {
			return "", false, err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			return p, viaProc, nil
		}
		if dir, _ := splitPath(p); isProc(dir) {
			viaProc = true
		}
		dest, err := os.Readlink(p)
		if err != nil {
			return "", false, err
		}
		if !filepath.IsAbs(dest) {
			dir, _ := splitPath(p)
			dest = dir + string(filepath.Separator) + dest
		}
		p = dest
	}
	return "", false, fmt.Errorf("%s: too many levels of symbolic links", name)
}

// isProc reports whether dir is in /proc (/dev/fd is a link to
// /proc/self/fd).
func isProc(dir string) bool {
	real, err := filepath.EvalSymlinks(dir)
	return err == nil && (real == "/proc" || strings.HasPrefix(real, "/proc/"))
}

// splitPath splits p after its last separator without cleaning it
// (filepath.Dir would turn "link/../f" into "f").
func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, filepath.Separator)
	switch {
	case i < 0:
		return ".", p
	case i == 0:
		return string(filepath.Separator), p[1:]
	}
	return p[:i], p[i+1:]
}

// fileKind names the kind of a file that export does not write.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeIrregular != 0:
		return "file of an unknown kind"
	}
	return "special file"
}

// importCmd reads JSON lines, one record a line, and writes them in
// batches. Line numbers are exact; a bad line stops the import after writing
// every good line before it (and says how many keys were written), or is
// skipped and counted with --skip-bad.
func (c *cmdCtx) importCmd(ctx context.Context) error {
	in, total, closeIn, err := c.input(ctx)
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
// expiry (ttl_ms is still checked). The key's and the value's bytes are
// the line's, unchanged (see inRecord).
func parseLine(data []byte, def time.Duration, noTTL bool) (backend.Entry, bool, error) {
	var r inRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return backend.Entry{}, false, fmt.Errorf("not a JSON record: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return backend.Entry{}, false, errors.New("more than one JSON value on the line")
	}
	key, value, err := r.decode()
	if err != nil {
		return backend.Entry{}, false, err
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
// else the file, with its size for the progress bar (0 when unknown). A
// FIFO is waited for until it has a writer, or until ctx ends (see
// openFIFOReader).
func (c *cmdCtx) input(ctx context.Context) (io.Reader, int64, func(), error) {
	if len(c.args) == 0 || c.args[0] == "-" {
		return c.stdin, 0, func() {}, nil
	}
	var f *os.File
	var err error
	if st, serr := os.Stat(c.args[0]); serr == nil && st.Mode()&fs.ModeNamedPipe != 0 {
		f, err = c.openFIFOReader(ctx, c.args[0])
	} else {
		f, err = os.Open(c.args[0])
	}
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

// copyCmd copies namespace --ns to --to-ns of --to. The same store spelled
// two ways (a relative and an absolute path, a hard link, localhost and
// 127.0.0.1) is recognised: a copy onto the source namespace is refused,
// and two namespaces of one store are copied through one handle, opened
// once for writing (a bbolt file cannot be opened twice).
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
	onto := func() error {
		return usagef("copy onto itself: --to %s is the store of --url %s, and --to-ns the source namespace %s", redact(c.f.to), redact(c.f.url), toNS)
	}
	same := sameStore(ctx, c.f.url, c.f.to)
	if same && toNS == c.f.ns {
		return onto()
	}
	var src, dst backend.Backend
	var err error
	if same {
		if src, err = c.openSame(); err != nil {
			return err
		}
		defer src.Close()
		dst = src
	} else {
		if src, err = c.open(false); err != nil {
			return err
		}
		defer src.Close()
		if dst, err = c.openCopyTarget(c.f.to); err != nil {
			return fmt.Errorf("--to %s: %w", redact(c.f.to), err)
		}
		defer dst.Close()
		if toNS == c.f.ns && sameServer(ctx, src, dst) {
			return onto() // one Redis server reached at two addresses
		}
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
