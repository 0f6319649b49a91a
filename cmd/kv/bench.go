package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/kvmap/kv"
)

// benchResult is the latency of one operation of the workload; with --json
// numbers are numbers: a whole rate, and durations in nanoseconds.
type benchResult struct {
	Op    string        `json:"op"`
	Ops   int           `json:"ops"`
	OpsPS int64         `json:"ops_per_sec"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
}

// bench runs a short workload in a namespace of its own, and removes it.
func (c *cmdCtx) bench(ctx context.Context) error {
	n := c.f.n // 1 to maxBenchN (dispatch)
	b, err := c.open(true)
	if err != nil {
		return err
	}
	defer b.Close()
	ns := "kvbench_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	m, err := kv.New[string](b, ns)
	if err != nil {
		return err
	}
	defer func() { _ = m.Clear(context.WithoutCancel(ctx)) }()

	batches := max(n/100, 1)
	passes := 3
	p := newProgress(c.stderr, c.terminal, "bench", int64(2*n+2*batches+passes))
	c.done = func() string { return fmt.Sprintf("%d operations", p.Count()) }
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("binance:strategy:SYM%06d/USDT:USDT", i)
	}
	value := "66f1c0ffee0123456789abcd"
	var results []benchResult
	measure := func(op string, count int, fn func(i int) error) error {
		lat := make([]time.Duration, 0, count)
		start := time.Now()
		for i := range count {
			if err := ctx.Err(); err != nil {
				return err
			}
			t := time.Now()
			if err := fn(i); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			lat = append(lat, time.Since(t))
			p.Add(1)
		}
		total := time.Since(start)
		slices.Sort(lat)
		results = append(results, benchResult{
			Op: op, Ops: count, OpsPS: int64(math.Round(float64(count) / total.Seconds())),
			P50: pct(lat, 50), P99: pct(lat, 99),
		})
		return nil
	}
	batch := func(i int) []string { return keys[i*100%n : min(i*100%n+100, n)] }
	steps := []struct {
		op    string
		count int
		fn    func(i int) error
	}{
		{"Set", n, func(i int) error { return m.Set(ctx, keys[i], value) }},
		{"Get", n, func(i int) error { _, _, err := m.Get(ctx, keys[i]); return err }},
		{"SetMany(100)", batches, func(i int) error {
			es := make([]kv.Entry[string], 0, 100)
			for _, k := range batch(i) {
				es = append(es, kv.Entry[string]{Key: k, Value: value})
			}
			return m.SetMany(ctx, es)
		}},
		{"GetMany(100)", batches, func(i int) error { _, err := m.GetMany(ctx, batch(i)); return err }},
		{fmt.Sprintf("Iterate(%d keys)", n), passes, func(int) error {
			for _, err := range m.Iterate(ctx) {
				if err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := measure(s.op, s.count, s.fn); err != nil {
			return err
		}
	}
	p.Done()
	if c.f.json {
		enc := json.NewEncoder(c.stdout)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Fprintf(c.stdout, "bench %s, namespace %s\n", redact(c.f.url), ns)
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tops\tops/s\tp50\tp99\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t\n", r.Op, r.Ops, r.OpsPS, r.P50, r.P99)
	}
	return tw.Flush()
}

// pct returns the p-th percentile of sorted latencies.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)].Round(time.Microsecond / 10)
}
