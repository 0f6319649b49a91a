package backend

import (
	"context"
	"time"
)

// NoTTL is the TTL of a key that never expires, BaseMap's -1. Writing an entry
// with NoTTL clears any expiry the key had.
const NoTTL time.Duration = -1

// Entry is one key and value to write, with its own TTL.
type Entry struct {
	// Key is the stored key; it must not be empty.
	Key string
	// Value is stored as given; nil and empty are both the empty value.
	Value []byte
	// TTL is positive, NoTTL, or 0 ("unset", accepted only by the ttl
	// decorator).
	TTL time.Duration
}

// Value is what [Backend.MGet] reports for one key.
type Value struct {
	// Bytes is the stored value, owned by the caller. It is nil when Found is
	// false.
	Bytes []byte
	// TTL is the key's remaining time to live when MGet was asked for TTLs:
	// positive, or NoTTL for a key without expiry. It is 0 otherwise.
	TTL time.Duration
	// Found reports whether the key exists and has not expired.
	Found bool
	// Local reports a value served from a copy in this process (a near
	// cache) without reaching the store.
	Local bool
	// OtherKind reports, for a key not Found by MGet asked for TTLs, that
	// the key may exist holding data of another kind (a Redis list): Get
	// tells (ErrWrongType). A store whose keys are all values never sets
	// it, so that a caller reading with TTLs learns of a missing key in one
	// call.
	OtherKind bool
	// Err, with Found, is the failure of this key alone: its stored value
	// is there but could not be given (a decorator could not decode it:
	// package compress's damaged value); Bytes is nil. The other keys of
	// the call are unaffected; kv reports it as the key's *DecodeError. A
	// store never sets it.
	Err error
}

// Page is one page of a scan.
type Page struct {
	// Keys are the keys of this page, in no particular order. A page may be
	// empty even when Cursor is not.
	Keys []string
	// Cursor resumes the scan where this page ended; it is empty when the scan
	// is complete.
	Cursor string
}

// Backend is the set of primitives a storage engine provides. Application code
// should use package kv; see the package documentation for the contract that
// every method follows.
type Backend interface {
	// MGet reads keys and returns one Value per key, in the same order. A
	// missing or expired key has Found false; it is not an error. When withTTL
	// is true each found key's remaining TTL is read in the same round trip.
	// A key holding data of another kind (a Redis list, say) is reported as
	// not found.
	MGet(ctx context.Context, keys []string, withTTL bool) ([]Value, error)

	// Get reads one key, as MGet of that key without TTL, except that a key
	// holding data of another kind fails with ErrWrongType: it is there, but
	// it is not a value. Every other call sees and touches values only
	// (Scan, MGet and the prefix operations skip other kinds).
	Get(ctx context.Context, key string) (Value, error)

	// MSet writes entries, each with its own TTL. Each key's value and expiry
	// are written atomically: no reader ever sees the new value with the old
	// expiry. The batch as a whole need not be atomic. A later entry for the
	// same key wins. MSet checks every entry first (empty key, invalid TTL,
	// store limits) and writes nothing if any is invalid.
	MSet(ctx context.Context, entries []Entry) error

	// Delete removes keys. Deleting a missing key is not an error.
	Delete(ctx context.Context, keys []string) error

	// Expire sets the remaining TTL of an existing key (ttl positive), or
	// removes its expiry (ttl NoTTL). It reports false, and changes nothing,
	// when the key does not exist. A ttl of 0 or another negative value is
	// refused with ErrInvalidTTL.
	Expire(ctx context.Context, key string, ttl time.Duration) (bool, error)

	// TTL returns the remaining TTL of a key: positive, or NoTTL for a key
	// without expiry. It reports false when the key does not exist.
	TTL(ctx context.Context, key string) (time.Duration, bool, error)

	// Scan returns one page of the keys that start with prefix (all keys when
	// prefix is empty). A scan starts with an empty cursor and goes on with
	// the cursor of the previous page until a page has an empty cursor.
	// pageSize is a hint of how many keys a page should hold; a Backend may
	// return more or fewer, and a page may be empty before the end.
	//
	// A complete scan returns every key present for the whole scan and never
	// a key outside the prefix or one that had expired when it was read. It
	// may return a key more than once (unless Description.UniqueScan), and may
	// or may not return keys written or deleted during the scan. Most callers
	// want Pages, which runs the loop.
	Scan(ctx context.Context, prefix, cursor string, pageSize int) (Page, error)

	// Describe tells what the store is (for telemetry) and the facts and
	// promises beyond this contract that callers rely on (Description). It
	// does no I/O.
	Describe() Description

	// Close releases what the Backend holds. Calls after Close, Close
	// included, fail with ErrClosed. Close does not close a client or handle
	// that the caller gave to the Backend's constructor.
	Close() error
}
