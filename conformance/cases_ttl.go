package conformance

import (
	"context"
	"errors"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/nearcache"
)

// wantTTL checks the remaining TTL of key against want (NoTTL exactly, or a
// positive TTL within the store's slack).
func wantTTL[V any](t T, e *env, m *kv.Map[V], key string, want time.Duration) {
	t.Helper()
	got, ok, err := m.TTL(t.Context(), key)
	if err != nil || !ok {
		t.Errorf("TTL(%q) = %v, %v, %v; want %v, true, nil", key, got, ok, err, want)
		return
	}
	if want == kv.NoTTL {
		if got != kv.NoTTL {
			t.Errorf("TTL(%q) = %v; want NoTTL", key, got)
		}
		return
	}
	if !within(got, want, e.ttlSlack()) {
		t.Errorf("TTL(%q) = %v; want %v (less at most %v)", key, got, want, e.ttlSlack())
	}
}

var ttlCases = []testCase{
	{
		name: "GetWithTTL",
		rule: "GetWithTTL returns a key's value with its remaining TTL (NoTTL for none), as Get and TTL do, from the near cache too; a missing, expired or undecodable key as Get reports it",
		run: func(t T, e *env) {
			ctx := t.Context()
			var opts []kv.Option
			if backend.CapabilitiesOf(e.b).Watch != nil {
				opts = append(opts, kv.WithNearCache(nearcache.Options{}))
			}
			m := newMap[string](t, e, e.ns("getttl"), append(opts, kv.WithTTL(time.Hour))...)
			mustSet(t, m, "k", "v")
			mustSetTTL(t, m, "forever", "w", kv.NoTTL)
			mustSetTTL(t, m, "short", "x", e.shortTTL())
			for range 2 { // the second read may be served by the near cache
				if v, d, ok, err := m.GetWithTTL(ctx, "k"); err != nil || !ok || v != "v" || !within(d, time.Hour, e.ttlSlack()+5*time.Millisecond) { // the near cache counts from a deadline it rounds down
					t.Errorf("GetWithTTL(k) = %q, %v, %v, %v; want v, about 1h, true, nil", v, d, ok, err)
				}
				if v, d, ok, err := m.GetWithTTL(ctx, "forever"); err != nil || !ok || v != "w" || d != kv.NoTTL {
					t.Errorf("GetWithTTL(forever) = %q, %v, %v, %v; want w, NoTTL, true, nil", v, d, ok, err)
				}
			}
			if v, d, ok, err := m.GetWithTTL(ctx, "missing"); err != nil || ok || v != "" || d != 0 {
				t.Errorf("GetWithTTL(missing) = %q, %v, %v, %v; want \"\", 0, false, nil", v, d, ok, err)
			}
			if !e.pass(e.shortTTL(), func() bool { _, _, ok, _ := m.GetWithTTL(ctx, "short"); return !ok }) {
				t.Errorf("GetWithTTL(short) still finds the key after its TTL of %v", e.shortTTL())
			}
			if _, _, ok, err := m.GetWithTTL(ctx, ""); ok || !errors.Is(err, kv.ErrEmptyKey) {
				t.Errorf("GetWithTTL(empty key) = %v, %v; want false, ErrEmptyKey", ok, err)
			}
			n := newMap[int](t, e, m.Namespace()+"n")
			if err := e.b.MSet(ctx, []backend.Entry{{Key: n.Namespace() + ":bad", Value: []byte("nan"), TTL: time.Hour}}); err != nil {
				t.Fatalf("MSet: %v", err)
			}
			var de *kv.DecodeError
			if _, _, _, err := n.GetWithTTL(ctx, "bad"); !errors.As(err, &de) {
				t.Errorf("GetWithTTL(undecodable) = %v; want a *DecodeError", err)
			}
		},
	},
	{
		name: "TTLDefault",
		rule: "a Map built without WithTTL gives every Set the default TTL of 5 minutes",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("ttl"))
			mustSet(t, m, "k", "v")
			wantTTL(t, e, m, "k", 5*time.Minute)
			if err := m.SetMany(t.Context(), []kv.Entry[string]{{Key: "b", Value: "v"}}); err != nil {
				t.Fatalf("SetMany: %v", err)
			}
			wantTTL(t, e, m, "b", 5*time.Minute)
		},
	},
	{
		name: "TTLCustom",
		rule: "WithTTL sets the TTL of every write that names none",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("ttl"), kv.WithTTL(time.Hour))
			mustSet(t, m, "k", "v")
			wantTTL(t, e, m, "k", time.Hour)
			if _, err := m.GetOrLoad(t.Context(), "loaded", func(context.Context) (string, error) { return "v", nil }); err != nil {
				t.Fatalf("GetOrLoad: %v", err)
			}
			wantTTL(t, e, m, "loaded", time.Hour)
		},
	},
	{
		name: "TTLNone",
		rule: "WithTTL(NoTTL) stores keys that never expire (BaseMap's -1)",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("ttl"), kv.WithTTL(kv.NoTTL))
			mustSet(t, m, "k", "v")
			wantTTL(t, e, m, "k", kv.NoTTL)
		},
	},
	{
		name: "TTLRange",
		rule: "a TTL up to MaxTTL is stored and seen by every read; a longer one (up to math.MaxInt64) is refused with ErrInvalidTTL by the Map and by the Backend, and nothing is written",
		run: func(t T, e *env) {
			ns := e.ns("ttlmax")
			m := newMap[string](t, e, ns)
			mustSetTTL(t, m, "max", "v", kv.MaxTTL)
			if d, ok, err := m.TTL(t.Context(), "max"); err != nil || !ok || !within(d, kv.MaxTTL, e.ttlSlack()+time.Minute) {
				t.Errorf("TTL(max) = %v, %v, %v; want about MaxTTL", d, ok, err)
			}
			for _, ttl := range []time.Duration{kv.MaxTTL + time.Millisecond, 250 * 365 * 24 * time.Hour, time.Duration(1<<63 - 1)} {
				if err := m.SetWithTTL(t.Context(), "over", "v", ttl); !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("SetWithTTL(%v) = %v; want ErrInvalidTTL", ttl, err)
				}
				if ok, err := m.Expire(t.Context(), "max", ttl); ok || !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("Expire(max, %v) = %v, %v; want false, ErrInvalidTTL", ttl, ok, err)
				}
				p := ns + ":"
				err := e.b.MSet(t.Context(), []backend.Entry{{Key: p + "b1", Value: []byte("1"), TTL: time.Hour}, {Key: p + "b2", TTL: ttl}})
				if !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("Backend.MSet with TTL %v = %v; want ErrInvalidTTL", ttl, err)
				}
				if ok, err := e.b.Expire(t.Context(), p+"max", ttl); ok || !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("Backend.Expire(%v) = %v, %v; want false, ErrInvalidTTL", ttl, ok, err)
				}
			}
			wantMissing(t, m, "over")
			wantMissing(t, m, "b1")
			if got := keysOf(t, m); len(got) != 1 || got[0] != "max" {
				t.Errorf("Keys = %q; want [max]", got)
			}
			if n := mustSize(t, m); n != 1 {
				t.Errorf("Size = %d; want 1", n)
			}
			if d, ok, err := m.TTL(t.Context(), "max"); err != nil || !ok || !within(d, kv.MaxTTL, e.ttlSlack()+time.Minute) {
				t.Errorf("TTL(max) after refused Expires = %v, %v, %v; want about MaxTTL", d, ok, err)
			}
		},
	},
	{
		name: "TTLPerCall",
		rule: "SetWithTTL overrides the Map's TTL for one write",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("ttl"))
			mustSetTTL(t, m, "hour", "v", time.Hour)
			mustSetTTL(t, m, "never", "v", kv.NoTTL)
			wantTTL(t, e, m, "hour", time.Hour)
			wantTTL(t, e, m, "never", kv.NoTTL)
		},
	},
	{
		name: "TTLOverwrite",
		rule: "each write sets the key's TTL anew: NoTTL clears an old expiry, a later Set applies the default again",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("ttl"), kv.WithTTL(time.Hour))
			mustSetTTL(t, m, "k", "v1", 2*time.Hour)
			wantTTL(t, e, m, "k", 2*time.Hour)
			mustSetTTL(t, m, "k", "v2", kv.NoTTL)
			wantTTL(t, e, m, "k", kv.NoTTL)
			mustSet(t, m, "k", "v3")
			wantTTL(t, e, m, "k", time.Hour)
		},
	},
	{
		name: "TTLInvalidRefused",
		rule: "a TTL of 0 or negative other than NoTTL is refused with ErrInvalidTTL and the key is left as it was (BaseMap deleted it)",
		run: func(t T, e *env) {
			for _, d := range []time.Duration{0, -2, -time.Second} {
				if _, err := kv.New[string](e.b, e.ns("bad"), e.opts(kv.WithTTL(d))...); !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("kv.New(WithTTL(%v)) error = %v; want ErrInvalidTTL", d, err)
				}
			}
			m := newMap[string](t, e, e.ns("ttl"), kv.WithTTL(kv.NoTTL))
			mustSet(t, m, "k", "old")
			for _, d := range []time.Duration{0, -2, -time.Second, -time.Hour} {
				if err := m.SetWithTTL(t.Context(), "k", "new", d); !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("SetWithTTL(%v) = %v; want ErrInvalidTTL", d, err)
				}
				if err := m.SetWithTTL(t.Context(), "fresh", "new", d); !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("SetWithTTL(fresh, %v) = %v; want ErrInvalidTTL", d, err)
				}
				if _, err := m.Expire(t.Context(), "k", d); !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("Expire(%v) = %v; want ErrInvalidTTL", d, err)
				}
			}
			wantGet(t, m, "k", "old")
			wantTTL(t, e, m, "k", kv.NoTTL)
			wantMissing(t, m, "fresh")
		},
	},
	{
		name: "TTLSubMillisecond",
		rule: "a positive TTL under one millisecond is rounded up to one millisecond, never refused",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("ttl"))
			if err := m.SetWithTTL(t.Context(), "k", "v", 500*time.Microsecond); err != nil {
				t.Fatalf("SetWithTTL(500µs) = %v; want nil", err)
			}
			if !e.realTime() {
				// Rounded up, the key outlives its 500µs: it is there after
				// 700µs and gone after 1.1ms.
				e.advance(700 * time.Microsecond)
				if isMissing(t, m, "k") {
					t.Errorf("key with a 500µs TTL gone after 700µs; want its TTL rounded up to 1ms")
				}
				e.advance(400 * time.Microsecond)
				if !isMissing(t, m, "k") {
					t.Errorf("key with a 500µs TTL (1ms rounded up) still present after 1.1ms")
				}
				return
			}
			if !e.pass(2*time.Millisecond, func() bool { return isMissing(t, m, "k") }) {
				t.Errorf("key with a 500µs TTL still present after 2ms")
			}
		},
	},
	{
		name: "Expire",
		rule: "Expire sets or clears an existing key's TTL with millisecond precision, and reports false for a missing key",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("exp"), kv.WithTTL(kv.NoTTL))
			mustSet(t, m, "k", "v")
			ok, err := m.Expire(t.Context(), "k", 1500*time.Millisecond)
			if err != nil || !ok {
				t.Fatalf("Expire(k, 1.5s) = %v, %v; want true, nil", ok, err)
			}
			wantTTL(t, e, m, "k", 1500*time.Millisecond)
			if ok, err := m.Expire(t.Context(), "k", kv.NoTTL); err != nil || !ok {
				t.Errorf("Expire(k, NoTTL) = %v, %v; want true, nil", ok, err)
			}
			wantTTL(t, e, m, "k", kv.NoTTL)
			for _, d := range []time.Duration{time.Minute, kv.NoTTL} {
				if ok, err := m.Expire(t.Context(), "missing", d); err != nil || ok {
					t.Errorf("Expire(missing, %v) = %v, %v; want false, nil", d, ok, err)
				}
			}
			wantMissing(t, m, "missing")
			if _, ok, err := m.TTL(t.Context(), "missing"); err != nil || ok {
				t.Errorf("TTL(missing) = _, %v, %v; want false, nil", ok, err)
			}
		},
	},
	{
		name: "Expiry",
		rule: "a key expires when its sub-second TTL has passed, while keys without TTL stay",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("expiry"), kv.WithTTL(kv.NoTTL))
			ttl := e.shortTTL()
			mustSetTTL(t, m, "short", "v", ttl)
			mustSet(t, m, "stays", "v")
			if !e.realTime() {
				e.advance(ttl - time.Millisecond)
				wantGet(t, m, "short", "v")
			}
			if !e.pass(ttl, func() bool { return isMissing(t, m, "short") }) {
				t.Errorf("key still present after its TTL of %v", ttl)
			}
			wantGet(t, m, "stays", "v")
		},
	},
	{
		name: "ExpiredInvisible",
		rule: "an expired key is invisible to Get, Has, TTL, GetMany, Size, Keys, Values, Iterate and ToArray at once",
		run: func(t T, e *env) {
			m := newMap[string](t, e, e.ns("inv"), kv.WithTTL(kv.NoTTL))
			ttl := e.shortTTL()
			for i := range 5 {
				mustSetTTL(t, m, keyN(i), "dies", ttl)
			}
			mustSet(t, m, "live", "stays")
			if !e.pass(ttl, func() bool { return isMissing(t, m, keyN(4)) }) {
				t.Fatalf("key still present after its TTL of %v", ttl)
			}
			ctx := t.Context()
			for i := range 5 {
				k := keyN(i)
				wantMissing(t, m, k)
				if ok, err := m.Has(ctx, k); ok || err != nil {
					t.Errorf("Has(%q) = %v, %v; want false, nil", k, ok, err)
				}
				if _, ok, err := m.TTL(ctx, k); ok || err != nil {
					t.Errorf("TTL(%q) = _, %v, %v; want false, nil", k, ok, err)
				}
			}
			if got, err := m.GetMany(ctx, []string{keyN(0), "live"}); err != nil || len(got) != 1 {
				t.Errorf("GetMany = %v, %v; want only live", got, err)
			}
			if n := mustSize(t, m); n != 1 {
				t.Errorf("Size = %d; want 1", n)
			}
			if k := keysOf(t, m); len(k) != 1 || k[0] != "live" {
				t.Errorf("Keys = %q; want [live]", k)
			}
			if v := valuesOf(t, m); len(v) != 1 || v[0] != "stays" {
				t.Errorf("Values = %q; want [stays]", v)
			}
			if all := entriesOf(t, m); len(all) != 1 || all["live"] != "stays" {
				t.Errorf("Iterate = %v; want only live", all)
			}
			if all := arrayOf(t, m); len(all) != 1 {
				t.Errorf("ToArray = %v; want only live", all)
			}
		},
	},
	{
		name: "BackendRefusesUnsetTTL",
		rule: "a Backend given a TTL of 0 (unset) or a negative TTL other than NoTTL refuses it with ErrInvalidTTL and writes nothing",
		run: func(t T, e *env) {
			prefix := e.ns("raw") + ":"
			for _, d := range []time.Duration{0, -2, -time.Second} {
				err := e.b.MSet(t.Context(), []backend.Entry{
					{Key: prefix + "ok", Value: []byte("v"), TTL: backend.NoTTL},
					{Key: prefix + "bad", Value: []byte("v"), TTL: d},
				})
				if !errors.Is(err, backend.ErrInvalidTTL) {
					t.Errorf("MSet with TTL %v = %v; want ErrInvalidTTL", d, err)
				}
				if _, err := e.b.Expire(t.Context(), prefix+"ok", d); !errors.Is(err, backend.ErrInvalidTTL) {
					t.Errorf("Expire with TTL %v = %v; want ErrInvalidTTL", d, err)
				}
			}
			vals, err := e.b.MGet(t.Context(), []string{prefix + "ok", prefix + "bad"}, false)
			if err != nil {
				t.Fatalf("MGet: %v", err)
			}
			if vals[0].Found || vals[1].Found {
				t.Errorf("a refused batch wrote keys: found %v, %v", vals[0].Found, vals[1].Found)
			}
		},
	},
}
