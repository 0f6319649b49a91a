package kv_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/nearcache"
)

// condStore counts the calls that reach a memory store and lets a test act
// before each SetIf (a racing writer) or replace its reply (a lost reply).
type condStore struct {
	backend.Wrapper
	reads    atomic.Int64 // Get, MGet, TTL
	setIfs   atomic.Int64
	beforeIf func(n int64)                          // called before SetIf number n (1, 2 ...)
	afterIf  func(ok bool, err error) (bool, error) // replaces SetIf's reply
}

func newCondStore(t *testing.T) (*condStore, *memory.Backend) {
	mem := memory.New(memory.WithClock(clock.NewManual(time.Unix(1e9, 0))))
	t.Cleanup(func() { _ = mem.Close() }) // closed at the end: only ErrClosed could come back
	return &condStore{Wrapper: backend.Wrapper{Backend: mem}}, mem
}

func (s *condStore) Get(ctx context.Context, key string) (backend.Value, error) {
	s.reads.Add(1)
	return s.Wrapper.Get(ctx, key)
}

func (s *condStore) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	s.reads.Add(1)
	return s.Wrapper.MGet(ctx, keys, withTTL)
}

func (s *condStore) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	s.reads.Add(1)
	return s.Wrapper.TTL(ctx, key)
}

func (s *condStore) Capabilities() backend.Capabilities {
	c := s.Wrapper.Capabilities()
	f := c.SetIf
	c.SetIf = func(ctx context.Context, e backend.GuardedEntry) (bool, error) {
		n := s.setIfs.Add(1)
		if s.beforeIf != nil {
			s.beforeIf(n)
		}
		ok, err := f(ctx, e)
		if s.afterIf != nil {
			return s.afterIf(ok, err)
		}
		return ok, err
	}
	return c
}

func TestUpdateRetriesAfterARacingWrite(t *testing.T) {
	s, mem := newCondStore(t)
	m := mustNew[int](t, s, "upd")
	ctx := t.Context()
	if err := m.Set(ctx, "n", 1); err != nil {
		t.Fatal(err)
	}
	// Before Update's first SetIf, another client writes 10: the swap
	// against the 1 it read must lose, and fn run again on 10.
	s.beforeIf = func(n int64) {
		if n == 1 {
			if err := mem.MSet(ctx, []backend.Entry{{Key: "upd:n", Value: []byte("10"), TTL: time.Hour}}); err != nil {
				t.Errorf("racing MSet: %v", err)
			}
		}
	}
	var seen []int
	got, ok, err := m.Update(ctx, "n", func(cur int, _ bool) (int, bool, error) {
		seen = append(seen, cur)
		return cur + 1, true, nil
	})
	if err != nil || !ok || got != 11 {
		t.Fatalf("Update = %d, %v, %v; want 11, true, nil", got, ok, err)
	}
	if fmt.Sprint(seen) != "[1 10]" || s.setIfs.Load() != 2 {
		t.Errorf("fn saw %v in %d SetIfs; want [1 10] in 2", seen, s.setIfs.Load())
	}
	if v, _, _ := m.Get(ctx, "n"); v != 11 {
		t.Errorf("Get = %d; want 11", v)
	}
}

func TestCondLostReplyIsUnknownNotFalse(t *testing.T) {
	tests := []struct {
		name string
		call func(m *kv.Map[string]) (bool, error)
	}{
		{"SetIfAbsent", func(m *kv.Map[string]) (bool, error) { return m.SetIfAbsent(t.Context(), "k", "v") }},
		{"CompareAndSwap", func(m *kv.Map[string]) (bool, error) { return m.CompareAndSwap(t.Context(), "k", "old", "v") }},
		{"Update", func(m *kv.Map[string]) (bool, error) {
			_, ok, err := m.Update(t.Context(), "k", func(string, bool) (string, bool, error) { return "v", true, nil })
			return ok, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newCondStore(t)
			m := mustNew[string](t, s, "lost")
			if tt.name == "CompareAndSwap" {
				if err := m.Set(t.Context(), "k", "old"); err != nil {
					t.Fatal(err)
				}
			}
			s.afterIf = func(bool, error) (bool, error) {
				return false, fmt.Errorf("reply lost: %w", backend.ErrUnknownOutcome)
			}
			ok, err := tt.call(m)
			if ok || !errors.Is(err, kv.ErrUnknownOutcome) {
				t.Errorf("%s = %v, %v; want false, ErrUnknownOutcome", tt.name, ok, err)
			}
			if n := s.setIfs.Load(); n != 1 {
				t.Errorf("SetIf sent %d times; want once (a lost reply is not retried)", n)
			}
			s.afterIf = nil
			if v, _, err := m.Get(t.Context(), "k"); err != nil || v != "v" {
				t.Errorf("Get = %q, %v; want v (the write happened)", v, err)
			}
		})
	}
}

func TestGetWithTTLOneRead(t *testing.T) {
	s, _ := newCondStore(t)
	tests := []struct {
		name      string
		opts      []kv.Option
		wantReads []int64 // store reads of the first and second GetWithTTL
	}{
		{"plain", nil, []int64{1, 1}},
		{"near cache", []kv.Option{kv.WithNearCache(nearcache.Options{})}, []int64{1, 0}},
		{"refresh ahead", []kv.Option{kv.WithRefreshAhead(0.5)}, []int64{1, 1}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustNew[string](t, s, fmt.Sprintf("gwt%d", i), append(tt.opts, kv.WithTTL(time.Hour))...)
			if err := m.Set(t.Context(), "k", "v"); err != nil {
				t.Fatal(err)
			}
			for j, want := range tt.wantReads {
				before := s.reads.Load()
				v, d, ok, err := m.GetWithTTL(t.Context(), "k")
				if err != nil || !ok || v != "v" || d <= time.Hour-time.Second || d > time.Hour {
					t.Fatalf("GetWithTTL #%d = %q, %v, %v, %v; want v, about 1h, true, nil", j+1, v, d, ok, err)
				}
				if got := s.reads.Load() - before; got != want {
					t.Errorf("GetWithTTL #%d made %d store reads; want %d", j+1, got, want)
				}
			}
			before := s.reads.Load()
			if _, _, ok, err := m.GetWithTTL(t.Context(), "missing"); ok || err != nil {
				t.Errorf("GetWithTTL(missing) = %v, %v; want false, nil", ok, err)
			}
			if got := s.reads.Load() - before; got != 1 {
				t.Errorf("GetWithTTL(missing) made %d store reads; want 1", got)
			}
		})
	}
}

func TestCondForgetsTheTier(t *testing.T) {
	// A stale-serving Map remembers the value it read; a conditional write
	// through it must forget it, or a Get after the store fails would serve
	// the value from before the write.
	s, _ := newCondStore(t)
	m := mustNew[string](t, s, "condtier", kv.WithTTL(time.Hour), kv.WithNearCache(nearcache.Options{}))
	ctx := t.Context()
	if err := m.Set(ctx, "k", "a"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := m.Get(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	s.afterIf = func(bool, error) (bool, error) { return false, fmt.Errorf("lost: %w", backend.ErrUnknownOutcome) }
	if _, err := m.CompareAndSwap(ctx, "k", "a", "b"); !errors.Is(err, kv.ErrUnknownOutcome) {
		t.Fatalf("CompareAndSwap = %v; want ErrUnknownOutcome", err)
	}
	before := s.reads.Load()
	if v, _, err := m.Get(ctx, "k"); err != nil || v != "b" {
		t.Errorf("Get after a conditional write of unknown outcome = %q, %v; want b, read from the store", v, err)
	}
	if s.reads.Load() == before {
		t.Errorf("Get was served by the near cache after the write")
	}
}

// TestCondForgetsAfter is TestWriteForgetsAfter for the conditional
// writes: a Get racing CompareAndSwap or Update, on a store whose change
// reports never arrive, reads the old value; the write forgets it once the
// store has the new one, so the next Get is not served the old value by
// the near cache.
func TestCondForgetsAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(ctx context.Context, m *kv.Map[string]) (bool, error)
	}{
		{"CompareAndSwap", func(ctx context.Context, m *kv.Map[string]) (bool, error) {
			return m.CompareAndSwap(ctx, "k", "old", "new")
		}},
		{"Update", func(ctx context.Context, m *kv.Map[string]) (bool, error) {
			_, ok, err := m.Update(ctx, "k", func(string, bool) (string, bool, error) { return "new", true, nil })
			return ok, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			mem := memory.New(memory.WithClock(clock.NewManual(time.Unix(1e9, 0))))
			t.Cleanup(func() { _ = mem.Close() }) // only ErrClosed could come back
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
			if ok, err := tc.write(ctx, m); err != nil || !ok {
				t.Fatalf("%s = %v, %v; want true, nil", tc.name, ok, err)
			}
			if store.before != nil {
				t.Fatal("the hook did not run")
			}
			if v, ok, err := m.Get(ctx, "k"); err != nil || !ok || v != "new" {
				t.Errorf("Get after %s = %q, %v, %v; want new (old was served from the near cache)", tc.name, v, ok, err)
			}
		})
	}
}

// TestNearHitOfAStringAllocatesNothing: a Map[string]'s near-cache hit is a
// view of the tier's bytes (no copy, no decoding), and a later write of
// the key does not change a string an earlier Get returned.
func TestNearHitOfAStringAllocatesNothing(t *testing.T) {
	_, mem := newCondStore(t)
	m := mustNew[string](t, mem, "nearstr", kv.WithNearCache(nearcache.Options{}), kv.WithoutTelemetry())
	ctx := t.Context()
	if err := m.Set(ctx, "k", "first"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Get(ctx, "k"); err != nil { // fills the near cache
		t.Fatal(err)
	}
	got, ok, err := m.Get(ctx, "k")
	if err != nil || !ok || got != "first" {
		t.Fatalf("Get = %q, %v, %v; want first", got, ok, err)
	}
	if st, _ := m.NearCacheStats(); st.Hits == 0 {
		t.Fatalf("no near-cache hit: %+v", st)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = m.Get(ctx, "k") }); n != 0 {
		t.Errorf("a near hit allocates %v times; want 0", n)
	}
	if err := m.Set(ctx, "k", "second"); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := m.Get(ctx, "k"); v != "second" || got != "first" {
		t.Errorf("Get after Set = %q, earlier result now %q; want second, first", v, got)
	}
}
