// Command peers runs kv and its peers (rueidis, raw go-redis) on the same
// Redis in one process, interleaved run by run, and prints the per-run
// numbers and a markdown table of medians with kv's ratio to the best peer;
// it also measures the time and Go heap of Size, Iterate and Clear over a
// namespace of a million keys on Redis, bbolt and memory. See README.md.
//
// It lives in a module of its own so that the library's go.mod gains no
// dependency on rueidis.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"
)

// result is one measurement of one peer in one run.
type result struct {
	row, peer, metric string
	value             float64
}

// bench holds the flags and the results of a whole invocation.
type bench struct {
	addr, memAddr string
	dur           time.Duration
	trials        int
	memKeys       int
	memStores     []string
	dir           string
	extWriter     string // command line of a writer process for the inval row ("": in-process)
	results       []result
	notes         map[string][]string // row/peer -> per-run notes (hit rates)
}

func (b *bench) add(row, peer, metric string, v float64) {
	b.results = append(b.results, result{row, peer, metric, v})
}

func (b *bench) note(row, peer, s string) {
	b.notes[row+"|"+peer] = append(b.notes[row+"|"+peer], s)
}

// rowOrder is every row, in the order they run and print.
var rowOrder = []string{"cached", "get50", "set50", "mixed50", "inval", "mem"}

func main() {
	b := &bench{notes: map[string][]string{}}
	rows := flag.String("rows", strings.Join(rowOrder, ","), "rows to run, comma-separated: "+strings.Join(rowOrder, ","))
	runs := flag.Int("runs", 3, "interleaved runs")
	flag.StringVar(&b.addr, "addr", "127.0.0.1:6390", "Redis for the Go rows (hot keys under a fresh prefix)")
	flag.StringVar(&b.memAddr, "memaddr", "", "Redis for the million-key rows (default -addr; use a private server)")
	flag.DurationVar(&b.dur, "dur", time.Second, "measured time per peer per throughput row and run (plus a fifth of it to warm up)")
	flag.IntVar(&b.trials, "trials", 300, "invalidation trials per peer and run")
	flag.IntVar(&b.memKeys, "memkeys", 1_000_000, "keys of the namespace of the memory rows")
	mem := flag.String("mem", "redis,bolt,memory", "stores of the memory rows")
	flag.StringVar(&b.dir, "dir", "", "directory of the bbolt file (default a temporary directory)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole invocation to this file")
	flag.StringVar(&b.extWriter, "extwriter", "", "inval row: SET through a separate process, run as 'taskset -c <this> <self> -writeproc' (e.g. 1); empty: in-process go-redis client")
	writeProc := flag.Bool("writeproc", false, "internal: be the writer process of -extwriter (reads 'key value' lines on stdin)")
	tracefile := flag.String("trace", "", "write a runtime trace of the whole invocation to this file")
	flag.Parse()
	if *tracefile != "" {
		f, err := os.Create(*tracefile)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "peers: %v\n", err)
			os.Exit(1)
		}
		defer trace.Stop()
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "peers: %v\n", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *writeProc {
		writerProcess(b.addr)
		return
	}
	if b.memAddr == "" {
		b.memAddr = b.addr
	}
	b.memStores = strings.Split(*mem, ",")
	want := strings.Split(*rows, ",")
	for _, r := range want {
		if !slices.Contains(rowOrder, r) {
			fmt.Fprintf(os.Stderr, "peers: unknown row %q (rows: %s)\n", r, strings.Join(rowOrder, ","))
			os.Exit(2)
		}
	}
	aff := runtime.NumCPU()
	fmt.Printf("GOMAXPROCS=%d, CPUs in affinity mask=%d, %s, addr=%s, dur=%v, trials=%d, memkeys=%d\n",
		runtime.GOMAXPROCS(0), aff, runtime.Version(), b.addr, b.dur, b.trials, b.memKeys)
	ctx := context.Background()
	for run := range *runs {
		fmt.Printf("\n== run %d of %d (%s)\n", run+1, *runs, time.Now().Format(time.TimeOnly))
		for _, r := range rowOrder {
			if !slices.Contains(want, r) {
				continue
			}
			var err error
			if r == "mem" {
				err = b.memRows(ctx, run)
			} else {
				err = b.redisRow(ctx, r, run)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "peers: run %d, row %s: %v\n", run+1, r, err)
				pprof.StopCPUProfile()
				os.Exit(1)
			}
		}
	}
	b.table()
}

// rotate returns peers rotated by run, so that no peer always runs first.
func rotate[T any](peers []T, run int) []T {
	k := run % len(peers)
	return append(slices.Clone(peers[k:]), peers[:k]...)
}

// uniq returns a fresh prefix for keys of this process.
func uniq(s string) string {
	var p [4]byte
	if _, err := rand.Read(p[:]); err != nil {
		panic(err)
	}
	return s + hex.EncodeToString(p[:])
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// rowTitle names each Go row in the table.
var rowTitle = map[string]string{
	"cached":  "Get, hot key cached locally, sequential",
	"get50":   "Get, 50 in flight",
	"set50":   "Set, 50 in flight",
	"mixed50": "80% Get / 20% Set, 50 in flight",
	"inval":   "invalidation: another client's SET until seen",
}

// table prints the medians: one line per row and metric, a column per
// peer, and each kv variant's ratio to the best non-kv peer (kv / best:
// below 1 is kv faster or smaller).
func (b *bench) table() {
	type key struct{ row, metric string }
	var keys []key
	peersOf := map[key][]string{}
	vals := map[key]map[string][]float64{}
	for _, r := range b.results {
		k := key{r.row, r.metric}
		if vals[k] == nil {
			keys = append(keys, k)
			vals[k] = map[string][]float64{}
		}
		if vals[k][r.peer] == nil {
			peersOf[k] = append(peersOf[k], r.peer)
		}
		vals[k][r.peer] = append(vals[k][r.peer], r.value)
	}
	fmt.Printf("\n## Medians\n\n| row | metric | peer: median (runs) | kv / best peer |\n|---|---|---|---|\n")
	for _, k := range keys {
		peers := slices.Clone(peersOf[k])
		slices.Sort(peers)
		var cells []string
		best, bestPeer := 0.0, ""
		for _, p := range peers {
			m := median(vals[k][p])
			raw := make([]string, len(vals[k][p]))
			for i, v := range vals[k][p] {
				raw[i] = fmtNum(v)
			}
			cells = append(cells, fmt.Sprintf("%s **%s** (%s)", p, fmtNum(m), strings.Join(raw, ", ")))
			if !strings.HasPrefix(p, "kv") && (bestPeer == "" || m < best) {
				best, bestPeer = m, p
			}
		}
		var ratios []string
		if bestPeer != "" {
			for _, p := range peers {
				if strings.HasPrefix(p, "kv") {
					ratios = append(ratios, fmt.Sprintf("%s/%s %.2f", p, bestPeer, median(vals[k][p])/best))
				}
			}
		}
		title := rowTitle[k.row]
		if title == "" {
			title = k.row
		}
		fmt.Printf("| %s | %s | %s | %s |\n", title, k.metric, strings.Join(cells, "; "), strings.Join(ratios, "; "))
	}
	if len(b.notes) > 0 {
		fmt.Printf("\nNotes per run:\n\n")
		nk := make([]string, 0, len(b.notes))
		for k := range b.notes {
			nk = append(nk, k)
		}
		slices.Sort(nk)
		for _, k := range nk {
			fmt.Printf("- %s: %s\n", strings.ReplaceAll(k, "|", " "), strings.Join(b.notes[k], "; "))
		}
	}
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
