package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kvmap/kv/internal/leaktest"
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

// The tests drive the real binary, built once.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvcli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "kv")
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	leaktest.Main(m, func() error { return os.RemoveAll(dir) })
}

type result struct {
	stdout, stderr string
	code           int
}

// runKV runs the binary with args, stdin and a clean environment.
func runKV(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run kv %q: %v", args, err)
	}
	return r
}

func (r result) want(t *testing.T, code int, stdout string) {
	t.Helper()
	if r.code != code || (stdout != "*" && r.stdout != stdout) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q", r.code, r.stdout, r.stderr, code, stdout)
	}
}

// urls returns the backends the round-trip tests run on: a bolt file, and the
// Redis at KV_REDIS_ADDR when set.
func urls(t *testing.T) map[string]string {
	out := map[string]string{"bolt": "bolt://" + filepath.Join(t.TempDir(), "kv.db")}
	if addr := os.Getenv("KV_REDIS_ADDR"); addr != "" {
		out["redis"] = "redis://" + addr + "/0"
	}
	return out
}

func uniqueNS(t *testing.T) string {
	return fmt.Sprintf("kvcli%d_%s", time.Now().UnixNano(), strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
}

func TestCommands(t *testing.T) {
	for name, url := range urls(t) {
		t.Run(name, func(t *testing.T) {
			ns := uniqueNS(t)
			g := []string{"--url", url, "--ns", ns}
			run := func(stdin string, args ...string) result {
				return runKV(t, stdin, append(append([]string(nil), g...), args...)...)
			}
			t.Cleanup(func() { run("", "clear", "--yes") })

			key := "binance:my-strategy:BTC/USDT:USDT"
			run("", "set", key, "66f1c0ffee").want(t, 0, "")
			run("", "get", key).want(t, 0, "66f1c0ffee")
			run("", "get", "--json", key).want(t, 0, `{"key":"`+key+`","value":"66f1c0ffee"}`+"\n")
			run("", "get", "missing").want(t, 1, "")
			run("", "has", key).want(t, 0, "true\n")
			run("", "has", "missing").want(t, 1, "false\n")

			r := run("", "ttl", key) // the library's default, 5 minutes
			if d, err := time.ParseDuration(strings.TrimSpace(r.stdout)); err != nil || d > 5*time.Minute || d < 4*time.Minute {
				t.Errorf("ttl = %q; want about 5m", r.stdout)
			}
			run("", "expire", key, "-1").want(t, 0, "")
			run("", "ttl", key).want(t, 0, "-1\n")
			run("", "expire", key, "90s").want(t, 0, "")
			if d, _ := time.ParseDuration(strings.TrimSpace(run("", "ttl", key).stdout)); d > 90*time.Second || d < 80*time.Second {
				t.Errorf("ttl after expire 90s = %v", d)
			}
			run("", "expire", "missing", "1m").want(t, 1, "")
			run("", "set", "--ttl=-1", "forever", "v").want(t, 0, "")
			run("", "ttl", "forever").want(t, 0, "-1\n")
			run("", "set", "--ttl", "1h", "hour", "v").want(t, 0, "")
			if d, _ := time.ParseDuration(strings.TrimSpace(run("", "ttl", "hour").stdout)); d > time.Hour || d < 59*time.Minute {
				t.Errorf("ttl after set --ttl 1h = %v", d)
			}
			// Keys and values starting with "-" after "--".
			run("", "--ttl=-1", "set", "--", "-dash", "-1").want(t, 0, "")
			run("", "get", "--", "-dash").want(t, 0, "-1")
			// Escaping in ls.
			run("", "set", "tab\tkey", "line1\nline2\\").want(t, 0, "")
			r = run("", "ls")
			if !strings.Contains(r.stdout, "tab\\tkey\tline1\\nline2\\\\\n") || !strings.Contains(r.stdout, key+"\t66f1c0ffee\n") {
				t.Errorf("ls = %q", r.stdout)
			}
			run("", "size").want(t, 0, "5\n")
			if got := strings.Count(run("", "keys").stdout, "\n"); got != 5 {
				t.Errorf("keys printed %d lines; want 5", got)
			}
			run("", "del", "forever", "hour", "missing").want(t, 0, "")
			run("", "size").want(t, 0, "3\n")
			if r := runKV(t, "", "--url", url, "namespaces"); !strings.Contains(r.stdout, ns+"\t3\n") {
				t.Errorf("namespaces = %q; want a line for %s with 3 keys", r.stdout, ns)
			}
			run("", "clear").want(t, 2, "")
			run("", "clear", "--yes").want(t, 0, "")
			run("", "size").want(t, 0, "0\n")
		})
	}
}

func TestExitCodes(t *testing.T) {
	url := "bolt://" + filepath.Join(t.TempDir(), "kv.db")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"help", []string{"help"}, 0},
		{"no command", []string{}, 2},
		{"unknown command", []string{"--url", url, "frob"}, 2},
		{"unknown flag", []string{"--url", url, "--ns", "a", "size", "--frob"}, 2},
		{"missing --ns", []string{"--url", url, "size"}, 2},
		{"expire 0", []string{"--url", url, "--ns", "a", "expire", "k", "0"}, 2},
		{"bad --ttl", []string{"--url", url, "--ns", "a", "--ttl", "soon", "set", "k", "v"}, 2},
		{"invalid namespace", []string{"--url", url, "--ns", "a:b", "size"}, 2},
		{"empty key", []string{"--url", url, "--ns", "a", "set", "", "v"}, 2},
		{"clear without --yes", []string{"--url", url, "--ns", "a", "clear"}, 2},
		{"wrong arguments", []string{"--url", url, "--ns", "a", "get"}, 2},
		{"bad URL", []string{"--url", "ftp://x", "--ns", "a", "size"}, 2},
		{"get missing", []string{"--url", url, "--ns", "a", "get", "k"}, 1},
		{"server down", []string{"--url", "redis://user:pa55word@127.0.0.1:1", "--ns", "a", "get", "k"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runKV(t, "", tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d (stderr %q); want %d", r.code, r.stderr, tt.code)
			}
			if tt.code != 0 && tt.name != "no command" {
				lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
				if len(lines) != 1 || !strings.HasPrefix(lines[0], "kv: ") {
					t.Errorf("stderr = %q; want one line starting with kv:", r.stderr)
				}
			}
			if strings.Contains(r.stderr, "pa55word") {
				t.Errorf("stderr %q shows the password", r.stderr)
			}
			if tt.name == "server down" && (!strings.Contains(r.stderr, "ns=a") || !strings.Contains(r.stderr, "redis://user:xxxxx@127.0.0.1:1")) {
				t.Errorf("stderr %q does not name the URL (redacted) and the namespace", r.stderr)
			}
		})
	}
}

// TestEnvironment: KV_URL, KV_NS and KV_TTL are the defaults of the flags.
func TestEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	cmd := exec.Command(bin, "set", "k", "v")
	cmd.Env = []string{"KV_URL=bolt://" + path, "KV_NS=envns", "KV_TTL=-1"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("set: %v %s", err, out)
	}
	runKV(t, "", "--url", "bolt://"+path, "--ns", "envns", "ttl", "k").want(t, 0, "-1\n")
}

func TestExportImportBinary(t *testing.T) {
	for name, url := range urls(t) {
		t.Run(name, func(t *testing.T) {
			ns, ns2 := uniqueNS(t), uniqueNS(t)+"_copy"
			g := []string{"--url", url, "--ns", ns}
			t.Cleanup(func() {
				runKV(t, "", "--url", url, "--ns", ns, "clear", "--yes")
				runKV(t, "", "--url", url, "--ns", ns2, "clear", "--yes")
			})
			bin1, bin2 := "k\xff\xfe:bin", "v\x01\xff\x80"
			runKV(t, "", append(g, "set", bin1, bin2)...).want(t, 0, "")
			runKV(t, "", append(g, "--ttl=-1", "set", "plain", "ünïcode")...).want(t, 0, "")
			file := filepath.Join(t.TempDir(), "export.jsonl")
			runKV(t, "", append(g, "export", file)...).want(t, 0, "")
			data, _ := os.ReadFile(file)
			var recs []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("export line %q: %v", line, err)
				}
				recs = append(recs, m)
			}
			if len(recs) != 2 {
				t.Fatalf("export wrote %d lines; want 2", len(recs))
			}
			for _, r := range recs {
				if r["key"] == "plain" {
					if r["value"] != "ünïcode" || r["ttl_ms"] != -1.0 {
						t.Errorf("export of plain = %v", r)
					}
				} else if r["key_b64"] == nil || r["value_b64"] == nil || r["ttl_ms"].(float64) < 290_000 {
					t.Errorf("export of a binary key = %v; want key_b64, value_b64 and ttl_ms about 300000", r)
				}
			}
			// Import, from stdin, skipping a line whose ttl_ms is outside
			// the TTL range (export never writes 0: it rounds up).
			in := string(data) + `{"key":"expired","value":"x","ttl_ms":0}` + "\n"
			r := runKV(t, in, "--url", url, "--ns", ns2, "import", "--skip-bad")
			r.want(t, 0, "")
			if !strings.Contains(r.stderr, "imported 2 keys, skipped 1 bad line ([3])") {
				t.Errorf("import stderr = %q", r.stderr)
			}
			runKV(t, "", "--url", url, "--ns", ns2, "get", bin1).want(t, 0, bin2)
			runKV(t, "", "--url", url, "--ns", ns2, "ttl", "plain").want(t, 0, "-1\n")
			if d, _ := time.ParseDuration(strings.TrimSpace(runKV(t, "", "--url", url, "--ns", ns2, "ttl", bin1).stdout)); d < 4*time.Minute {
				t.Errorf("imported TTL = %v; want the exported one, about 5m", d)
			}
			runKV(t, "", "--url", url, "--ns", ns2, "has", "expired").want(t, 1, "false\n")
			// --no-ttl drops every TTL.
			runKV(t, string(data), "--url", url, "--ns", ns2, "import", "--no-ttl").want(t, 0, "")
			runKV(t, "", "--url", url, "--ns", ns2, "ttl", bin1).want(t, 0, "-1\n")
		})
	}
}

// TestCopyRedisToBolt snapshots a Redis namespace into a bolt file with its
// TTLs, and again without; a second run completes or repeats the copy.
func TestCopyRedisToBolt(t *testing.T) {
	addr := os.Getenv("KV_REDIS_ADDR")
	if addr == "" {
		t.Skip("KV_REDIS_ADDR is not set")
	}
	url := "redis://" + addr
	ns := uniqueNS(t)
	g := []string{"--url", url, "--ns", ns}
	t.Cleanup(func() { runKV(t, "", append(g, "clear", "--yes")...) })
	runKV(t, "", append(g, "--ttl", "1h", "set", "binance:s:BTC", "id1")...).want(t, 0, "")
	runKV(t, "", append(g, "--ttl=-1", "set", "binance:s:ETH", "id2")...).want(t, 0, "")
	file := "bolt://" + filepath.Join(t.TempDir(), "snapshot.db")
	for range 2 {
		runKV(t, "", append(g, "copy", "--to", file, "--to-ns", "snap")...).want(t, 0, "")
	}
	b := []string{"--url", file, "--ns", "snap"}
	runKV(t, "", append(b, "size")...).want(t, 0, "2\n")
	runKV(t, "", append(b, "get", "binance:s:BTC")...).want(t, 0, "id1")
	if d, _ := time.ParseDuration(strings.TrimSpace(runKV(t, "", append(b, "ttl", "binance:s:BTC")...).stdout)); d > time.Hour || d < 59*time.Minute {
		t.Errorf("copied TTL = %v; want about 1h", d)
	}
	runKV(t, "", append(b, "ttl", "binance:s:ETH")...).want(t, 0, "-1\n")
	runKV(t, "", append(g, "copy", "--to", file, "--to-ns", "frozen", "--no-ttl")...).want(t, 0, "")
	runKV(t, "", "--url", file, "--ns", "frozen", "ttl", "binance:s:BTC").want(t, 0, "-1\n")
}

func TestMemAndDemoAndBench(t *testing.T) {
	runKV(t, "", "--url", "mem://", "--ns", "a", "set", "k", "v").want(t, 0, "")
	runKV(t, "", "--url", "mem://", "--ns", "a", "size").want(t, 0, "0\n") // a new process, a new store
	r := runKV(t, "", "demo")
	r.want(t, 0, "*")
	for _, want := range []string{"GetOrLoad", "database queries: 1", "size 1 (the daily candle", "copied 3 keys", "schedule_cache 1 keys"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	r = runKV(t, "", "--url", "mem://", "bench", "--n", "300")
	r.want(t, 0, "*")
	for _, want := range []string{"Set", "Get", "SetMany(100)", "GetMany(100)", "Iterate(300 keys)", "p99"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bench output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runKV(t, "", "--url", "mem://", "bench", "--n", "200", "--json")
	if n := strings.Count(r.stdout, `"ops_per_sec"`); n != 5 {
		t.Errorf("bench --json printed %d results; want 5", n)
	}
}

// TestProgressBarOnTerminal runs export with its stderr on a pseudo-terminal:
// a progress bar with count, percentage and rate appears there, and nowhere
// when stderr is not a terminal.
func TestProgressBarOnTerminal(t *testing.T) {
	url := "bolt://" + filepath.Join(t.TempDir(), "kv.db")
	var lines strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&lines, `{"key":"k%d","value":"v","ttl_ms":-1}`+"\n", i)
	}
	runKV(t, lines.String(), "--url", url, "--ns", "p", "import").want(t, 0, "")
	if r := runKV(t, "", "--url", url, "--ns", "p", "export", filepath.Join(t.TempDir(), "quiet.jsonl")); strings.Contains(r.stderr, "\r") {
		t.Errorf("a progress bar was drawn on a pipe: %q", r.stderr)
	}

	cmd := exec.Command(bin, "--url", url, "--ns", "p", "export", filepath.Join(t.TempDir(), "out.jsonl"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	defer f.Close()
	out, _ := io.ReadAll(f) // ends with EIO when the child exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("export on a terminal: %v\n%s", err, out)
	}
	for _, want := range []string{"\r", "export 3000/3000 (100%)", "/s"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("terminal output %q lacks %q", out, want)
		}
	}
}

// waitFor reads the terminal f until its output holds want, and returns the
// output read.
func waitFor(t *testing.T, f *os.File, want string) string {
	t.Helper()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), want) {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("the terminal closed before showing %q: %v; output %q", want, err, out.String())
		}
	}
	return out.String()
}

// TestInterrupt sends Ctrl-C (SIGINT) to long commands once their progress
// bar shows they are under way: they stop through their context, say how far
// they got, exit 130, and leave nothing half-written.
func TestInterrupt(t *testing.T) {
	t.Run("bench", func(t *testing.T) {
		cmd := exec.Command(bin, "--url", "mem://", "bench", "--n", "5000000")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		f, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		waitFor(t, f, "bench ")
		_ = cmd.Process.Signal(syscall.SIGINT)
		out, _ := io.ReadAll(f)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Fatalf("bench after SIGINT: %v, output %q; want exit 130", err, out)
		}
		if !bytes.Contains(out, []byte("interrupted after")) {
			t.Errorf("output %q does not say how far it got", out)
		}
	})
	t.Run("import", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kv.db")
		cmd := exec.Command(bin, "--url", "bolt://"+path, "--ns", "imp", "import")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		// stdout and stderr on a terminal, the controlling one; stdin a pipe.
		f, err := pty.StartWithAttrs(cmd, nil, &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := range 10 {
			fmt.Fprintf(stdin, `{"key":"k%d","value":"value-%d","ttl_ms":-1}`+"\n", i, i)
		}
		// The input stalls with stdin open: the 10 keys are written and the
		// progress bar shows them.
		waitFor(t, f, "import 10")
		_ = cmd.Process.Signal(syscall.SIGINT)
		out, _ := io.ReadAll(f)
		err = cmd.Wait()
		stdin.Close()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Fatalf("import after SIGINT: %v, output %q; want exit 130", err, out)
		}
		if !bytes.Contains(out, []byte("interrupted after 10 keys imported")) {
			t.Errorf("output %q; want it to report the 10 keys imported", out)
		}
		r := runKV(t, "", "--url", "bolt://"+path, "--ns", "imp", "ls")
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			k, v, _ := strings.Cut(line, "\t")
			if v != "value-"+strings.TrimPrefix(k, "k") {
				t.Errorf("key %q holds %q after the interrupt", k, v)
			}
			n++
		}
		if n != 10 {
			t.Errorf("%d keys after the interrupted import; want the 10 sent", n)
		}
	})
}
