// Command kv works on the namespaces of any kv backend from the shell: look
// into a namespace, fix a key, or snapshot production Redis data into a bolt
// file for an offline backtest.
//
//	kv [flags] COMMAND [ARGS] [flags]
//
// Run "kv help" for the commands, and see README.md for examples.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/term"

	"github.com/kvmap/kv/kvurl"
)

func main() {
	ctx, stop := notifyContext(context.Background())
	defer stop()
	// go-redis logs dial failures itself; the command reports errors once.
	goredis.SetLogger(quietLogger{})
	env := &env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		outFile: os.Stdout, errFile: os.Stderr,
		getenv:   os.Getenv,
		terminal: term.IsTerminal(int(os.Stderr.Fd())),
		ttyOut:   term.IsTerminal(int(os.Stdout.Fd())),
	}
	os.Exit(env.run(ctx, os.Args[1:]))
}

// Signals. Each of endSignals (every signal whose default action ends a
// process and that a Go program can catch) cancels the command's context
// instead, so that the command stops through it and leaves nothing
// half-done (an export removes its temporary file), says how far it got,
// and exits with 128 + the signal's number; every wait of a command (a
// store's answer, a stalled reader of its output, a FIFO's other end)
// ends with the context. SIGHUP comes when the terminal closes. SIGHUP or
// SIGINT ignored when the command starts stays ignored, as the Go runtime
// alone keeps it (nohup; a shell script starts its background jobs with
// SIGINT ignored); the runtime records no other inherited disposition, and
// would replace it anyway. Two are left to
// the Go runtime: SIGPROF, which it keeps for its profiler, and SIGPIPE.
// The kernel sends SIGPIPE for a write to a socket or a pipe whose other end
// is closed, a Redis connection's included, where the client sees the error
// and reconnects: caught, it would end the command. The runtime ends the
// command at a write to a closed standard output or error (exit 141, as the
// shell expects of "kv keys | head"), which no command makes while it holds
// a temporary file (an export to a file writes only that file until it is
// renamed), and ignores one sent with kill. SIGKILL, and the signals the
// runtime leaves to the C library (32 to 34 on Linux), end the process at
// once.

// signalled is the cause of the end of a command's context that a signal
// ended.
type signalled struct{ sig syscall.Signal }

func (s signalled) Error() string { return "interrupted by " + signalName(s.sig) }

// signalName names sig in messages: "SIGTERM", or "signal 40" for a
// real-time signal.
func signalName(sig syscall.Signal) string {
	if name, ok := signalNames[sig]; ok {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// notifyContext returns a context that the first of endSignals cancels,
// with a signalled cause, and the function that stops the watch.
func notifyContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	for _, sig := range endSignals {
		// SIGHUP or SIGINT ignored from the start stays ignored: nohup kv
		// export goes on when the terminal closes, as the shell expects.
		if !signal.Ignored(sig) {
			signal.Notify(ch, sig)
		}
	}
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			if sig, ok := s.(syscall.Signal); ok {
				cancel(signalled{sig})
			}
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// endedBy returns the signal that ended ctx, if one did. A write that
// the file size limit stopped (EFBIG) comes with SIGXFSZ, which the kernel
// sends before the write returns: the signal's watch is given a moment to
// see it, so that the exit code does not depend on which came first.
func endedBy(ctx context.Context, err error) (syscall.Signal, bool) {
	if ctx.Err() == nil && errors.Is(err, syscall.EFBIG) {
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	var s signalled
	if errors.As(context.Cause(ctx), &s) {
		return s.sig, true
	}
	return 0, false
}

// interruptCode returns the exit code of a command that ctx's end stopped,
// and the words that name the signal: 128 + the signal's number, or 130
// (Ctrl-C) when no signal is known. Ctrl-C (SIGINT) is not named.
func interruptCode(ctx context.Context) (int, string) {
	var s signalled
	if errors.As(context.Cause(ctx), &s) && s.sig != syscall.SIGINT {
		return 128 + int(s.sig), " by " + signalName(s.sig)
	}
	return exitInterrupted, ""
}

// stallGuard writes to a stream that a stalled reader can block (a pipe, a
// FIFO, a terminal: standard output or error), each write in a goroutine of
// its own, so that the end of ctx (a signal) ends a write that waits for the
// reader: the command then stops, cleans up and exits, and the process's
// exit ends the abandoned write. A write begun after ctx ended (the
// command's last message) is given stallGrace; once one is abandoned, the
// stream is given up.
type stallGuard struct {
	ctx context.Context
	w   io.Writer

	mu      sync.Mutex
	pending chan struct{} // closed when the abandoned write ends; nil when none
	stalled bool          // a write took longer than stallGrace after ctx ended
}

// stallGrace is how long a write begun after the command's end may wait for
// its reader.
const stallGrace = time.Second

// stallChunk is the most a goroutine of stallGuard writes: it writes a copy,
// as a write it abandons goes on after Write returns.
const stallChunk = 64 << 10

// errStalled is the error of a write to a stream whose reader stopped
// reading, once the command has ended.
var errStalled = errors.New("the reader stopped reading")

// guardStream returns w, or w behind a stallGuard when f is a stream that a
// stalled reader can block (not a regular file).
func guardStream(ctx context.Context, w io.Writer, f *os.File) io.Writer {
	if f == nil {
		return w
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		return w
	}
	return &stallGuard{ctx: ctx, w: w}
}

func (g *stallGuard) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stalled {
		return 0, errStalled
	}
	if g.pending != nil {
		if !g.wait(g.pending, nil) {
			g.stalled = true
			return 0, errStalled
		}
		g.pending = nil
	}
	n := 0
	for n < len(p) {
		chunk := bytes.Clone(p[n:min(len(p), n+stallChunk)])
		done := make(chan struct{})
		var m int
		var err error
		go func() {
			defer close(done)
			m, err = g.w.Write(chunk)
		}()
		live := g.ctx.Done()
		if g.ctx.Err() != nil {
			live = nil
		}
		if !g.wait(done, live) {
			g.pending = done
			if live == nil {
				g.stalled = true
				return n, errStalled
			}
			return n, fmt.Errorf("%w (%w)", g.ctx.Err(), errStalled)
		}
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// wait waits for done and reports whether it came: until live is closed,
// or, when live is nil, for stallGrace.
func (g *stallGuard) wait(done chan struct{}, live <-chan struct{}) bool {
	if live != nil {
		select {
		case <-done:
			return true
		case <-live:
			return false
		}
	}
	t := time.NewTimer(stallGrace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// scrubWriter writes to w with every URL of the command line (and --url
// and --to, whatever their source) redacted: a password typed anywhere on
// the command line never appears in a message, whichever part of the
// command (cobra, a flag parser, a backend) wrote it. Each message is one
// Write.
type scrubWriter struct {
	w    io.Writer
	urls func() []string
}

func (s scrubWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for _, u := range s.urls() {
		msg = kvurl.Scrub(msg, u)
	}
	if msg == string(p) {
		return s.w.Write(p)
	}
	if _, err := io.WriteString(s.w, msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

// urlArgs returns the arguments that may be URLs: the value of --url or
// --to (as "--url V" or "--url=V"), the first argument that is not a flag
// (where the command goes: a URL typed there comes back in "unknown
// command"), and any argument or flag value that looks like a URL: it holds
// ":/" or "//", or starts with a scheme of kvurl (redis:user:pass@host,
// an opaque form). A key such as a:b@c is not one. Scrub changes only what
// Redact would hide, so a key taken for a URL stays as it is unless it
// holds "user:password@".
func urlArgs(args []string) []string {
	var out []string
	command := false // the command's place is taken
	for i, a := range args {
		if a == "--" {
			for _, rest := range args[i+1:] {
				if looksLikeURL(rest) {
					out = append(out, rest)
				}
			}
			break
		}
		v := a
		if strings.HasPrefix(a, "-") && a != "-" {
			_, val, ok := strings.Cut(a, "=")
			if !ok {
				continue
			}
			v = val
		}
		prev := ""
		if i > 0 {
			prev = args[i-1]
		}
		isValue := strings.HasPrefix(prev, "--") && !strings.Contains(prev, "=") && valueFlags[prev[2:]]
		first := !command && !isValue && !strings.HasPrefix(a, "-")
		if first {
			command = true
		}
		if first || prev == "--url" || prev == "--to" || looksLikeURL(v) ||
			strings.HasPrefix(a, "--url=") || strings.HasPrefix(a, "--to=") {
			out = append(out, v)
		}
	}
	return out
}

// looksLikeURL reports whether s may be a URL: it holds ":/" or "//", or
// starts with one of kvurl's schemes and ":".
func looksLikeURL(s string) bool {
	if strings.Contains(s, ":/") || strings.Contains(s, "//") {
		return true
	}
	scheme, _, ok := strings.Cut(s, ":")
	return ok && slices.ContainsFunc(kvurl.Schemes(), func(known string) bool { return strings.EqualFold(scheme, known) })
}

// env is what a run of the command works with.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// outFile and errFile are the files behind stdout and stderr, when
	// they are files (main's): run guards their writes against a stalled
	// reader, and a command on a store refuses to run when one of them is
	// the store's own file.
	outFile, errFile *os.File
	rawErr           io.Writer // stderr, guarded but not scrubbed: the stream export /dev/stderr writes to
	getenv           func(string) string
	terminal         bool // stderr is a terminal: draw progress bars
	ttyOut           bool // stdout is a terminal: escape what is not printable, end get with a newline
}

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1 // not found, or failed
	exitUsage       = 2
	exitInterrupted = 130
)

func (e *env) run(ctx context.Context, args []string) int {
	typed := slices.Clip(urlArgs(args)) // appended to below, never changed
	c := &cmdCtx{env: e}
	e.stdout = guardStream(ctx, e.stdout, e.outFile)
	e.rawErr = guardStream(ctx, e.stderr, e.errFile)
	e.stderr = scrubWriter{w: e.rawErr, urls: func() []string { return append(typed, c.f.url, c.f.to) }}
	root := e.newRoot(ctx, c)
	if len(args) == 0 {
		root.SetOut(e.stderr)
		if err := root.Usage(); err != nil {
			fmt.Fprintln(e.stderr, "kv:", err)
		}
		return exitUsage
	}
	if topic, ok := helpRequest(args); ok {
		if err := helpFor(root, topic); err != nil {
			fmt.Fprintf(e.stderr, "kv: %v\n", err)
			return exitUsage
		}
		return exitOK
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
// environment (KV_URL, KV_NS, and KV_TTL for a command that takes --ttl),
// and removes the marks of negative numbers from flag values.
func (e *env) defaults(f *flags, takesTTL bool) {
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
	if f.ttl == "" && takesTTL {
		f.ttl = e.getenv("KV_TTL")
		f.ttlFromEnv = f.ttl != ""
	}
}

// report prints err as one line naming the URL (never its password) and the
// namespace, and returns the exit code: 128 + N for a command that signal N
// stopped.
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
	_, bySignal := endedBy(ctx, err)
	switch {
	case errors.Is(err, errQuietUsage):
		return exitUsage
	// A command that a signal stopped was interrupted, whatever error its
	// stop took (a write that the interrupt's deadline ended says "i/o
	// timeout").
	case bySignal || (ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err()))):
		code, by := interruptCode(ctx)
		msg := "interrupted" + by
		if c.done != nil {
			msg += " after " + c.done()
		}
		fmt.Fprintf(e.stderr, "kv: %s: %s; run it again to finish (%s)\n", c.name, msg, where)
		return code
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
