package kv_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/clock"
)

// TestBacktestReplaysLoads runs the same backtest twice on a bbolt file with
// a simulated clock and every load policy on (refresh ahead, jitter,
// remembered misses, stale serving, batch loads), with the Map's clock left
// to its default, the store's: both runs must make the same load calls at
// the same simulated times, and each policy must have acted.
func TestBacktestReplaysLoads(t *testing.T) {
	run := func() []string {
		ctx := context.Background()
		clk := clock.NewManual(time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC))
		b, err := bolt.Open(filepath.Join(t.TempDir(), "backtest.db"), bolt.WithSimulatedClock(clk))
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		}()
		m := mustNew[string](t, b, "signals", kv.WithTTL(10*time.Minute), kv.WithRefreshAhead(0.2),
			kv.WithSynchronousRefresh(), kv.WithTTLJitter(0.1, 42), kv.WithMissTTL(3*time.Minute),
			kv.WithStaleWhileRevalidate(2*time.Minute, 100))
		defer m.Close()
		var calls []string
		load := func(key string) func(context.Context) (string, error) {
			return func(context.Context) (string, error) {
				calls = append(calls, clk.Now().Format("15:04:05")+" "+key)
				if strings.HasPrefix(key, "gone") {
					return "", kv.ErrNotFound
				}
				return key + "@" + clk.Now().Format("15:04:05"), nil
			}
		}
		loadMany := func(_ context.Context, keys []string) (map[string]string, error) {
			calls = append(calls, clk.Now().Format("15:04:05")+" batch "+strings.Join(slices.Sorted(slices.Values(keys)), ","))
			out := map[string]string{}
			for _, k := range keys {
				out[k] = k + "@" + clk.Now().Format("15:04:05")
			}
			return out, nil
		}
		keys := []string{"BTC", "ETH", "SOL", "gone-1", "DOGE"}
		for tick := range 400 {
			clk.Advance(time.Duration(20+tick%50) * time.Second)
			key := keys[tick%len(keys)]
			if _, err := m.GetOrLoad(ctx, key, load(key)); err != nil && !errors.Is(err, kv.ErrNotFound) {
				t.Fatalf("tick %d: GetOrLoad(%s): %v", tick, key, err)
			}
			if tick%25 == 0 {
				if _, err := m.GetManyOrLoad(ctx, []string{"XRP", "ADA", "BTC"}, loadMany); err != nil {
					t.Fatalf("tick %d: GetManyOrLoad: %v", tick, err)
				}
			}
		}
		return calls
	}
	first := run()
	if len(first) == 0 {
		t.Fatal("the backtest made no load calls")
	}
	second := run()
	if !slices.Equal(first, second) {
		for i := range min(len(first), len(second)) {
			if first[i] != second[i] {
				t.Fatalf("load call %d differs: %q then %q (%d and %d calls)", i, first[i], second[i], len(first), len(second))
			}
		}
		t.Fatalf("the runs made %d and %d load calls", len(first), len(second))
	}
	count := func(prefix string) int {
		n := 0
		for _, c := range first {
			if strings.Contains(c, prefix) {
				n++
			}
		}
		return n
	}
	// gone-1 is asked every 5 ticks (about 3m45s apart on average), and
	// its miss is remembered 3 minutes: some asks load, others do not.
	if asks, loads := 80, count(" gone-1"); loads < 2 || loads >= asks {
		t.Errorf("gone-1 loaded %d times in %d asks; want some asks skipped by the remembered miss and some loading again once it ends by the simulated clock", loads, asks)
	}
	if n := count(" batch "); n == 0 {
		t.Errorf("no batch load")
	}
	if n := count(" BTC"); n < 2 {
		t.Errorf("BTC loaded %d times; want a refresh ahead of its expiry too", n)
	}
	t.Logf("%d load calls, identical in both runs", len(first))
}
