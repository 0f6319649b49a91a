package keyset

import (
	"fmt"
	"testing"
)

func TestOnlyEmpty(t *testing.T) {
	var s Set
	if !s.Add("") || s.Add("") {
		t.Errorf("Add(\"\") twice did not report new then present")
	}
}

func TestAdd(t *testing.T) {
	var s Set
	keys := []string{"", "a", "b", "ab", "a\x00", "ключ"}
	for i := range 10_000 {
		keys = append(keys, fmt.Sprintf("k%05d", i))
	}
	for _, k := range keys {
		if !s.Add(k) {
			t.Fatalf("Add(%q) the first time = false; want true", k)
		}
	}
	for _, k := range keys {
		if s.Add(k) {
			t.Fatalf("Add(%q) the second time = true; want false", k)
		}
	}
	if s.Len() != len(keys) {
		t.Errorf("Len = %d; want %d", s.Len(), len(keys))
	}
}

func BenchmarkAdd100k(b *testing.B) {
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("kvbench_iter:k%06d", i)
	}
	b.Run("impl=map", func(b *testing.B) {
		for b.Loop() {
			m := map[string]struct{}{}
			for _, k := range keys {
				m[k] = struct{}{}
			}
		}
	})
	b.Run("impl=keyset", func(b *testing.B) {
		for b.Loop() {
			var s Set
			for _, k := range keys {
				s.Add(k)
			}
		}
	})
}
