package backend

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
)

// LeasePrefix starts the keys under which a store that keeps leases as keys
// (Redis) stores them: Redis stores the lease of stored key w as
// ":kv-lease:{T}:w", where T is a short tag in w's cluster slot, so that a
// script can act on a key and its lease together. A namespace is non-empty
// and holds no ":", so no namespace's key starts with ":" and no lease is
// ever inside a namespace: a Map's scans and Size never see one. Such a
// store leaves these keys out of every read, a scan of all keys included;
// its Delete, Expire and DeletePrefix end the leases of the keys they reach.
const LeasePrefix = ":kv-lease:"

// IsLeaseKey reports whether k is a stored lease (it starts with
// LeasePrefix).
func IsLeaseKey(k string) bool { return strings.HasPrefix(k, LeasePrefix) }

// Lease is the set of leases one call of Capabilities.AcquireLeases took.
// Its methods act only on leases still held by this owner: a lease that
// expired, was ended by a Delete, Expire or DeletePrefix of its key, and
// perhaps was taken by another owner since, is left alone.
type Lease interface {
	// Renew extends the leases still held to expire ttl from now.
	Renew(ctx context.Context, ttl time.Duration) error
	// Release ends the leases still held, so that another owner may take
	// them at once. Releasing twice is not an error.
	Release(ctx context.Context) error
	// Store writes each entry and ends its key's lease, in one atomic step
	// per key, only while this owner still holds that lease and the key
	// still holds what the owner read before loading (PrevFound, Prev); a
	// lease still held on a key that changed is ended without writing.
	// stored[i] reports whether entries[i] was written. A lease is lost
	// when it expires, and when Delete, Expire or DeletePrefix reaches its
	// key, from any client of the store: so a load that raced a delete or
	// an expiry change never stores, and one that raced a write finds the
	// key changed. Leases of keys not in entries stay held. Entries are
	// checked as MSet checks them (a TTL of 0 is refused) and nothing is written
	// if one is invalid. A lost reply is an error matching
	// ErrUnknownOutcome; a store that writes entries in parts (Redis)
	// reports a failure part-way of several entries as a *BatchError (Op
	// "store"), stored still marking the entries known written; after any
	// other error stored may be nil: none is known written.
	Store(ctx context.Context, entries []GuardedEntry) (stored []bool, err error)
}

// GuardedEntry is an Entry that Lease.Store writes only if its key is as the
// owner last read it.
type GuardedEntry struct {
	Entry
	// PrevFound reports that the key held Prev; false: the key was absent.
	PrevFound bool
	// Prev is the value read, when PrevFound.
	Prev []byte
}

// Matches reports whether a key found (or not) holding cur is as the guard
// of e expects: absent when PrevFound is false, holding exactly Prev
// otherwise.
func (e GuardedEntry) Matches(found bool, cur []byte) bool {
	if !e.PrevFound {
		return !found
	}
	return found && bytes.Equal(cur, e.Prev)
}

// CheckGuardedEntries checks the entries given to Lease.Store as
// CheckEntries checks MSet's, and returns them with their TTLs as CheckTTL
// returns them (a copy when one had to be rounded).
func CheckGuardedEntries(entries []GuardedEntry) ([]GuardedEntry, error) {
	return checkEntries(entries, func(e *GuardedEntry) *Entry { return &e.Entry })
}

// DropLeaseKeys removes the lease keys from the page of a scan whose prefix
// could match them (the empty prefix, ":" ...), in place. A store that keeps
// leases as keys calls it on every page. Every lease key starts with
// LeasePrefix, whatever follows it (Redis's ":kv-lease:{T}:w").
func DropLeaseKeys(prefix string, keys []string) []string {
	if !strings.HasPrefix(LeasePrefix, prefix) && !strings.HasPrefix(prefix, LeasePrefix) {
		return keys
	}
	out := keys[:0]
	for _, k := range keys {
		if !IsLeaseKey(k) {
			out = append(out, k)
		}
	}
	return out
}

// CheckLeaseTTL checks the lease time given to AcquireLeases or Renew: it
// must be positive and at most MaxTTL (NoTTL is refused: a lease always
// expires). It returns the time to use, under one millisecond rounded up to
// one millisecond, or an error wrapping ErrInvalidTTL.
func CheckLeaseTTL(ttl time.Duration) (time.Duration, error) {
	if ttl == NoTTL {
		return 0, fmt.Errorf("%w: lease time NoTTL (a lease always expires)", ErrInvalidTTL)
	}
	return CheckTTL(ttl)
}
