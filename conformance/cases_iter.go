package conformance

import (
	"context"
	"errors"
	"slices"

	"github.com/kvmap/kv"
)

var iterCases = []testCase{
	{
		name: "BulkCalls",
		rule: "ToArray, Iterate, Keys, Values and Size report exactly the namespace's entries, without the namespace",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("bulk"))
			keys := fill(t, m, 37)
			want := map[string]string{}
			for _, k := range keys {
				want[k] = "v" + k
			}
			for name, got := range map[string]map[string]string{"ToArray": arrayOf(t, m), "Iterate": entriesOf(t, m)} {
				if len(got) != len(want) {
					t.Errorf("%s has %d entries; want %d", name, len(got), len(want))
				}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s[%q] = %q; want %q", name, k, got[k], v)
					}
				}
			}
			if got := sorted(keysOf(t, m)); !slices.Equal(got, sorted(keys)) {
				t.Errorf("Keys = %q; want %q", got, sorted(keys))
			}
			vals := valuesOf(t, m)
			slices.Sort(vals)
			wantVals := make([]string, 0, len(keys))
			for _, k := range sorted(keys) {
				wantVals = append(wantVals, "v"+k)
			}
			if !slices.Equal(vals, wantVals) {
				t.Errorf("Values = %q; want %q", vals, wantVals)
			}
			if n := mustSize(t, m); n != len(keys) {
				t.Errorf("Size = %d; want %d", n, len(keys))
			}
		},
	},
	{
		name: "EmptyNamespace",
		rule: "bulk calls on an empty namespace return nothing and no error",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("empty"))
			if n := mustSize(t, m); n != 0 {
				t.Errorf("Size = %d; want 0", n)
			}
			if k := keysOf(t, m); len(k) != 0 {
				t.Errorf("Keys = %q; want none", k)
			}
			if a := arrayOf(t, m); len(a) != 0 {
				t.Errorf("ToArray = %v; want none", a)
			}
		},
	},
	{
		name: "ManyPages",
		rule: "a namespace of more than ten pages (1,050 keys at page size 100) is iterated with every key exactly once and counted exactly",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("pages"), kv.WithPageSize(100))
			keys := fill(t, m, 1050)
			got := entriesOf(t, m)
			if len(got) != len(keys) {
				t.Errorf("Iterate yielded %d distinct keys; want %d", len(got), len(keys))
			}
			for _, k := range keys {
				if got[k] != "v"+k {
					t.Errorf("Iterate[%q] = %q; want %q", k, got[k], "v"+k)
					break
				}
			}
			ks := keysOf(t, m)
			if s := sorted(ks); !slices.Equal(s, keys) {
				t.Errorf("Keys yielded %d keys (%d distinct expected), or wrong ones", len(ks), len(keys))
			}
			if n := mustSize(t, m); n != len(keys) {
				t.Errorf("Size = %d; want %d", n, len(keys))
			}
			if a := arrayOf(t, m); len(a) != len(keys) {
				t.Errorf("ToArray has %d entries; want %d", len(a), len(keys))
			}
			if err := m.Clear(t.Context()); err != nil {
				t.Fatalf("Clear: %v", err)
			}
			if n := mustSize(t, m); n != 0 {
				t.Errorf("Size after Clear = %d; want 0", n)
			}
		},
	},
	{
		name: "WritesDuringIteration",
		rule: "keys written or deleted during a pass never make it yield a key twice, and keys left untouched are each yielded once",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("mut"), kv.WithPageSize(10))
			keys := fill(t, m, 200)
			untouched := map[string]bool{}
			for i, k := range keys {
				if i%3 != 0 {
					untouched[k] = true
				}
			}
			seen := map[string]int{}
			n := 0
			for en, err := range m.Iterate(t.Context()) {
				if err != nil {
					t.Fatalf("Iterate: %v", err)
				}
				seen[en.Key]++
				n++
				if n <= 50 {
					// Delete a key not untouched, write a new one.
					if err := m.Delete(t.Context(), keys[(n*3)%len(keys)]); err != nil {
						t.Fatalf("Delete: %v", err)
					}
					mustSet(t, m, "new"+keyN(n), "n")
				}
			}
			for k, c := range seen {
				if c > 1 {
					t.Errorf("key %q yielded %d times", k, c)
				}
			}
			for k := range untouched {
				if seen[k] != 1 {
					t.Errorf("untouched key %q yielded %d times; want 1", k, seen[k])
				}
			}
		},
	},
	{
		name: "BreakEarly",
		rule: "a loop that breaks ends the pass at once, and the iterator can be ranged over again",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("brk"), kv.WithPageSize(10))
			fill(t, m, 100)
			for range 2 {
				n := 0
				for _, err := range m.Iterate(t.Context()) {
					if err != nil {
						t.Fatalf("Iterate: %v", err)
					}
					n++
					if n == 5 {
						break
					}
				}
				if n != 5 {
					t.Errorf("loop ran %d times; want 5", n)
				}
			}
			it := m.Keys(t.Context())
			for range 2 {
				n := 0
				for range it {
					n++
				}
				if n != 100 {
					t.Errorf("a full pass of the same Keys iterator yielded %d keys; want 100", n)
				}
			}
		},
	},
	{
		name: "CancelMidIteration",
		rule: "a context cancelled mid-iteration makes the pass yield ctx.Err() once and end",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("cancel"), kv.WithPageSize(20))
			fill(t, m, 300)
			for _, which := range []string{"Iterate", "Keys", "Values"} {
				ctx, cancel := context.WithCancel(t.Context())
				n, errs, after := 0, 0, 0
				var got error
				visit := func(err error) {
					if err != nil {
						errs++
						got = err
						return
					}
					if errs > 0 {
						after++
					}
					n++
					if n == 10 {
						cancel()
					}
				}
				switch which {
				case "Iterate":
					for _, err := range m.Iterate(ctx) {
						visit(err)
					}
				case "Keys":
					for _, err := range m.Keys(ctx) {
						visit(err)
					}
				case "Values":
					for _, err := range m.Values(ctx) {
						visit(err)
					}
				}
				cancel()
				if !errors.Is(got, context.Canceled) || errs != 1 || after != 0 || n != 10 {
					t.Errorf("%s: %d entries, %d errors (last %v), %d entries after the error; want 10, 1 context.Canceled, 0", which, n, errs, got, after)
				}
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := m.ToArray(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("ToArray(cancelled) = %v; want context.Canceled", err)
			}
			if _, err := m.Size(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("Size(cancelled) = %v; want context.Canceled", err)
			}
		},
	},
	{
		name: "ScanComplete",
		rule: "a complete backend scan with a small page hint returns every key under the prefix, none outside it",
		run: func(t T, e *env) {
			ns := e.ns("scan")
			m := newMap[string](t, e, ns)
			keys := fill(t, m, 300)
			// Neighbours that share the text of the prefix but not the prefix.
			other := newMap[string](t, e, ns+"x")
			fill(t, other, 20)
			got, _ := scanAll(t, e.b, ns+":", 7)
			want := map[string]bool{}
			for _, k := range keys {
				want[ns+":"+k] = true
			}
			seen := map[string]bool{}
			for _, k := range got {
				if !want[k] {
					t.Errorf("Scan(%q) returned %q, outside the prefix", ns+":", k)
					break
				}
				seen[k] = true
			}
			if len(seen) != len(want) {
				t.Errorf("Scan(%q) returned %d distinct keys; want %d", ns+":", len(seen), len(want))
			}
		},
	},
	{
		name: "ScanPageHint",
		rule: "a store that honours the page hint splits a scan of 200 keys at hint 10 into many pages",
		skip: func(h Harness) string { return skipUnless(h.PageHint, "the store does not honour the page hint") },
		run: func(t T, e *env) {
			ns := e.ns("hint")
			m := newMap[string](t, e, ns)
			fill(t, m, 200)
			_, pages := scanAll(t, e.b, ns+":", 10)
			if pages < 5 {
				t.Errorf("Scan at hint 10 over 200 keys took %d pages; want at least 5", pages)
			}
		},
	},
	{
		name: "ScanUniquePromise",
		rule: "a store that promises scans without duplicates (Description.UniqueScan) never returns a key twice",
		run: func(t T, e *env) {
			if !e.b.Describe().UniqueScan {
				t.Skipf("the store does not promise scans without duplicates")
			}
			ns := e.ns("uniq")
			m := newMap[string](t, e, ns)
			fill(t, m, 300)
			got, _ := scanAll(t, e.b, ns+":", 7)
			seen := map[string]bool{}
			for _, k := range got {
				if seen[k] {
					t.Errorf("Scan returned %q twice, though the store promises no duplicates", k)
					return
				}
				seen[k] = true
			}
		},
	},
}

func skipUnless(ok bool, why string) string {
	if ok {
		return ""
	}
	return why
}
