package tier

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

var t0 = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

func found(v string, ttl time.Duration) []backend.Value {
	return []backend.Value{{Bytes: []byte(v), Found: true, TTL: ttl}}
}

// newNear is a live near cache that remembers values for stale serving.
func newNear(t *testing.T, c clock.Clock) *Tier[int] {
	t.Helper()
	o, err := Near(0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	o.Remember, o.Grace, o.Clock = true, time.Minute, c
	tr := New[int](o)
	tr.Changed(backend.Change{Kind: backend.ChangeLive}) // synchronous reports
	return tr
}

// TestOneRule checks the rule that keeps the tier true, for each thing that
// may race a read: the read never records what it read as fresh.
func TestOneRule(t *testing.T) {
	for _, tc := range []struct {
		name      string
		race      func(tr *Tier[int])
		wantNear  bool
		wantRaced bool // remembered unverified, to verify
		wantStale bool // known to serve stale once expired (if verified)
	}{
		{"nothing", func(*Tier[int]) {}, true, false, true},
		{"forget", func(tr *Tier[int]) { tr.Forget("k") }, false, false, false},
		{"purge", func(tr *Tier[int]) { tr.Purge(true) }, false, false, false},
		{"report", func(tr *Tier[int]) { tr.Changed(backend.Change{Kind: backend.ChangeKeys, Keys: []string{"k"}}) }, false, true, false},
		{"flush", func(tr *Tier[int]) { tr.Changed(backend.Change{Kind: backend.ChangeAll}) }, false, false, false},
		{"loss", func(tr *Tier[int]) { tr.Changed(backend.Change{Kind: backend.ChangeLost}) }, false, false, false},
		{"another read", func(tr *Tier[int]) { tr.Begin("k") }, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewManual(t0)
			tr := newNear(t, clk)
			r := tr.Begin("k")
			tc.race(tr)
			if tc.name == "loss" {
				tr.Changed(backend.Change{Kind: backend.ChangeLive})
			}
			raced := tr.End(r, []string{"k"}, found("v", time.Second), true)
			if _, _, got := tr.Cached("k", false); got != tc.wantNear {
				t.Errorf("near hit after the read: got %v, want %v", got, tc.wantNear)
			}
			if got := len(raced) == 1; got != tc.wantRaced {
				t.Errorf("to verify: got %v, want %v", raced, tc.wantRaced)
			}
			clk.Advance(2 * time.Second)
			if _, got := tr.Stale("k"); got != tc.wantStale {
				t.Errorf("served stale after expiry: got %v, want %v", got, tc.wantStale)
			}
		})
	}
}

// TestWriteForgetsBeforeAndAfter: a read that began while a write was under
// way never leaves its value near, and the write leaves only a deadline.
func TestWriteForgetsBeforeAndAfter(t *testing.T) {
	clk := clock.NewManual(t0)
	tr := newNear(t, clk)
	tr.Forget("k")
	w := tr.Begin("k")
	r := tr.Begin("k") // a read during the write
	tr.End(r, []string{"k"}, found("old", time.Minute), true)
	tr.Wrote(w, []string{"k"}, nil, []int64{t0.Add(time.Minute).UnixNano()})
	if v, _, ok := tr.Cached("k", false); ok {
		t.Fatalf("near hit %q after a write that a read raced", v)
	}
	if _, ok := tr.Far("k", t0.UnixNano()); ok {
		t.Fatal("a deadline is known after a write that a read raced")
	}
	w = tr.Begin("k")
	tr.Wrote(w, []string{"k"}, nil, []int64{t0.Add(time.Minute).UnixNano()})
	if d, ok := tr.Far("k", t0.UnixNano()); !ok || d != t0.Add(time.Minute).UnixNano() {
		t.Fatalf("Far after a write: got %v %v, want its deadline", d, ok)
	}
	if _, _, ok := tr.Cached("k", false); ok {
		t.Fatal("a written value is served near")
	}
}

// TestForgetRevokesLoads: a load under way loses the right to store when its
// key is forgotten or purged.
func TestForgetRevokesLoads(t *testing.T) {
	tr := New[int](Options{Clock: clock.NewManual(t0), MaxEntries: 10})
	for _, forget := range []func(){func() { tr.Forget("k") }, func() { tr.Purge(true) }} {
		f, leader := tr.Join("k", true)
		if !leader {
			t.Fatal("first Join did not lead")
		}
		if g, again := tr.Join("k", true); g != f || again {
			t.Fatal("second Join did not share the flight")
		}
		forget()
		if tr.MayStore(f) {
			t.Error("MayStore after the key was forgotten")
		}
		tr.Leave(f)
		tr.Leave(f)
		tr.Finish("k", f)
	}
	if n := len(tr.slots); n != 0 {
		t.Errorf("slots left: %d", n)
	}
}

// TestBounds: entries and bytes are bounded, least recently used first.
func TestBounds(t *testing.T) {
	o, _ := Near(3, 1<<20, 0, 0)
	o.Clock = clock.NewManual(t0)
	tr := New[int](o)
	tr.Changed(backend.Change{Kind: backend.ChangeLive})
	for i := range 5 {
		k := fmt.Sprint(i)
		r := tr.Begin(k)
		tr.End(r, []string{k}, found("v", backend.NoTTL), false)
	}
	if s := tr.Stats(); s.Entries != 3 {
		t.Errorf("entries: got %d, want 3", s.Entries)
	}
	if _, _, ok := tr.Cached("0", false); ok {
		t.Error("the least recently used key was kept")
	}
	o, _ = Near(100, 16*200, 0, 0)
	o.Clock = clock.NewManual(t0)
	tr = New[int](o)
	tr.Changed(backend.Change{Kind: backend.ChangeLive})
	for i := range 40 {
		k := fmt.Sprint(i)
		r := tr.Begin(k)
		tr.End(r, []string{k}, found(string(make([]byte, 100)), backend.NoTTL), false)
	}
	if s := tr.Stats(); s.Bytes > 16*200 || s.Entries == 0 {
		t.Errorf("bytes %d of at most %d, entries %d", s.Bytes, 16*200, s.Entries)
	}
}

// TestVerify: a value a report made unverified is served stale again only
// once a read found the same bytes and deadline.
func TestVerify(t *testing.T) {
	for _, tc := range []struct {
		name string
		val  []backend.Value
		want bool
	}{
		{"same", found("v", time.Second), true},
		{"changed", found("w", time.Second), false},
		{"deleted", []backend.Value{{}}, false},
		{"expiry changed", found("v", time.Hour), false},
		{"failed", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewManual(t0)
			tr := newNear(t, clk)
			r := tr.Begin("k")
			tr.End(r, []string{"k"}, found("v", time.Second), true)
			tr.Changed(backend.Change{Kind: backend.ChangeKeys, Keys: []string{"k"}})
			if _, ok := tr.Far("k", t0.UnixNano()); ok {
				t.Fatal("an unverified deadline is known")
			}
			keys, vr := tr.TakeVerify(false)
			if len(keys) != 1 || keys[0] != "k" {
				t.Fatalf("queued for the verifier: got %v, want [k]", keys)
			}
			tr.Verified(vr, keys, tc.val)
			if keys, _ := tr.TakeVerify(false); keys != nil {
				t.Fatalf("still queued: %v", keys)
			}
			clk.Advance(2 * time.Second)
			if _, got := tr.Stale("k"); got != tc.want {
				t.Errorf("served stale: got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestConcurrent runs readers, writers and reports at once (-race), and
// checks that no slot is left behind.
func TestConcurrent(t *testing.T) {
	tr := newNear(t, clock.System())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprint(i % 7)
				switch (g + i) % 4 {
				case 0:
					r := tr.Begin(k)
					tr.End(r, []string{k}, found("v", time.Minute), true)
				case 1:
					tr.Forget(k)
				case 2:
					tr.Changed(backend.Change{Kind: backend.ChangeKeys, Keys: []string{k}})
				default:
					tr.Cached(k, false)
					f, lead := tr.Join(k, false)
					if lead {
						tr.Finish(k, f)
					}
				}
			}
		})
	}
	wg.Wait()
	tr.Purge(true)
	if n := len(tr.slots); n != 0 {
		t.Errorf("slots left: %d", n)
	}
}

// TestCachedStringIsAStableView: CachedString serves the near-cached value
// without copying it, and a string it returned keeps its value after the
// slot's value is replaced, forgotten or purged (the tier never writes the
// bytes it keeps); Cached returns a copy the caller may write.
func TestCachedStringIsAStableView(t *testing.T) {
	tr := newNear(t, clock.NewManual(t0))
	keep := func(v string) {
		t.Helper()
		r := tr.Begin("k")
		tr.End(r, []string{"k"}, found(v, time.Hour), false)
	}
	keep("first")
	s, ttl, ok := tr.CachedString("k")
	if !ok || s != "first" || ttl <= 0 {
		t.Fatalf("CachedString = %q, %v, %v; want first, a TTL, true", s, ttl, ok)
	}
	if n := testing.AllocsPerRun(100, func() { tr.CachedString("k") }); n != 0 {
		t.Errorf("CachedString allocates %v times a hit; want 0 (a view, not a copy)", n)
	}
	raw, _, _ := tr.Cached("k", false)
	raw[0] = 'X' // the caller's copy
	tr.Forget("k")
	keep("second")
	tr.Purge(true)
	if s != "first" {
		t.Errorf("a string CachedString returned changed to %q; want first", s)
	}
	keep("third")
	if s2, _, _ := tr.CachedString("k"); s2 != "third" || s != "first" {
		t.Errorf("CachedString = %q (earlier %q); want third (first)", s2, s)
	}
}
