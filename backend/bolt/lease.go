package bolt

import (
	"context"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv/backend"
)

// Load leases (backend.Capabilities.AcquireLeases) are held in memory, in
// the Backend's table (internal/leases), under the flat keys ("ns:k"): the
// Maps of one process that share a Backend, whether they reach it flat or
// through a namespace view, load a key once, and a Delete, Expire or Clear
// through any of them ends the leases of the keys it reaches (endLeases,
// called before the write's transaction, so that no Store that begins after
// it finds its lease). Lease.Store checks the lease and the key and writes,
// in one write transaction. A file is opened by one process at a time, so
// no other process holds a lease on its keys.

// acquireLeases is Capabilities.AcquireLeases of the Backend.
func (b *Backend) acquireLeases(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
	return b.leases.AcquireLeases(ctx, leaseHost{b}, "", keys, ttl)
}

// acquireLeases is Capabilities.AcquireLeases of a namespace view: the
// leases of the view's keys are the Backend's leases of "ns:k".
func (v *view) acquireLeases(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
	return v.b.leases.AcquireLeases(ctx, leaseHost{v.b}, v.prefix, keys, ttl)
}

// endLeases ends the leases of keys, located by at, whoever holds them.
func (b *Backend) endLeases(keys []string, at func(string) loc) {
	for _, k := range keys {
		b.leases.End(flatKey(at(k)))
	}
}

// flatKey returns the Backend key of a location.
func flatKey(l loc) string {
	if l.root {
		return l.key
	}
	return l.ns + ":" + l.key
}

// leaseHost is the Backend as internal/leases sees it.
type leaseHost struct{ b *Backend }

// Check implements leases.Host.
func (h leaseHost) Check(ctx context.Context) error { return h.b.check(ctx) }

// Now implements leases.Host: the Backend's clock.
func (h leaseHost) Now() time.Time { return h.b.clock.Now() }

// StoreLeased implements leases.Host: in one write transaction, each entry
// whose lease the owner still holds (which ends it) is written if its key is
// as the guard says.
func (h leaseHost) StoreLeased(ctx context.Context, owner uint64, entries []backend.GuardedEntry) ([]bool, error) {
	b := h.b
	if err := b.checkWrite(ctx); err != nil {
		return nil, err
	}
	locs := make([]loc, len(entries))
	for i, e := range entries {
		locs[i] = locate(e.Key)
		if err := checkLimits(e.Key, locs[i], e.Value); err != nil {
			return nil, err
		}
	}
	stored := make([]bool, len(entries))
	var held []string
	err := b.write(func(tx *bbolt.Tx, now instant) error {
		clear(stored)
		held = held[:0]
		leaseNow := h.Now()
		for i, e := range entries {
			// The lease is checked here and ended once the transaction
			// has committed: ended before, it would let another owner
			// take it and read the key before this write is visible
			// (bbolt's readers do not wait for its writer). A Delete,
			// Expire or DeletePrefix ends it before its own transaction,
			// which then runs after this one.
			if !b.leases.Holds(owner, e.Key, leaseNow) {
				continue
			}
			held = append(held, e.Key)
			l := locs[i]
			var cur []byte
			found := false
			if v := get(tx, l); v != nil && !expired(deadlineOf(v), now) {
				cur, found = v[headerLength:], true
			}
			if !e.Matches(found, cur) {
				continue
			}
			if err := putEntry(tx, l, e.Entry, now); err != nil {
				return err
			}
			stored[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.leases.Release(owner, held, h.Now())
	return stored, nil
}
