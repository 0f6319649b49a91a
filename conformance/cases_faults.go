package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kvmap/kv"
)

// deadlineSlack is how long past its context's deadline a call may return
// under a stalled store: the contract says 100 ms; the suite allows ten
// times that, for a loaded CI machine under -race.
const deadlineSlack = time.Second

// writeCalls are the Map's writes, each on a key of its own.
func writeCalls(m *kv.Map[string]) map[string]func(ctx context.Context) error {
	return map[string]func(ctx context.Context) error{
		"Set":        func(ctx context.Context) error { return m.Set(ctx, "w-set", "v") },
		"SetWithTTL": func(ctx context.Context) error { return m.SetWithTTL(ctx, "w-ttl", "v", time.Hour) },
		"SetMany": func(ctx context.Context) error {
			return m.SetMany(ctx, []kv.Entry[string]{{Key: "w-m1", Value: "v"}, {Key: "w-m2", Value: "v"}, {Key: "w-m3", Value: "v"}})
		},
		"GetOrLoad": func(ctx context.Context) error {
			_, err := m.GetOrLoad(ctx, "w-load", func(context.Context) (string, error) { return "v", nil })
			return err
		},
		"Delete":      func(ctx context.Context) error { return m.Delete(ctx, "keep") },
		"DeleteMany":  func(ctx context.Context) error { return m.DeleteMany(ctx, []string{"keep", "keep2"}) },
		"Expire":      func(ctx context.Context) error { _, err := m.Expire(ctx, "keep", time.Millisecond); return err },
		"ExpireNoTTL": func(ctx context.Context) error { _, err := m.Expire(ctx, "keep", kv.NoTTL); return err },
		"Clear":       func(ctx context.Context) error { return m.Clear(ctx) },
	}
}

// readCalls are the Map's reads, each run to its end.
func readCalls(m *kv.Map[string]) map[string]func(ctx context.Context) error {
	return map[string]func(ctx context.Context) error{
		"Get":     func(ctx context.Context) error { _, _, err := m.Get(ctx, "keep"); return err },
		"Has":     func(ctx context.Context) error { _, err := m.Has(ctx, "keep"); return err },
		"TTL":     func(ctx context.Context) error { _, _, err := m.TTL(ctx, "keep"); return err },
		"GetMany": func(ctx context.Context) error { _, err := m.GetMany(ctx, []string{"keep", "keep2"}); return err },
		"Size":    func(ctx context.Context) error { _, err := m.Size(ctx); return err },
		"ToArray": func(ctx context.Context) error { _, err := m.ToArray(ctx); return err },
		"Iterate": func(ctx context.Context) error { return drain(m.Iterate(ctx)) },
		"Keys":    func(ctx context.Context) error { return drain(m.Keys(ctx)) },
		"Values":  func(ctx context.Context) error { return drain(m.Values(ctx)) },
	}
}

// drain runs a pass to its end and returns the first error it yields.
func drain[X any](seq func(func(X, error) bool)) error {
	var first error
	for _, err := range seq {
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// faultMap returns a Map on the case's faulty store holding "keep" and
// "keep2", written while the store is healthy.
func faultMap(t T, e *env) *kv.Map[string] {
	t.Helper()
	m := newMap[string](t, e, e.ns("fault"), kv.WithPageSize(5))
	t.Cleanup(e.faults.Heal) // the namespace is cleared after the case
	mustSetTTL(t, m, "keep", "v", kv.NoTTL)
	mustSetTTL(t, m, "keep2", "v", kv.NoTTL)
	return m
}

// wantWorks checks that m works again after a fault healed.
func wantWorks(t T, m *kv.Map[string], when string) {
	t.Helper()
	ctx := t.Context()
	if err := m.Set(ctx, "after", "ok"); err != nil {
		t.Errorf("%s: Set = %v; want the same Map to work again", when, err)
		return
	}
	if v, ok, err := m.Get(ctx, "after"); err != nil || !ok || v != "ok" {
		t.Errorf("%s: Get = %q, %v, %v; want ok", when, v, ok, err)
	}
	if _, err := m.Size(ctx); err != nil {
		t.Errorf("%s: Size = %v", when, err)
	}
	if err := drain(m.Iterate(ctx)); err != nil {
		t.Errorf("%s: Iterate = %v", when, err)
	}
}

var faultCases = []testCase{
	{
		name:   "FaultWriteFails",
		rule:   "while the store fails every call, every write returns an error, and after the fault clears nothing it refused is there and the same Map works",
		faults: true,
		run: func(t T, e *env) {
			m := faultMap(t, e)
			e.faults.Fail()
			for name, call := range writeCalls(m) {
				if err := call(t.Context()); err == nil {
					t.Errorf("%s under a failing store = nil; want an error", name)
				}
			}
			for name, call := range readCalls(m) {
				if err := call(t.Context()); err == nil {
					t.Errorf("%s under a failing store = nil; want an error, not an empty answer", name)
				}
			}
			e.faults.Heal()
			wantGet(t, m, "keep", "v")
			wantGet(t, m, "keep2", "v")
			for _, k := range []string{"w-set", "w-ttl", "w-m1", "w-m2", "w-m3", "w-load"} {
				wantMissing(t, m, k)
			}
			if d, ok, err := m.TTL(t.Context(), "keep"); err != nil || !ok || d != kv.NoTTL {
				t.Errorf("TTL(keep) after refused Expires = %v, %v, %v; want NoTTL", d, ok, err)
			}
			wantWorks(t, m, "after Fail")
		},
	},
	{
		name:   "FaultAcknowledgedWritesPersist",
		rule:   "while calls fail at random (replies lost after the write included), every write that returned nil, and every key a *BatchError lists as written, is read back with its value once the fault clears",
		faults: true,
		run: func(t T, e *env) {
			m := faultMap(t, e)
			ctx := t.Context()
			e.faults.Flaky()
			acked := map[string]string{}
			failures := 0
			for i := range 60 {
				k, v := fmt.Sprintf("f%03d", i), fmt.Sprintf("v%03d", i)
				if i%3 == 0 {
					batch := []kv.Entry[string]{{Key: k + "a", Value: v}, {Key: k + "b", Value: v}, {Key: k + "c", Value: v}}
					err := m.SetMany(ctx, batch)
					var be *kv.BatchError
					switch {
					case err == nil:
						for _, b := range batch {
							acked[b.Key] = v
						}
					case errors.As(err, &be):
						failures++
						for _, w := range be.Written {
							acked[w] = v
						}
					default:
						failures++
					}
					continue
				}
				if err := m.Set(ctx, k, v); err != nil {
					failures++
					continue
				}
				acked[k] = v
			}
			e.faults.Heal()
			if failures == 0 {
				t.Errorf("no write failed under Flaky; the fault injector does nothing")
			}
			if len(acked) == 0 {
				t.Fatalf("no write succeeded under Flaky")
			}
			for k, want := range acked {
				wantGet(t, m, k, want)
			}
			wantWorks(t, m, "after Flaky")
		},
	},
	{
		name:   "FaultIterationNeverLooksComplete",
		rule:   "an iteration, Size or Clear that hits a failing store yields or returns the error; it never ends as if the namespace were complete",
		faults: true,
		run: func(t T, e *env) {
			m := faultMap(t, e)
			ctx := t.Context()
			fill(t, m, 48) // 50 keys in pages of 5, where the store honours the hint
			e.faults.Fail()
			for name, call := range map[string]func(context.Context) error{
				"Iterate": func(ctx context.Context) error { return drain(m.Iterate(ctx)) },
				"Keys":    func(ctx context.Context) error { return drain(m.Keys(ctx)) },
				"Values":  func(ctx context.Context) error { return drain(m.Values(ctx)) },
			} {
				if err := call(ctx); err == nil {
					t.Errorf("%s on a failing store ended without an error", name)
				}
			}
			e.faults.Heal()
			// The store fails after the first entry: the pass either read
			// everything before that, or yields the error.
			n, failed := 0, false
			for _, err := range m.Iterate(ctx) {
				if err != nil {
					failed = true
					continue
				}
				n++
				if n == 1 {
					e.faults.Fail()
				}
			}
			e.faults.Heal()
			if !failed && n != 50 {
				t.Errorf("Iterate ended without an error after %d of 50 entries: a truncated pass looked complete", n)
			}
			wantWorks(t, m, "after a failed pass")
		},
	},
	{
		name:   "FaultDeadline",
		rule:   "while the store stalls, every call returns within 100 ms of its context's deadline (the suite allows 1 s) with an error matching context.DeadlineExceeded, and the same Map works once the store answers",
		faults: true,
		run: func(t T, e *env) {
			m := faultMap(t, e)
			e.faults.Stall()
			calls := writeCalls(m)
			for name, call := range readCalls(m) {
				calls[name] = call
			}
			const timeout = 100 * time.Millisecond
			var wg sync.WaitGroup
			for name, call := range calls { // concurrently: each has its own deadline
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(t.Context(), timeout)
					defer cancel()
					start := time.Now()
					err := call(ctx)
					took := time.Since(start)
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("%s under a stalled store = %v; want context.DeadlineExceeded", name, err)
					}
					if took > timeout+deadlineSlack {
						t.Errorf("%s returned %v after its %v deadline; want at most %v", name, took-timeout, timeout, deadlineSlack)
					}
				})
			}
			wg.Wait()
			// A write that timed out may still be carried out once the store
			// answers (its outcome is unknown): only recovery is checked.
			e.faults.Heal()
			wantWorks(t, m, "after Stall")
		},
	},
}
