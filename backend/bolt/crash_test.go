package bolt_test

import (
	"bufio"
	"context"
	"fmt"
	"github.com/kvmap/kv/internal/leaktest"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/bolt"
)

// TestMain runs the crash test's child when asked to: a process that writes
// in a loop and acknowledges each write on stdout once the call returned.
func TestMain(m *testing.M) {
	if path := os.Getenv("KV_BOLT_CRASH_CHILD"); path != "" {
		crashChild(path)
		return
	}
	leaktest.Main(m) // no goroutine may outlive the tests
}

func crashChild(path string) {
	ctx := context.Background()
	b, err := bolt.Open(path) // the defaults: every write synced
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	m, err := kv.New[string](b, "crash", kv.WithTTL(kv.NoTTL))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if i%2 == 0 {
			err = m.Set(ctx, "k"+strconv.Itoa(i), "vk"+strconv.Itoa(i))
		} else {
			batch := make([]kv.Entry[string], 10)
			for j := range batch {
				k := fmt.Sprintf("k%d.%d", i, j)
				batch[j] = kv.Entry[string]{Key: k, Value: "v" + k}
			}
			err = m.SetMany(ctx, batch)
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Fprintf(out, "ack %d\n", i)
		out.Flush()
	}
}

// TestCrashKeepsAcknowledgedWrites kills a writing child with SIGKILL at a
// random point; the file must then open without error, and every write the
// child acknowledged must read back. KV_BOLT_CRASH_RUNS sets the number of
// runs (3 by default; CI runs 20).
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	runs := 3
	if s := os.Getenv("KV_BOLT_CRASH_RUNS"); s != "" {
		runs, _ = strconv.Atoi(s)
	}
	for run := range runs {
		path := filepath.Join(t.TempDir(), "crash.db")
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "KV_BOLT_CRASH_CHILD="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := 5 + rand.IntN(150)
		acked := -1
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "error") {
				t.Fatalf("run %d: child: %s", run, line)
			}
			if n, ok := strings.CutPrefix(line, "ack "); ok {
				acked, _ = strconv.Atoi(n)
			}
			if acked >= killAt {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		_ = cmd.Wait()
		if acked < killAt {
			t.Fatalf("run %d: the child stopped after %d acknowledged writes", run, acked+1)
		}

		b, err := bolt.Open(path)
		if err != nil {
			t.Fatalf("run %d: open after SIGKILL: %v", run, err)
		}
		m := mustNew[string](t, b, "crash")
		var keys []string
		for i := 0; i <= acked; i++ {
			if i%2 == 0 {
				keys = append(keys, "k"+strconv.Itoa(i))
				continue
			}
			for j := range 10 {
				keys = append(keys, fmt.Sprintf("k%d.%d", i, j))
			}
		}
		got, err := m.GetMany(context.Background(), keys)
		if err != nil {
			t.Fatalf("run %d: GetMany: %v", run, err)
		}
		for _, k := range keys {
			if got[k] != "v"+k {
				t.Errorf("run %d: acknowledged write %q reads back %q; want %q", run, k, got[k], "v"+k)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
