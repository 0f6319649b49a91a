package redis

import (
	"strconv"
	"testing"
)

// TestSlotTags: every slot has a tag of at most six digits that hashes to
// it, the smallest integer that does.
func TestSlotTags(t *testing.T) {
	var first [16384]int // slot -> 1 + the smallest integer hashing to it
	for n, left := 0, 16384; left > 0; n++ {
		if s := Slot(strconv.Itoa(n)); first[s] == 0 {
			first[s] = n + 1
			left--
		}
	}
	for slot := range 16384 {
		tag := SlotTag(slot)
		if len(tag) == 0 || len(tag) > 6 || Slot(tag) != slot || tag != strconv.Itoa(first[slot]-1) {
			t.Fatalf("SlotTag(%d) = %q (slot %d); want %q", slot, tag, Slot(tag), strconv.Itoa(first[slot]-1))
		}
	}
}

// TestLeaseKeyShareSlot: a lease key hashes to its key's slot, whatever
// braces the key holds, and gives the key back.
func TestLeaseKeyShareSlot(t *testing.T) {
	keys := []string{"ns:k", "{ns}:k", "ns:{k}", "ns:a{b}c", "{}", "{", "}", "}{", "{{}}", "ns:{}x", ":kv-lease:{1}:x", ""}
	for i := range 2000 {
		keys = append(keys, "signal_cache:"+strconv.Itoa(i), "{sig"+strconv.Itoa(i)+"}:x")
	}
	for _, w := range keys {
		lk := leaseKey(w)
		if Slot(lk) != Slot(w) {
			t.Errorf("Slot(leaseKey(%q) = %q) = %d; want %d", w, lk, Slot(lk), Slot(w))
		}
		if d, ok := dataKeyOfLease(lk); !ok || d != w {
			t.Errorf("dataKeyOfLease(%q) = %q, %v; want %q", lk, d, ok, w)
		}
	}
	for _, k := range []string{"ns:k", ":kv-lease:", ":kv-lease:{12", ":kv-lease:{12}x"} {
		if d, ok := dataKeyOfLease(k); ok {
			t.Errorf("dataKeyOfLease(%q) = %q; want not a lease", k, d)
		}
	}
}

// TestClearMatch: a prefix delete's filter keeps the keys under the prefix
// and their leases, and nothing else, in both key formats.
func TestClearMatch(t *testing.T) {
	for _, hashTag := range []bool{false, true} {
		b := &Backend{hashTag: hashTag}
		w := func(k string) string {
			s, err := b.wireKey(k)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		match, keep, err := b.clearMatch("ns:")
		if err != nil {
			t.Fatal(err)
		}
		cases := map[string]bool{
			w("ns:k"): true, leaseKey(w("ns:k")): true, w("ns:{a}"): true, leaseKey(w("ns:{a}")): true,
			w("ns2:k"): false, leaseKey(w("ns2:k")): false, w("xns:k"): false, leaseKey(w("xns:k")): false,
			w("a:ns:k"): false, leaseKey(w("a:ns:k")): false,
		}
		if !hashTag { // namespace "a}", key "ns:k": its lease holds "}:ns:k"
			cases["a}:ns:k"], cases[leaseKey("a}:ns:k")] = false, false
		}
		for k, want := range cases {
			if got := keep(k); got != want {
				t.Errorf("hashTag %v: clearMatch(ns:) keeps %q = %v; want %v (pattern %q)", hashTag, k, got, want, match)
			}
		}
	}
}
