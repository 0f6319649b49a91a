package memory

import (
	"context"
	"sync"
	"time"

	"github.com/kvmap/kv/backend"
)

// leases are the leases of a Backend, apart from its keys: no other call
// sees them. A lease expires by the Backend's clock.
type leases struct {
	mu    sync.Mutex
	m     map[string]leaseHold // key -> holder
	owner uint64               // the last owner number given out
}

// leaseHold is one lease: its owner and when it expires.
type leaseHold struct {
	owner    uint64
	deadline int64 // Unix nanoseconds
}

// acquireLeases is Optimizations.AcquireLeases.
func (b *Backend) acquireLeases(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
	b.mu.Lock()
	err := b.check(ctx)
	b.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	if ttl, err = backend.CheckLeaseTTL(ttl); err != nil {
		return nil, nil, err
	}
	if err := backend.CheckKeys(keys); err != nil {
		return nil, nil, err
	}
	ls := &b.leases
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m == nil {
		ls.m = map[string]leaseHold{}
	}
	ls.owner++
	l := &lease{b: b, owner: ls.owner}
	now := b.now()
	held := make([]bool, len(keys))
	for i, k := range keys {
		if h, ok := ls.m[k]; ok && h.deadline > now {
			continue
		}
		ls.m[k] = leaseHold{owner: l.owner, deadline: backend.Deadline(now, ttl)}
		held[i] = true
		l.keys = append(l.keys, k)
	}
	if len(l.keys) == 0 {
		return held, nil, nil
	}
	return held, l, nil
}

// lease is the backend.Lease of one acquireLeases call.
type lease struct {
	b     *Backend
	owner uint64
	keys  []string
}

// Renew implements backend.Lease.Renew.
func (l *lease) Renew(ctx context.Context, ttl time.Duration) error {
	ttl, err := backend.CheckLeaseTTL(ttl)
	if err != nil {
		return err
	}
	return l.each(ctx, func(m map[string]leaseHold, k string, now int64) {
		m[k] = leaseHold{owner: l.owner, deadline: backend.Deadline(now, ttl)}
	})
}

// Release implements backend.Lease.Release.
func (l *lease) Release(ctx context.Context) error {
	return l.each(ctx, func(m map[string]leaseHold, k string, _ int64) { delete(m, k) })
}

// each calls f for every key whose lease this owner still holds.
func (l *lease) each(ctx context.Context, f func(m map[string]leaseHold, k string, now int64)) error {
	l.b.mu.Lock()
	err := l.b.check(ctx)
	l.b.mu.Unlock()
	if err != nil {
		return err
	}
	ls := &l.b.leases
	ls.mu.Lock()
	defer ls.mu.Unlock()
	now := l.b.now()
	for _, k := range l.keys {
		if h, ok := ls.m[k]; ok && h.owner == l.owner && h.deadline > now {
			f(ls.m, k, now)
		}
	}
	return nil
}
