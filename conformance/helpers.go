package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
)

// testCase is one row of the table.
type testCase struct {
	name string
	rule string
	// skip returns why the case does not apply to h, or "".
	skip func(h Harness) string
	run  func(t T, e *env)
	// faults makes the case run on a store from Harness.Faults, with e.faults
	// set; the case is skipped when the harness has none.
	faults bool
}

// skipReason returns why c does not apply to h, or "".
func (c testCase) skipReason(h Harness) string {
	if c.faults && h.Faults == nil {
		return "Harness.Faults is nil"
	}
	if c.skip != nil {
		return c.skip(h)
	}
	return ""
}

// newMap returns a Map over the case's store and clears its namespace when
// the case ends.
func newMap[V any](t T, e *env, ns string, opts ...kv.Option) *kv.Map[V] {
	t.Helper()
	m := openMap[V](t, e, e.b, ns, opts...)
	t.Cleanup(func() {
		// The context of the case has ended by now.
		if err := m.Clear(context.WithoutCancel(t.Context())); err != nil && !errors.Is(err, backend.ErrClosed) {
			t.Errorf("cleanup: Clear(%q): %v", ns, err)
		}
	})
	return m
}

// openMap returns a Map of namespace ns over b, closed when the case ends
// (which stops what it runs in the background: a near cache's watch).
func openMap[V any](t T, e *env, b backend.Backend, ns string, opts ...kv.Option) *kv.Map[V] {
	t.Helper()
	m, err := kv.New[V](b, ns, e.opts(opts...)...)
	if err != nil {
		t.Fatalf("kv.New(%q): %v", ns, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("cleanup: Close(%q): %v", ns, err)
		}
	})
	return m
}

func mustSet[V any](t T, m *kv.Map[V], key string, v V) {
	t.Helper()
	if err := m.Set(t.Context(), key, v); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func mustSetTTL[V any](t T, m *kv.Map[V], key string, v V, ttl time.Duration) {
	t.Helper()
	if err := m.SetWithTTL(t.Context(), key, v, ttl); err != nil {
		t.Fatalf("SetWithTTL(%q, %v): %v", key, ttl, err)
	}
}

// wantGet checks that key holds want.
func wantGet[V comparable](t T, m *kv.Map[V], key string, want V) {
	t.Helper()
	got, ok, err := m.Get(t.Context(), key)
	if err != nil || !ok || got != want {
		t.Errorf("Get(%q) = %v, %v, %v; want %v, true, nil", key, got, ok, err, want)
	}
}

// wantMissing checks that key is absent.
func wantMissing[V any](t T, m *kv.Map[V], key string) {
	t.Helper()
	got, ok, err := m.Get(t.Context(), key)
	if err != nil || ok {
		t.Errorf("Get(%q) = %v, %v, %v; want zero, false, nil", key, got, ok, err)
	}
}

// isMissing reports whether key is absent, failing the case on an error.
func isMissing[V any](t T, m *kv.Map[V], key string) bool {
	t.Helper()
	_, ok, err := m.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return !ok
}

func mustSize[V any](t T, m *kv.Map[V]) int {
	t.Helper()
	n, err := m.Size(t.Context())
	if err != nil {
		t.Fatalf("Size: %v", err)
	}
	return n
}

// keysOf returns the keys of a full Keys pass, in the order yielded.
func keysOf[V any](t T, m *kv.Map[V]) []string {
	t.Helper()
	var out []string
	for k, err := range m.Keys(t.Context()) {
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		out = append(out, k)
	}
	return out
}

// entriesOf returns the entries of a full Iterate pass as a map, failing on a
// key yielded twice.
func entriesOf[V any](t T, m *kv.Map[V]) map[string]V {
	t.Helper()
	out := map[string]V{}
	for e, err := range m.Iterate(t.Context()) {
		if err != nil {
			t.Fatalf("Iterate: %v", err)
		}
		if _, dup := out[e.Key]; dup {
			t.Errorf("Iterate yielded %q twice", e.Key)
		}
		out[e.Key] = e.Value
	}
	return out
}

func valuesOf[V any](t T, m *kv.Map[V]) []V {
	t.Helper()
	var out []V
	for v, err := range m.Values(t.Context()) {
		if err != nil {
			t.Fatalf("Values: %v", err)
		}
		out = append(out, v)
	}
	return out
}

func arrayOf[V any](t T, m *kv.Map[V]) map[string]V {
	t.Helper()
	es, err := m.ToArray(t.Context())
	if err != nil {
		t.Fatalf("ToArray: %v", err)
	}
	out := map[string]V{}
	for _, e := range es {
		if _, dup := out[e.Key]; dup {
			t.Errorf("ToArray returned %q twice", e.Key)
		}
		out[e.Key] = e.Value
	}
	return out
}

// sorted returns a sorted copy of keys.
func sorted(keys []string) []string {
	out := slices.Clone(keys)
	slices.Sort(out)
	return out
}

// keyN returns the i-th key of a generated set.
func keyN(i int) string { return fmt.Sprintf("k%05d", i) }

// fill writes n generated keys with the value "v"+key, in batches.
func fill(t T, m *kv.Map[string], n int) []string {
	t.Helper()
	keys := make([]string, n)
	batch := make([]kv.Entry[string], 0, 500)
	for i := range n {
		keys[i] = keyN(i)
		batch = append(batch, kv.Entry[string]{Key: keys[i], Value: "v" + keys[i]})
		if len(batch) == cap(batch) || i == n-1 {
			if err := m.SetMany(t.Context(), batch); err != nil {
				t.Fatalf("SetMany: %v", err)
			}
			batch = batch[:0]
		}
	}
	return keys
}

// scanAll runs a complete backend-level scan and returns every key in the
// order returned, duplicates included, and the number of pages.
func scanAll(t T, b backend.Backend, prefix string, count int) ([]string, int) {
	t.Helper()
	var keys []string
	pages, cursor := 0, ""
	for {
		page, err := b.Scan(t.Context(), prefix, cursor, count)
		if err != nil {
			t.Fatalf("Scan(%q, %q, %d): %v", prefix, cursor, count, err)
		}
		pages++
		keys = append(keys, page.Keys...)
		if page.Cursor == "" {
			return keys, pages
		}
		if pages > 1_000_000 {
			t.Fatalf("Scan(%q) did not end after %d pages", prefix, pages)
		}
		cursor = page.Cursor
	}
}

// within reports whether d is in (want-slack, want].
func within(d, want, slack time.Duration) bool {
	return d <= want && d > want-slack
}

// ttlSlack is how far below a TTL just written its remaining TTL may read.
func (e *env) ttlSlack() time.Duration {
	if e.realTime() {
		return 10 * time.Second
	}
	return time.Millisecond
}

// cleanupKeys deletes backend keys when the case ends.
func (e *env) cleanupKeys(keys ...string) {
	e.t.Cleanup(func() {
		// The context of the case has ended by now.
		if err := e.b.Delete(context.WithoutCancel(e.t.Context()), keys); err != nil && !errors.Is(err, backend.ErrClosed) {
			e.t.Errorf("cleanup: Delete(%q): %v", keys, err)
		}
	})
}

// opts returns the harness's Map options followed by extra.
func (e *env) opts(extra ...kv.Option) []kv.Option {
	return append(append([]kv.Option(nil), e.h.Options...), extra...)
}
