package backend

import (
	"fmt"
	"time"
)

// CheckTTL checks a TTL given to a Backend (an entry's, or Expire's): it must
// be positive or NoTTL. It returns the TTL to store, a positive TTL under one
// millisecond rounded up to one millisecond, or an error wrapping
// ErrInvalidTTL.
func CheckTTL(ttl time.Duration) (time.Duration, error) {
	switch {
	case ttl == NoTTL:
		return NoTTL, nil
	case ttl <= 0:
		return 0, fmt.Errorf("%w: %v (want a positive duration or NoTTL)", ErrInvalidTTL, ttl)
	case ttl < time.Millisecond:
		return time.Millisecond, nil
	}
	return ttl, nil
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
	for _, k := range keys {
		if k == "" {
			return ErrEmptyKey
		}
	}
	return nil
}

// CheckEntries checks the key and TTL of every entry, as MSet must before
// writing anything, and returns the entries with their TTLs as CheckTTL
// returns them. The input is not modified; the result is a copy when a TTL
// had to be rounded.
func CheckEntries(entries []Entry) ([]Entry, error) {
	out := entries
	for i, e := range entries {
		if e.Key == "" {
			return nil, fmt.Errorf("entry %d: %w", i, ErrEmptyKey)
		}
		ttl, err := CheckTTL(e.TTL)
		if err != nil {
			return nil, fmt.Errorf("entry %d (key %q): %w", i, e.Key, err)
		}
		if ttl != e.TTL {
			if &out[0] == &entries[0] {
				out = append([]Entry(nil), entries...)
			}
			out[i].TTL = ttl
		}
	}
	return out, nil
}
