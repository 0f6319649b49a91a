package kv_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
)

// gatedLeases blocks the next AcquireLeases call while armed.
type gatedLeases struct {
	backend.Backend
	mu   sync.Mutex
	gate chan struct{}
}

func (g *gatedLeases) Capabilities() backend.Capabilities {
	o := backend.CapabilitiesOf(g.Backend)
	inner := o.AcquireLeases
	o.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
		g.mu.Lock()
		gate := g.gate
		g.gate = nil
		g.mu.Unlock()
		if gate != nil {
			<-gate
		}
		return inner(ctx, keys, ttl)
	}
	return o
}

// TestGetManyOrLoadLoadsWhatAJoinedRefreshLeft: GetManyOrLoad joins a
// refresh-ahead flight of a key that has since expired; the refresh is
// skipped (another process holds the lease). GetManyOrLoad loads the key
// (it returned without it, no error, loadMany never asked).
func TestGetManyOrLoadLoadsWhatAJoinedRefreshLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := memory.New(memory.WithSweepInterval(0))
		g := &gatedLeases{Backend: mem}
		opts := []kv.Option{kv.WithTTL(10 * time.Second), kv.WithLoadLease(30 * time.Second), kv.WithRefreshAhead(0.5)}
		a := mustNew[string](t, g, "ns", opts...)
		o := mustNew[string](t, mem, "ns", opts...)
		ctx := context.Background()
		if err := a.Set(ctx, "k", "v1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second)
		oGate := make(chan struct{})
		// O's refresh takes the lease and loads slowly.
		if _, err := o.GetOrLoad(ctx, "k", func(context.Context) (string, error) { <-oGate; return "o", nil }); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		gate := make(chan struct{})
		g.mu.Lock()
		g.gate = gate
		g.mu.Unlock()
		if v, err := a.GetOrLoad(ctx, "k", func(context.Context) (string, error) { return "a-refresh", nil }); v != "v1" || err != nil {
			t.Fatal(v, err)
		}
		synctest.Wait()             // A's refresh is blocked taking the lease
		time.Sleep(5 * time.Second) // k expires
		var asked atomic.Int32
		res := make(chan map[string]string)
		go func() {
			out, err := a.GetManyOrLoad(ctx, []string{"k"}, func(_ context.Context, miss []string) (map[string]string, error) {
				asked.Add(1)
				return map[string]string{"k": "many"}, nil
			})
			t.Logf("GetManyOrLoad: %v %v", out, err)
			res <- out
		}()
		synctest.Wait()
		close(gate)
		out := <-res
		if _, ok := out["k"]; !ok {
			t.Errorf("GetManyOrLoad returned no value for k, nil error, loadMany called %d times (k was never loaded by anyone)", asked.Load())
		}
		close(oGate)
		if err := errors.Join(a.Close(), o.Close()); err != nil {
			t.Error(err)
		}
	})
}
