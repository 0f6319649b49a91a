package conformance

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
)

// leaseCases check Optimizations.AcquireLeases and the loads that use it
// (kv.WithLoadLease). They are skipped on a store that keeps no leases.
var leaseCases = []testCase{
	{
		name: "LeaseExclusive",
		rule: "a lease is taken by one owner at a time; it is free again once released, and Release leaves another owner's lease alone",
		run: func(t T, e *env) {
			acquire := needLeases(t, e)
			ctx := t.Context()
			ns := e.ns("lease")
			a, b, c := ns+":a", ns+":b", ns+":c"
			held1, l1 := mustAcquire(t, acquire, []string{a, b}, time.Minute)
			if !slices.Equal(held1, []bool{true, true}) || l1 == nil {
				t.Fatalf("first AcquireLeases(a, b) = %v; want both taken", held1)
			}
			held2, l2 := mustAcquire(t, acquire, []string{b, c}, time.Minute)
			if !slices.Equal(held2, []bool{false, true}) || l2 == nil {
				t.Fatalf("AcquireLeases(b, c) while b is held = %v; want [false true]", held2)
			}
			if err := l1.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if err := l1.Release(ctx); err != nil {
				t.Errorf("second Release: %v; want nil", err)
			}
			held3, l3 := mustAcquire(t, acquire, []string{a, b, c}, time.Minute)
			if !slices.Equal(held3, []bool{true, true, false}) {
				t.Errorf("AcquireLeases(a, b, c) after releasing a and b = %v; want [true true false]", held3)
			}
			// The first owner's Release again must not free c (l2's) or
			// the leases l3 took.
			if err := l1.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if held, _ := mustAcquire(t, acquire, []string{a, b, c}, time.Minute); slices.Contains(held, true) {
				t.Errorf("AcquireLeases after a stale Release = %v; want none taken", held)
			}
			for _, l := range []backend.Lease{l2, l3} {
				if err := l.Release(ctx); err != nil {
					t.Errorf("Release: %v", err)
				}
			}
			if _, _, err := acquire(ctx, []string{a}, 0); !errors.Is(err, kv.ErrInvalidTTL) {
				t.Errorf("AcquireLeases with lease time 0 = %v; want ErrInvalidTTL", err)
			}
			if _, _, err := acquire(ctx, []string{a}, backend.NoTTL); !errors.Is(err, kv.ErrInvalidTTL) {
				t.Errorf("AcquireLeases with lease time NoTTL = %v; want ErrInvalidTTL", err)
			}
		},
	},
	{
		name: "LeaseExpiry",
		rule: "a lease that is not renewed expires after its time and can be taken again; Renew keeps it",
		run: func(t T, e *env) {
			acquire := needLeases(t, e)
			ns := e.ns("lease")
			d := e.shortTTL()
			held, kept := mustAcquire(t, acquire, []string{ns + ":kept"}, d)
			if !held[0] {
				t.Fatalf("AcquireLeases(kept) not taken")
			}
			if held, _ := mustAcquire(t, acquire, []string{ns + ":lapsed"}, d); !held[0] {
				t.Fatalf("AcquireLeases(lapsed) not taken")
			}
			if err := kept.Renew(t.Context(), time.Hour); err != nil {
				t.Fatalf("Renew: %v", err)
			}
			free := func() bool {
				held, l := mustAcquire(t, acquire, []string{ns + ":lapsed"}, time.Minute)
				if l != nil {
					releaseAtEnd(t, l)
				}
				return held[0]
			}
			if !e.pass(2*d, free) {
				t.Errorf("a lease of %v was still held after %v", d, 2*d)
			}
			if held, _ := mustAcquire(t, acquire, []string{ns + ":kept"}, time.Minute); held[0] {
				t.Errorf("a renewed lease was taken by another owner after %v", 2*d)
			}
			if err := kept.Release(t.Context()); err != nil {
				t.Errorf("Release: %v", err)
			}
		},
	},
	{
		name: "LeasesInvisible",
		rule: "a lease is not a key: no read, scan, count or Clear of a namespace sees or removes it",
		run: func(t T, e *env) {
			acquire := needLeases(t, e)
			ns := e.ns("lease")
			m := newMap[string](t, e, ns)
			mustSet(t, m, "stored", "v")
			held, l := mustAcquire(t, acquire, []string{ns + ":stored", ns + ":absent"}, time.Minute)
			if !slices.Equal(held, []bool{true, true}) {
				t.Fatalf("AcquireLeases = %v; want both taken", held)
			}
			releaseAtEnd(t, l)
			if got := keysOf(t, m); !slices.Equal(got, []string{"stored"}) {
				t.Errorf("Keys = %q; want [stored]", got)
			}
			if n := mustSize(t, m); n != 1 {
				t.Errorf("Size = %d; want 1", n)
			}
			wantMissing(t, m, "absent")
			wantGet(t, m, "stored", "v")
			for _, prefix := range []string{"", ":", backend.LeasePrefix} {
				keys, _ := scanAll(t, e.b, prefix, 100)
				for _, k := range keys {
					if backend.IsLeaseKey(k) {
						t.Errorf("Scan(%q) returned the lease key %q", prefix, k)
					}
				}
			}
			if err := m.Clear(t.Context()); err != nil {
				t.Fatalf("Clear: %v", err)
			}
			if held, _ := mustAcquire(t, acquire, []string{ns + ":stored", ns + ":absent"}, time.Minute); slices.Contains(held, true) {
				t.Errorf("AcquireLeases after Clear = %v; want the leases still held", held)
			}
		},
	},
	{
		name: "LoadLeaseAcrossMaps",
		rule: "with WithLoadLease, Maps that miss a key together (each with its own in-process loads) load it once, and all get its value",
		run: func(t T, e *env) {
			needLeases(t, e)
			ns := e.ns("lease")
			newMap[string](t, e, ns) // clears the namespace when the case ends
			w := watchLeases(e.b)
			m1 := openMap[string](t, e, w, ns, kv.WithLoadLease(time.Minute))
			m2 := openMap[string](t, e, w, ns, kv.WithLoadLease(time.Minute))
			var calls atomic.Int32
			started := make(chan struct{})
			load := func(ctx context.Context) (string, error) {
				if calls.Add(1) == 1 {
					close(started)
				}
				// Return once the other Map has found the lease taken:
				// without the lease it would be loading too.
				select {
				case <-w.refused:
				case <-time.After(30 * time.Second): // a hang, not a timing assertion
				}
				return "once", nil
			}
			var wg sync.WaitGroup
			got := make([]string, 8)
			errs := make([]error, 8)
			wg.Go(func() { got[0], errs[0] = m1.GetOrLoad(t.Context(), "id", load) })
			<-started
			for i := 1; i < 8; i++ {
				m := []*kv.Map[string]{m1, m2}[i%2]
				wg.Go(func() { got[i], errs[i] = m.GetOrLoad(t.Context(), "id", load) })
			}
			wg.Wait()
			for i := range got {
				if errs[i] != nil || got[i] != "once" {
					t.Errorf("caller %d: GetOrLoad = %q, %v; want once, nil", i, got[i], errs[i])
				}
			}
			if c := calls.Load(); c != 1 {
				t.Errorf("load called %d times across two Maps; want 1", c)
			}
		},
	},
	{
		name: "LoadLeaseHolderGone",
		rule: "with WithLoadLease, a miss whose lease is held by an owner that never stores the value loads the key itself once the lease expires",
		run: func(t T, e *env) {
			acquire := needLeases(t, e)
			ns := e.ns("lease")
			m := newMap[string](t, e, ns, kv.WithLoadLease(time.Minute))
			d := e.shortTTL()
			// A holder that dies: its lease is never renewed nor released.
			if held, _ := mustAcquire(t, acquire, []string{ns + ":id"}, d); !held[0] {
				t.Fatalf("AcquireLeases not taken")
			}
			done := make(chan struct{})
			var v string
			var err error
			go func() {
				defer close(done)
				v, err = m.GetOrLoad(t.Context(), "id", func(context.Context) (string, error) { return "mine", nil })
			}()
			if !e.realTime() {
				e.advance(2 * d)
			}
			select {
			case <-done:
			case <-time.After(2*d + 10*time.Second): // a hang, not a timing assertion
				t.Fatalf("GetOrLoad still waiting %v after a lease of %v was taken", 2*d+10*time.Second, d)
			}
			if err != nil || v != "mine" {
				t.Errorf("GetOrLoad = %q, %v; want mine, nil", v, err)
			}
		},
	},
	fleetLoadOnce,
	fleetHolderKilled,
}

// needLeases returns the store's AcquireLeases, or skips the case.
func needLeases(t T, e *env) func(context.Context, []string, time.Duration) ([]bool, backend.Lease, error) {
	t.Helper()
	acquire := backend.OptimizationsOf(e.b).AcquireLeases
	if acquire == nil {
		t.Skipf("the store keeps no leases")
	}
	return acquire
}

// releaseAtEnd releases l when the case ends.
func releaseAtEnd(t T, l backend.Lease) {
	t.Cleanup(func() {
		// The context of the case has ended by now.
		if err := l.Release(context.WithoutCancel(t.Context())); err != nil && !errors.Is(err, backend.ErrClosed) {
			t.Errorf("cleanup: Release: %v", err)
		}
	})
}

func mustAcquire(t T, acquire func(context.Context, []string, time.Duration) ([]bool, backend.Lease, error), keys []string, d time.Duration) ([]bool, backend.Lease) {
	t.Helper()
	held, l, err := acquire(t.Context(), keys, d)
	if err != nil {
		t.Fatalf("AcquireLeases(%q): %v", keys, err)
	}
	if len(held) != len(keys) {
		t.Fatalf("AcquireLeases(%q) reported %d keys", keys, len(held))
	}
	if l == nil && slices.Contains(held, true) {
		t.Fatalf("AcquireLeases(%q) = %v with a nil Lease", keys, held)
	}
	return held, l
}

// leaseWatch is a store whose refused leases close refused: a sign that a
// Map found a key's lease taken and is waiting for another's load.
type leaseWatch struct {
	backend.Backend
	opt     backend.Optimizations
	once    sync.Once
	refused chan struct{}
}

func watchLeases(b backend.Backend) *leaseWatch {
	w := &leaseWatch{Backend: b, refused: make(chan struct{}), opt: backend.OptimizationsOf(b)}
	if a := w.opt.AcquireLeases; a != nil {
		w.opt.AcquireLeases = func(ctx context.Context, keys []string, d time.Duration) ([]bool, backend.Lease, error) {
			held, l, err := a(ctx, keys, d)
			if err == nil && slices.Contains(held, false) {
				w.once.Do(func() { close(w.refused) })
			}
			return held, l, err
		}
	}
	return w
}

// Optimizations implements backend.Optimizer: the store's, leases watched.
func (w *leaseWatch) Optimizations() backend.Optimizations { return w.opt }
