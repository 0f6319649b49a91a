package conformance

import (
	"slices"
	"sync"
	"time"

	"github.com/kvmap/kv/backend"
)

// watchCases check Capabilities.Watch, the change reports a near cache
// relies on. They are skipped on a store without it, and on one whose watch
// never goes live (miniredis has no CLIENT TRACKING).
var watchCases = []testCase{
	{
		name: "WatchReportsChanges",
		rule: "once live, a watch reports every write, delete and expiry change of a key under its prefix, no key outside it, and nothing after stop; a store whose reports are asynchronous (ChangeLive.At set) reports each change before a ChangeSynced whose At follows it",
		run: func(t T, e *env) {
			watch := backend.CapabilitiesOf(e.b).Watch
			if watch == nil {
				t.Skipf("the store reports no changes")
			}
			ns := e.ns("watch")
			other := e.ns("other")
			newMap[string](t, e, ns) // clears the namespaces when the case ends
			newMap[string](t, e, other)
			var mu sync.Mutex
			var got []backend.Change
			stop, err := watch(t.Context(), ns+":", func(c backend.Change) {
				mu.Lock()
				got = append(got, backend.Change{Kind: c.Kind, Keys: slices.Clone(c.Keys)})
				mu.Unlock()
			})
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			defer stop()
			// seen reports whether a report matching f has come since from.
			seen := func(from int, f func(backend.Change) bool) (int, bool) {
				mu.Lock()
				defer mu.Unlock()
				for _, c := range got[from:] {
					if f(c) {
						return len(got), true
					}
				}
				return len(got), false
			}
			await := func(what string, from int, f func(backend.Change) bool) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for {
					if _, ok := seen(from, f); ok {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("no report of %s within 10s", what)
					}
					time.Sleep(time.Millisecond) // polling, bounded by the deadline
				}
			}
			// The first report says whether the watch is live; a store that
			// cannot watch (a server without CLIENT TRACKING) reports
			// ChangeLost.
			await("the watch's first report", 0, func(backend.Change) bool { return true })
			mu.Lock()
			first := got[0].Kind
			mu.Unlock()
			if first != backend.ChangeLive {
				t.Skipf("the watch's first report is %v, not ChangeLive: the store cannot report changes now", first)
			}
			mu.Lock()
			async := !got[0].At.IsZero()
			mu.Unlock()
			ctx := t.Context()
			reports := func(key string) func(backend.Change) bool {
				return func(c backend.Change) bool {
					return c.Kind == backend.ChangeAll || (c.Kind == backend.ChangeKeys && slices.Contains(c.Keys, key))
				}
			}
			steps := []struct {
				what string
				key  string
				do   func() error
			}{
				{"a write", ns + ":a", func() error {
					return e.b.MSet(ctx, []backend.Entry{{Key: ns + ":a", Value: []byte("v"), TTL: backend.NoTTL}})
				}},
				{"an expiry change", ns + ":a", func() error { _, err := e.b.Expire(ctx, ns+":a", time.Hour); return err }},
				{"a delete", ns + ":a", func() error { return e.b.Delete(ctx, []string{ns + ":a"}) }},
			}
			for _, s := range steps {
				from, _ := seen(0, func(backend.Change) bool { return false })
				if err := s.do(); err != nil {
					t.Fatalf("%s: %v", s.what, err)
				}
				done := time.Now()
				if async {
					// A store whose reports are asynchronous proves, with a
					// ChangeSynced whose At is after the change returned,
					// that its report has come before.
					await("a ChangeSynced after "+s.what, from, func(c backend.Change) bool {
						return c.Kind == backend.ChangeSynced && c.At.After(done)
					})
					mu.Lock()
					i := slices.IndexFunc(got[from:], func(c backend.Change) bool {
						return c.Kind == backend.ChangeSynced && c.At.After(done)
					})
					ok := slices.ContainsFunc(got[from:from+i], reports(s.key))
					mu.Unlock()
					if !ok {
						t.Errorf("%s of %s was not reported before a ChangeSynced whose At is after it returned", s.what, s.key)
					}
				}
				await(s.what+" of "+s.key, from, reports(s.key))
			}
			// A write outside the prefix, then one inside: reports come in
			// order, so the outside key would show by the time the inside
			// one does.
			from, _ := seen(0, func(backend.Change) bool { return false })
			for _, k := range []string{other + ":x", ns + ":b"} {
				if err := e.b.MSet(ctx, []backend.Entry{{Key: k, Value: []byte("v"), TTL: backend.NoTTL}}); err != nil {
					t.Fatalf("MSet(%s): %v", k, err)
				}
			}
			await("the write of "+ns+":b", from, reports(ns+":b"))
			if _, ok := seen(from, func(c backend.Change) bool { return slices.Contains(c.Keys, other+":x") }); ok {
				t.Errorf("a key outside the prefix was reported")
			}
			stop()
			after, _ := seen(0, func(backend.Change) bool { return false })
			if err := e.b.MSet(ctx, []backend.Entry{{Key: ns + ":c", Value: []byte("v"), TTL: backend.NoTTL}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			if n, _ := seen(0, func(backend.Change) bool { return false }); n != after {
				t.Errorf("%d reports after stop returned; want none", n-after)
			}
		},
	},
}
