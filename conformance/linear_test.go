package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kvmap/kv"
)

// TestLinearModel checks the checker on hand-made histories of one key:
// each either is or is not (δ-)linearizable.
func TestLinearModel(t *testing.T) {
	ms := int64(time.Millisecond)
	set := func(client int, v string, call, ret int64) linRecord {
		return linRecord{client: client, in: linInput{Kind: linSet, Key: "k", Value: v, TTL: kv.NoTTL, Call: "Set"}, call: call * ms, ret: ret * ms}
	}
	lost := func(client int, v string, call, ret int64) linRecord {
		r := set(client, v, call, ret)
		r.out.Unknown = true
		return r
	}
	setTTL := func(client int, v string, ttl time.Duration, call, ret int64) linRecord {
		r := set(client, v, call, ret)
		r.in.TTL = ttl
		return r
	}
	get := func(client int, v string, call, ret int64) linRecord {
		return linRecord{client: client, in: linInput{Kind: linGet, Key: "k", Call: "Get"}, out: linOutput{Found: v != "", Value: v}, call: call * ms, ret: ret * ms}
	}
	after := func(r linRecord, floor int64) linRecord { r.floor = floor * ms; return r }
	del := func(client int, call, ret int64) linRecord {
		return linRecord{client: client, in: linInput{Kind: linDelete, Key: "k", Call: "Delete"}, call: call * ms, ret: ret * ms}
	}
	expire := func(client int, ttl time.Duration, ok bool, call, ret int64) linRecord {
		return linRecord{client: client, in: linInput{Kind: linExpire, Key: "k", TTL: ttl, Call: "Expire"}, out: linOutput{Found: ok}, call: call * ms, ret: ret * ms}
	}
	ttlOf := func(client int, d time.Duration, call, ret int64) linRecord {
		return linRecord{client: client, in: linInput{Kind: linTTL, Key: "k", Call: "TTL"}, out: linOutput{Found: d != 0, TTL: d}, call: call * ms, ret: ret * ms}
	}
	advance := func(client int, d time.Duration, call, ret int64) linRecord {
		return linRecord{client: client, in: linInput{Kind: linAdvance, TTL: d, Call: "Advance"}, call: call * ms, ret: ret * ms}
	}
	clockLo := func(recs []linRecord) []linRecord { // as the clients record it
		for i := range recs {
			for _, a := range recs {
				if a.in.Kind == linAdvance && a.ret < recs[i].call {
					recs[i].in.ClockLo += int64(a.in.TTL)
				}
			}
		}
		return recs
	}
	tests := []struct {
		name     string
		records  []linRecord
		delta    time.Duration
		exactTTL bool
		want     bool
	}{
		{"read after write", []linRecord{set(0, "a", 0, 1), get(1, "a", 2, 3)}, 0, false, true},
		{"read of a value overwritten before it was called", []linRecord{set(0, "a", 0, 1), set(0, "b", 2, 3), get(1, "a", 4, 5)}, 0, false, false},
		{"read concurrent with the overwrite", []linRecord{set(0, "a", 0, 1), set(0, "b", 2, 5), get(1, "a", 4, 6)}, 0, false, true},
		{"stale read within δ", []linRecord{set(0, "a", 0, 1), set(0, "b", 2, 3), get(1, "a", 4, 5)}, 2 * time.Millisecond, false, true},
		{"stale read beyond δ", []linRecord{set(0, "a", 0, 1), set(0, "b", 2, 3), get(1, "a", 10, 11)}, 2 * time.Millisecond, false, false},
		{"δ never reaches before the client's own write", []linRecord{set(0, "a", 0, 1), set(1, "b", 2, 3), after(get(1, "a", 4, 5), 3)}, 10 * time.Millisecond, false, false},
		{"a lost write may land late", []linRecord{set(0, "a", 0, 1), lost(1, "b", 2, 3), get(0, "a", 4, 5), get(0, "b", 6, 7)}, 0, false, true},
		{"a lost write may never land", []linRecord{set(0, "a", 0, 1), lost(1, "b", 2, 3), get(0, "a", 4, 5)}, 0, false, true},
		{"a lost write lands once", []linRecord{lost(1, "b", 0, 1), get(0, "b", 2, 3), set(0, "c", 4, 5), get(0, "b", 6, 7)}, 0, false, false},
		{"a write re-applied after a later write", []linRecord{set(1, "b", 0, 3), get(0, "b", 1, 2), set(0, "c", 4, 5), get(0, "b", 6, 7)}, 0, false, false},
		{"a read from nowhere", []linRecord{get(0, "x", 0, 1)}, 0, false, false},
		{"delete then absent", []linRecord{set(0, "a", 0, 1), del(1, 2, 3), get(0, "", 4, 5)}, 0, false, true},
		{"delete then present", []linRecord{set(0, "a", 0, 1), del(1, 2, 3), get(0, "a", 4, 5)}, 0, false, false},
		{"expire of a missing key", []linRecord{expire(0, time.Hour, false, 0, 1)}, 0, false, true},
		{"expire reports a key that is missing", []linRecord{expire(0, time.Hour, true, 0, 1)}, 0, false, false},
		{"expire then TTL", []linRecord{set(0, "a", 0, 1), expire(0, time.Hour, true, 2, 3), ttlOf(1, 59*time.Minute, 4, 5)}, 0, false, true},
		{"expire to no TTL then a TTL", []linRecord{set(0, "a", 0, 1), expire(0, kv.NoTTL, true, 2, 3), ttlOf(1, time.Minute, 4, 5)}, 0, false, false},
		{"exact TTL on a manual clock", []linRecord{setTTL(0, "a", time.Second, 0, 1), advance(1, 300*time.Millisecond, 2, 3), ttlOf(0, 700*time.Millisecond, 4, 5)}, 0, true, true},
		{"wrong TTL on a manual clock", []linRecord{setTTL(0, "a", time.Second, 0, 1), advance(1, 300*time.Millisecond, 2, 3), ttlOf(0, time.Second, 4, 5)}, 0, true, false},
		{"expired on a manual clock", []linRecord{setTTL(0, "a", time.Second, 0, 1), advance(1, time.Second, 2, 3), get(0, "", 4, 5)}, 0, true, true},
		{"served past its deadline", []linRecord{setTTL(0, "a", time.Second, 0, 1), advance(1, time.Second, 2, 3), get(0, "a", 4, 5)}, 0, true, false},
		{"TTL counted from the call", []linRecord{advance(1, 300*time.Millisecond, 0, 1), setTTL(0, "a", time.Second, 2, 10), advance(1, 300*time.Millisecond, 3, 4), ttlOf(0, 700*time.Millisecond, 11, 12)}, 0, true, true},
		{"TTL counted from before the call", []linRecord{advance(1, 300*time.Millisecond, 0, 1), setTTL(0, "a", time.Second, 2, 10), advance(1, 300*time.Millisecond, 3, 4), ttlOf(0, 600*time.Millisecond, 11, 12)}, 0, true, false},
		{"TTL read against the clock at the call", []linRecord{setTTL(0, "a", time.Second, 0, 1), advance(1, 300*time.Millisecond, 2, 4), ttlOf(0, time.Second, 3, 5)}, 0, true, true},
		{"TTL read against a clock before the call", []linRecord{setTTL(0, "a", time.Second, 0, 1), advance(1, 300*time.Millisecond, 2, 3), ttlOf(0, time.Second, 4, 5)}, 0, true, false},
		{"a key seen live stays live until the clock moves", []linRecord{advance(1, 300*time.Millisecond, 0, 1), setTTL(0, "a", time.Second, 2, 10), advance(1, time.Second, 3, 4), get(0, "a", 11, 12), get(0, "", 13, 14), get(0, "a", 15, 16)}, 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &linChecker{records: clockLo(tt.records), exactTTL: tt.exactTTL}
			if got := c.check(tt.delta) == linOK; got != tt.want {
				t.Errorf("linearizable = %v; want %v", got, tt.want)
			}
		})
	}
}

// TestLinearMinStaleness checks the measure of δ: a read 7 ms stale needs
// δ of about 7 ms.
func TestLinearMinStaleness(t *testing.T) {
	ms := int64(time.Millisecond)
	c := &linChecker{records: []linRecord{
		{client: 0, in: linInput{Kind: linSet, Key: "k", Value: "a", TTL: kv.NoTTL}, call: 0, ret: 1 * ms},
		{client: 0, in: linInput{Kind: linSet, Key: "k", Value: "b", TTL: kv.NoTTL}, call: 2 * ms, ret: 3 * ms},
		{client: 1, in: linInput{Kind: linGet, Key: "k"}, out: linOutput{Found: true, Value: "a"}, call: 10 * ms, ret: 11 * ms},
	}}
	got := c.minStaleness()
	if got < 7*time.Millisecond || got > 7*time.Millisecond+100*time.Microsecond {
		t.Errorf("minStaleness = %v; want 7ms (to 100µs)", got)
	}
}

// TestLinearShrink checks that a failure is cut down to a part that fails
// too: the writes, which it may need, and the one read that fails.
func TestLinearShrink(t *testing.T) {
	ms := int64(time.Millisecond)
	var recs []linRecord
	for i := range 50 { // a long linearizable prefix
		v := fmt.Sprintf("v%d", i)
		recs = append(recs,
			linRecord{client: 0, in: linInput{Kind: linSet, Key: "k", Value: v, TTL: kv.NoTTL}, call: int64(4*i) * ms, ret: int64(4*i+1) * ms},
			linRecord{client: 1, in: linInput{Kind: linGet, Key: "k"}, out: linOutput{Found: true, Value: v}, call: int64(4*i+2) * ms, ret: int64(4*i+3) * ms})
	}
	recs = append(recs,
		linRecord{client: 2, in: linInput{Kind: linGet, Key: "k"}, out: linOutput{Found: true, Value: "v3"}, call: 300 * ms, ret: 301 * ms},
		linRecord{client: 2, in: linInput{Kind: linGet, Key: "k"}, out: linOutput{Found: true, Value: "v49"}, call: 302 * ms, ret: 303 * ms})
	c := &linChecker{records: recs}
	small := c.shrink(c.ops(0), time.Now().Add(time.Minute))
	reads := 0
	for _, op := range small {
		if isRead(op) {
			reads++
		}
	}
	if len(small) != 51 || reads != 1 {
		t.Errorf("shrunk to %d operations, %d of them reads; want the 50 writes and the failing read", len(small), reads)
	}
	if c.run(small, time.Minute) != linIllegal {
		t.Errorf("the shrunk history is linearizable")
	}
}

// TestLinearClosedPrefix checks that a prefix takes in every operation
// called before one of its operations returned.
func TestLinearClosedPrefix(t *testing.T) {
	op := func(call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: linInput{Kind: linGet}, Output: linOutput{}, Call: call, Return: ret}
	}
	ops := []porcupine.Operation{op(0, 10), op(1, 2), op(5, 20), op(15, 16), op(21, 22)}
	for n, want := range []int{0, 4, 4, 4, 4, 5} {
		if got := len(closedPrefix(ops, n)); got != want {
			t.Errorf("closedPrefix(ops, %d) has %d operations; want %d", n, got, want)
		}
	}
}
