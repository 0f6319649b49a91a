package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvmap/kv"
)

// fleetEnv is the environment variable that makes the test binary, run
// again by a fleet case, play one process of the fleet.
const fleetEnv = "KV_CONFORMANCE_FLEET"

// fleetChild is what one process of a fleet does, passed as JSON in
// fleetEnv.
type fleetChild struct {
	NS         string // the namespace, the parent's
	Dir        string // where the processes leave their marks
	Index      int    // this process
	Peers      []int  // the processes whose refused leases a load waits for
	Goroutines int    // concurrent GetOrLoad calls of key "id"
	LeaseMS    int64  // WithLoadLease
	Hold       bool   // the load never returns (the process is killed)
}

// The marks a fleet process leaves in fleetChild.Dir.
const (
	markLoads   = "loads"      // one line per call of load: the process index
	markLoading = "loading-%d" // a load of the process started
	markWaiting = "waiting-%d" // the process found the lease taken
	markResult  = "result-%d"  // one line per GetOrLoad, then "finished <unix ns>"
)

var (
	fleetLoadOnce = testCase{
		name: "FleetLoadOnce",
		rule: "with WithLoadLease, 64 concurrent misses of one key across 4 processes make one load, and every caller gets its value",
		skip: needShared,
		run: func(t T, e *env) {
			if fleetChildRun(t, e) {
				return
			}
			f := newFleet(t, e)
			const procs = 4
			var children []*exec.Cmd
			for i := range procs {
				children = append(children, f.start(fleetChild{Index: i, Peers: others(procs, i), Goroutines: 16, LeaseMS: 60_000}))
			}
			for i, c := range children {
				f.wait(c, i)
			}
			loads := f.loads()
			if len(loads) != 1 {
				t.Fatalf("load called %d times across %d processes (by %q); want 1", len(loads), procs, loads)
			}
			want := "from-" + loads[0]
			for i := range procs {
				values, _ := f.result(i)
				if len(values) != 16 {
					t.Errorf("process %d: %d results; want 16", i, len(values))
				}
				for _, v := range values {
					if v != want {
						t.Errorf("process %d: GetOrLoad = %q; want %q", i, v, want)
					}
				}
			}
		},
	}

	fleetHolderKilled = testCase{
		name: "FleetHolderKilled",
		rule: "with WithLoadLease, the processes waiting for a load whose process is killed (SIGKILL) load the key once, at most the lease time after the kill",
		skip: needShared,
		run: func(t T, e *env) {
			if fleetChildRun(t, e) {
				return
			}
			f := newFleet(t, e)
			const lease = time.Second
			holder := f.start(fleetChild{Index: 0, Goroutines: 1, LeaseMS: lease.Milliseconds(), Hold: true})
			f.awaitMark(fmt.Sprintf(markLoading, 0))
			var waiters []*exec.Cmd
			for i := 1; i <= 3; i++ {
				waiters = append(waiters, f.start(fleetChild{Index: i, Peers: others(4, i)[1:], Goroutines: 4, LeaseMS: lease.Milliseconds()}))
			}
			for i := 1; i <= 3; i++ {
				f.awaitMark(fmt.Sprintf(markWaiting, i))
			}
			killed := time.Now()
			if err := holder.Process.Kill(); err != nil {
				t.Fatalf("kill the lease holder: %v", err)
			}
			if err := holder.Wait(); err == nil {
				t.Errorf("the killed holder exited cleanly")
			}
			for i, c := range waiters {
				f.wait(c, i+1)
			}
			loads := f.loads()
			if len(loads) != 2 || loads[0] != "0" {
				t.Fatalf("loads by process %q; want the killed holder's, then one other", loads)
			}
			want := "from-" + loads[1]
			// The bound allows for the lease time, the polling and the
			// scheduling of four processes on a loaded machine.
			const slack = 4 * time.Second
			for i := 1; i <= 3; i++ {
				values, finished := f.result(i)
				for _, v := range values {
					if v != want {
						t.Errorf("process %d: GetOrLoad = %q; want %q", i, v, want)
					}
				}
				if d := finished.Sub(killed); d > lease+slack {
					t.Errorf("process %d got the value %v after the kill; want at most the lease (%v) plus %v", i, d, lease, slack)
				}
			}
		},
	}
)

// needShared skips the fleet cases unless other processes reach the store.
func needShared(h Harness) string {
	if !h.Shared {
		return "Harness.Shared is false: other processes do not reach the store"
	}
	return ""
}

func others(n, i int) []int {
	var out []int
	for j := range n {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

// fleet runs processes of one fleet case: the test binary again, running
// only the case, as a child.
type fleet struct {
	t   *testing.T
	e   *env
	ns  string
	dir string
	run string // the -test.run pattern of the case
	out map[*exec.Cmd]*bytes.Buffer
}

func newFleet(t T, e *env) *fleet {
	tt, ok := t.(*testing.T)
	if !ok {
		t.Skipf("the fleet cases run processes, under go test only")
	}
	needLeases(t, e)
	var parts []string
	for _, p := range strings.Split(tt.Name(), "/") {
		parts = append(parts, "^"+regexp.QuoteMeta(p)+"$")
	}
	f := &fleet{t: tt, e: e, ns: e.ns("fleet"), dir: tt.TempDir(), run: strings.Join(parts, "/"), out: map[*exec.Cmd]*bytes.Buffer{}}
	newMap[string](t, e, f.ns) // clears the namespace when the case ends
	return f
}

// start starts one process.
func (f *fleet) start(c fleetChild) *exec.Cmd {
	f.t.Helper()
	c.NS, c.Dir = f.ns, f.dir
	cfg, err := json.Marshal(c)
	if err != nil {
		f.t.Fatalf("fleet config: %v", err)
	}
	cmd := exec.CommandContext(f.t.Context(), os.Args[0], "-test.run="+f.run, "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), fleetEnv+"="+string(cfg))
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("start fleet process %d: %v", c.Index, err)
	}
	f.t.Cleanup(func() {
		if cmd.ProcessState == nil { // the case failed before waiting for it
			if err := cmd.Process.Kill(); err == nil {
				f.t.Logf("fleet process %d killed: %v", c.Index, cmd.Wait())
			}
		}
	})
	f.out[cmd] = out
	return cmd
}

// wait waits for process i to end, and fails the case unless it passed.
func (f *fleet) wait(cmd *exec.Cmd, i int) {
	f.t.Helper()
	if err := cmd.Wait(); err != nil {
		f.t.Fatalf("fleet process %d: %v\n%s", i, err, f.out[cmd])
	}
}

// awaitMark waits for a mark to appear, up to a deadline.
func (f *fleet) awaitMark(name string) {
	f.t.Helper()
	if err := awaitFile(f.t.Context(), filepath.Join(f.dir, name)); err != nil {
		f.t.Fatalf("waiting for %s: %v", name, err)
	}
}

// loads returns the processes that called load, in order.
func (f *fleet) loads() []string {
	data, err := os.ReadFile(filepath.Join(f.dir, markLoads))
	if err != nil {
		f.t.Fatalf("read loads: %v", err)
	}
	return strings.Fields(string(data))
}

// result returns what the GetOrLoad calls of process i returned, and when
// the last ended.
func (f *fleet) result(i int) ([]string, time.Time) {
	data, err := os.ReadFile(filepath.Join(f.dir, fmt.Sprintf(markResult, i)))
	if err != nil {
		f.t.Fatalf("result of process %d: %v", i, err)
	}
	var values []string
	var finished time.Time
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if ns, ok := strings.CutPrefix(line, "finished "); ok {
			n, err := strconv.ParseInt(ns, 10, 64)
			if err != nil {
				f.t.Fatalf("result of process %d: %q", i, line)
			}
			finished = time.Unix(0, n)
			continue
		}
		values = append(values, line)
	}
	return values, finished
}

// fleetChildRun plays the process of the fleet that fleetEnv describes, and
// reports whether it did (false in the parent).
func fleetChildRun(t T, e *env) bool {
	raw := os.Getenv(fleetEnv)
	if raw == "" {
		return false
	}
	var c fleetChild
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatalf("%s: %v", fleetEnv, err)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	mark := func(name string) {
		if err := os.WriteFile(filepath.Join(c.Dir, name), nil, 0o600); err != nil {
			t.Errorf("mark %s: %v", name, err)
		}
	}
	w := watchLeases(e.b)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-w.refused:
			mark(fmt.Sprintf(markWaiting, c.Index))
		case <-ctx.Done():
		}
	}()
	m, err := kv.New[string](w, c.NS, e.opts(kv.WithLoadLease(time.Duration(c.LeaseMS)*time.Millisecond))...)
	if err != nil {
		t.Fatalf("kv.New: %v", err)
	}
	load := func(ctx context.Context) (string, error) {
		if err := appendLine(filepath.Join(c.Dir, markLoads), strconv.Itoa(c.Index)); err != nil {
			return "", err
		}
		if c.Hold {
			mark(fmt.Sprintf(markLoading, c.Index))
			<-time.After(2 * time.Minute) // the parent kills the process first
		}
		// Return once every peer has found the lease taken: without the
		// lease each of them would be loading too.
		for _, p := range c.Peers {
			if err := awaitFile(ctx, filepath.Join(c.Dir, fmt.Sprintf(markWaiting, p))); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("from-%d", c.Index), nil
	}
	results := make([]string, c.Goroutines)
	var wg sync.WaitGroup
	for i := range c.Goroutines {
		wg.Go(func() {
			v, err := m.GetOrLoad(ctx, "id", load)
			if err != nil {
				t.Errorf("GetOrLoad: %v", err)
			}
			results[i] = v
		})
	}
	wg.Wait()
	finished := time.Now()
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	slices.Sort(results)
	out := strings.Join(results, "\n") + "\nfinished " + strconv.FormatInt(finished.UnixNano(), 10) + "\n"
	if err := os.WriteFile(filepath.Join(c.Dir, fmt.Sprintf(markResult, c.Index)), []byte(out), 0o600); err != nil {
		t.Errorf("write result: %v", err)
	}
	stop()
	<-watched
	return true
}

// appendLine appends one line to a file, in one write: processes append to
// the same file.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// awaitFile waits for a file to exist, polling, up to 30 s or ctx.
func awaitFile(ctx context.Context, path string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within 30s", filepath.Base(path))
		}
		// Polling interval, not a timed assertion: the deadline bounds it.
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
