package kv_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/conformance"
)

// slowScan answers the first page of a scan at once and every later page
// after delay, or when its context ends: a store busy with a long scan that
// honours its context.
type slowScan struct {
	backend.Backend
	delay time.Duration
}

func (s slowScan) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	if cursor != "" {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return backend.Page{}, ctx.Err()
		}
	}
	return s.Backend.Scan(ctx, prefix, cursor, count)
}

// TestBreakCancelsScanAhead: breaking out of Iterate, Keys or Values cancels
// the scan running ahead and returns at once. The scan-ahead used to run on
// the caller's context, so a break waited for a scan nobody would read (4 s
// with a 2 s Scan; for good against a stalled server without a deadline).
// synctest's clock makes "at once" exact: no fake time may pass.
func TestBreakCancelsScanAhead(t *testing.T) {
	loops := map[string]func(ctx context.Context, m *kv.Map[string]){
		"Iterate": func(ctx context.Context, m *kv.Map[string]) {
			for range m.Iterate(ctx) {
				break
			}
		},
		"Keys": func(ctx context.Context, m *kv.Map[string]) {
			for range m.Keys(ctx) {
				break
			}
		},
		"Values": func(ctx context.Context, m *kv.Map[string]) {
			for range m.Values(ctx) {
				break
			}
		},
	}
	for name, loop := range loops {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				mem := memory.New(memory.WithSweepInterval(0))
				defer mem.Close()
				b := slowScan{Backend: conformance.CoreOnly(mem), delay: time.Hour}
				m := mustNew[string](t, b, "ns", kv.WithPageSize(2))
				for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
					if err := m.Set(ctx, k, "v"); err != nil {
						t.Fatal(err)
					}
				}
				start := time.Now()
				loop(ctx, m)
				if d := time.Since(start); d != 0 {
					t.Errorf("breaking out took %v of fake time; want 0 (the scan ahead is cancelled)", d)
				}
				synctest.Wait() // no goroutine of the pass may be left
			})
		})
	}
}
