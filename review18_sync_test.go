package kv_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/memory"
)

// TestSynchronousReloadEndsWithTheCall: with WithSynchronousRefresh, a
// GetOrLoad that serves a value stale and reloads it in the call returns
// when its caller's context ends (it waited for the whole 10 s reload).
func TestSynchronousReloadEndsWithTheCall(t *testing.T) {
	for _, lease := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			b := memory.New(memory.WithSweepInterval(0))
			opts := []kv.Option{kv.WithTTL(time.Second), kv.WithStaleWhileRevalidate(time.Minute, 10), kv.WithSynchronousRefresh(), kv.WithLoadTimeout(20 * time.Second)}
			if lease {
				opts = append(opts, kv.WithLoadLease(5*time.Second))
			}
			m := mustNew[string](t, b, "ns", opts...)
			ctx := context.Background()
			if _, err := m.GetOrLoad(ctx, "k", func(context.Context) (string, error) { return "v1", nil }); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			v, err := m.GetOrLoad(cctx, "k", func(ctx context.Context) (string, error) {
				select {
				case <-ctx.Done():
					return "", ctx.Err()
				case <-time.After(10 * time.Second):
				}
				return "v2", nil
			})
			if took := time.Since(start); took > 100*time.Millisecond || err != nil || v != "v1" {
				t.Errorf("lease=%v: GetOrLoad with a 100ms context = %q, %v after %v; want the stale v1 within 100ms", lease, v, err, took)
			}
			if err := m.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}
