package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
)

var cases = slices.Concat(basicCases, namespaceCases, ttlCases, iterCases, batchCases, loadCases, leaseCases, watchCases, backendCases, condCases, faultCases, linearCases)

type point struct {
	X, Y int
	Tag  string
}

var basicCases = []testCase{
	{
		name: "SetGet",
		rule: "a value set is read back by Get with ok == true",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("s"))
			mustSet(t, m, "abc123", "66f1c0ffee")
			wantGet(t, m, "abc123", "66f1c0ffee")
		},
	},
	{
		name: "GetMissing",
		rule: "Get of a missing key returns the zero value, false and no error (BaseMap's null)",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("s"))
			wantMissing(t, m, "nope")
		},
	},
	{
		name: "Overwrite",
		rule: "a second Set of a key replaces its value",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("s"))
			mustSet(t, m, "k", "one")
			mustSet(t, m, "k", "two")
			wantGet(t, m, "k", "two")
			if n := mustSize(t, m); n != 1 {
				t.Errorf("Size = %d; want 1", n)
			}
		},
	},
	{
		name: "Has",
		rule: "Has reports true for a stored key and false for a missing one",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("s"))
			mustSet(t, m, "here", "x")
			for key, want := range map[string]bool{"here": true, "gone": false} {
				got, err := m.Has(t.Context(), key)
				if err != nil || got != want {
					t.Errorf("Has(%q) = %v, %v; want %v, nil", key, got, err, want)
				}
			}
		},
	},
	{
		name: "Delete",
		rule: "Delete removes a key, and deleting a missing key is not an error",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("s"))
			mustSet(t, m, "k", "v")
			mustSet(t, m, "other", "v")
			for _, key := range []string{"k", "k", "never"} {
				if err := m.Delete(t.Context(), key); err != nil {
					t.Errorf("Delete(%q) = %v; want nil", key, err)
				}
			}
			wantMissing(t, m, "k")
			wantGet(t, m, "other", "v")
		},
	},
	{
		name: "RawStringFormat",
		rule: "a string value is stored raw under \"namespace:key\", byte for byte BaseMap's format, both ways",
		run: func(t T, e *env) {
			ns := e.ns("raw")
			m := newMap[string](t, e, ns, kv.WithTTL(kv.NoTTL))
			key := "binance:my-strategy:BTC/USDT:USDT"
			mustSet(t, m, key, "66f1c0ffee0123456789abcd")
			vals, err := e.b.MGet(t.Context(), []string{ns + ":" + key}, false)
			if err != nil {
				t.Fatalf("MGet: %v", err)
			}
			if !vals[0].Found || string(vals[0].Bytes) != "66f1c0ffee0123456789abcd" {
				t.Errorf("stored %q = %q, found %v; want the raw string", ns+":"+key, vals[0].Bytes, vals[0].Found)
			}
			// The other way: a raw write, as BaseMap does it, reads back.
			if err := e.b.MSet(t.Context(), []backend.Entry{{Key: ns + ":signal:1", Value: []byte(`{"not":"json-decoded"}`), TTL: backend.NoTTL}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			wantGet(t, m, "signal:1", `{"not":"json-decoded"}`)
		},
	},
	{
		name: "JSONFormat",
		rule: "a value of a non-string type is stored as its JSON encoding and decoded back",
		run: func(t T, e *env) {
			ns := e.ns("json")
			m := newMap[point](t, e, ns)
			want := point{X: 1, Y: -2, Tag: "ü"}
			if err := m.Set(t.Context(), "p", want); err != nil {
				t.Fatalf("Set: %v", err)
			}
			wantGet(t, m, "p", want)
			vals, err := e.b.MGet(t.Context(), []string{ns + ":p"}, false)
			if err != nil {
				t.Fatalf("MGet: %v", err)
			}
			enc, _ := json.Marshal(want)
			if !bytes.Equal(vals[0].Bytes, enc) {
				t.Errorf("stored %s; want %s", vals[0].Bytes, enc)
			}
		},
	},
	{
		name: "EmptyValue",
		rule: "an empty value is a value: Get reports it with ok == true",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("s"))
			mustSet(t, m, "empty", "")
			wantGet(t, m, "empty", "")
			b := newMap[[]byte](t, e, e.ns("b"))
			if err := b.Set(t.Context(), "nil", nil); err != nil {
				t.Fatalf("Set(nil): %v", err)
			}
			got, ok, err := b.Get(t.Context(), "nil")
			if err != nil || !ok || len(got) != 0 {
				t.Errorf("Get(nil value) = %q, %v, %v; want empty, true, nil", got, ok, err)
			}
		},
	},
	{
		name: "KeyBytes",
		rule: "keys and values may hold ':', unicode and any bytes, and read back unchanged",
		run: func(t T, e *env) {
			m := newMap[[]byte](t, e, e.ns("bin"))
			keys := []string{
				"exchange:strategy:BTC/USDT:USDT",
				"::", ":lead", "trail:",
				"ключ-日本-🙂",
				"\x00\x01\xff\xfe binary",
				"a*b?c[1]\\d",
				"spaces and\ttabs\nnewline",
			}
			for i, k := range keys {
				v := []byte{byte(i), 0, 0xff, ':', '\n'}
				if err := m.Set(t.Context(), k, v); err != nil {
					t.Fatalf("Set(%q): %v", k, err)
				}
			}
			for i, k := range keys {
				got, ok, err := m.Get(t.Context(), k)
				if want := []byte{byte(i), 0, 0xff, ':', '\n'}; err != nil || !ok || !bytes.Equal(got, want) {
					t.Errorf("Get(%q) = %q, %v, %v; want %q", k, got, ok, err, want)
				}
			}
			if got := sorted(keysOf(t, m)); !slices.Equal(got, sorted(keys)) {
				t.Errorf("Keys = %q; want %q", got, sorted(keys))
			}
		},
	},
	{
		name: "LargeValue",
		rule: "a 1 MiB value is stored and read back whole",
		run: func(t T, e *env) {
			m := newMap[[]byte](t, e, e.ns("big"))
			want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
			if err := m.Set(t.Context(), "big", want); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, ok, err := m.Get(t.Context(), "big")
			if err != nil || !ok || !bytes.Equal(got, want) {
				t.Errorf("Get = %d bytes, %v, %v; want %d bytes", len(got), ok, err, len(want))
			}
			all := arrayOf(t, m)
			if !bytes.Equal(all["big"], want) {
				t.Errorf("ToArray value = %d bytes; want %d", len(all["big"]), len(want))
			}
		},
	},
	{
		name: "EmptyKeyRefused",
		rule: "every call given an empty key fails with ErrEmptyKey and writes nothing",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("s"))
			ctx := t.Context()
			checks := map[string]error{}
			checks["Set"] = m.Set(ctx, "", "v")
			checks["SetWithTTL"] = m.SetWithTTL(ctx, "", "v", kv.NoTTL)
			_, _, checks["Get"] = m.Get(ctx, "")
			_, checks["Has"] = m.Has(ctx, "")
			checks["Delete"] = m.Delete(ctx, "")
			_, checks["Expire"] = m.Expire(ctx, "", kv.NoTTL)
			_, _, checks["TTL"] = m.TTL(ctx, "")
			loaded := false
			_, checks["GetOrLoad"] = m.GetOrLoad(ctx, "", func(ctx context.Context) (string, error) {
				loaded = true
				return "v", nil
			})
			checks["SetMany"] = m.SetMany(ctx, []kv.Entry[string]{{Key: "ok", Value: "v"}, {Key: "", Value: "v"}})
			_, checks["GetMany"] = m.GetMany(ctx, []string{"ok", ""})
			checks["DeleteMany"] = m.DeleteMany(ctx, []string{"ok", ""})
			for op, err := range checks {
				if !errors.Is(err, kv.ErrEmptyKey) {
					t.Errorf("%s(\"\") = %v; want ErrEmptyKey", op, err)
				}
			}
			if loaded {
				t.Errorf("GetOrLoad(\"\") called load")
			}
			if n := mustSize(t, m); n != 0 {
				t.Errorf("Size = %d after refused writes; want 0", n)
			}
		},
	},
	{
		name: "DecodeError",
		rule: "a stored value that does not decode is a *DecodeError naming the key, never a panic; other keys still read",
		run: func(t T, e *env) {
			ns := e.ns("dec")
			m := newMap[point](t, e, ns)
			if err := e.b.MSet(t.Context(), []backend.Entry{{Key: ns + ":bad", Value: []byte("not json"), TTL: backend.NoTTL}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			if err := m.Set(t.Context(), "good", point{X: 1}); err != nil {
				t.Fatalf("Set: %v", err)
			}
			var de *kv.DecodeError
			if _, _, err := m.Get(t.Context(), "bad"); !errors.As(err, &de) || de.Key != "bad" {
				t.Errorf("Get(bad) error = %v; want *DecodeError for key %q", err, "bad")
			}
			got, err := m.GetMany(t.Context(), []string{"bad", "good"})
			if !errors.As(err, &de) || de.Key != "bad" {
				t.Errorf("GetMany error = %v; want *DecodeError for key %q", err, "bad")
			}
			if len(got) != 1 || got["good"] != (point{X: 1}) {
				t.Errorf("GetMany values = %v; want only good", got)
			}
			var seen []string
			decodeErrs := 0
			for en, err := range m.Iterate(t.Context()) {
				if errors.As(err, &de) {
					decodeErrs++
					continue
				}
				if err != nil {
					t.Fatalf("Iterate: %v", err)
				}
				seen = append(seen, en.Key)
			}
			if decodeErrs != 1 || !slices.Equal(seen, []string{"good"}) {
				t.Errorf("Iterate: %d decode errors, keys %q; want 1 and [good]", decodeErrs, seen)
			}
			arr, err := m.ToArray(t.Context())
			if !errors.As(err, &de) || len(arr) != 1 {
				t.Errorf("ToArray = %d entries, %v; want 1 entry and a *DecodeError", len(arr), err)
			}
		},
	},
	{
		name: "ConcurrentReadWrite",
		rule: "a Map is safe for concurrent readers, writers and iterators",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("conc"))
			fill(t, m, 200)
			done := make(chan struct{})
			for g := range 8 {
				go func() {
					defer func() { done <- struct{}{} }()
					for i := range 50 {
						k := keyN((g*50 + i) % 200)
						var err error
						switch i % 5 {
						case 0:
							err = m.Set(t.Context(), k, "w"+k)
						case 1:
							_, _, err = m.Get(t.Context(), k)
						case 2:
							err = m.Delete(t.Context(), k)
						case 3:
							_, err = m.GetMany(t.Context(), []string{k, keyN(i)})
						case 4:
							for _, ierr := range m.Iterate(t.Context()) {
								if ierr != nil {
									err = ierr
									break
								}
							}
						}
						if err != nil {
							t.Errorf("goroutine %d op %d: %v", g, i, err)
							return
						}
					}
				}()
			}
			for range 8 {
				<-done
			}
			n := mustSize(t, m)
			if got := len(keysOf(t, m)); got != n {
				t.Errorf("after concurrent writes Keys has %d keys, Size %d; want equal", got, n)
			}
		},
	},
	{
		name: "Logger",
		rule: "with a logger, every Map call emits exactly one Info record naming the operation and namespace (pages at Debug), never the value",
		run: func(t T, e *env) {
			h := &recordingHandler{}
			ns := e.ns("log")
			m := newMap[string](t, e, ns, kv.WithLogger(newLogger(h)))
			ctx := t.Context()
			const secret = "s3cr3t-value"
			calls := []struct {
				op string
				do func()
			}{
				{"Set", func() { _ = m.Set(ctx, "k", secret) }},
				{"SetWithTTL", func() { _ = m.SetWithTTL(ctx, "k", secret, kv.NoTTL) }},
				{"Get", func() { _, _, _ = m.Get(ctx, "k") }},
				{"Has", func() { _, _ = m.Has(ctx, "k") }},
				{"TTL", func() { _, _, _ = m.TTL(ctx, "k") }},
				{"Expire", func() { _, _ = m.Expire(ctx, "k", kv.NoTTL) }},
				{"GetOrLoad", func() {
					_, _ = m.GetOrLoad(ctx, "l", func(context.Context) (string, error) { return secret, nil })
				}},
				{"SetMany", func() { _ = m.SetMany(ctx, []kv.Entry[string]{{Key: "a", Value: secret}}) }},
				{"GetMany", func() { _, _ = m.GetMany(ctx, []string{"a", "k"}) }},
				{"Size", func() { _, _ = m.Size(ctx) }},
				{"ToArray", func() { _, _ = m.ToArray(ctx) }},
				{"Iterate", func() {
					for range m.Iterate(ctx) {
					}
				}},
				{"Keys", func() {
					for range m.Keys(ctx) {
					}
				}},
				{"Values", func() {
					for range m.Values(ctx) {
					}
				}},
				{"DeleteMany", func() { _ = m.DeleteMany(ctx, []string{"a"}) }},
				{"Delete", func() { _ = m.Delete(ctx, "k") }},
				{"Clear", func() { _ = m.Clear(ctx) }},
			}
			for _, c := range calls {
				before := h.len()
				c.do()
				var recs []record
				for _, r := range h.since(before) {
					if strings.Contains(r.text, secret) {
						t.Errorf("%s record %q holds the value", c.op, r.text)
					}
					if r.level == "INFO" {
						recs = append(recs, r)
					}
				}
				if len(recs) != 1 {
					t.Errorf("%s emitted %d records; want 1", c.op, len(recs))
					continue
				}
				r := recs[0]
				if r.level != "INFO" || r.attrs["op"] != c.op || r.attrs["namespace"] != ns {
					t.Errorf("%s record = %s %v; want INFO with op=%s namespace=%s", c.op, r.level, r.attrs, c.op, ns)
				}
			}
			// An iterator never ranged over logs nothing.
			before := h.len()
			_ = m.Iterate(ctx)
			_ = m.Keys(ctx)
			if n := len(h.since(before)); n != 0 {
				t.Errorf("iterators never ranged over emitted %d records; want 0", n)
			}
		},
	},
	{
		name: "Close",
		rule: "every call after Close fails with ErrClosed, a second Close included",
		run: func(t T, e *env) {
			ns := e.ns("closed")
			m := openMap[string](t, e, e.b, ns)
			if err := e.b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			ctx := t.Context()
			checks := map[string]error{}
			checks["Close"] = e.b.Close()
			checks["Set"] = m.Set(ctx, "k", "v")
			_, _, checks["Get"] = m.Get(ctx, "k")
			_, checks["Has"] = m.Has(ctx, "k")
			checks["Delete"] = m.Delete(ctx, "k")
			_, checks["Expire"] = m.Expire(ctx, "k", kv.NoTTL)
			_, _, checks["TTL"] = m.TTL(ctx, "k")
			_, checks["Size"] = m.Size(ctx)
			checks["Clear"] = m.Clear(ctx)
			checks["SetMany"] = m.SetMany(ctx, []kv.Entry[string]{{Key: "k", Value: "v"}})
			_, checks["GetMany"] = m.GetMany(ctx, []string{"k"})
			checks["DeleteMany"] = m.DeleteMany(ctx, []string{"k"})
			_, checks["ToArray"] = m.ToArray(ctx)
			for _, err := range m.Keys(ctx) {
				checks["Keys"] = err
			}
			_, checks["backend.Scan"] = e.b.Scan(ctx, ns+":", "", 10)
			for op, err := range checks {
				if !errors.Is(err, kv.ErrClosed) {
					t.Errorf("%s after Close = %v; want ErrClosed", op, err)
				}
			}
		},
	},
}
