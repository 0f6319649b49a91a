package kv_test

import (
	"context"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/nearcache"
)

// lateReports is a store whose change reports of keys never arrive (as
// Redis's may arrive after the call that made the change returned), and
// whose Delete, Expire and SetIf run a hook before they reach the store.
type lateReports struct {
	backend.Wrapper
	before func()
}

func (l *lateReports) Capabilities() backend.Capabilities {
	c := l.Wrapper.Capabilities()
	if setIf := c.SetIf; setIf != nil {
		c.SetIf = func(ctx context.Context, e backend.GuardedEntry) (bool, error) {
			l.hook()
			return setIf(ctx, e)
		}
	}
	watch := c.Watch
	c.Watch = func(ctx context.Context, prefix string, report func(backend.Change)) (func(), error) {
		return watch(ctx, prefix, func(ch backend.Change) {
			if ch.Kind != backend.ChangeKeys {
				report(ch)
			}
		})
	}
	return c
}

func (l *lateReports) hook() {
	if f := l.before; f != nil {
		l.before = nil
		f()
	}
}

func (l *lateReports) Delete(ctx context.Context, keys []string) error {
	l.hook()
	return l.Wrapper.Delete(ctx, keys)
}

func (l *lateReports) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	l.hook()
	return l.Wrapper.Expire(ctx, key, ttl)
}

// TestWriteForgetsAfter (issue 19, "forgets the key before and after"): a
// read that begins while a Delete, DeleteMany or Expire is on its way to the
// store reads the old value and may record it; the write forgets the key
// again once the store has it, so the Map's next Get does not serve the old
// value from its near cache, even though the store's report of the change
// never arrives. Fails with the forget after the store call removed.
func TestWriteForgetsAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(ctx context.Context, m *kv.Map[string]) error
	}{
		{"Delete", func(ctx context.Context, m *kv.Map[string]) error { return m.Delete(ctx, "k") }},
		{"DeleteMany", func(ctx context.Context, m *kv.Map[string]) error { return m.DeleteMany(ctx, []string{"k"}) }},
		{"Expire", func(ctx context.Context, m *kv.Map[string]) error {
			_, err := m.Expire(ctx, "k", time.Millisecond)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := clock.NewManual(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
			mem := memory.New(memory.WithClock(clk))
			t.Cleanup(func() { _ = mem.Close() })
			store := &lateReports{Wrapper: backend.Wrapper{Backend: mem}}
			m := mustNew[string](t, store, "ns", kv.WithNearCache(nearcache.Options{}))
			if err := m.Set(ctx, "k", "old"); err != nil {
				t.Fatal(err)
			}
			store.before = func() { // a reader racing the write
				if v, ok, err := m.Get(ctx, "k"); err != nil || !ok || v != "old" {
					t.Errorf("Get during the write = %q, %v, %v; want old", v, ok, err)
				}
			}
			if err := tc.write(ctx, m); err != nil {
				t.Fatal(err)
			}
			if store.before != nil {
				t.Fatal("the hook did not run")
			}
			clk.Advance(time.Second) // past Expire's new deadline
			v, ok, err := m.Get(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				t.Errorf("Get after %s = %q; want not found (the old value was served from the near cache)", tc.name, v)
			}
		})
	}
}
