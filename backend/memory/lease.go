package memory

import (
	"context"
	"time"

	"github.com/kvmap/kv/backend"
)

// acquireLeases is Capabilities.AcquireLeases: leases held apart from the
// keys (internal/leases), expiring by the Backend's clock. Delete, Expire
// and deletePrefix end the leases of the keys they reach; Lease.Store checks
// the lease and the key and writes under the Backend's lock.
func (b *Backend) acquireLeases(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
	return b.leases.AcquireLeases(ctx, leaseHost{b}, "", keys, ttl)
}

// leaseHost is the Backend as internal/leases sees it.
type leaseHost struct{ b *Backend }

// Check implements leases.Host.
func (h leaseHost) Check(ctx context.Context) error {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	return h.b.check(ctx)
}

// Now implements leases.Host: the Backend's clock.
func (h leaseHost) Now() time.Time { return h.b.clock.Now() }

// StoreLeased implements leases.Host: each entry whose lease owner still
// holds is written if its key is as the guard says, all under the Backend's
// lock, so that no write, delete or expiry change comes in between.
func (h leaseHost) StoreLeased(ctx context.Context, owner uint64, entries []backend.GuardedEntry) ([]bool, error) {
	b := h.b
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.unlock()
	now := b.now()
	leaseNow := h.Now()
	stored := make([]bool, len(entries))
	for i, e := range entries {
		if !b.leases.Take(owner, e.Key, leaseNow) {
			continue
		}
		it, found := b.lookup(e.Key, now, false)
		var cur []byte
		if found {
			cur = it.val()
		}
		if !e.Matches(found, cur) {
			continue
		}
		b.put(e.Key, e.Value, backend.Deadline(now, e.TTL))
		stored[i] = true
	}
	return stored, nil
}
