package backend

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxTTL is the longest TTL any layer accepts: 100 years. Longer TTLs are
// refused with ErrInvalidTTL before anything is written, on every backend and
// at every entry point, so that a deadline (the time of a write plus its TTL)
// never overflows int64 nanoseconds. Use NoTTL for a key that never expires.
const MaxTTL = 100 * 365 * 24 * time.Hour

// CheckTTL checks a TTL given to a Backend (an entry's, or Expire's): it must
// be positive and at most MaxTTL, or NoTTL. It returns the TTL to store, a
// positive TTL under one millisecond rounded up to one millisecond, or an
// error wrapping ErrInvalidTTL.
func CheckTTL(ttl time.Duration) (time.Duration, error) {
	switch {
	case ttl == NoTTL:
		return NoTTL, nil
	case ttl <= 0:
		return 0, fmt.Errorf("%w: %v (want a positive duration or NoTTL)", ErrInvalidTTL, ttl)
	case ttl > MaxTTL:
		return 0, fmt.Errorf("%w: %v is longer than MaxTTL (%v); use NoTTL for no expiry", ErrInvalidTTL, ttl, MaxTTL)
	case ttl < time.Millisecond:
		return time.Millisecond, nil
	}
	return ttl, nil
}

// Deadline returns the absolute deadline, in Unix nanoseconds, of a TTL
// checked by CheckTTL and written at now (Unix nanoseconds): 0 for NoTTL.
// The sum saturates instead of wrapping, and a deadline is never below 1, so
// that 0 keeps meaning "no expiry" and deadlines sort in time order even for a
// clock far in the future or before 1970.
func Deadline(now int64, ttl time.Duration) int64 {
	if ttl == NoTTL {
		return 0
	}
	d := now + int64(ttl)
	switch {
	case ttl > 0 && d < now: // overflow
		return math.MaxInt64
	case d < 1:
		return 1
	}
	return d
}

// CheckKey returns an error wrapping ErrEmptyKey when key is empty.
func CheckKey(key string) error {
	if key == "" {
		return ErrEmptyKey
	}
	return nil
}

// CheckKeys checks every key with CheckKey.
func CheckKeys(keys []string) error {
	if slices.Contains(keys, "") {
		return ErrEmptyKey
	}
	return nil
}

// CheckEntries checks the key and TTL of every entry, as MSet must before
// writing anything, and returns the entries with their TTLs as CheckTTL
// returns them. The input is not modified; the result is a copy when a TTL
// had to be rounded.
func CheckEntries(entries []Entry) ([]Entry, error) {
	return checkEntries(entries, func(e *Entry) *Entry { return e })
}

// checkEntries is CheckEntries for entries of any type that holds an Entry
// (entry returns it).
func checkEntries[E any](entries []E, entry func(*E) *Entry) ([]E, error) {
	out := entries
	for i := range entries {
		e := entry(&entries[i])
		if e.Key == "" {
			return nil, fmt.Errorf("entry %d: %w", i, ErrEmptyKey)
		}
		ttl, err := CheckTTL(e.TTL)
		if err != nil {
			return nil, fmt.Errorf("entry %d (key %s): %w", i, QuoteKey(e.Key), err)
		}
		if ttl != e.TTL {
			if &out[0] == &entries[0] {
				out = append([]E(nil), entries...)
			}
			entry(&out[i]).TTL = ttl
		}
	}
	return out, nil
}

// maxQuotedKey is how many bytes of a key QuoteKey shows.
const maxQuotedKey = 64

// QuoteKey returns key quoted for an error message, cut to its first 64
// bytes (with its length said) so that a huge key cannot flood a log.
func QuoteKey(key string) string {
	if len(key) <= maxQuotedKey {
		return strconv.Quote(key)
	}
	return fmt.Sprintf("%q... (%d bytes)", key[:maxQuotedKey], len(key))
}

// CheckNamespace returns an error wrapping ErrInvalidNamespace unless ns is a
// valid namespace: non-empty, free of ":" (namespace "a" with key "b:x" and
// namespace "a:b" with key "x" would be the same stored key), and free of
// the characters the store reserves (Description.ReservedInNamespace).
func CheckNamespace(ns, reserved string) error {
	switch {
	case ns == "":
		return fmt.Errorf("%w: empty", ErrInvalidNamespace)
	case strings.Contains(ns, ":"):
		return fmt.Errorf("%w: %q contains %q", ErrInvalidNamespace, ns, ":")
	case reserved != "" && strings.ContainsAny(ns, reserved):
		return fmt.Errorf("%w: %q holds one of %q, which the store reserves", ErrInvalidNamespace, ns, reserved)
	}
	return nil
}
