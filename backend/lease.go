package backend

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// LeasePrefix starts the keys under which a store that keeps leases as keys
// (Redis) stores them: the lease of key k is ":kv-lease:k". A namespace is
// non-empty and holds no ":", so no namespace's key starts with ":" and no
// lease is ever inside a namespace: a Map's scans, Size and Clear never see
// or remove one. Such a store leaves these keys out of every read, a scan of
// all keys included.
const LeasePrefix = ":kv-lease:"

// IsLeaseKey reports whether k is a stored lease (it starts with
// LeasePrefix).
func IsLeaseKey(k string) bool { return strings.HasPrefix(k, LeasePrefix) }

// Lease is the set of leases one call of Optimizations.AcquireLeases took.
// Its methods act only on leases still held by this owner: a lease that
// expired, and perhaps was taken by another owner since, is left alone.
type Lease interface {
	// Renew extends the leases still held to expire ttl from now.
	Renew(ctx context.Context, ttl time.Duration) error
	// Release ends the leases still held, so that another owner may take
	// them at once. Releasing twice is not an error.
	Release(ctx context.Context) error
}

// DropLeaseKeys removes the lease keys from the page of a scan whose prefix
// could match them (the empty prefix, ":" ...), in place. A store that keeps
// leases as keys calls it on every page.
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
