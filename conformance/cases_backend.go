package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/namespace"
)

func mustNamespace(t T, b backend.Backend, ns string) backend.Backend {
	t.Helper()
	nb, err := namespace.New(b, ns)
	if err != nil {
		t.Fatalf("namespace.New: %v", err)
	}
	return nb
}

var backendCases = []testCase{
	{
		name: "BackendMGetTTL",
		rule: "MGet with TTLs reports each found key's value and remaining TTL (NoTTL for none) in one call, and misses as not found",
		run: func(t T, e *env) {
			p := e.ns("mget") + ":"
			e.cleanupKeys(p+"a", p+"b")
			err := e.b.MSet(t.Context(), []backend.Entry{
				{Key: p + "a", Value: []byte("1"), TTL: time.Hour},
				{Key: p + "b", Value: []byte("2"), TTL: backend.NoTTL},
			})
			if err != nil {
				t.Fatalf("MSet: %v", err)
			}
			vals, err := e.b.MGet(t.Context(), []string{p + "a", p + "missing", p + "b"}, true)
			if err != nil {
				t.Fatalf("MGet: %v", err)
			}
			if len(vals) != 3 {
				t.Fatalf("MGet returned %d values; want 3", len(vals))
			}
			if !vals[0].Found || string(vals[0].Bytes) != "1" || !within(vals[0].TTL, time.Hour, e.ttlSlack()) {
				t.Errorf("MGet[a] = %+v; want 1 with TTL 1h", vals[0])
			}
			if vals[1].Found {
				t.Errorf("MGet[missing] = %+v; want not found", vals[1])
			}
			if !vals[2].Found || string(vals[2].Bytes) != "2" || vals[2].TTL != backend.NoTTL {
				t.Errorf("MGet[b] = %+v; want 2 with NoTTL", vals[2])
			}
		},
	},
	{
		name: "BackendGet",
		rule: "Get of one key agrees with MGet, directly and through the decorators",
		run: func(t T, e *env) {
			ns := e.ns("get")
			m := newMap[string](t, e, ns, kv.WithTTL(kv.NoTTL))
			mustSet(t, m, "k", "v")
			tb := mustNamespace(t, e.b, ns)
			for name, b := range map[string]backend.Backend{"store": e.b, "decorators": tb} {
				key := "k"
				if name == "store" {
					key = ns + ":k"
				}
				v, err := b.Get(t.Context(), key)
				if err != nil || !v.Found || string(v.Bytes) != "v" {
					t.Errorf("%s: Get(%q) = %+v, %v; want v", name, key, v, err)
				}
				miss, err := b.Get(t.Context(), key+"-missing")
				if err != nil || miss.Found {
					t.Errorf("%s: Get(missing) = %+v, %v; want not found", name, miss, err)
				}
			}
			if _, err := tb.Get(t.Context(), ""); !errors.Is(err, backend.ErrEmptyKey) {
				t.Errorf("Get(\"\") through the decorators = %v; want ErrEmptyKey", err)
			}
		},
	},
	{
		name: "BackendOwnedSlices",
		rule: "the Backend keeps no reference to slices passed in, and the caller owns slices returned",
		run: func(t T, e *env) {
			p := e.ns("own") + ":"
			e.cleanupKeys(p + "k")
			in := []byte("original")
			if err := e.b.MSet(t.Context(), []backend.Entry{{Key: p + "k", Value: in, TTL: backend.NoTTL}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			copy(in, "XXXXXXXX")
			v1, err := e.b.MGet(t.Context(), []string{p + "k"}, false)
			if err != nil {
				t.Fatalf("MGet: %v", err)
			}
			if string(v1[0].Bytes) != "original" {
				t.Errorf("after the caller changed its slice MGet = %q; want original", v1[0].Bytes)
			}
			copy(v1[0].Bytes, "YYYYYYYY")
			v2, err := e.b.MGet(t.Context(), []string{p + "k"}, false)
			if err != nil {
				t.Fatalf("MGet: %v", err)
			}
			if !bytes.Equal(v2[0].Bytes, []byte("original")) {
				t.Errorf("after the caller changed a returned slice MGet = %q; want original", v2[0].Bytes)
			}
		},
	},
	{
		name: "BackendDeleteAndEmptyKey",
		rule: "Delete of missing keys succeeds; an empty key is refused with ErrEmptyKey by every call and nothing is written",
		run: func(t T, e *env) {
			p := e.ns("del") + ":"
			ctx := t.Context()
			if err := e.b.Delete(ctx, []string{p + "missing", p + "missing2"}); err != nil {
				t.Errorf("Delete(missing) = %v; want nil", err)
			}
			checks := map[string]error{}
			checks["MSet"] = e.b.MSet(ctx, []backend.Entry{{Key: p + "ok", Value: []byte("v"), TTL: backend.NoTTL}, {Key: "", Value: []byte("v"), TTL: backend.NoTTL}})
			_, checks["MGet"] = e.b.MGet(ctx, []string{p + "ok", ""}, false)
			checks["Delete"] = e.b.Delete(ctx, []string{""})
			_, checks["Expire"] = e.b.Expire(ctx, "", backend.NoTTL)
			_, _, checks["TTL"] = e.b.TTL(ctx, "")
			for op, err := range checks {
				if !errors.Is(err, backend.ErrEmptyKey) {
					t.Errorf("%s with an empty key = %v; want ErrEmptyKey", op, err)
				}
			}
			if vals, err := e.b.MGet(ctx, []string{p + "ok"}, false); err != nil || vals[0].Found {
				t.Errorf("a refused MSet wrote its valid entry (found %v, err %v)", vals[0].Found, err)
			}
		},
	},
	{
		name: "BackendExpire",
		rule: "Backend Expire and TTL: positive sets, NoTTL persists, a missing key reports false, precision is at least a millisecond",
		run: func(t T, e *env) {
			p := e.ns("bexp") + ":"
			ctx := t.Context()
			e.cleanupKeys(p + "k")
			if err := e.b.MSet(ctx, []backend.Entry{{Key: p + "k", Value: []byte("v"), TTL: time.Hour}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			if ok, err := e.b.Expire(ctx, p+"k", 2500*time.Millisecond); err != nil || !ok {
				t.Fatalf("Expire(2.5s) = %v, %v; want true, nil", ok, err)
			}
			if d, ok, err := e.b.TTL(ctx, p+"k"); err != nil || !ok || !within(d, 2500*time.Millisecond, e.ttlSlack()) {
				t.Errorf("TTL after Expire(2.5s) = %v, %v, %v; want 2.5s", d, ok, err)
			}
			if ok, err := e.b.Expire(ctx, p+"k", backend.NoTTL); err != nil || !ok {
				t.Errorf("Expire(NoTTL) = %v, %v; want true, nil", ok, err)
			}
			if d, ok, err := e.b.TTL(ctx, p+"k"); err != nil || !ok || d != backend.NoTTL {
				t.Errorf("TTL after Expire(NoTTL) = %v, %v, %v; want NoTTL", d, ok, err)
			}
			for _, d := range []time.Duration{time.Second, backend.NoTTL} {
				if ok, err := e.b.Expire(ctx, p+"missing", d); err != nil || ok {
					t.Errorf("Expire(missing, %v) = %v, %v; want false, nil", d, ok, err)
				}
			}
			if _, ok, err := e.b.TTL(ctx, p+"missing"); err != nil || ok {
				t.Errorf("TTL(missing) = _, %v, %v; want false, nil", ok, err)
			}
		},
	},
	{
		name: "DecoratorStack",
		rule: "the namespace decorator, used by hand, stores ns:key with each entry's TTL and forwards the store's optimisations",
		run: func(t T, e *env) {
			ns := e.ns("deco")
			nb, err := namespace.New(e.b, ns)
			if err != nil {
				t.Fatalf("namespace.New: %v", err)
			}
			tb := nb
			ctx := t.Context()
			t.Cleanup(func() { _ = backend.DeletePrefix(context.WithoutCancel(t.Context()), e.b, ns+":", 100) })
			if err := tb.MSet(ctx, []backend.Entry{{Key: "k", Value: []byte("v"), TTL: time.Hour}, {Key: "n", Value: []byte("w"), TTL: backend.NoTTL}}); err != nil {
				t.Fatalf("MSet through the decorators: %v", err)
			}
			vals, err := e.b.MGet(ctx, []string{ns + ":k", ns + ":n"}, true)
			if err != nil {
				t.Fatalf("MGet: %v", err)
			}
			if !vals[0].Found || string(vals[0].Bytes) != "v" || !within(vals[0].TTL, time.Hour, e.ttlSlack()) {
				t.Errorf("stored %s:k = %+v; want v with its TTL of 1h", ns, vals[0])
			}
			if !vals[1].Found || vals[1].TTL != backend.NoTTL {
				t.Errorf("stored %s:n = %+v; want its own NoTTL", ns, vals[1])
			}
			if got, want := tb.Describe(), e.b.Describe(); got != want {
				t.Errorf("Describe through the decorators = %+v; the store says %+v", got, want)
			}
			store, deco := backend.OptimizationsOf(e.b), backend.OptimizationsOf(tb)
			for name, lost := range map[string]bool{
				"DeletePrefix": store.DeletePrefix != nil && deco.DeletePrefix == nil,
				"CountPrefix":  store.CountPrefix != nil && deco.CountPrefix == nil,
				"ScanEntries":  store.ScanEntries != nil && deco.ScanEntries == nil,
			} {
				if lost {
					t.Errorf("the decorators dropped the store's %s", name)
				}
			}
			if n, err := backend.CountPrefix(ctx, tb, "", 10); err != nil || n != 2 {
				t.Errorf("CountPrefix through the decorators = %d, %v; want 2", n, err)
			}
			if err := backend.DeletePrefix(ctx, tb, "", 10); err != nil {
				t.Fatalf("DeletePrefix through the decorators: %v", err)
			}
			if n, err := backend.CountPrefix(ctx, e.b, ns+":", 10); err != nil || n != 0 {
				t.Errorf("keys left under %s: after DeletePrefix = %d, %v; want 0", ns, n, err)
			}
		},
	},
	{
		name: "CapacityEviction",
		rule: "a store with a capacity keeps at most that many keys, evicting the least recently used",
		skip: func(h Harness) string { return skipUnless(h.Capacity > 0, "the store has no capacity") },
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("cap"))
			c := e.h.Capacity
			for i := range c {
				mustSet(t, m, keyN(i), "v")
			}
			wantGet(t, m, keyN(0), "v") // key 0 is now the most recently used
			for i := c; i < c+10; i++ {
				mustSet(t, m, keyN(i), "v")
			}
			if n := mustSize(t, m); n > c {
				t.Errorf("Size = %d; want at most the capacity %d", n, c)
			}
			wantGet(t, m, keyN(0), "v")
			if !isMissing(t, m, keyN(1)) {
				t.Errorf("least recently used key %q survived %d writes past capacity", keyN(1), 10)
			}
			wantGet(t, m, keyN(c+9), "v")
		},
	},
	{
		name: "ScanEntries",
		rule: "a scan with values (Optimizations.ScanEntries, or its fallback) returns every key under the prefix once with its value, none outside it, no expired key",
		run: func(t T, e *env) {
			ns := e.ns("entries")
			m := newMap[string](t, e, ns, kv.WithTTL(kv.NoTTL))
			keys := fill(t, m, 120)
			mustSetTTL(t, m, "dies", "x", e.shortTTL())
			other := newMap[string](t, e, ns+"x")
			fill(t, other, 5)
			if !e.pass(e.shortTTL(), func() bool { return isMissing(t, m, "dies") }) {
				t.Fatalf("key still present after its TTL")
			}
			got := map[string]string{}
			cursor, pages := "", 0
			for {
				page, err := backend.ScanEntries(t.Context(), e.b, ns+":", cursor, 7)
				if err != nil {
					t.Fatalf("ScanEntries: %v", err)
				}
				if len(page.Keys) != len(page.Values) {
					t.Fatalf("ScanEntries returned %d keys and %d values", len(page.Keys), len(page.Values))
				}
				for i, k := range page.Keys {
					got[k] = string(page.Values[i])
				}
				if pages++; page.Cursor == "" || pages > 10_000 {
					break
				}
				cursor = page.Cursor
			}
			if len(got) != len(keys) {
				t.Errorf("ScanEntries returned %d distinct keys; want %d", len(got), len(keys))
			}
			for _, k := range keys {
				if got[ns+":"+k] != "v"+k {
					t.Errorf("ScanEntries[%q] = %q; want %q", ns+":"+k, got[ns+":"+k], "v"+k)
					break
				}
			}
		},
	},
	{
		name: "SizeIsExact",
		rule: "Size counts each key once, after overwrites and deletes, without reading values",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("size"), kv.WithPageSize(5))
			fill(t, m, 60)
			fill(t, m, 40) // overwrites
			for i := range 10 {
				if err := m.Delete(t.Context(), keyN(i)); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			}
			if n := mustSize(t, m); n != 50 {
				t.Errorf("Size = %d; want 50", n)
			}
			if got := fmt.Sprint(len(keysOf(t, m))); got != "50" {
				t.Errorf("Keys yielded %s keys; want 50", got)
			}
		},
	},
}
