package kv_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/nearcache"
)

// TestCloseAbandonsLoadIgnoringContext: a load function that ignores its
// context is waited for up to the load timeout, then abandoned and logged;
// its value, when it comes, is not stored.
func TestCloseAbandonsLoadIgnoringContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New(memory.WithSweepInterval(0))
		defer store.Close()
		var log bytes.Buffer
		m := mustNew[string](t, store, "ns", kv.WithLoadTimeout(10*time.Second),
			kv.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := m.GetOrLoad(ctx, "a", func(context.Context) (string, error) {
				<-release
				return "late", nil
			})
			done <- err
		}()
		synctest.Wait()
		start := time.Now()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("Close took %v; want the load timeout, 10s", got)
		}
		if !strings.Contains(log.String(), "abandoned") {
			t.Errorf("log = %q; want the abandoned load logged", log.String())
		}
		if err := <-done; !errors.Is(err, kv.ErrClosed) {
			t.Errorf("GetOrLoad = %v; want ErrClosed", err)
		}
		close(release)
		synctest.Wait()
		if _, ok, err := m.Get(ctx, "a"); ok || err != nil {
			t.Errorf("Get = %v, %v; want the abandoned load's value not stored", ok, err)
		}
	})
}

// TestCloseEndsEveryGoroutine: with every option on, loads in flight (one
// that honours its context, one waiting for another Map's lease), a
// refresh under way and the near cache live, Close leaves no goroutine of
// the Map behind (synctest fails a bubble whose goroutines outlive it).
func TestCloseEndsEveryGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New(memory.WithSweepInterval(0))
		defer store.Close()
		opts := []kv.Option{kv.WithTTL(time.Minute), kv.WithLoadLease(time.Second), kv.WithRefreshAhead(0.5),
			kv.WithStaleWhileRevalidate(time.Minute, 10), kv.WithMissTTL(time.Second), kv.WithTTLJitter(0.1, 1),
			kv.WithNearCache(nearcache.Options{}), kv.WithLoadTimeout(time.Hour)}
		holder := mustNew[string](t, store, "ns", opts...)
		m := mustNew[string](t, store, "ns", opts...)
		block := func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() }
		errs := make(chan error, 4)
		call := func(m *kv.Map[string], key string) {
			_, err := m.GetOrLoad(ctx, key, block)
			errs <- err
		}
		// holder holds the lease of "k" while its load blocks; m waits on it.
		go call(holder, "k")
		synctest.Wait()
		go call(m, "k")
		go call(m, "other")
		if err := m.Set(ctx, "hot", "v"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Second) // into the refresh window of "hot"
		go call(m, "hot")            // a hit: returns at once, refreshes in the background
		synctest.Wait()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := holder.Close(); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if err := <-errs; err != nil && !errors.Is(err, kv.ErrClosed) {
				t.Errorf("GetOrLoad = %v; want nil (the hit) or ErrClosed", err)
			}
		}
		synctest.Wait()
	})
}

// hidden wraps a Backend the usual Go way, embedding it: its
// Capabilities, leases among them, are hidden.
type hidden struct{ backend.Backend }

// TestOptionNeedsCapability: WithLoadLease over a store that, as wrapped,
// keeps no leases fails at New, naming the option; on the old code leases
// silently stopped.
func TestOptionNeedsCapability(t *testing.T) {
	store := memory.New()
	defer store.Close()
	_, err := kv.New[string](hidden{store}, "ns", kv.WithLoadLease(time.Second))
	if !errors.Is(err, kv.ErrInvalidOption) || !strings.Contains(err.Error(), "WithLoadLease") {
		t.Errorf("New = %v; want ErrInvalidOption naming WithLoadLease", err)
	}
	if _, err := kv.New[string](store, "ns", kv.WithLoadLease(time.Second)); err != nil {
		t.Errorf("New over the memory store = %v; want nil", err)
	}
}

// TestOptionsThatCannotTakeEffect: an option that would silently do
// nothing with the others fails at New, naming it.
func TestOptionsThatCannotTakeEffect(t *testing.T) {
	store := memory.New()
	defer store.Close()
	for _, tc := range []struct {
		name string
		opts []kv.Option
		want string // in the error; "" for no error
	}{
		{"refresh without TTL", []kv.Option{kv.WithTTL(kv.NoTTL), kv.WithRefreshAhead(0.2)}, "WithRefreshAhead"},
		{"stale without TTL", []kv.Option{kv.WithTTL(kv.NoTTL), kv.WithStaleWhileRevalidate(time.Minute, 10)}, "WithStaleWhileRevalidate"},
		{"jitter without TTL", []kv.Option{kv.WithTTL(kv.NoTTL), kv.WithTTLJitter(0.1, 1)}, "WithTTLJitter"},
		{"synchronous without a policy", []kv.Option{kv.WithSynchronousRefresh()}, "WithSynchronousRefresh"},
		{"negative load timeout", []kv.Option{kv.WithLoadTimeout(-time.Second)}, "load timeout"},
		{"synchronous with refresh", []kv.Option{kv.WithRefreshAhead(0.2), kv.WithSynchronousRefresh()}, ""},
		{"no TTL alone", []kv.Option{kv.WithTTL(kv.NoTTL), kv.WithMissTTL(time.Second)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := kv.New[string](store, "ns", tc.opts...)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New = %v; want nil", err)
				}
				_ = m.Close()
				return
			}
			if !errors.Is(err, kv.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v; want ErrInvalidOption naming %s", err, tc.want)
			}
		})
	}
}
