package bolt

import (
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// anyTime draws a time between minClockTime and maxDeadline, often near
// the edges of the code's ranges.
func anyTime(t *rapid.T) time.Time {
	edges := []time.Time{minClockTime, unixEpoch, maxNanoTime, lateBase, maxClockTime, maxDeadline}
	if rapid.Bool().Draw(t, "nearEdge") {
		e := rapid.SampledFrom(edges).Draw(t, "edge")
		d := time.Duration(rapid.Int64Range(-int64(time.Hour), int64(time.Hour)).Draw(t, "offset"))
		at := e.Add(d)
		if at.Before(minClockTime) {
			at = minClockTime
		}
		if at.After(maxDeadline) {
			at = maxDeadline
		}
		return at
	}
	lo, hi := minClockTime.Unix(), maxDeadline.Unix()-1
	return time.Unix(rapid.Int64Range(lo, hi).Draw(t, "sec"), rapid.Int64Range(0, 999_999_999).Draw(t, "nsec")).UTC()
}

// TestTimeCodeOrder: ord is monotone in time, rounds down and up by less
// than a microsecond (and not at all in Unix nanoseconds), codes and ords
// convert both ways, and the code ranges hold the ords in time order.
func TestTimeCodeOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := anyTime(t), anyTime(t)
		if b.Before(a) {
			a, b = b, a
		}
		for _, up := range []bool{false, true} {
			if oa, ob := ordOf(a, up), ordOf(b, up); oa > ob {
				t.Fatalf("ordOf(%v, %v) = %d > ordOf(%v) = %d", a, up, oa, b, ob)
			}
		}
		down, up := ordOf(a, false), ordOf(a, true)
		if td, tu := timeOf(down), timeOf(up); td.After(a) || tu.Before(a) || a.Sub(td) >= time.Microsecond || tu.Sub(a) >= time.Microsecond {
			t.Fatalf("%v rounds to %v and %v", a, td, tu)
		}
		if a.After(unixEpoch) && !a.After(maxNanoTime) && (down != up || !timeOf(down).Equal(a)) {
			t.Fatalf("%v in Unix nanoseconds is not exact: %v", a, timeOf(down))
		}
		if a.Equal(a.Truncate(time.Microsecond)) && !timeOf(down).Equal(a) {
			t.Fatalf("a whole microsecond %v reads back as %v", a, timeOf(down))
		}
		for _, o := range []uint64{down, up} {
			c := ordCode(o)
			if c == 0 {
				t.Fatalf("ord %d has code 0 (no deadline)", o)
			}
			if codeOrd(c) != o {
				t.Fatalf("codeOrd(ordCode(%d)) = %d", o, codeOrd(c))
			}
			if !validCode(c) {
				t.Fatalf("the code %#x of %v is not valid", c, a)
			}
		}
		// Codes of one range sort as their times.
		ca, cb := ordCode(ordOf(a, true)), ordCode(ordOf(b, true))
		ra, rb := rangeOf(ca), rangeOf(cb)
		if ra > rb || (ra == rb && ca > cb) {
			t.Fatalf("codes %#x (%v, range %d) and %#x (%v, range %d) out of order", ca, a, ra, cb, b, rb)
		}
	})
	// The ends of the range, exactly.
	if o := ordOf(maxDeadline, true); o == math.MaxUint64 || timeOf(o).Before(maxDeadline) || timeOf(o).Sub(maxDeadline) >= time.Microsecond {
		t.Errorf("maxDeadline %v reads back as %v", maxDeadline, timeOf(o))
	}
	if ordOf(minClockTime, false) != 0 || !timeOf(0).Equal(minClockTime) {
		t.Errorf("minClockTime has ord %d, ord 0 is %v", ordOf(minClockTime, false), timeOf(0))
	}
	// Codes no write stores: the early range past 1970, past the latest
	// deadline.
	for _, c := range []uint64{earlyCode + epochOrd + 1, lateCode - 1, ordCode(maxDeadlineOrd + 1), math.MaxUint64} {
		if validCode(c) {
			t.Errorf("validCode(%#x) = true; want false", c)
		}
	}
}

// rangeOf returns the index of the code range (in time order) that holds c.
func rangeOf(c uint64) int {
	for i, r := range codeRanges {
		if c >= r.from && c <= r.to {
			return i
		}
	}
	return -1
}
