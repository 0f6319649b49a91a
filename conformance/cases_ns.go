package conformance

import (
	"errors"
	"maps"
	"slices"

	"github.com/kvmap/kv"
)

var namespaceCases = []testCase{
	{
		name: "NamespaceRefused",
		rule: "an empty namespace, or one holding ':', is refused by New with ErrInvalidNamespace",
		run: func(t T, e *env) {
			for _, ns := range []string{"", "a:b", ":", "trailing:"} {
				if _, err := kv.New[string](e.b, ns, e.opts()...); !errors.Is(err, kv.ErrInvalidNamespace) {
					t.Errorf("kv.New(%q) error = %v; want ErrInvalidNamespace", ns, err)
				}
			}
		},
	},
	{
		name: "NamespaceSharedPrefix",
		rule: "namespaces that share a prefix (a, ab, a_b) see only their own keys in every bulk call, and Clear of one leaves the others",
		run: func(t T, e *env) {
			isolation(t, e, []string{"a", "ab", "a_b", "a-"})
		},
	},
	{
		name: "NamespaceGlob",
		rule: "namespaces holding glob characters (a*, a?, a[1], a\\) match only themselves, never other namespaces",
		run: func(t T, e *env) {
			isolation(t, e, []string{"a", "a*", "a?", "a[1]", "a1", "a\\", "a\\*", "a^", "[a]"})
		},
	},
	{
		name: "ClearOwnNamespace",
		rule: "Clear deletes every key of its namespace and nothing else",
		run: func(t T, e *env) {
			a := newMap[string](t, e, e.ns("clear"))
			b := newMap[string](t, e, e.ns("keep"))
			fill(t, a, 250)
			fill(t, b, 30)
			if err := a.Clear(t.Context()); err != nil {
				t.Fatalf("Clear: %v", err)
			}
			if n := mustSize(t, a); n != 0 {
				t.Errorf("Size after Clear = %d; want 0", n)
			}
			if n := mustSize(t, b); n != 30 {
				t.Errorf("other namespace Size after Clear = %d; want 30", n)
			}
			if err := a.Clear(t.Context()); err != nil {
				t.Errorf("Clear of an empty namespace = %v; want nil", err)
			}
		},
	},
}

// isolation writes a different key set into each namespace (made unique by a
// shared token placed first) and checks that each sees only its own.
func isolation(t T, e *env, suffixes []string) {
	t.Helper()
	token := e.ns("")
	ms := make([]*kv.Map[string], len(suffixes))
	want := make([]map[string]string, len(suffixes))
	for i, s := range suffixes {
		ms[i] = newMap[string](t, e, token+s)
		want[i] = map[string]string{}
		for j := range i + 2 {
			k := keyN(j)
			if j%2 == 1 {
				k = "x:" + k // keys may hold ':' without leaking
			}
			want[i][k] = s + "/" + k
			mustSet(t, ms[i], k, want[i][k])
		}
	}
	for i, m := range ms {
		ns := m.Namespace()
		if got := arrayOf(t, m); !maps.Equal(got, want[i]) {
			t.Errorf("namespace %q: ToArray = %v; want %v", ns, got, want[i])
		}
		if got, wantKeys := sorted(keysOf(t, m)), sorted(slices.Collect(maps.Keys(want[i]))); !slices.Equal(got, wantKeys) {
			t.Errorf("namespace %q: Keys = %q; want %q", ns, got, wantKeys)
		}
		if n := mustSize(t, m); n != len(want[i]) {
			t.Errorf("namespace %q: Size = %d; want %d", ns, n, len(want[i]))
		}
	}
	// Clear the namespaces one by one; the others keep their keys.
	for i, m := range ms {
		if err := m.Clear(t.Context()); err != nil {
			t.Fatalf("Clear(%q): %v", m.Namespace(), err)
		}
		for j := i + 1; j < len(ms); j++ {
			if n := mustSize(t, ms[j]); n != len(want[j]) {
				t.Errorf("after Clear(%q), namespace %q has Size %d; want %d", m.Namespace(), ms[j].Namespace(), n, len(want[j]))
			}
		}
	}
}
