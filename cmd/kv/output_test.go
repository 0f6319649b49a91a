package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// runKVEnv is runKV with extra environment variables.
func runKVEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// onTerminal runs the binary with its standard output on a pseudo-terminal
// and returns what the terminal received.
func onTerminal(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, _ := io.ReadAll(f) // ends with EIO once the process has exited
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kv %q on a terminal: %v, stderr %q", args, err, errb.String())
	}
	return string(out)
}

// TestOutput: set - reads the value from standard input (a 1 MB value
// cannot be an argument); --json works for every command with numbers as
// numbers; version; KV_TTL errors name the variable; a write to mem:// warns
// that the store ends with the process; plural words.
func TestOutput(t *testing.T) {
	url := "bolt://" + filepath.Join(t.TempDir(), "kv.db")
	g := []string{"--url", url, "--ns", "out"}
	run := func(stdin string, args ...string) result {
		t.Helper()
		return runKV(t, stdin, append(append([]string(nil), g...), args...)...)
	}
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	run(big, "set", "big", "-").want(t, 0, "")
	run("", "get", "big").want(t, 0, big)

	run("", "set", "k", "v", "--json").want(t, 0, `{"bytes":1,"key":"k"}`+"\n")
	run("", "has", "k", "--json").want(t, 0, `{"exists":true,"key":"k"}`+"\n")
	run("", "has", "nope", "--json").want(t, 1, `{"exists":false,"key":"nope"}`+"\n")
	run("", "expire", "k", "-1", "--json").want(t, 0, `{"key":"k","ttl_ms":-1}`+"\n")
	run("", "ttl", "k", "--json").want(t, 0, `{"key":"k","ttl_ms":-1}`+"\n")
	run("", "size", "--json").want(t, 0, `{"keys":2,"namespace":"out"}`+"\n")
	run("", "del", "k", "--json").want(t, 0, `{"deleted":["k"]}`+"\n")

	r := runKV(t, "", "--url", "mem://", "bench", "--n", "20", "--json")
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bench --json line %q: %v", line, err)
		}
		for _, f := range []string{"ops", "ops_per_sec", "p50_ns", "p99_ns"} {
			if _, isNumber := m[f].(float64); !isNumber {
				t.Errorf("bench --json %s = %v; want a number", f, m[f])
			}
		}
	}
	if !strings.Contains(r.stderr, "mem:// is a store of this process") {
		t.Errorf("a write to mem:// said %q; want the warning that the store ends with the process", r.stderr)
	}

	demo := runKV(t, "", "demo", "--json")
	for _, line := range strings.Split(strings.TrimSpace(demo.stdout), "\n") {
		var m map[string]string
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["line"] == "" && line != `{"line":""}` {
			t.Errorf("demo --json line %q is not {\"line\": ...}: %v", line, err)
			break
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runKV(t, "", args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "kv ") || len(strings.TrimSpace(r.stdout)) < 4 {
			t.Errorf("kv %v = exit %d, %q; want \"kv <version>\"", args, r.code, r.stdout)
		}
	}
	r = runKVEnv(t, []string{"KV_TTL=banana"}, "--url", url, "--ns", "out", "set", "x", "y")
	if r.code != 2 || !strings.Contains(r.stderr, `KV_TTL="banana"`) {
		t.Errorf("KV_TTL=banana: exit %d, stderr %q; want 2 and the variable named", r.code, r.stderr)
	}
}

// TestTerminalOutput: on a terminal, get ends with a newline and ls and
// keys show bytes that are not printable (an ESC that would drive the
// terminal, a NUL, invalid UTF-8) as \xNN; piped, get prints the value's
// bytes alone and ls the bytes raw.
func TestTerminalOutput(t *testing.T) {
	url := "bolt://" + filepath.Join(t.TempDir(), "kv.db")
	g := []string{"--url", url, "--ns", "tty"}
	runKV(t, "", append(g, "set", "k", "v")...).want(t, 0, "")
	runKV(t, "nul\x00\xff", append(g, "set", "--", "esc\x1b[31m", "-")...).want(t, 0, "") // a NUL cannot be an argument

	if out := onTerminal(t, append(g, "get", "k")...); out != "v\r\n" {
		t.Errorf("get on a terminal printed %q; want \"v\" and a newline", out)
	}
	runKV(t, "", append(g, "get", "k")...).want(t, 0, "v")

	out := onTerminal(t, append(g, "ls")...)
	if strings.ContainsAny(out, "\x1b\x00") || !strings.Contains(out, `esc\x1b[31m`) || !strings.Contains(out, `nul\x00\xff`) {
		t.Errorf("ls on a terminal printed %q; want the ESC, NUL and 0xFF bytes escaped", out)
	}
	if keys := onTerminal(t, append(g, "keys")...); strings.Contains(keys, "\x1b") {
		t.Errorf("keys on a terminal printed a raw ESC: %q", keys)
	}
	if piped := runKV(t, "", append(g, "ls")...).stdout; !strings.Contains(piped, "esc\x1b[31m\tnul\x00\xff") {
		t.Errorf("ls piped printed %q; want the bytes raw", piped)
	}
}

// TestCommandLine: per-command help (kv help CMD, kv CMD --help), shell
// completion for bash, zsh, fish and powershell, a suggestion for a
// mistyped command, the hint to put a key starting with - after --, -1 as
// an argument and as a flag value, and the version from the VCS revision or
// ldflags.
func TestCommandLine(t *testing.T) {
	for _, args := range [][]string{{"help", "set"}, {"set", "--help"}} {
		r := runKV(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "kv set KEY VALUE|-") || !strings.Contains(r.stdout, "--ttl") {
			t.Errorf("kv %v: exit %d, stdout %q; want the help of set", args, r.code, r.stdout)
		}
	}
	help := runKV(t, "", "help").stdout
	for _, name := range order {
		if !strings.Contains(help, "\n  "+name+" ") {
			t.Errorf("kv help does not list %s", name)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := runKV(t, "", "completion", shell)
		if r.code != 0 || len(r.stdout) < 100 || !strings.Contains(r.stdout, "kv") {
			t.Errorf("kv completion %s: exit %d, %d bytes", shell, r.code, len(r.stdout))
		}
	}
	r := runKV(t, "", "GET", "k")
	if r.code != 2 || !strings.Contains(r.stderr, "did you mean get?") {
		t.Errorf("kv GET k: exit %d, stderr %q; want 2 and \"did you mean get?\"", r.code, r.stderr)
	}
	url := "bolt://" + filepath.Join(t.TempDir(), "kv.db")
	r = runKV(t, "", "--url", url, "--ns", "a", "get", "-dash")
	if r.code != 2 || !strings.Contains(r.stderr, "goes after --") {
		t.Errorf("kv get -dash: exit %d, stderr %q; want 2 and the hint to use --", r.code, r.stderr)
	}
	runKV(t, "v", "--url", url, "--ns", "a", "set", "--", "-dash", "-").want(t, 0, "")
	runKV(t, "", "--url", url, "--ns", "a", "get", "--", "-dash").want(t, 0, "v")
	runKV(t, "", "--url", url, "--ns", "a", "set", "k", "v").want(t, 0, "")
	runKV(t, "", "--url", url, "--ns", "a", "expire", "k", "-1").want(t, 0, "")
	runKV(t, "", "--url", url, "--ns", "a", "ttl", "k").want(t, 0, "-1\n")
	runKV(t, "", "--url", url, "--ns", "a", "--ttl", "-1", "set", "k2", "v").want(t, 0, "")
	runKV(t, "", "--url", url, "--ns", "a", "ttl", "k2").want(t, 0, "-1\n")
	runKV(t, "", "--url", url, "--ns", "a", "set", "k3", "v", "--ttl=-1").want(t, 0, "")
	runKV(t, "", "--url", url, "--ns", "a", "ttl", "k3").want(t, 0, "-1\n")

	// The version of a build from a clone names its revision: the one Go
	// stamped into the binary (a pseudo-version holds it; without stamping
	// the version is "devel" and the revision).
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, rev, ok := strings.Cut(string(info), "vcs.revision="); ok && len(rev) >= 12 {
		if v := runKV(t, "", "--version").stdout; !strings.HasPrefix(v, "kv ") || !strings.Contains(v, rev[:12]) {
			t.Errorf("kv --version = %q; want the revision %s in it", v, rev[:12])
		}
	} else if v := runKV(t, "", "--version").stdout; !strings.HasPrefix(v, "kv devel") && !strings.HasPrefix(v, "kv v") {
		t.Errorf("kv --version of a build without VCS stamping = %q; want devel", v)
	}
	stamped := filepath.Join(t.TempDir(), "kv")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9", "-o", stamped, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(stamped, "version").Output(); err != nil || string(out) != "kv v9.9.9\n" {
		t.Errorf("kv version of a build with -X main.version=v9.9.9 = %q, %v", out, err)
	}
}

// TestReadmeListsEveryCommand: the README's command reference is checked
// against the command's own list: every command has its row, and no row
// names a command that does not exist.
func TestReadmeListsEveryCommand(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	for _, name := range order {
		if !strings.Contains(readme, "| `"+name) {
			t.Errorf("README's command table has no row for %s", name)
		}
		if short[name] == "" {
			t.Errorf("command %s has no help line", name)
		}
	}
	start := strings.Index(readme, "| command | example | what it does |")
	if start < 0 {
		t.Fatal("README has no command table")
	}
	for _, line := range strings.Split(readme[start:], "\n")[2:] {
		if !strings.HasPrefix(line, "| `") {
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), " ")
		name = strings.TrimSuffix(name, "`")
		if _, ok := commands[name]; !ok {
			t.Errorf("README's command table names %q, which kv does not have", name)
		}
	}
}

// TestJSONSummaries: clear, import, copy and check answer --json with a
// JSON object of numbers.
func TestJSONSummaries(t *testing.T) {
	url := "bolt://" + filepath.Join(t.TempDir(), "kv.db")
	g := []string{"--url", url, "--json"}
	runKV(t, `{"key":"a"}`+"\n"+`{"nokey":1}`+"\n", append(g, "--ns", "j", "import", "--skip-bad")...).want(t, 0, `{"bad_lines":1,"capped_ttls":0,"imported":1}`+"\n")
	runKV(t, "", append(g, "--ns", "j", "copy", "--to", url, "--to-ns", "k")...).want(t, 0, `{"capped_ttls":0,"copied":1,"to":"`+url+`","to_ns":"k"}`+"\n")
	runKV(t, "", append(g, "--ns", "j", "clear", "--yes")...).want(t, 0, `{"cleared":1,"namespace":"j"}`+"\n")
	runKV(t, "", append(g, "check")...).want(t, 0, `{"ok":true}`+"\n")
}

// TestImportProgressFromFileSize: import FILE on a terminal shows the
// file's total and the percentage read.
func TestImportProgressFromFileSize(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var lines strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&lines, `{"key":"k%d","value":"v","ttl_ms":-1}`+"\n", i)
	}
	if err := os.WriteFile(in, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--url", "bolt://"+filepath.Join(dir, "kv.db"), "--ns", "p", "import", in)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, _ := io.ReadAll(f)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("import on a terminal: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("/%d (100%%)", lines.Len()); !strings.Contains(string(out), want) {
		t.Errorf("terminal output %q lacks the file's total %q", out, want)
	}
}

// TestExportInterruptedLeavesNoFile: Ctrl-C during an export to a file
// exits 130, says that no file was written, and leaves none (the old export
// left a truncated file whose every line was complete).
func TestExportInterruptedLeavesNoFile(t *testing.T) {
	silent := silentServer(t) // a source that never answers
	dir := t.TempDir()
	cmd := exec.Command(bin, "--url", silent, "--ns", "e", "--timeout", "60s", "export", filepath.Join(dir, "out.jsonl"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The export is under way once its temporary file exists.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) { // polling, bounded
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the export did not start")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(errb.String(), "no file written") {
		t.Errorf("export after SIGINT: %v, stderr %q; want exit 130 and \"no file written\"", err, errb.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("an interrupted export left %v", entries)
	}
}
