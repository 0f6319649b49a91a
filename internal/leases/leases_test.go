package leases_test

import (
	"slices"
	"testing"
	"time"

	"github.com/kvmap/kv/internal/leases"
)

// TestTable runs the table through each call, at clocks far from 1970 as a
// backtest's may be (years 1500 and 2900, outside Unix nanoseconds).
func TestTable(t *testing.T) {
	for _, start := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2900, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(start.Format("2006"), func(t *testing.T) {
			var tb leases.Table
			now := start
			held, a, taken := tb.Acquire([]string{"ns:x", "ns:y", "other:z"}, now, time.Second)
			if !slices.Equal(held, []bool{true, true, true}) || len(taken) != 3 {
				t.Fatalf("Acquire = %v, %q", held, taken)
			}
			if held, _, _ := tb.Acquire([]string{"ns:x"}, now, time.Second); held[0] {
				t.Errorf("a held lease was taken again")
			}
			now = now.Add(900 * time.Millisecond)
			tb.Renew(a, []string{"ns:x"}, now, time.Second)
			now = now.Add(500 * time.Millisecond) // y expired, x renewed
			if held, _, _ := tb.Acquire([]string{"ns:x", "ns:y"}, now, time.Second); !slices.Equal(held, []bool{false, true}) {
				t.Errorf("Acquire after y expired = %v; want [false true]", held)
			}
			if tb.Take(a, "ns:y", now) {
				t.Errorf("Take of a lease the owner lost succeeded")
			}
			if !tb.Take(a, "ns:x", now) || tb.Take(a, "ns:x", now) {
				t.Errorf("Take of a held lease: want true once")
			}
			_, c, _ := tb.Acquire([]string{"other:w", "ns:w"}, now, time.Minute)
			tb.EndPrefix("ns:")
			if !tb.Take(c, "other:w", now) {
				t.Errorf("EndPrefix(ns:) ended the lease of other:w")
			}
			if tb.Take(c, "ns:w", now) {
				t.Errorf("EndPrefix(ns:) left the lease of ns:w")
			}
			held, b, _ := tb.Acquire([]string{"ns:y", "k"}, now, time.Minute)
			if !slices.Equal(held, []bool{true, true}) {
				t.Errorf("Acquire after EndPrefix = %v; want both free", held)
			}
			tb.End("k")
			tb.Release(b, []string{"ns:y"}, now)
			if held, _, _ := tb.Acquire([]string{"ns:y", "k"}, now, time.Minute); !slices.Equal(held, []bool{true, true}) {
				t.Errorf("Acquire after End and Release = %v; want both free", held)
			}
		})
	}
}
