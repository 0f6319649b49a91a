// Command kv works on the namespaces of any kv backend from the shell: look
// into a namespace, fix a key, or snapshot production Redis data into a bolt
// file for an offline backtest.
//
//	kv [flags] COMMAND [ARGS] [flags]
//
// Run "kv help" for the commands, and see README.md for examples.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// go-redis logs dial failures itself; the command reports errors once.
	goredis.SetLogger(quietLogger{})
	env := &env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv:   os.Getenv,
		terminal: term.IsTerminal(int(os.Stderr.Fd())),
		ttyOut:   term.IsTerminal(int(os.Stdout.Fd())),
	}
	os.Exit(env.run(ctx, os.Args[1:]))
}

// env is what a run of the command works with.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	terminal       bool // stderr is a terminal: draw progress bars
	ttyOut         bool // stdout is a terminal: escape what is not printable, end get with a newline
}

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1 // not found, or failed
	exitUsage       = 2
	exitInterrupted = 130
)

const usage = `kv: a namespaced, TTL-aware key-value map over Redis, bbolt or memory.

Usage:
  kv [flags] COMMAND [ARGS] [flags]

Commands that only read (get, has, ttl, keys, ls, size, namespaces, export, check, the
source of copy) open a bolt file read-only: they never create or change it.

Commands on one namespace (--ns):
  set KEY VALUE|-        store VALUE (- reads it from stdin) under KEY with the --ttl in force
  get KEY                print the value (exit 1 if missing)
  has KEY                print true or false (exit 0 or 1)
  del KEY...             delete keys (missing keys are fine)
  ttl KEY                print the remaining TTL, or -1 for none
  expire KEY TTL         set the TTL (a Go duration, or -1 for none)
  keys                   print every key, one per line
  ls                     print key<TAB>value per line (\t \n \\ escaped)
  size                   print the number of keys
  clear --yes            delete every key of the namespace
  export [FILE|-]        write JSON lines {"key","value","ttl_ms"} (stdout without FILE or with -);
                         a file appears only once it is complete
  import [FILE|-]        read JSON lines (stdin without FILE or with -): ttl_ms -1 none, absent the
                         --ttl in force; --no-ttl drops TTLs; --skip-bad skips bad lines
  copy --to URL          copy every key with its TTL to another backend [--to-ns NS] [--no-ttl]

Other commands:
  namespaces             list the namespaces of the backend with their key counts
  check                  run the full consistency check of a bolt file (exit 1 on problems)
  bench                  a short workload against --url [--n N]: ops/s, p50, p99
  demo                   a tour on a temporary bolt file, no server needed
  version                the command's version (--version too)
  help                   this text

Flags (before or after the command; "--" ends them):
  --url URL     backend: mem://, bolt://PATH, redis://[user:pass@]host:port[/db], rediss://...,
                redis+cluster://host:port?addr=host:port, redis+sentinel://host:port?master=NAME
                (default $KV_URL, else bolt://./kv.db; add ?hashtag=1 for hash-tag mode)
  --ns NS       namespace (default $KV_NS)
  --ttl TTL     TTL of writes: a Go duration, or --ttl=-1 for none (default $KV_TTL, else 5m)
  --json        JSON lines output, numbers as numbers (every command)
  --timeout D   the longest one store round trip (a key, a page, a batch) may take; never a whole
                command (default 10s; 0 for none)
  --at TIME     read a bolt file as of TIME (RFC 3339), or "file" for the latest time of its
                clock; a file written under a simulated clock is read as of "file" by default
  --clock-override   write to a bolt file written under a simulated clock with the wall clock
  --yes         confirm clear
  --no-ttl      import or copy without TTLs
  --to URL, --to-ns NS   target of copy

Exit codes: 0 success, 1 not found or failed, 2 usage error, 130 interrupted.
`

func (e *env) run(ctx context.Context, args []string) int {
	f, pos, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(e.stderr, "kv: %v (see kv help)\n", err)
		return exitUsage
	}
	if f.version {
		pos = []string{"version"}
	}
	if f.help || (len(pos) > 0 && pos[0] == "help") {
		fmt.Fprint(e.stdout, usage)
		return exitOK
	}
	if len(pos) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	if f.url == "" {
		f.url = e.getenv("KV_URL")
	}
	if f.url == "" {
		f.url = defaultURL
	}
	if f.ns == "" {
		f.ns = e.getenv("KV_NS")
	}
	if f.ttl == "" {
		f.ttl = e.getenv("KV_TTL")
		f.ttlFromEnv = f.ttl != ""
	}
	c := &cmdCtx{env: e, f: f, name: pos[0], args: pos[1:]}
	err = c.dispatch(ctx)
	return e.report(ctx, c, err)
}

// report prints err as one line naming the URL (never its password) and the
// namespace, and returns the exit code.
func (e *env) report(ctx context.Context, c *cmdCtx, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errQuiet) {
		return exitFailed
	}
	var nf *notFound
	where := fmt.Sprintf("url=%s", redact(c.f.url))
	msg := strings.TrimPrefix(err.Error(), "kv: ")
	if c.f.ns != "" {
		where += " ns=" + c.f.ns
	}
	switch {
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err())):
		msg := "interrupted"
		if c.done != nil {
			msg += " after " + c.done()
		}
		fmt.Fprintf(e.stderr, "kv: %s: %s; run it again to finish (%s)\n", c.name, msg, where)
		return exitInterrupted
	case errors.As(err, &nf):
		fmt.Fprintf(e.stderr, "kv: %s: %s (%s)\n", c.name, msg, where)
		return exitFailed
	case isUsage(err):
		fmt.Fprintf(e.stderr, "kv: %s: %s (%s)\n", c.name, msg, where)
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "kv: %s: %s (%s)\n", c.name, msg, where)
	return exitFailed
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// notFound is a missing key: exit code 1.
type notFound struct{ key string }

func (e *notFound) Error() string { return fmt.Sprintf("key %q not found", e.key) }
