package bolt

import (
	"fmt"
	"math"
	"time"

	"github.com/kvmap/kv/backend"
)

// Times in a file. The clock of a Backend may read any time from year 1 to
// year 9999 (every time RFC 3339 writes, but year 0), and a deadline is that
// time plus at most backend.MaxTTL. Unix nanoseconds in an int64, the unit
// files have always used, cover only 1678 to 2262, so a deadline is kept in
// an 8-byte code that extends them without changing the deadlines already
// written:
//
//	0                   no deadline
//	1 .. 2^63-1         Unix nanoseconds, 1970-01-01T00:00:00.000000001Z to
//	                    2262-04-11T23:47:16.854775807Z (every file so far)
//	2^63 .. 2^63+2^62-1 microseconds since 0001-01-01, up to 1970-01-01
//	2^63+2^62 ..        microseconds since 2262-04-11T23:47:16.854775Z, after
//	                    2262-04-11T23:47:16.854775807Z
//
// The two microsecond ranges are rounded: a deadline up, the clock's time
// down, so a key never expires early and lives at most a microsecond late.
// Their code order is not time order (the early range sorts after the Unix
// one), so code is compared through ord, the position in time order, and
// the sweeper walks the expiry index range by range.
const (
	earlyCode = uint64(1) << 63               // code of ord 0: 0001-01-01
	lateCode  = uint64(1)<<63 + uint64(1)<<62 // code and ord of lateBase (for times after maxNanoTime)
	nanoOrd   = uint64(1) << 62               // ord of the Unix epoch; ord = nanoOrd + Unix nanoseconds
)

var (
	minClockTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxClockTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
	maxDeadline  = maxClockTime.Add(backend.MaxTTL)
	unixEpoch    = time.Unix(0, 0)
	maxNanoTime  = time.Unix(0, math.MaxInt64)
	lateBase     = maxNanoTime.Truncate(time.Microsecond) // whole microseconds, as every time Go counts from year 1
)

// TimeRange returns the earliest and the latest time the clock of a Backend
// may read: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z. Every
// deadline from a time in the range (plus at most kv.MaxTTL) is kept exactly
// to the nanosecond from 1970 to 2262, to the microsecond outside (rounded
// up). A call made while the clock reads outside the range fails with an
// error wrapping ErrTimeRange.
func TimeRange() (earliest, latest time.Time) { return minClockTime, maxClockTime }

// CheckTime returns nil for a time inside TimeRange, and otherwise an error
// wrapping ErrTimeRange that names the range.
func CheckTime(t time.Time) error {
	if t.Before(minClockTime) || t.After(maxClockTime) {
		return fmt.Errorf("%w: %s is outside %s to %s", ErrTimeRange, formatTime(t),
			formatTime(minClockTime), formatTime(maxClockTime))
	}
	return nil
}

// formatTime writes t for messages, in UTC.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// instant is a time of the clock with its ord (rounded down).
type instant struct {
	t   time.Time
	ord uint64
}

// instantOf returns the instant of t, or an error wrapping ErrTimeRange.
func instantOf(t time.Time) (instant, error) {
	if err := CheckTime(t); err != nil {
		return instant{}, err
	}
	return instant{t: t, ord: ordOf(t, false)}, nil
}

// ordOf returns the position of t (between minClockTime and maxDeadline) in
// time order, rounded up or down to the microsecond outside 1970 to 2262.
func ordOf(t time.Time, up bool) uint64 {
	switch {
	case t.After(unixEpoch) && !t.After(maxNanoTime):
		return nanoOrd + uint64(t.UnixNano())
	case !t.After(unixEpoch):
		return micros(t, minClockTime, up)
	default:
		return lateCode + micros(t, lateBase, up)
	}
}

// micros returns the microseconds from base to t (t not before base),
// rounded up or down, without the overflow of time.Time.Sub beyond 292
// years.
func micros(t, base time.Time, up bool) uint64 {
	secs := t.Unix() - base.Unix()
	ns := int64(t.Nanosecond()) - int64(base.Nanosecond())
	if ns < 0 {
		secs--
		ns += 1e9
	}
	us := uint64(secs)*1e6 + uint64(ns/1000)
	if up && ns%1000 != 0 {
		us++
	}
	return us
}

// timeOf returns the time at ord.
func timeOf(ord uint64) time.Time {
	switch {
	case ord < nanoOrd:
		return time.Unix(minClockTime.Unix()+int64(ord/1e6), int64(ord%1e6)*1000).UTC()
	case ord < lateCode:
		return time.Unix(0, int64(ord-nanoOrd)).UTC()
	default:
		q := ord - lateCode
		return time.Unix(lateBase.Unix()+int64(q/1e6), int64(lateBase.Nanosecond())+int64(q%1e6)*1000).UTC()
	}
}

// codeOrd returns the ord of a deadline's code (not 0).
func codeOrd(code uint64) uint64 {
	switch {
	case code < earlyCode:
		return nanoOrd + code
	case code < lateCode:
		return code - earlyCode
	}
	return code
}

// ordCode returns the code of an ord.
func ordCode(ord uint64) uint64 {
	switch {
	case ord < nanoOrd:
		return earlyCode + ord
	case ord < lateCode:
		return ord - nanoOrd
	}
	return ord
}

// deadlineCode returns the code of the deadline of ttl (checked by
// backend.CheckTTL) from now: 0 for backend.NoTTL.
func deadlineCode(now instant, ttl time.Duration) uint64 {
	if ttl == backend.NoTTL {
		return 0
	}
	return ordCode(ordOf(now.t.Add(ttl), true))
}

// Ords of the ends of what a code can hold: the early range ends at the Unix
// epoch, the late one at the latest deadline.
var (
	epochOrd       = ordOf(unixEpoch, true)
	maxDeadlineOrd = ordOf(maxDeadline, true)
)

// validCode reports whether code is a deadline some write could have
// stored (or 0): a code past the end of its range, or past the latest
// deadline, is damage.
func validCode(code uint64) bool {
	switch ord := codeOrd(code); {
	case code == 0:
		return true
	case ord < nanoOrd:
		return ord <= epochOrd
	default:
		return ord <= maxDeadlineOrd
	}
}

// codeRanges are the ranges of deadline codes in time order: each is
// sorted within itself, and every code of one is earlier than every code of
// the next.
var codeRanges = [...]struct{ from, to uint64 }{
	{earlyCode, lateCode - 1},
	{1, earlyCode - 1},
	{lateCode, math.MaxUint64},
}
