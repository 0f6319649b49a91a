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
	"github.com/kvmap/kv/namespace"
)

// leaseCases check Capabilities.AcquireLeases and the loads that use it
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
		rule: "a lease is not a key: no read, scan or count sees it, and a Clear of its namespace ends it",
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
			// Clear ends the leases of the namespace (they are not keys:
			// it counted none), so another owner takes them at once.
			held, l2 := mustAcquire(t, acquire, []string{ns + ":stored", ns + ":absent"}, time.Minute)
			if !slices.Equal(held, []bool{true, true}) {
				t.Errorf("AcquireLeases after Clear = %v; want both free (Clear ends them)", held)
			}
			if l2 != nil {
				releaseAtEnd(t, l2)
			}
		},
	},
	{
		name: "LeaseStoreWrites",
		rule: "Lease.Store writes an entry while its lease holds and its key is as read (absent, or holding the value read), ends that lease, and leaves the owner's other leases held",
		run: func(t T, e *env) {
			acquire := needLeases(t, e)
			ctx := t.Context()
			ns := e.ns("store")
			newMap[string](t, e, ns) // clears the namespace when the case ends
			absent, present, kept := ns+":absent", ns+":present", ns+":kept"
			mustMSet(t, e.b, present, "old", backend.NoTTL)
			held, l := mustAcquire(t, acquire, []string{absent, present, kept}, time.Minute)
			if !slices.Equal(held, []bool{true, true, true}) {
				t.Fatalf("AcquireLeases = %v; want all taken", held)
			}
			releaseAtEnd(t, l)
			stored, err := l.Store(ctx, []backend.GuardedEntry{
				guarded(absent, "new1", backend.NoTTL, false, ""),
				guarded(present, "new2", backend.NoTTL, true, "old"),
			})
			if err != nil || !slices.Equal(stored, []bool{true, true}) {
				t.Fatalf("Store = %v, %v; want [true true], nil", stored, err)
			}
			wantRaw(t, e.b, absent, "new1")
			wantRaw(t, e.b, present, "new2")
			// The stored keys' leases ended; kept's is still the owner's.
			held2, l2 := mustAcquire(t, acquire, []string{absent, present, kept}, time.Minute)
			if l2 != nil {
				releaseAtEnd(t, l2)
			}
			if !slices.Equal(held2, []bool{true, true, false}) {
				t.Errorf("AcquireLeases after Store = %v; want [true true false] (stored leases ended, the other still held)", held2)
			}
			// The right to store is used once: the first owner's lease of
			// absent is gone, whoever holds it now.
			stored, err = l.Store(ctx, []backend.GuardedEntry{guarded(absent, "again", backend.NoTTL, true, "new1")})
			if err != nil || !slices.Equal(stored, []bool{false}) {
				t.Errorf("second Store of a key = %v, %v; want [false], nil", stored, err)
			}
			// A key this owner never leased is never stored.
			stored, err = l.Store(ctx, []backend.GuardedEntry{guarded(ns+":never", "x", backend.NoTTL, false, "")})
			if err != nil || !slices.Equal(stored, []bool{false}) {
				t.Errorf("Store of a key not leased = %v, %v; want [false], nil", stored, err)
			}
			wantRaw(t, e.b, absent, "new1")
			wantRawMissing(t, e.b, ns+":never")
			// kept is still held: it can be stored.
			stored, err = l.Store(ctx, []backend.GuardedEntry{guarded(kept, "k", backend.NoTTL, false, "")})
			if err != nil || !slices.Equal(stored, []bool{true}) {
				t.Errorf("Store of a key still leased = %v, %v; want [true], nil", stored, err)
			}
			// After Release nothing is stored.
			_, l3 := mustAcquire(t, acquire, []string{ns + ":released"}, time.Minute)
			if err := l3.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
			stored, err = l3.Store(ctx, []backend.GuardedEntry{guarded(ns+":released", "x", backend.NoTTL, false, "")})
			if err != nil || !slices.Equal(stored, []bool{false}) {
				t.Errorf("Store after Release = %v, %v; want [false], nil", stored, err)
			}
			wantRawMissing(t, e.b, ns+":released")
		},
	},
	{
		name: "LeaseStoreGuard",
		rule: "Lease.Store does not write over a key another client wrote after the owner read it (absent or present before), and the lease ends all the same",
		run: func(t T, e *env) {
			acquire := needLeases(t, e)
			ctx := t.Context()
			ns := e.ns("guard")
			newMap[string](t, e, ns)
			other := e.other(t)
			wasAbsent, wasPresent := ns+":absent", ns+":present"
			mustMSet(t, e.b, wasPresent, "read", backend.NoTTL)
			held, l := mustAcquire(t, acquire, []string{wasAbsent, wasPresent}, time.Minute)
			if !slices.Equal(held, []bool{true, true}) {
				t.Fatalf("AcquireLeases = %v; want both taken", held)
			}
			releaseAtEnd(t, l)
			// Another client writes both keys while the owner loads.
			mustMSet(t, other, wasAbsent, "theirs1", backend.NoTTL)
			mustMSet(t, other, wasPresent, "theirs2", backend.NoTTL)
			stored, err := l.Store(ctx, []backend.GuardedEntry{
				guarded(wasAbsent, "stale1", backend.NoTTL, false, ""),
				guarded(wasPresent, "stale2", backend.NoTTL, true, "read"),
			})
			if err != nil || !slices.Equal(stored, []bool{false, false}) {
				t.Errorf("Store after another client's writes = %v, %v; want [false false], nil", stored, err)
			}
			wantRaw(t, e.b, wasAbsent, "theirs1")
			wantRaw(t, e.b, wasPresent, "theirs2")
			held, l2 := mustAcquire(t, acquire, []string{wasAbsent, wasPresent}, time.Minute)
			if !slices.Equal(held, []bool{true, true}) {
				t.Errorf("AcquireLeases after a Store that found the keys changed = %v; want both free", held)
			}
			if l2 != nil {
				if err := l2.Release(ctx); err != nil {
					t.Fatalf("Release: %v", err)
				}
			}
			// A key another client wrote again with the bytes the owner
			// read is as read: Store writes.
			held, l3 := mustAcquire(t, acquire, []string{wasPresent}, time.Minute)
			if !held[0] {
				t.Fatalf("AcquireLeases(present) after Release not taken")
			}
			releaseAtEnd(t, l3)
			mustMSet(t, other, wasPresent, "theirs2", time.Hour)
			if stored, err := l3.Store(ctx, []backend.GuardedEntry{guarded(wasPresent, "mine", backend.NoTTL, true, "theirs2")}); err != nil || !slices.Equal(stored, []bool{true}) {
				t.Errorf("Store with a guard equal to the key's value = %v, %v; want [true], nil", stored, err)
			}
			wantRaw(t, e.b, wasPresent, "mine")
		},
	},
	{
		name: "LeaseStoreLost",
		rule: "a lease ended by a Delete, DeleteMany, Expire or Clear of its key through another Map (another client, on a shared store), or by its expiry, stores nothing",
		run: func(t T, e *env) {
			acquire := needLeases(t, e)
			ctx := t.Context()
			other := e.other(t)
			type variant struct {
				name    string
				present bool // the key holds "v0" before the lease is taken
				do      func(m *kv.Map[string]) error
				want    string // the key's value afterwards; "" for absent
				wantTTL time.Duration
			}
			variants := []variant{
				{name: "Delete", do: func(m *kv.Map[string]) error { return m.Delete(ctx, "k") }},
				{name: "DeletePresent", present: true, do: func(m *kv.Map[string]) error { return m.Delete(ctx, "k") }},
				{name: "DeleteMany", present: true, do: func(m *kv.Map[string]) error { return m.DeleteMany(ctx, []string{"x", "k"}) }},
				{name: "Expire", present: true, want: "v0", wantTTL: time.Hour, do: func(m *kv.Map[string]) error {
					_, err := m.Expire(ctx, "k", time.Hour)
					return err
				}},
				{name: "ExpireNoTTL", present: true, want: "v0", wantTTL: backend.NoTTL, do: func(m *kv.Map[string]) error {
					_, err := m.Expire(ctx, "k", kv.NoTTL)
					return err
				}},
				{name: "Clear", do: func(m *kv.Map[string]) error { return m.Clear(ctx) }},
				{name: "ClearPresent", present: true, do: func(m *kv.Map[string]) error { return m.Clear(ctx) }},
			}
			for _, v := range variants {
				ns := e.ns("lost")
				newMap[string](t, e, ns)
				key := ns + ":k"
				if v.present {
					mustMSet(t, e.b, key, "v0", 2*time.Hour)
				}
				held, l := mustAcquire(t, acquire, []string{key}, time.Minute)
				if !held[0] {
					t.Fatalf("%s: AcquireLeases not taken", v.name)
				}
				releaseAtEnd(t, l)
				m := openMap[string](t, e, other, ns)
				if err := v.do(m); err != nil {
					t.Fatalf("%s through another Map: %v", v.name, err)
				}
				stored, err := l.Store(ctx, []backend.GuardedEntry{guarded(key, "stale", backend.NoTTL, v.present, "v0")})
				if err != nil || !slices.Equal(stored, []bool{false}) {
					t.Errorf("Store after %s by another client = %v, %v; want [false], nil", v.name, stored, err)
				}
				if v.want == "" {
					wantRawMissing(t, e.b, key)
					continue
				}
				wantRaw(t, e.b, key, v.want)
				ttl, ok, err := e.b.TTL(ctx, key)
				switch {
				case err != nil || !ok:
					t.Errorf("%s: TTL = %v, %v, %v", v.name, ttl, ok, err)
				case v.wantTTL == backend.NoTTL && ttl != backend.NoTTL:
					t.Errorf("%s: TTL = %v; want NoTTL (Store must not have undone it)", v.name, ttl)
				case v.wantTTL != backend.NoTTL && !within(ttl, v.wantTTL, e.ttlSlack()):
					t.Errorf("%s: TTL = %v; want about %v (Store must not have undone it)", v.name, ttl, v.wantTTL)
				}
			}

			// Expiry.
			ns := e.ns("lost")
			newMap[string](t, e, ns)
			key := ns + ":expiring"
			d := e.shortTTL()
			held, l := mustAcquire(t, acquire, []string{key}, d)
			if !held[0] {
				t.Fatalf("AcquireLeases not taken")
			}
			free := func() bool {
				held, l2 := mustAcquire(t, acquire, []string{key}, time.Minute)
				if l2 != nil {
					// Released at once: the first owner's lease stays lost.
					if err := l2.Release(ctx); err != nil {
						t.Errorf("Release: %v", err)
					}
				}
				return held[0]
			}
			if !e.pass(2*d, free) {
				t.Fatalf("a lease of %v was still held after %v", d, 2*d)
			}
			stored, err := l.Store(ctx, []backend.GuardedEntry{guarded(key, "late", backend.NoTTL, false, "")})
			if err != nil || !slices.Equal(stored, []bool{false}) {
				t.Errorf("Store after the lease expired = %v, %v; want [false], nil", stored, err)
			}
			wantRawMissing(t, e.b, key)
		},
	},
	{
		name: "LeaseStoreTTL",
		rule: "Lease.Store writes the entry's TTL as MSet does (NoTTL clears an old expiry, a positive TTL is kept, 0 is refused, writing nothing)",
		run: func(t T, e *env) {
			acquire := needLeases(t, e)
			ctx := t.Context()
			ns := e.ns("storettl")
			newMap[string](t, e, ns)
			forever, hour := ns+":forever", ns+":hour"
			mustMSet(t, e.b, forever, "old", time.Hour)
			_, l := mustAcquire(t, acquire, []string{forever, hour, ns + ":zero"}, time.Minute)
			releaseAtEnd(t, l)
			// TTL 0 is refused, and nothing is written.
			_, err := l.Store(ctx, []backend.GuardedEntry{
				guarded(hour, "h", time.Hour, false, ""),
				guarded(ns+":zero", "z", 0, false, ""),
			})
			if !errors.Is(err, kv.ErrInvalidTTL) {
				t.Errorf("Store with TTL 0 = %v; want ErrInvalidTTL", err)
			}
			wantRawMissing(t, e.b, hour)
			if _, err := l.Store(ctx, []backend.GuardedEntry{guarded("", "e", time.Hour, false, "")}); !errors.Is(err, kv.ErrEmptyKey) {
				t.Errorf("Store with an empty key = %v; want ErrEmptyKey", err)
			}
			stored, err := l.Store(ctx, []backend.GuardedEntry{
				guarded(forever, "f", backend.NoTTL, true, "old"),
				guarded(hour, "h", time.Hour, false, ""),
			})
			if err != nil || !slices.Equal(stored, []bool{true, true}) {
				t.Fatalf("Store = %v, %v; want [true true], nil", stored, err)
			}
			if ttl, ok, err := e.b.TTL(ctx, forever); err != nil || !ok || ttl != backend.NoTTL {
				t.Errorf("TTL after Store with NoTTL over a key that expired = %v, %v, %v; want NoTTL", ttl, ok, err)
			}
			if ttl, ok, err := e.b.TTL(ctx, hour); err != nil || !ok || !within(ttl, time.Hour, e.ttlSlack()) {
				t.Errorf("TTL after Store with an hour = %v, %v, %v; want about an hour", ttl, ok, err)
			}

			// Through the namespace layer, as a Map stacks it: keys of the
			// namespace.
			nsb, err := namespace.New(e.b, ns)
			if err != nil {
				t.Fatalf("%v", err)
			}
			const def = 30 * time.Minute
			stack := backend.CapabilitiesOf(nsb).AcquireLeases
			if stack == nil {
				t.Fatalf("the namespace layer hides AcquireLeases")
			}
			held, sl, err := stack(ctx, []string{"dflt"}, time.Minute)
			if err != nil || !slices.Equal(held, []bool{true}) {
				t.Fatalf("AcquireLeases through the layers = %v, %v", held, err)
			}
			releaseAtEnd(t, sl)
			if held, _ := mustAcquire(t, acquire, []string{ns + ":dflt"}, time.Minute); held[0] {
				t.Errorf("the layers' lease of dflt is not the store's lease of %s:dflt", ns)
			}
			stored, err = sl.Store(ctx, []backend.GuardedEntry{guarded("dflt", "d", def, false, "")})
			if err != nil || !slices.Equal(stored, []bool{true}) {
				t.Fatalf("Store through the layers = %v, %v; want [true], nil", stored, err)
			}
			wantRaw(t, e.b, ns+":dflt", "d")
			if ttl, ok, err := e.b.TTL(ctx, ns+":dflt"); err != nil || !ok || !within(ttl, def, e.ttlSlack()) {
				t.Errorf("TTL after Store through the namespace layer = %v, %v, %v; want about %v", ttl, ok, err, def)
			}
		},
	},
	{
		name: "LeaseStoreKeysWithBraces",
		rule: "leases, Lease.Store, and the Delete and Expire that end leases work for keys holding braces (on a cluster a lease and its key share a slot)",
		run: func(t T, e *env) {
			acquire := needLeases(t, e)
			ctx := t.Context()
			ns := e.ns("braces")
			m := newMap[string](t, e, ns)
			names := []string{"a{b}c", "{x}y", "}{", "{}", "{", "}", "plain", "{" + ns + "}"}
			keys := make([]string, len(names))
			entries := make([]backend.GuardedEntry, len(names))
			for i, n := range names {
				keys[i] = ns + ":" + n
				entries[i] = guarded(keys[i], "v"+n, backend.NoTTL, false, "")
			}
			held, l := mustAcquire(t, acquire, keys, time.Minute)
			if slices.Contains(held, false) {
				t.Fatalf("AcquireLeases = %v; want all taken", held)
			}
			releaseAtEnd(t, l)
			if err := l.Renew(ctx, 2*time.Minute); err != nil {
				t.Fatalf("Renew: %v", err)
			}
			stored, err := l.Store(ctx, entries)
			if err != nil || slices.Contains(stored, false) {
				t.Fatalf("Store = %v, %v; want all stored", stored, err)
			}
			for i, n := range names {
				wantRaw(t, e.b, keys[i], "v"+n)
			}
			// Leases again, then a Delete and an Expire of each half end them.
			_, l2 := mustAcquire(t, acquire, keys, time.Minute)
			releaseAtEnd(t, l2)
			if err := m.DeleteMany(ctx, names[:4]); err != nil {
				t.Fatalf("DeleteMany: %v", err)
			}
			for _, n := range names[4:] {
				if _, err := m.Expire(ctx, n, time.Hour); err != nil {
					t.Fatalf("Expire(%q): %v", n, err)
				}
			}
			for i := range entries {
				entries[i].PrevFound, entries[i].Prev = true, []byte("v"+names[i])
			}
			stored, err = l2.Store(ctx, entries)
			if err != nil || slices.Contains(stored, true) {
				t.Errorf("Store after Delete and Expire = %v, %v; want none stored", stored, err)
			}
			if err := l2.Release(ctx); err != nil {
				t.Errorf("Release: %v", err)
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
	acquire := backend.CapabilitiesOf(e.b).AcquireLeases
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
// Map found a key's lease taken and is waiting for another's load. Its
// namespace views (a bbolt bucket) are watched too.
type leaseWatch struct {
	backend.Wrapper
	caps    backend.Capabilities
	once    *sync.Once
	refused chan struct{}
}

func watchLeases(b backend.Backend) *leaseWatch {
	return watchLeasesOf(b, &sync.Once{}, make(chan struct{}))
}

func watchLeasesOf(b backend.Backend, once *sync.Once, refused chan struct{}) *leaseWatch {
	w := &leaseWatch{Wrapper: backend.Wrapper{Backend: b}, once: once, refused: refused, caps: backend.CapabilitiesOf(b)}
	if a := w.caps.AcquireLeases; a != nil {
		w.caps.AcquireLeases = func(ctx context.Context, keys []string, d time.Duration) ([]bool, backend.Lease, error) {
			held, l, err := a(ctx, keys, d)
			if err == nil && slices.Contains(held, false) {
				w.once.Do(func() { close(w.refused) })
			}
			return held, l, err
		}
	}
	if ns := w.caps.Namespace; ns != nil {
		w.caps.Namespace = func(name string) (backend.Backend, error) {
			v, err := ns(name)
			if err != nil {
				return nil, err
			}
			return watchLeasesOf(v, once, refused), nil
		}
	}
	return w
}

// Capabilities implements backend.Capable: the store's, leases watched.
func (w *leaseWatch) Capabilities() backend.Capabilities { return w.caps }

// Optimizations implements backend.Optimizer: the store's.
func (w *leaseWatch) Optimizations() backend.Optimizations { return backend.OptimizationsOf(w.Backend) }

// guarded returns the GuardedEntry of key with value and ttl, read before
// loading as prev when found.
func guarded(key, value string, ttl time.Duration, found bool, prev string) backend.GuardedEntry {
	g := backend.GuardedEntry{Entry: backend.Entry{Key: key, Value: []byte(value), TTL: ttl}, PrevFound: found}
	if found {
		g.Prev = []byte(prev)
	}
	return g
}

// mustMSet writes one backend key.
func mustMSet(t T, b backend.Backend, key, value string, ttl time.Duration) {
	t.Helper()
	if err := b.MSet(t.Context(), []backend.Entry{{Key: key, Value: []byte(value), TTL: ttl}}); err != nil {
		t.Fatalf("MSet(%q): %v", key, err)
	}
}

// wantRaw checks that backend key holds want.
func wantRaw(t T, b backend.Backend, key, want string) {
	t.Helper()
	v, err := b.Get(t.Context(), key)
	if err != nil || !v.Found || string(v.Bytes) != want {
		t.Errorf("Get(%q) = %q, %v, %v; want %q", key, v.Bytes, v.Found, err, want)
	}
}

// wantRawMissing checks that backend key is absent.
func wantRawMissing(t T, b backend.Backend, key string) {
	t.Helper()
	v, err := b.Get(t.Context(), key)
	if err != nil || v.Found {
		t.Errorf("Get(%q) = %q, %v, %v; want absent", key, v.Bytes, v.Found, err)
	}
}

// other returns another handle on the case's store, closed when the case
// ends: a second client of a shared store (Harness.Shared), else the case's
// own Backend, which the other Maps of a case share.
func (e *env) other(t T) backend.Backend {
	t.Helper()
	if !e.h.Shared {
		return e.b
	}
	s := e.h.New(t)
	t.Cleanup(func() {
		if err := s.Backend.Close(); err != nil && !errors.Is(err, backend.ErrClosed) {
			t.Errorf("cleanup: Close: %v", err)
		}
	})
	return s.Backend
}
