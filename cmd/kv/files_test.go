package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/clock"
)

// backtestFile writes n keys at simulated 2021-01-01 with the default
// 5-minute TTL into namespace bt of a new bolt file, as a backtest does.
func backtestFile(t *testing.T, n int) (string, time.Time) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backtest.db")
	at := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := bolt.Open(path, bolt.WithSimulatedClock(clock.NewManual(at)), bolt.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	m, err := kv.New[string](b, "bt")
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]kv.Entry[string], n)
	for i := range entries {
		entries[i] = kv.Entry[string]{Key: fmt.Sprintf("k%04d", i), Value: "v"}
	}
	if err := m.SetMany(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return path, at
}

// simSize opens the file under the simulated clock and returns the size of
// namespace bt.
func simSize(t *testing.T, path string, at time.Time) int {
	t.Helper()
	b, err := bolt.Open(path, bolt.WithSimulatedClock(clock.NewManual(at)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m, err := kv.New[string](b, "bt")
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestInspectingKeepsBacktest: `kv namespaces` on a backtest file used to
// print nothing, exit 0, and delete every key (the wall clock's sweep at
// open). Reads now open the file read-only, as of its own clock's latest
// time, and say so; writes by the wall clock are refused unless asked for.
func TestInspectingKeepsBacktest(t *testing.T) {
	path, at := backtestFile(t, 100)
	url := "bolt://" + path
	r := runKV(t, "", "--url", url, "namespaces")
	r.want(t, 0, "bt\t100\n")
	if !strings.Contains(r.stderr, "simulated clock") {
		t.Errorf("stderr %q does not say the file is read as of its simulated clock", r.stderr)
	}
	runKV(t, "", "--url", url, "--ns", "bt", "size").want(t, 0, "100\n")
	runKV(t, "", "--url", url, "--ns", "bt", "size", "--at", "file").want(t, 0, "100\n")
	runKV(t, "", "--url", url, "--ns", "bt", "size", "--at", "2021-01-01T00:04:00Z").want(t, 0, "100\n")
	runKV(t, "", "--url", url, "--ns", "bt", "size", "--at", "2021-01-01T00:06:00Z").want(t, 0, "0\n")
	runKV(t, "", "--url", url, "--ns", "bt", "get", "k0001").want(t, 0, "v")
	runKV(t, "", "--url", url, "--ns", "bt", "export").want(t, 0, "*")
	if n := simSize(t, path, at); n != 100 {
		t.Fatalf("after the inspections Size under the simulated clock = %d; want 100", n)
	}
	r = runKV(t, "", "--url", url, "--ns", "bt", "set", "x", "y")
	if r.code != 1 || !strings.Contains(r.stderr, "simulated clock") {
		t.Errorf("set with the wall clock: exit %d, stderr %q; want 1 and the clock named", r.code, r.stderr)
	}
	runKV(t, "", "--url", url, "--ns", "bt", "--clock-override", "set", "x", "y").want(t, 0, "")
	if n := simSize(t, path, at); n != 101 {
		t.Errorf("after an override write Size under the simulated clock = %d; want 101 (nothing swept)", n)
	}
}

// TestReadCommandsWriteNothing: read commands used to create the file they
// were pointed at (./kv.db, or a typo's name) and answer "not found".
func TestReadCommandsWriteNothing(t *testing.T) {
	dir := t.TempDir()
	cmd := func(args ...string) result {
		t.Helper()
		c := exec.Command(bin, args...)
		c.Dir = dir
		c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		r := result{stdout: out.String(), stderr: errb.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
		return r
	}
	for _, args := range [][]string{
		{"namespaces"},
		{"--url", "bolt://./typo.db", "--ns", "a", "get", "k"},
		{"--url", "bolt://./typo.db", "--ns", "a", "size"},
		{"--url", "bolt://./typo.db", "--ns", "a", "keys"},
		{"--url", "bolt://./typo.db", "--ns", "a", "export"},
		{"--url", "bolt://./typo.db", "check"},
	} {
		r := cmd(args...)
		if r.code != 1 || !strings.Contains(r.stderr, "no such file") {
			t.Errorf("kv %q: exit %d, stderr %q; want 1 and the missing file named", args, r.code, r.stderr)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("read commands created %v", entries)
	}
	// A read-only file can be read.
	path := filepath.Join(dir, "ro.db")
	runKV(t, "", "--url", "bolt://"+path, "--ns", "a", "set", "k", "v").want(t, 0, "")
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	runKV(t, "", "--url", "bolt://"+path, "--ns", "a", "get", "k").want(t, 0, "v")
	runKV(t, "", "--url", "bolt://"+path, "check").want(t, 0, "ok\n")
}

// TestCopyBetweenNamespacesOfOneFile: copy within one bolt file opens it
// once, for writing; a copy onto itself is refused.
func TestCopyBetweenNamespacesOfOneFile(t *testing.T) {
	url := "bolt://" + filepath.Join(t.TempDir(), "kv.db")
	runKV(t, "", "--url", url, "--ns", "a", "set", "k", "v").want(t, 0, "")
	runKV(t, "", "--url", url, "--ns", "a", "copy", "--to", url, "--to-ns", "b").want(t, 0, "")
	runKV(t, "", "--url", url, "--ns", "b", "get", "k").want(t, 0, "v")
	runKV(t, "", "--url", url, "--ns", "a", "copy", "--to", url).want(t, 2, "")
}

// damagedCopies returns copies of a ~1 MiB, 3,000-key bolt file: truncated
// at every step-th 4 KiB boundary, and flips copies with 8 bytes flipped at
// seeded random places.
func damagedCopies(t *testing.T, step, flips int) map[string][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	b, err := bolt.Open(path, bolt.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	m, err := kv.New[string](b, "ns", kv.WithTTL(kv.NoTTL))
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]kv.Entry[string], 3000)
	for i := range entries {
		entries[i] = kv.Entry[string]{Key: fmt.Sprintf("key-%05d", i), Value: strings.Repeat("v", 300)}
	}
	if err := m.SetMany(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for size := 4096; size < len(data); size += step * 4096 {
		out[fmt.Sprintf("cut%d", size)] = data[:size]
	}
	seed := uint64(20261128)
	if s, err := strconv.ParseUint(os.Getenv("KV_DAMAGE_SEED"), 10, 64); err == nil {
		seed = s // other flips, to look for more
	}
	rnd := rand.New(rand.NewPCG(seed, 1))
	for i := range flips {
		c := append([]byte(nil), data...)
		for range 8 {
			c[rnd.IntN(len(c))] ^= byte(1 + rnd.IntN(255))
		}
		out[fmt.Sprintf("flip%d", i)] = c
	}
	return out
}

// TestDamagedFileNeverCrashes drives the built binary over damaged copies
// of a file: every run ends with data or an error, never a crash (a Go
// panic, a fatal fault, a signal) or a hang. Truncated files used to kill
// the process with SIGSEGV in bbolt's freelist load, or panic.
func TestDamagedFileNeverCrashes(t *testing.T) {
	// A sample by default; every 4 KiB boundary and 50 copies with 8 flips
	// each (400 places) under KV_DAMAGE_FULL=1, as .ci/run sets it.
	step, flips := 16, 8
	if os.Getenv("KV_DAMAGE_FULL") == "1" {
		step, flips = 1, 50
	}
	dir := t.TempDir()
	crashes, checkFound := 0, 0
	for name, data := range damagedCopies(t, step, flips) {
		path := filepath.Join(dir, name+".db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		url := "bolt://" + path
		for _, args := range [][]string{
			{"--url", url, "--ns", "ns", "ls"},
			{"--url", url, "--ns", "ns", "size"},
			{"--url", url, "check"},
			{"--url", url, "--ns", "ns", "clear", "--yes"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c := exec.CommandContext(ctx, bin, args...)
			c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
			var out, errb bytes.Buffer
			c.Stdout, c.Stderr = &out, &errb
			err := c.Run()
			cancel()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode() // -1 when killed by a signal
			} else if err != nil {
				t.Fatalf("run: %v", err)
			}
			stderr := errb.String()
			if args[len(args)-1] == "check" && code == 1 {
				checkFound++
			}
			if code < 0 || code > 1 || strings.Contains(stderr, "panic") || strings.Contains(stderr, "fatal error") || strings.Contains(stderr, "goroutine ") {
				crashes++
				if crashes <= 5 {
					t.Errorf("%s: kv %s: exit %d (%v), stderr:\n%.2000s", name, args[len(args)-1], code, err, stderr)
				}
			}
			if code == 1 && args[len(args)-1] != "check" && !strings.Contains(stderr, "corrupt") && !strings.Contains(stderr, "not found") {
				t.Logf("%s: kv %s: exit 1 without ErrCorrupt: %s", name, args[len(args)-1], stderr)
			}
		}
	}
	if crashes > 0 {
		t.Errorf("%d runs crashed; want 0", crashes)
	}
	if checkFound == 0 {
		t.Errorf("kv check found no damaged copy damaged")
	}
}

// TestTTLRangeInTheCommand: --ttl and expire above kv.MaxTTL are usage
// errors and write nothing; import caps a ttl_ms above it and says so. The
// import's millisecond arithmetic used to wrap a huge ttl_ms negative.
func TestTTLRangeInTheCommand(t *testing.T) {
	url := "bolt://" + filepath.Join(t.TempDir(), "kv.db")
	g := []string{"--url", url, "--ns", "ttl"}
	run := func(stdin string, args ...string) result {
		t.Helper()
		return runKV(t, stdin, append(append([]string(nil), g...), args...)...)
	}
	run("", "set", "--ttl", "1000000h", "k", "v").want(t, 2, "")
	run("", "get", "k").want(t, 1, "")
	run("", "set", "k", "v").want(t, 0, "")
	run("", "expire", "k", "1000000h").want(t, 2, "")
	huge := `{"key":"big","value":"v","ttl_ms":9223372036854775807}` + "\n" + `{"key":"ok","value":"v","ttl_ms":60000}` + "\n"
	r := run(huge, "import")
	if r.code != 0 || !strings.Contains(r.stderr, "1 TTLs above the maximum") {
		t.Errorf("import of a huge ttl_ms: exit %d, stderr %q; want 0 and the capped TTL counted", r.code, r.stderr)
	}
	run("", "get", "big").want(t, 0, "v")
	r = run("", "ttl", "big")
	if d, err := time.ParseDuration(strings.TrimSpace(r.stdout)); err != nil || d < kv.MaxTTL-time.Hour {
		t.Errorf("ttl of the capped key = %q; want about MaxTTL", r.stdout)
	}
}

// TestTimeoutAgainstSilentServer: against a server that accepts connections
// and never answers, every command fails after --timeout instead of hanging
// (import used to hang 40 s while set failed after 5 s).
func TestTimeoutAgainstSilentServer(t *testing.T) {
	url := silentServer(t)
	for _, tc := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"set", "k", "v"}},
		{"", []string{"get", "k"}},
		{"", []string{"size"}},
		{`{"key":"a","value":"1"}` + "\n" + `{"key":"b","value":"2"}` + "\n", []string{"import"}},
		{"", []string{"export"}},
		{"", []string{"clear", "--yes"}},
	} {
		start := time.Now()
		r := runKV(t, tc.stdin, append([]string{"--url", url, "--ns", "a", "--timeout", "300ms"}, tc.args...)...)
		took := time.Since(start)
		if r.code != 1 || !strings.Contains(r.stderr, "deadline") {
			t.Errorf("kv %s: exit %d, stderr %q; want 1 and the deadline named", tc.args[0], r.code, r.stderr)
		}
		if tc.args[0] == "import" && !strings.Contains(r.stderr, "0 keys written") {
			t.Errorf("a failed import said %q; want how many keys were written", r.stderr)
		}
		if took > 15*time.Second { // a hang, not a timing assertion
			t.Errorf("kv %s took %v against a silent server with --timeout 300ms", tc.args[0], took)
		}
	}
	runKV(t, "", "--url", url, "--ns", "a", "--timeout", "soon", "get", "k").want(t, 2, "")
}

// TestImportLines: import reads JSON lines with exact line numbers; a record
// without ttl_ms gets the --ttl in force (so ls --json output imports); a
// record without a key, a ttl_ms outside the range, or two values on one
// line stop the import after writing the lines before it, and say how many
// keys that was; --skip-bad skips and counts them; "-" is standard input.
func TestImportLines(t *testing.T) {
	url := "bolt://" + filepath.Join(t.TempDir(), "kv.db")
	run := func(stdin string, args ...string) result {
		t.Helper()
		return runKV(t, stdin, append([]string{"--url", url, "--ns", "imp"}, args...)...)
	}
	// ls --json output: no ttl_ms.
	run("", "set", "a", "1").want(t, 0, "")
	run("", "set", "b", "2").want(t, 0, "")
	listed := run("", "ls", "--json").stdout
	runKV(t, listed, "--url", url, "--ns", "copy", "import", "--ttl", "1h", "-").want(t, 0, "")
	if d, err := time.ParseDuration(strings.TrimSpace(runKV(t, "", "--url", url, "--ns", "copy", "ttl", "b").stdout)); err != nil || d < 59*time.Minute || d > time.Hour {
		t.Errorf("TTL of a record without ttl_ms imported with --ttl 1h = %v, %v; want 1h", d, err)
	}

	var lines strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&lines, `{"key":"k%d","value":"v","ttl_ms":-1}`+"\n", i)
	}
	good := lines.String()
	for _, tc := range []struct {
		bad, want string
	}{
		{`{"value":"1"}`, "line 5001: no key"},
		{`{"key":"x","ttl_ms":-5}`, "line 5001: ttl_ms -5"},
		{`{"key":"x","ttl_ms":0}`, "line 5001: ttl_ms 0"},
		{`{"key":"x"} {"key":"y"}`, "line 5001: more than one JSON value"},
		{`{"key":`, "line 5001: not a JSON record"},
	} {
		ns := fmt.Sprintf("bad%d", len(tc.bad))
		r := runKV(t, good+tc.bad+"\n"+`{"key":"after"}`+"\n", "--url", url, "--ns", ns, "import")
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "5000 keys written") {
			t.Errorf("import with %s at line 5001: exit %d, stderr %q; want 1, %q and 5000 keys written", tc.bad, r.code, r.stderr, tc.want)
		}
		runKV(t, "", "--url", url, "--ns", ns, "size").want(t, 0, "5000\n")
	}
	r := run("{\"key\":\"ok1\"}\n\n{\"nokey\":1}\n{\"key\":\"ok2\",\"ttl_ms\":-2}\n{\"key\":\"ok3\",\"ttl_ms\":60000}\n", "import", "--skip-bad")
	if r.code != 0 || !strings.Contains(r.stderr, "imported 2 keys, skipped 2 bad lines ([3 4])") {
		t.Errorf("import --skip-bad: exit %d, stderr %q; want 2 keys and lines 3 and 4 skipped", r.code, r.stderr)
	}
	// --ttl=-1 is the default for records without ttl_ms, not --no-ttl.
	run("{\"key\":\"timed\",\"ttl_ms\":60000}\n{\"key\":\"forever\"}\n", "import", "--ttl=-1").want(t, 0, "")
	if d, err := time.ParseDuration(strings.TrimSpace(run("", "ttl", "timed").stdout)); err != nil || d > time.Minute || d < 50*time.Second {
		t.Errorf("ttl_ms 60000 imported with --ttl=-1 = %v, %v; want about 1m", d, err)
	}
	run("", "ttl", "forever").want(t, 0, "-1\n")
	run("{\"key\":\"dropped\",\"ttl_ms\":60000}\n", "import", "--no-ttl").want(t, 0, "")
	run("", "ttl", "dropped").want(t, 0, "-1\n")
	r = run("{\"key\":\"one\"}\n", "import")
	if !strings.Contains(r.stderr, "imported 1 key\n") {
		t.Errorf("import of one record said %q; want \"imported 1 key\"", r.stderr)
	}
}

// TestExportAtomic: an export to a file that fails or is interrupted leaves
// no file, and says so; "-" is standard output.
func TestExportAtomic(t *testing.T) {
	dir := t.TempDir()
	url := "bolt://" + filepath.Join(dir, "kv.db")
	runKV(t, "", "--url", url, "--ns", "e", "set", "k", "v").want(t, 0, "")
	r := runKV(t, "", "--url", url, "--ns", "e", "export", "-")
	if r.code != 0 || !strings.Contains(r.stdout, `"key":"k"`) {
		t.Errorf("export -: exit %d, stdout %q; want the record on stdout", r.code, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "-")); err == nil {
		t.Errorf("export - created a file named -")
	}
	out := filepath.Join(dir, "out.jsonl")
	runKV(t, "", "--url", url, "--ns", "e", "export", out).want(t, 0, "")
	if data, err := os.ReadFile(out); err != nil || !strings.Contains(string(data), `"key":"k"`) {
		t.Errorf("export FILE wrote %q, %v", data, err)
	}

	// A source that never answers: the export fails after --timeout and
	// leaves neither the target nor a temporary file.
	silent := silentServer(t)
	failed := filepath.Join(dir, "failed.jsonl")
	r = runKV(t, "", "--url", silent, "--ns", "e", "--timeout", "200ms", "export", failed)
	if r.code != 1 || !strings.Contains(r.stderr, "no file written") {
		t.Errorf("failed export: exit %d, stderr %q; want 1 and \"no file written\"", r.code, r.stderr)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), "failed") {
			t.Errorf("a failed export left %s", e.Name())
		}
	}
}

// silentServer listens on a loopback port, accepts every connection and
// never answers: a stuck Redis. It returns its redis:// URL and stops when
// the test ends.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range held {
			c.Close()
		}
	})
	return "redis://" + ln.Addr().String()
}
