package conformance_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/conformance"
)

// TestLinearizableCatchesBrokenBackends proves the linearizability check can
// fail: over backends that serve stale values or re-apply old writes later,
// as a client that retries a write whose reply was lost does, the
// Linearizable case fails (through Test) and RunLinearizable reports the
// history as not linearizable.
func TestLinearizableCatchesBrokenBackends(t *testing.T) {
	tests := []struct {
		name string
		wrap func(backend.Backend) backend.Backend
		// viaTest runs the whole suite with Test too (slow for a backend
		// that fails under faults: proving that a history with writes of
		// unknown outcome is not linearizable takes a search).
		viaTest bool
	}{
		{"ServesStaleValues", func(b backend.Backend) backend.Backend { return &staleReads{Backend: b} }, true},
		{"ReappliesWrites", func(b backend.Backend) backend.Backend { return &reapply{Backend: b} }, false},
	}
	t.Setenv("KV_LINEAR_DIR", t.TempDir()) // the visualizations of these failures
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := harness(tt.wrap)
			r := conformance.RunLinearizable(t, h, conformance.LinearOptions{MeasureOnly: true, Seed: 1})
			if r.Linearizable {
				t.Errorf("RunLinearizable over a backend that %s: linearizable; want not", tt.name)
			}
			if r.Visualization == "" {
				t.Errorf("no visualization was written for the failure")
			} else if _, err := os.Stat(filepath.Join(r.Visualization, "history.html")); err != nil {
				t.Errorf("visualization: %v", err)
			}
			if !tt.viaTest {
				return
			}
			var failed []string
			for _, f := range conformance.Failures(conformance.Test(h)) {
				failed = append(failed, f.Case)
			}
			if !slices.Contains(failed, "Linearizable") {
				t.Errorf("Test over a backend that %s failed %v; want Linearizable among them", tt.name, failed)
			}
		})
	}
}

// staleReads serves every fourth read of a key the value it read for it
// before: a cache that misses invalidations.
type staleReads struct {
	backend.Backend
	mu    sync.Mutex
	reads int
	last  map[string]backend.Value
}

func (s *staleReads) serve(key string, v backend.Value) backend.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.last == nil {
		s.last = map[string]backend.Value{}
	}
	old, ok := s.last[key]
	if ok && s.reads%4 == 0 {
		return old // the defect under test
	}
	s.last[key] = v
	return v
}

func (s *staleReads) Get(ctx context.Context, key string) (backend.Value, error) {
	v, err := s.Backend.Get(ctx, key)
	if err != nil {
		return v, err
	}
	return s.serve(key, v), nil
}

func (s *staleReads) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	vs, err := s.Backend.MGet(ctx, keys, withTTL)
	if err != nil {
		return vs, err
	}
	for i, k := range keys {
		vs[i] = s.serve(k, vs[i])
	}
	return vs, nil
}

// reapply writes, along with every third write, the entry written to some
// key two writes before: an old write re-sent after later ones, as a
// client's retry does.
type reapply struct {
	backend.Backend
	mu      sync.Mutex
	writes  int
	history []backend.Entry
}

func (r *reapply) MSet(ctx context.Context, entries []backend.Entry) error {
	r.mu.Lock()
	r.writes++
	var again []backend.Entry
	if n := len(r.history); r.writes%3 == 0 && n >= 2 {
		again = append(again, r.history[n-2]) // the defect under test
	}
	r.history = append(r.history, entries...)
	r.mu.Unlock()
	if err := r.Backend.MSet(ctx, entries); err != nil {
		return err
	}
	if len(again) > 0 {
		return r.Backend.MSet(ctx, again)
	}
	return nil
}
