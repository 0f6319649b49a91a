package conformance

import (
	"errors"
	"fmt"
	"time"

	"github.com/kvmap/kv"
)

var batchCases = []testCase{
	{
		name: "BatchRoundTrip",
		rule: "SetMany stores every entry with the Map's TTL and GetMany reads them back",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("batch"), kv.WithTTL(time.Hour))
			var entries []kv.Entry[string]
			var keys []string
			for i := range 250 {
				k := fmt.Sprintf("exchange:strategy:SYM%d/USDT:USDT", i)
				entries = append(entries, kv.Entry[string]{Key: k, Value: "id" + k})
				keys = append(keys, k)
			}
			entries = append(entries, kv.Entry[string]{Key: keys[0], Value: "last wins"})
			if err := m.SetMany(t.Context(), entries); err != nil {
				t.Fatalf("SetMany: %v", err)
			}
			got, err := m.GetMany(t.Context(), keys)
			if err != nil {
				t.Fatalf("GetMany: %v", err)
			}
			if len(got) != len(keys) {
				t.Errorf("GetMany returned %d values; want %d", len(got), len(keys))
			}
			if got[keys[0]] != "last wins" || got[keys[7]] != "id"+keys[7] {
				t.Errorf("GetMany[%q] = %q, [%q] = %q; want the last entry's value and %q", keys[0], got[keys[0]], keys[7], got[keys[7]], "id"+keys[7])
			}
			wantTTL(t, e, m, keys[9], time.Hour)
			if err := m.DeleteMany(t.Context(), keys[:100]); err != nil {
				t.Fatalf("DeleteMany: %v", err)
			}
			if n := mustSize(t, m); n != 150 {
				t.Errorf("Size after DeleteMany of 100 = %d; want 150", n)
			}
		},
	},
	{
		name: "BatchEmpty",
		rule: "batch calls with empty input do nothing and return no error",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("batch"))
			if err := m.SetMany(t.Context(), nil); err != nil {
				t.Errorf("SetMany(nil) = %v; want nil", err)
			}
			got, err := m.GetMany(t.Context(), nil)
			if err != nil || got == nil || len(got) != 0 {
				t.Errorf("GetMany(nil) = %v, %v; want an empty map, nil", got, err)
			}
			if err := m.DeleteMany(t.Context(), []string{}); err != nil {
				t.Errorf("DeleteMany(empty) = %v; want nil", err)
			}
		},
	},
	{
		name: "BatchMissing",
		rule: "GetMany leaves missing keys out of its result, DeleteMany of missing keys is not an error",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("batch"))
			mustSet(t, m, "a", "1")
			got, err := m.GetMany(t.Context(), []string{"a", "missing", "a", "other"})
			if err != nil || len(got) != 1 || got["a"] != "1" {
				t.Errorf("GetMany = %v, %v; want map[a:1], nil", got, err)
			}
			if err := m.DeleteMany(t.Context(), []string{"missing", "a", "a"}); err != nil {
				t.Errorf("DeleteMany = %v; want nil", err)
			}
			wantMissing(t, m, "a")
		},
	},
	{
		name: "BatchInvalid",
		rule: "a batch with one invalid input is refused whole: nothing is written or deleted",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("batch"))
			mustSet(t, m, "keep", "v")
			err := m.SetMany(t.Context(), []kv.Entry[string]{{Key: "a", Value: "1"}, {Key: "", Value: "2"}, {Key: "b", Value: "3"}})
			if !errors.Is(err, kv.ErrEmptyKey) {
				t.Errorf("SetMany with an empty key = %v; want ErrEmptyKey", err)
			}
			if err := m.DeleteMany(t.Context(), []string{"keep", ""}); !errors.Is(err, kv.ErrEmptyKey) {
				t.Errorf("DeleteMany with an empty key = %v; want ErrEmptyKey", err)
			}
			wantMissing(t, m, "a")
			wantMissing(t, m, "b")
			wantGet(t, m, "keep", "v")
			// A value that does not encode refuses the whole batch too.
			j := newMap[any](t, e, e.ns("batchjson"))
			err = j.SetMany(t.Context(), []kv.Entry[any]{{Key: "a", Value: 1}, {Key: "b", Value: make(chan int)}})
			if err == nil {
				t.Errorf("SetMany with a value JSON cannot encode = nil; want an error")
			}
			if n := mustSize(t, j); n != 0 {
				t.Errorf("Size after a refused batch = %d; want 0", n)
			}
		},
	},
}
