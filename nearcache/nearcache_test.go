package nearcache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/nearcache"
)

// store is a memory store whose change reports a test can hold back or
// add to, and whose next MGet can run a hook before it returns.
type store struct {
	*memory.Backend
	mu      sync.Mutex
	report  func(backend.Change)
	mute    bool   // drop the store's own reports
	beforeR func() // run once after the next MGet read, before it returns
}

func (s *store) Capabilities() backend.Capabilities {
	o := s.Backend.Capabilities()
	watch := o.Watch
	o.Watch = func(ctx context.Context, prefix string, report func(backend.Change)) (func(), error) {
		s.mu.Lock()
		s.report = report
		s.mu.Unlock()
		return watch(ctx, prefix, func(c backend.Change) {
			s.mu.Lock()
			mute := s.mute && c.Kind == backend.ChangeKeys
			s.mu.Unlock()
			if !mute {
				report(c)
			}
		})
	}
	return o
}

func (s *store) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	v, err := s.Backend.MGet(ctx, keys, withTTL)
	s.mu.Lock()
	hook := s.beforeR
	s.beforeR = nil
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return v, err
}

// send delivers a report as the store would.
func (s *store) send(c backend.Change) {
	s.mu.Lock()
	r := s.report
	s.mu.Unlock()
	r(c)
}

func newStore(t *testing.T, clk clock.Clock) *store {
	t.Helper()
	m := memory.New(memory.WithClock(clk), memory.WithSweepInterval(0))
	t.Cleanup(func() { _ = m.Close() })
	return &store{Backend: m}
}

func newCache(t *testing.T, s *store, o nearcache.Options) *nearcache.Backend {
	t.Helper()
	c, err := nearcache.New(s, "", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

func set(t *testing.T, b backend.Backend, key, val string, ttl time.Duration) {
	t.Helper()
	if err := b.MSet(context.Background(), []backend.Entry{{Key: key, Value: []byte(val), TTL: ttl}}); err != nil {
		t.Fatal(err)
	}
}

// get reads key through c and reports its value and whether it was served
// locally.
func get(t *testing.T, c *nearcache.Backend, key string) (string, bool) {
	t.Helper()
	v, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Found {
		return "<missing>", v.Local
	}
	return string(v.Bytes), v.Local
}

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestFetchRacingAChange: a change reported while a fetch is under way
// keeps the fetched value out of the cache, so the next read goes to the
// store and sees the change.
func TestFetchRacingAChange(t *testing.T) {
	s := newStore(t, clock.NewManual(start))
	c := newCache(t, s, nearcache.Options{})
	set(t, s, "k", "old", backend.NoTTL)
	s.beforeR = func() { set(t, s, "k", "new", backend.NoTTL) } // reported to the cache
	if v, local := get(t, c, "k"); v != "old" || local {
		t.Fatalf("racing read = %q (local %v); want the old value the store returned", v, local)
	}
	if v, local := get(t, c, "k"); v != "new" || local {
		t.Errorf("next read = %q (local %v); want new, from the store", v, local)
	}
	if v, local := get(t, c, "k"); v != "new" || !local {
		t.Errorf("third read = %q (local %v); want new, cached", v, local)
	}
}

// TestCacheRules: what is served locally, and when a read goes back to the
// store.
func TestCacheRules(t *testing.T) {
	type step struct {
		do        func(t *testing.T, s *store, c *nearcache.Backend, clk *clock.Manual)
		key, want string
		local     bool
	}
	read := func(key, want string, local bool) step { return step{key: key, want: want, local: local} }
	act := func(f func(t *testing.T, s *store, c *nearcache.Backend, clk *clock.Manual)) step { return step{do: f} }
	cases := []struct {
		name  string
		o     nearcache.Options
		steps []step
	}{
		{"a second read is local", nearcache.Options{}, []step{
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				set(t, s, "k", "v", backend.NoTTL)
			}),
			read("k", "v", false), read("k", "v", true),
		}},
		{"a write by another client is seen", nearcache.Options{}, []step{
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				set(t, s, "k", "v", backend.NoTTL)
			}),
			read("k", "v", false), read("k", "v", true),
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				set(t, s, "k", "w", backend.NoTTL)
			}),
			read("k", "w", false),
		}},
		{"never past the deadline", nearcache.Options{}, []step{
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				set(t, s, "k", "v", 10*time.Second)
			}),
			read("k", "v", false),
			act(func(_ *testing.T, _ *store, _ *nearcache.Backend, clk *clock.Manual) { clk.Advance(9 * time.Second) }),
			read("k", "v", true),
			act(func(_ *testing.T, _ *store, _ *nearcache.Backend, clk *clock.Manual) { clk.Advance(time.Second) }),
			read("k", "<missing>", false),
		}},
		{"MaxStaleness bounds an unreported change", nearcache.Options{MaxStaleness: time.Minute}, []step{
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				set(t, s, "k", "v", backend.NoTTL)
			}),
			read("k", "v", false),
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				s.mute = true
				set(t, s, "k", "w", backend.NoTTL)
				s.mute = false
			}),
			read("k", "v", true), // the report was lost
			act(func(_ *testing.T, _ *store, _ *nearcache.Backend, clk *clock.Manual) { clk.Advance(time.Minute) }),
			read("k", "w", false),
		}},
		{"lost reports bypass the cache until live", nearcache.Options{}, []step{
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				set(t, s, "k", "v", backend.NoTTL)
			}),
			read("k", "v", false), read("k", "v", true),
			act(func(_ *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				s.send(backend.Change{Kind: backend.ChangeLost})
			}),
			read("k", "v", false), read("k", "v", false),
			act(func(_ *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				s.send(backend.Change{Kind: backend.ChangeLive})
			}),
			read("k", "v", false), read("k", "v", true),
		}},
		{"a flush empties it", nearcache.Options{}, []step{
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				set(t, s, "k", "v", backend.NoTTL)
			}),
			read("k", "v", false), read("k", "v", true),
			act(func(_ *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				s.send(backend.Change{Kind: backend.ChangeAll})
			}),
			read("k", "v", false),
		}},
		{"writes through the cache are read back", nearcache.Options{}, []step{
			act(func(t *testing.T, _ *store, c *nearcache.Backend, _ *clock.Manual) {
				set(t, c, "k", "v", backend.NoTTL)
			}),
			read("k", "v", false), read("k", "v", true),
			act(func(t *testing.T, s *store, c *nearcache.Backend, _ *clock.Manual) {
				s.mute = true // even with no report of its own write
				set(t, c, "k", "w", backend.NoTTL)
				s.mute = false
			}),
			read("k", "w", false),
			act(func(t *testing.T, s *store, c *nearcache.Backend, _ *clock.Manual) {
				s.mute = true
				if err := c.Delete(context.Background(), []string{"k"}); err != nil {
					t.Fatal(err)
				}
				s.mute = false
			}),
			read("k", "<missing>", false),
		}},
		{"MaxEntries evicts the least recently used", nearcache.Options{MaxEntries: 2}, []step{
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				for _, k := range []string{"a", "b", "c"} {
					set(t, s, k, k, backend.NoTTL)
				}
			}),
			read("a", "a", false), read("b", "b", false), read("a", "a", true), read("c", "c", false),
			read("a", "a", true), read("b", "b", false),
		}},
		{"MaxBytes bounds the bytes", nearcache.Options{MaxBytes: 16 * 200}, []step{
			act(func(t *testing.T, s *store, _ *nearcache.Backend, _ *clock.Manual) {
				set(t, s, "big", string(make([]byte, 201)), backend.NoTTL) // over a sixteenth
				set(t, s, "small", "s", backend.NoTTL)
			}),
			read("big", string(make([]byte, 201)), false), read("big", string(make([]byte, 201)), false),
			read("small", "s", false), read("small", "s", true),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewManual(start)
			s := newStore(t, clk)
			c := newCache(t, s, tc.o)
			for i, st := range tc.steps {
				if st.do != nil {
					st.do(t, s, c, clk)
					continue
				}
				if v, local := get(t, c, st.key); v != st.want || local != st.local {
					t.Errorf("step %d: Get(%s) = %q, local %v; want %q, local %v", i, st.key, v, local, st.want, st.local)
				}
			}
			if st := c.Stats(); st.Bytes > tc.o.MaxBytes && tc.o.MaxBytes > 0 {
				t.Errorf("Stats.Bytes = %d over MaxBytes %d", st.Bytes, tc.o.MaxBytes)
			}
		})
	}
}

// TestNoWatch: a store that reports no changes gets no cache.
func TestNoWatch(t *testing.T) {
	m := memory.New(memory.WithSweepInterval(0))
	defer m.Close()
	if _, err := nearcache.New(struct{ backend.Backend }{m}, "", nearcache.Options{}); !errors.Is(err, nearcache.ErrNoWatch) {
		t.Errorf("New over a store without Watch = %v; want ErrNoWatch", err)
	}
}

// TestInvalidOptions: a negative bound, or a byte bound that would cache
// nothing, is refused with ErrInvalidOptions.
func TestInvalidOptions(t *testing.T) {
	s := newStore(t, clock.NewManual(start))
	for _, o := range []nearcache.Options{{MaxEntries: -1}, {MaxBytes: -1}, {MaxStaleness: -time.Second}, {MaxLag: -time.Second}, {MaxBytes: 1000}} {
		if _, err := nearcache.New(s, "", o); !errors.Is(err, nearcache.ErrInvalidOptions) {
			t.Errorf("New(%+v) = %v; want ErrInvalidOptions", o, err)
		}
	}
}

// TestConcurrentReadersAndWriters: under -race, readers never see a value
// older than the last write that completed before their read began.
func TestConcurrentReadersAndWriters(t *testing.T) {
	s := newStore(t, clock.System())
	c := newCache(t, s, nearcache.Options{})
	var mu sync.Mutex
	last := 0 // the last version whose write completed
	set(t, c, "k", "0", backend.NoTTL)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i <= 2000; i++ {
			set(t, c, "k", fmt.Sprint(i), backend.NoTTL)
			mu.Lock()
			last = i
			mu.Unlock()
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				mu.Lock()
				floor := last
				mu.Unlock()
				v, _ := get(t, c, "k")
				var n int
				if _, err := fmt.Sscan(v, &n); err != nil || n < floor {
					t.Errorf("read %q after version %d was written", v, floor)
					return
				}
			}
		})
	}
	wg.Wait()
}
