package conformance

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
)

type ctxKey struct{}

var loadCases = []testCase{
	{
		name: "GetOrLoadHit",
		rule: "GetOrLoad of a stored key returns it without calling load",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("load"))
			mustSet(t, m, "id", "cached")
			v, err := m.GetOrLoad(t.Context(), "id", func(context.Context) (string, error) {
				t.Errorf("load called on a hit")
				return "loaded", nil
			})
			if err != nil || v != "cached" {
				t.Errorf("GetOrLoad = %q, %v; want cached, nil", v, err)
			}
		},
	},
	{
		name: "GetOrLoadMiss",
		rule: "GetOrLoad of a missing key calls load once, stores its value with the Map's TTL and returns it",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("load"), kv.WithTTL(time.Hour))
			calls := 0
			load := func(context.Context) (string, error) { calls++; return "loaded", nil }
			for range 3 {
				v, err := m.GetOrLoad(t.Context(), "id", load)
				if err != nil || v != "loaded" {
					t.Errorf("GetOrLoad = %q, %v; want loaded, nil", v, err)
				}
			}
			if calls != 1 {
				t.Errorf("load called %d times; want 1", calls)
			}
			wantGet(t, m, "id", "loaded")
			wantTTL(t, e, m, "id", time.Hour)
		},
	},
	{
		name: "GetOrLoadConcurrent",
		rule: "concurrent misses of one key share a single call of load, and every caller gets its value",
		run: func(t T, e *env) {
			ns := e.ns("load")
			newMap[string](t, e, ns) // clears the namespace when the case ends
			const n = 16
			// The load is released only once every caller has read the key
			// and missed (the store saw n reads of it): without single flight
			// each would then call load itself.
			missed := &countReads{Backend: e.b, key: ns + ":id", want: n, all: make(chan struct{})}
			m := openMap[string](t, e, missed, ns)
			var calls atomic.Int32
			load := func(ctx context.Context) (string, error) {
				calls.Add(1)
				select {
				case <-missed.all:
				case <-ctx.Done():
				case <-time.After(30 * time.Second): // a hang, not a timing assertion
				}
				return "once", nil
			}
			var wg sync.WaitGroup
			results := make([]string, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() { results[i], errs[i] = m.GetOrLoad(t.Context(), "id", load) })
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil || results[i] != "once" {
					t.Errorf("caller %d: GetOrLoad = %q, %v; want once, nil", i, results[i], errs[i])
				}
			}
			if c := calls.Load(); c != 1 {
				t.Errorf("load called %d times; want 1", c)
			}
		},
	},
	{
		name: "GetOrLoadError",
		rule: "a load error is returned and nothing is stored",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("load"))
			boom := errors.New("database down")
			_, err := m.GetOrLoad(t.Context(), "id", func(context.Context) (string, error) { return "", boom })
			if !errors.Is(err, boom) {
				t.Errorf("GetOrLoad = %v; want the load error", err)
			}
			wantMissing(t, m, "id")
		},
	},
	{
		name: "GetOrLoadDecodeError",
		rule: "a stored value that does not decode is returned as its *DecodeError and load is not called",
		run: func(t T, e *env) {
			ns := e.ns("load")
			m := newMap[point](t, e, ns)
			if err := e.b.MSet(t.Context(), []backend.Entry{{Key: ns + ":id", Value: []byte("{broken"), TTL: backend.NoTTL}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			_, err := m.GetOrLoad(t.Context(), "id", func(context.Context) (point, error) {
				t.Errorf("load called for an undecodable value")
				return point{}, nil
			})
			var de *kv.DecodeError
			if !errors.As(err, &de) || de.Key != "id" {
				t.Errorf("GetOrLoad = %v; want *DecodeError for id", err)
			}
		},
	},
	{
		name: "GetOrLoadCancel",
		rule: "a caller whose context ends stops waiting with ctx.Err(), while load goes on with the first caller's values but not its cancellation",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("load"))
			started, release := make(chan struct{}), make(chan struct{})
			seen := make(chan [2]any, 1)
			load := func(ctx context.Context) (string, error) {
				close(started)
				<-release
				seen <- [2]any{ctx.Err(), ctx.Value(ctxKey{})}
				return "late", nil
			}
			ctx, cancel := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "first"))
			done := make(chan error, 1)
			go func() {
				_, err := m.GetOrLoad(ctx, "id", load)
				done <- err
			}()
			<-started
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled caller: GetOrLoad = %v; want context.Canceled", err)
			}
			close(release)
			if r := <-seen; r[0] != nil || r[1] != "first" {
				t.Errorf("load's context: Err = %v, value = %v; want nil and the first caller's value", r[0], r[1])
			}
			// load stores its value after the caller left; wait for it.
			deadline := time.Now().Add(5 * time.Second)
			for isMissing(t, m, "id") {
				if time.Now().After(deadline) {
					t.Fatalf("the loaded value was never stored")
				}
				time.Sleep(time.Millisecond) // polling, bounded by the deadline
			}
			wantGet(t, m, "id", "late")
		},
	},
}

// countReads closes all once the store has been asked for key want times.
type countReads struct {
	backend.Backend
	key  string
	want int32
	n    atomic.Int32
	all  chan struct{}
}

func (c *countReads) Get(ctx context.Context, key string) (backend.Value, error) {
	v, err := c.Backend.Get(ctx, key)
	c.count(key)
	return v, err
}

// MGet counts too: a near cache reads a key with its TTL.
func (c *countReads) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	v, err := c.Backend.MGet(ctx, keys, withTTL)
	for _, k := range keys {
		c.count(k)
	}
	return v, err
}

func (c *countReads) count(key string) {
	if key == c.key && c.n.Add(1) == c.want {
		close(c.all)
	}
}

// Capabilities offers the store's watch only (a near cache needs it); no
// optimisation, which would read around the count.
func (c *countReads) Capabilities() backend.Capabilities {
	return backend.Capabilities{Watch: backend.CapabilitiesOf(c.Backend).Watch}
}
