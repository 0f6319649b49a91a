package keyset

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
)

func TestAdd(t *testing.T) {
	tests := []struct {
		name string
		adds []string
		want []bool // what each Add reports
		len  int
	}{
		{"empty key", []string{"", ""}, []bool{true, false}, 1},
		{"distinct", []string{"a", "b", "ab", "a\x00", "ключ"}, []bool{true, true, true, true, true}, 5},
		{"duplicates", []string{"k", "j", "k", "k", "j"}, []bool{true, true, false, false, false}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Set
			for i, k := range tt.adds {
				if got := s.Add(k); got != tt.want[i] {
					t.Errorf("Add(%q) #%d = %v; want %v", k, i, got, tt.want[i])
				}
			}
			if got := s.Len(); got != tt.len {
				t.Errorf("Len = %d; want %d", got, tt.len)
			}
		})
	}
}

// TestAddMany adds keys enough to grow every shard many times, twice each.
func TestAddMany(t *testing.T) {
	var s Set
	const n = 200_000
	for round, want := range []bool{true, false} {
		for i := range n {
			if k := fmt.Sprintf("k%07d", i); s.Add(k) != want {
				t.Fatalf("round %d: Add(%q) = %v; want %v", round, k, !want, want)
			}
		}
	}
	if s.Len() != n {
		t.Errorf("Len = %d; want %d", s.Len(), n)
	}
}

// TestMillionFits checks the bound of the package doc: a million keys hold
// under 12 MiB, and the heap (garbage of growth included, sampled every 4096
// keys) never rises more than 24 MiB above where it was.
func TestMillionFits(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	heap := func() int64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	runtime.GC()
	base, peak := heap(), int64(0)
	var s Set
	key := make([]byte, 0, 64)
	for i := range 1_000_000 {
		key = fmt.Appendf(key[:0], "binance:strat-%07d:BTC/USDT", i)
		s.Add(string(key))
		if i%4096 == 0 {
			peak = max(peak, heap()-base)
		}
	}
	runtime.GC()
	held := heap() - base
	t.Logf("1M keys: %.1f MiB held, peak %.1f MiB", mib(held), mib(peak))
	if held > 12<<20 {
		t.Errorf("a million keys hold %.1f MiB; want at most 12 MiB", mib(held))
	}
	if peak > 24<<20 {
		t.Errorf("the heap rose by %.1f MiB while adding a million keys; want at most 24 MiB", mib(peak))
	}
	runtime.KeepAlive(&s)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

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
