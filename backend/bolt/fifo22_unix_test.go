//go:build unix

package bolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kvmap/kv/backend/bolt"
)

// TestOpenNamedPipeFailsAtOnce (issue 22, item 11): a named pipe given as
// the file used to block the open for ever (a read-only open of a pipe
// waits for a writer); it fails at once with ErrNotRegularFile.
func TestOpenNamedPipeFailsAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, ro := range []bool{true, false} {
		var opts []bolt.Option
		if ro {
			opts = append(opts, bolt.WithReadOnly())
		}
		done := make(chan error, 1)
		go func() {
			b, err := bolt.Open(path, opts...)
			if err == nil {
				err = errors.Join(errors.New("opened"), b.Close())
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, bolt.ErrNotRegularFile) {
				t.Errorf("Open of a named pipe (read-only %v) = %v; want ErrNotRegularFile", ro, err)
			}
		case <-time.After(30 * time.Second): // a hang, not a timing assertion
			// Release the blocked open with a writer, then fail.
			if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
				w.Close()
			}
			<-done
			t.Fatalf("Open of a named pipe (read-only %v) hung", ro)
		}
	}
}
