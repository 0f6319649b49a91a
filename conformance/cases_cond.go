package conformance

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/nearcache"
)

// condCases check Capabilities.SetIf and the Map's conditional writes built
// on it (SetIfAbsent, CompareAndSwap, Update). They are skipped on a store
// without SetIf, but for CondUnsupported, which every store runs.
var condCases = []testCase{
	{
		name: "CondSetIfAbsent",
		rule: "SetIfAbsent writes an absent key with the Map's TTL and reports true; on a present key it reports false and changes neither value nor TTL; SetIfAbsentWithTTL gives its own TTL (NoTTL: none)",
		run: func(t T, e *env) {
			needSetIf(t, e)
			ctx := t.Context()
			m := newMap[string](t, e, e.ns("cond"), kv.WithTTL(time.Hour))
			if ok, err := m.SetIfAbsent(ctx, "k", "first"); err != nil || !ok {
				t.Fatalf("SetIfAbsent(absent k) = %v, %v; want true, nil", ok, err)
			}
			wantGet(t, m, "k", "first")
			wantTTL(t, e, m, "k", time.Hour)
			mustSetTTL(t, m, "k", "first", 2*time.Hour)
			if ok, err := m.SetIfAbsent(ctx, "k", "second"); err != nil || ok {
				t.Fatalf("SetIfAbsent(present k) = %v, %v; want false, nil", ok, err)
			}
			wantGet(t, m, "k", "first")
			wantTTL(t, e, m, "k", 2*time.Hour)
			if ok, err := m.SetIfAbsentWithTTL(ctx, "forever", "v", kv.NoTTL); err != nil || !ok {
				t.Fatalf("SetIfAbsentWithTTL(NoTTL) = %v, %v; want true, nil", ok, err)
			}
			wantTTL(t, e, m, "forever", kv.NoTTL)
			for _, ttl := range []time.Duration{0, -2, kv.MaxTTL + time.Millisecond} {
				if ok, err := m.SetIfAbsentWithTTL(ctx, "bad", "v", ttl); ok || !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("SetIfAbsentWithTTL(%v) = %v, %v; want false, ErrInvalidTTL", ttl, ok, err)
				}
			}
			if ok, err := m.SetIfAbsent(ctx, "", "v"); ok || !errors.Is(err, kv.ErrEmptyKey) {
				t.Errorf("SetIfAbsent(empty key) = %v, %v; want false, ErrEmptyKey", ok, err)
			}
			wantMissing(t, m, "bad")
			if n := mustSize(t, m); n != 2 {
				t.Errorf("Size = %d; want 2 (k, forever)", n)
			}
		},
	},
	{
		name: "CondCompareAndSwap",
		rule: "CompareAndSwap writes only when the stored bytes equal the encoding of old, giving the new value the Map's TTL or its own (NoTTL clears the expiry); a missing key, another value, or the same value encoded otherwise report false and change nothing",
		run: func(t T, e *env) {
			needSetIf(t, e)
			ctx := t.Context()
			ns := e.ns("cas")
			m := newMap[string](t, e, ns, kv.WithTTL(time.Hour))
			if ok, err := m.CompareAndSwap(ctx, "missing", "", "v"); err != nil || ok {
				t.Fatalf("CompareAndSwap(missing, \"\") = %v, %v; want false, nil (a missing key is not the empty value)", ok, err)
			}
			wantMissing(t, m, "missing")
			mustSetTTL(t, m, "k", "a", 2*time.Hour)
			if ok, err := m.CompareAndSwap(ctx, "k", "b", "c"); err != nil || ok {
				t.Fatalf("CompareAndSwap(k, b, c) on a = %v, %v; want false, nil", ok, err)
			}
			wantGet(t, m, "k", "a")
			wantTTL(t, e, m, "k", 2*time.Hour)
			if ok, err := m.CompareAndSwap(ctx, "k", "a", "b"); err != nil || !ok {
				t.Fatalf("CompareAndSwap(k, a, b) on a = %v, %v; want true, nil", ok, err)
			}
			wantGet(t, m, "k", "b")
			wantTTL(t, e, m, "k", time.Hour)
			if ok, err := m.CompareAndSwapWithTTL(ctx, "k", "b", "", kv.NoTTL); err != nil || !ok {
				t.Fatalf("CompareAndSwapWithTTL(k, b, \"\", NoTTL) = %v, %v; want true, nil", ok, err)
			}
			wantGet(t, m, "k", "")
			wantTTL(t, e, m, "k", kv.NoTTL)
			if ok, err := m.CompareAndSwap(ctx, "k", "", "after-empty"); err != nil || !ok {
				t.Fatalf("CompareAndSwap(k, \"\", x) on the empty value = %v, %v; want true, nil", ok, err)
			}
			if ok, err := m.CompareAndSwapWithTTL(ctx, "k", "after-empty", "x", 0); ok || !errors.Is(err, kv.ErrInvalidTTL) {
				t.Errorf("CompareAndSwapWithTTL(TTL 0) = %v, %v; want false, ErrInvalidTTL", ok, err)
			}
			wantGet(t, m, "k", "after-empty")

			// Equal values, other bytes: JSON written by another program.
			j := newMap[map[string]int](t, e, ns+"json")
			if err := e.b.MSet(ctx, []backend.Entry{{Key: ns + "json:doc", Value: []byte(`{ "a" : 1 }`), TTL: time.Hour}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			if ok, err := j.CompareAndSwap(ctx, "doc", map[string]int{"a": 1}, map[string]int{"a": 2}); err != nil || ok {
				t.Errorf("CompareAndSwap(doc) against an equal value encoded otherwise = %v, %v; want false, nil", ok, err)
			}
			got, updated, err := j.Update(ctx, "doc", func(cur map[string]int, found bool) (map[string]int, bool, error) {
				return map[string]int{"a": cur["a"] + 1}, found, nil
			})
			if err != nil || !updated || got["a"] != 2 {
				t.Errorf("Update(doc) = %v, %v, %v; want map[a:2], true, nil (Update compares the bytes it read)", got, updated, err)
			}
		},
	},
	{
		name: "CondExpiredIsAbsent",
		rule: "a key whose TTL has passed is absent: SetIfAbsent writes it, CompareAndSwap against its old value reports false",
		run: func(t T, e *env) {
			needSetIf(t, e)
			ctx := t.Context()
			m := newMap[string](t, e, e.ns("condexp"), kv.WithTTL(kv.NoTTL))
			ttl := e.shortTTL()
			mustSetTTL(t, m, "a", "old", ttl)
			mustSetTTL(t, m, "b", "old", ttl)
			if !e.pass(ttl, func() bool { return isMissing(t, m, "a") && isMissing(t, m, "b") }) {
				t.Fatalf("keys still present after their TTL of %v", ttl)
			}
			if ok, err := m.CompareAndSwap(ctx, "b", "old", "new"); err != nil || ok {
				t.Errorf("CompareAndSwap(expired b, old, new) = %v, %v; want false, nil", ok, err)
			}
			wantMissing(t, m, "b")
			if ok, err := m.SetIfAbsent(ctx, "a", "new"); err != nil || !ok {
				t.Errorf("SetIfAbsent(expired a) = %v, %v; want true, nil", ok, err)
			}
			wantGet(t, m, "a", "new")
			wantTTL(t, e, m, "a", kv.NoTTL)
		},
	},
	{
		name: "CondUpdate",
		rule: "Update gives fn the current value (found false when absent), writes what it returns with the Map's TTL and returns it; when fn declines or fails nothing is written and the current value (or fn's error) comes back",
		run: func(t T, e *env) {
			needSetIf(t, e)
			ctx := t.Context()
			m := newMap[int](t, e, e.ns("update"), kv.WithTTL(time.Hour))
			incr := func(cur int, found bool) (int, bool, error) { return cur + 1, true, nil }
			for want := 1; want <= 3; want++ {
				got, ok, err := m.Update(ctx, "n", incr)
				if err != nil || !ok || got != want {
					t.Fatalf("Update(n) #%d = %d, %v, %v; want %d, true, nil", want, got, ok, err, want)
				}
			}
			wantGet(t, m, "n", 3)
			wantTTL(t, e, m, "n", time.Hour)
			got, ok, err := m.Update(ctx, "n", func(cur int, found bool) (int, bool, error) {
				if !found || cur != 3 {
					t.Errorf("fn got %d, %v; want 3, true", cur, found)
				}
				return 100, false, nil
			})
			if err != nil || ok || got != 3 {
				t.Errorf("Update(n) declined = %d, %v, %v; want 3, false, nil", got, ok, err)
			}
			boom := errors.New("boom")
			if _, ok, err := m.Update(ctx, "n", func(int, bool) (int, bool, error) { return 7, true, boom }); ok || !errors.Is(err, boom) {
				t.Errorf("Update(n) failing = %v, %v; want false, an error matching fn's", ok, err)
			}
			wantGet(t, m, "n", 3)
			got, ok, err = m.Update(ctx, "absent", func(cur int, found bool) (int, bool, error) {
				if found {
					t.Errorf("fn found the absent key holding %d", cur)
				}
				return 0, false, nil
			})
			if err != nil || ok || got != 0 {
				t.Errorf("Update(absent) declined = %d, %v, %v; want 0, false, nil", got, ok, err)
			}
			wantMissing(t, m, "absent")
			if _, _, err := m.Update(ctx, "n", nil); !errors.Is(err, kv.ErrInvalidOption) {
				t.Errorf("Update(nil fn) = %v; want ErrInvalidOption", err)
			}
			if err := e.b.MSet(ctx, []backend.Entry{{Key: m.Namespace() + ":bad", Value: []byte("not a number"), TTL: time.Hour}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			var de *kv.DecodeError
			if _, _, err := m.Update(ctx, "bad", incr); !errors.As(err, &de) {
				t.Errorf("Update(undecodable) = %v; want a *DecodeError", err)
			}
		},
	},
	{
		name: "CondConcurrent",
		rule: "of 8 Maps racing SetIfAbsent on one absent key exactly one reports true and its value is stored; 8 Maps each doing 10 Updates of one counter lose none (80), and their CompareAndSwaps from one value let one through",
		run: func(t T, e *env) {
			needSetIf(t, e)
			ctx := t.Context()
			ns := e.ns("condrace")
			const maps, rounds = 8, 10
			ms := make([]*kv.Map[string], maps)
			for i := range ms {
				ms[i] = openMap[string](t, e, e.other(t), ns)
			}
			t.Cleanup(func() {
				if err := ms[0].Clear(context.WithoutCancel(t.Context())); err != nil {
					t.Errorf("cleanup: Clear: %v", err)
				}
			})
			var wg sync.WaitGroup
			won := make([]bool, maps)
			errs := make([]error, maps)
			for i, m := range ms {
				wg.Go(func() { won[i], errs[i] = m.SetIfAbsent(ctx, "once", strconv.Itoa(i)) })
			}
			wg.Wait()
			winner := -1
			for i := range ms {
				if errs[i] != nil {
					t.Fatalf("SetIfAbsent #%d: %v", i, errs[i])
				}
				if won[i] {
					if winner >= 0 {
						t.Fatalf("SetIfAbsent: both #%d and #%d report true", winner, i)
					}
					winner = i
				}
			}
			if winner < 0 {
				t.Fatalf("SetIfAbsent: no caller reports true")
			}
			wantGet(t, ms[0], "once", strconv.Itoa(winner))

			for i, m := range ms {
				wg.Go(func() {
					for range rounds {
						_, ok, err := m.Update(ctx, "counter", func(cur string, found bool) (string, bool, error) {
							n, _ := strconv.Atoi(cur)
							return strconv.Itoa(n + 1), true, nil
						})
						if err == nil && !ok {
							err = errors.New("update reported nothing written")
						}
						if err != nil {
							errs[i] = err
							return
						}
					}
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("Update: %v", err)
			}
			wantGet(t, ms[0], "counter", strconv.Itoa(maps*rounds))

			for i, m := range ms {
				wg.Go(func() {
					won[i], errs[i] = m.CompareAndSwap(ctx, "counter", strconv.Itoa(maps*rounds), "swapped"+strconv.Itoa(i))
				})
			}
			wg.Wait()
			n := 0
			for i := range ms {
				if errs[i] != nil {
					t.Fatalf("CompareAndSwap #%d: %v", i, errs[i])
				}
				if won[i] {
					n++
					winner = i
				}
			}
			if n != 1 {
				t.Fatalf("CompareAndSwap from one value: %d callers report true; want 1", n)
			}
			wantGet(t, ms[0], "counter", "swapped"+strconv.Itoa(winner))
		},
	},
	{
		name: "CondBackend",
		rule: "Capabilities.SetIf checks its entry as MSet does (empty key, TTL 0: nothing written) and tells the empty value from a missing key both ways",
		run: func(t T, e *env) {
			setIf := needSetIf(t, e)
			ctx := t.Context()
			ns := e.ns("condb") + ":"
			empty, v := ns+"empty", ns+"v"
			e.cleanupKeys(empty, v)
			entry := func(key string, val string, prevFound bool, prev string) backend.GuardedEntry {
				return backend.GuardedEntry{Entry: backend.Entry{Key: key, Value: []byte(val), TTL: time.Hour}, PrevFound: prevFound, Prev: []byte(prev)}
			}
			if ok, err := setIf(ctx, entry("", "x", false, "")); ok || !errors.Is(err, backend.ErrEmptyKey) {
				t.Errorf("SetIf(empty key) = %v, %v; want false, ErrEmptyKey", ok, err)
			}
			zero := entry(v, "x", false, "")
			zero.TTL = 0
			if ok, err := setIf(ctx, zero); ok || !errors.Is(err, backend.ErrInvalidTTL) {
				t.Errorf("SetIf(TTL 0) = %v, %v; want false, ErrInvalidTTL", ok, err)
			}
			if got, err := e.b.Get(ctx, v); err != nil || got.Found {
				t.Errorf("Get after refused SetIfs = %q, %v, %v; want absent", got.Bytes, got.Found, err)
			}
			if err := e.b.MSet(ctx, []backend.Entry{{Key: empty, Value: nil, TTL: time.Hour}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			steps := []struct {
				name string
				e    backend.GuardedEntry
				want bool
			}{
				{"absent guard on the empty value", entry(empty, "x", false, ""), false},
				{"empty guard on a missing key", entry(v, "x", true, ""), false},
				{"empty guard on the empty value", entry(empty, "y", true, ""), true},
				{"value guard on its value", entry(empty, "z", true, "y"), true},
				{"absent guard on a missing key", entry(v, "w", false, ""), true},
				{"stale guard", entry(v, "q", true, "x"), false},
			}
			for _, s := range steps {
				if ok, err := setIf(ctx, s.e); err != nil || ok != s.want {
					t.Errorf("SetIf(%s) = %v, %v; want %v, nil", s.name, ok, err, s.want)
				}
			}
			vals, err := e.b.MGet(ctx, []string{empty, v}, false)
			if err != nil || string(vals[0].Bytes) != "z" || string(vals[1].Bytes) != "w" {
				t.Errorf("MGet = %+v, %v; want z, w", vals, err)
			}
		},
	},
	{
		name: "CondNearCache",
		rule: "a conditional write through a Map is seen by its next read at once, with a near cache or stale serving holding the old value",
		run: func(t T, e *env) {
			needSetIf(t, e)
			if backend.CapabilitiesOf(e.b).Watch == nil {
				t.Skipf("the store reports no changes: no near cache")
			}
			ctx := t.Context()
			for _, opt := range []kv.Option{kv.WithNearCache(nearcache.Options{}), kv.WithStaleWhileRevalidate(time.Minute, 100)} {
				m := newMap[string](t, e, e.ns("condnear"), kv.WithTTL(time.Hour), opt)
				mustSet(t, m, "k", "a")
				wantGet(t, m, "k", "a")
				wantGet(t, m, "k", "a") // served locally now, where the Map keeps values
				if ok, err := m.CompareAndSwap(ctx, "k", "a", "b"); err != nil || !ok {
					t.Fatalf("CompareAndSwap = %v, %v; want true, nil", ok, err)
				}
				wantGet(t, m, "k", "b")
				if _, ok, err := m.Update(ctx, "k", func(cur string, _ bool) (string, bool, error) { return cur + "c", true, nil }); err != nil || !ok {
					t.Fatalf("Update = %v, %v; want true, nil", ok, err)
				}
				wantGet(t, m, "k", "bc")
				if err := m.Delete(ctx, "k"); err != nil {
					t.Fatalf("Delete: %v", err)
				}
				wantMissing(t, m, "k")
				if ok, err := m.SetIfAbsent(ctx, "k", "d"); err != nil || !ok {
					t.Fatalf("SetIfAbsent = %v, %v; want true, nil", ok, err)
				}
				wantGet(t, m, "k", "d")
			}
		},
	},
	{
		name: "CondUnsupported",
		rule: "over a store whose conditional writes a wrapper hides, SetIfAbsent, CompareAndSwap and Update fail with an error matching errors.ErrUnsupported and write nothing",
		run: func(t T, e *env) {
			ctx := t.Context()
			ns := e.ns("condnone")
			m := openMap[string](t, e, noSetIf{backend.Wrapper{Backend: e.b}}, ns)
			if ok, err := m.SetIfAbsent(ctx, "k", "v"); ok || !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("SetIfAbsent = %v, %v; want false, ErrUnsupported", ok, err)
			}
			if ok, err := m.CompareAndSwap(ctx, "k", "v", "w"); ok || !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("CompareAndSwap = %v, %v; want false, ErrUnsupported", ok, err)
			}
			called := false
			if _, ok, err := m.Update(ctx, "k", func(string, bool) (string, bool, error) { called = true; return "v", true, nil }); ok || called || !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("Update = %v, %v (fn called: %v); want false, ErrUnsupported, not called", ok, err, called)
			}
			wantMissing(t, m, "k")
		},
	},
}

// noSetIf is a Backend with every capability of the one it wraps but
// conditional writes (and namespace views, which would have them).
type noSetIf struct{ backend.Wrapper }

// Capabilities implements backend.Capable: the store's, without SetIf.
func (n noSetIf) Capabilities() backend.Capabilities {
	c := n.Wrapper.Capabilities()
	c.SetIf, c.Namespace = nil, nil
	return c
}

// needSetIf returns the store's SetIf, or skips the case.
func needSetIf(t T, e *env) func(context.Context, backend.GuardedEntry) (bool, error) {
	t.Helper()
	f := backend.CapabilitiesOf(e.b).SetIf
	if f == nil {
		t.Skipf("the store has no conditional writes (Capabilities.SetIf)")
	}
	return f
}
