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

func (e *env) run(ctx context.Context, args []string) int {
	c := &cmdCtx{env: e}
	root := e.newRoot(ctx, c)
	if len(args) == 0 {
		root.SetOut(e.stderr)
		if err := root.Usage(); err != nil {
			fmt.Fprintln(e.stderr, "kv:", err)
		}
		return exitUsage
	}
	root.SetArgs(markNumbers(args))
	err := root.Execute()
	var re runErr
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &re):
		return e.report(ctx, c, re.err)
	}
	fmt.Fprintf(e.stderr, "kv: %v\n", cobraUsage(err))
	return exitUsage
}

// defaults fills in the flags the command line left out from the
// environment (KV_URL, KV_NS, KV_TTL), and removes the marks of negative
// numbers from flag values.
func (e *env) defaults(f *flags) {
	f.url, f.ns, f.ttl, f.timeout, f.at = unmark(f.url), unmark(f.ns), unmark(f.ttl), unmark(f.timeout), unmark(f.at)
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
