//go:build unix

package main

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestNamedPipeAsDatabase (issue 22, item 11): a named pipe given as the
// database used to hang the command for ever, deaf to SIGINT (the open of
// a pipe waits for a writer); it fails at once, saying what it is. a22Run
// fails the test when the command does not end within a minute.
func TestNamedPipeAsDatabase(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.db")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	url := "bolt://" + fifo
	for _, args := range [][]string{
		{"--url", url, "--ns", "a", "get", "k"},
		{"--url", url, "--ns", "a", "set", "k", "v"},
		{"--url", url, "check"},
		{"--url", "bolt://" + filepath.Join(dir, "src.db"), "--ns", "a", "copy", "--to", url},
	} {
		if args[len(args)-1] == url { // copy: a source to copy from
			a22Run(t, dir, "--url", args[1], "--ns", "a", "set", "k", "v").want(t, 0, "")
		}
		a22Run(t, dir, args...).wantErr(t, 1, []string{"named pipe"})
	}
}
