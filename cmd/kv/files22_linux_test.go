package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/bolt"
)

// TestCheckWhileTheFileShrinks (issue 22, item 13): kv check used to die
// of SIGBUS when another process shrank the file while it ran (8 of 17
// tries): bbolt's Tx.Check reads the mapped file in a goroutine of its own,
// where the fault cannot be turned into an error. Check now reads the file
// itself. inotify shows when the command opens the file a second time (for
// reads of its own), reads it, and closes that descriptor: the file is cut
// to nothing during those reads, or at that close (the old Check ran
// Tx.Check right after it), and the command must end with "ok" or a clear
// error.
func TestCheckWhileTheFileShrinks(t *testing.T) {
	dir := t.TempDir()
	fixture := filepath.Join(dir, "fixture.db")
	b, err := bolt.Open(fixture, bolt.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	m, err := kv.New[string](b, "ns", kv.WithTTL(kv.NoTTL))
	if err != nil {
		t.Fatal(err)
	}
	for batch := range 10 {
		entries := make([]kv.Entry[string], 2000)
		for i := range entries {
			entries[i] = kv.Entry[string]{Key: fmt.Sprintf("key-%02d-%05d", batch, i), Value: strings.Repeat("v", 400)}
		}
		if err := m.SetMany(context.Background(), entries); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	for try, cutAt := range []string{"close", "reads", "close", "close"} {
		path := filepath.Join(dir, fmt.Sprintf("try%d.db", try))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		mask := uint32(syscall.IN_OPEN | syscall.IN_CLOSE_NOWRITE)
		if cutAt == "reads" {
			mask |= syscall.IN_ACCESS // many: the reader lags behind them
		}
		events := watch(t, path, mask)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang, not a timing assertion
		cmd := exec.CommandContext(ctx, bin, "--url", "bolt://"+path, "check")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() {
			err := cmd.Wait()
			events.close() // ends the wait for events below
			exited <- err
		}()
		// Opens are told apart by the reads between them (the check of the
		// file at open): inotify merges only identical events in a row.
		opens, cut := 0, false
		for !cut {
			mask, err := events.next()
			if err != nil {
				break // the command ended before the moment (or a minute passed)
			}
			switch {
			case mask&syscall.IN_OPEN != 0:
				opens++
			case mask&syscall.IN_ACCESS != 0:
				cut = cutAt == "reads" && opens >= 2
			case mask&syscall.IN_CLOSE_NOWRITE != 0:
				cut = cutAt == "close"
			}
			if cut {
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		err = <-exited
		hung := ctx.Err() != nil
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode() // -1 when a signal killed it
		} else if err != nil {
			t.Fatal(err)
		}
		stderr := errb.String()
		ok := !hung && (code == 0 || (code == 1 && strings.Contains(stderr, "corrupt")))
		for _, w := range a22RuntimeWords {
			ok = ok && !strings.Contains(stderr, w)
		}
		t.Logf("try %d (cut at the %s, done %v): exit %d, %s", try, cutAt, cut, code, strings.TrimSpace(out.String()+firstLine(stderr)))
		if !ok {
			t.Errorf("try %d (cut at the %s, done %v): kv check exit %d (hung and killed: %v), stdout %q, stderr:\n%.1500s", try, cutAt, cut, code, hung, out.String(), stderr)
		}
	}
}

// firstLine returns the first line of s.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// inotify reads the open, read and close events of one file.
type inotify struct {
	f   *os.File
	buf []byte
}

// watch starts watching path for the events of mask.
func watch(t *testing.T, path string, mask uint32) *inotify {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, path, mask); err != nil {
		syscall.Close(fd)
		t.Skipf("inotify watch: %v", err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: read waits in the poller, with a deadline
	if err := f.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	return &inotify{f: f, buf: make([]byte, 0, 4096)}
}

// next returns the mask of the next event.
func (w *inotify) next() (uint32, error) {
	if len(w.buf) < syscall.SizeofInotifyEvent {
		w.buf = w.buf[:cap(w.buf)]
		n, err := w.f.Read(w.buf)
		if err == nil && n < syscall.SizeofInotifyEvent {
			err = fmt.Errorf("inotify: a read of %d bytes", n)
		}
		if err != nil {
			return 0, err
		}
		w.buf = w.buf[:n]
	}
	mask := binary.NativeEndian.Uint32(w.buf[4:])
	size := syscall.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(w.buf[12:]))
	w.buf = w.buf[min(size, len(w.buf)):]
	return mask, nil
}

func (w *inotify) close() { _ = w.f.Close() } // a second close, after the loop's, is harmless
