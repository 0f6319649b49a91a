// Package leases is the in-process lease table of the stores that keep their
// leases in memory rather than as keys (memory, bbolt): the leases of
// backend.Capabilities.AcquireLeases, apart from the data, expiring by the
// store's clock.
//
// A store owns one Table, and calls End or EndPrefix from its Delete, Expire
// and DeletePrefix, so that those calls end the leases of the keys they
// reach, whoever holds them. Lease.Store is the store's own: under the
// store's write lock it calls Table.Take for each entry, compares the key
// with the entry's guard and writes it, so that a check and its write are
// one step.
package leases

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/kvmap/kv/backend"
)

// Table is a set of leases, one per key at most. Its zero value is empty and
// ready. It is safe for concurrent use; a store may call it while holding
// its own lock (the Table's lock is always taken last).
type Table struct {
	mu      sync.Mutex
	m       map[string]hold // key -> holder
	owner   uint64          // the last owner number given out
	sweepAt int             // len(m) at which Acquire drops expired holds
}

// hold is one lease: its owner and when it expires.
type hold struct {
	owner    uint64
	deadline time.Time
}

// Acquire takes the lease of each of keys that no owner holds at now,
// expiring ttl (checked by backend.CheckLeaseTTL) after now, for a new owner.
// It reports which it took, the owner, and the keys taken (nil when none
// was).
func (t *Table) Acquire(keys []string, now time.Time, ttl time.Duration) (held []bool, owner uint64, taken []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]hold{}
	}
	if len(t.m) >= t.sweepAt {
		for k, h := range t.m {
			if !h.deadline.After(now) {
				delete(t.m, k)
			}
		}
		t.sweepAt = 2*len(t.m) + 64
	}
	t.owner++
	owner = t.owner
	held = make([]bool, len(keys))
	for i, k := range keys {
		if h, ok := t.m[k]; ok && h.deadline.After(now) {
			continue
		}
		t.m[k] = hold{owner: owner, deadline: now.Add(ttl)}
		held[i] = true
		taken = append(taken, k)
	}
	return held, owner, taken
}

// Renew extends the leases of keys that owner still holds at now to expire
// ttl from now.
func (t *Table) Renew(owner uint64, keys []string, now time.Time, ttl time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if t.holds(owner, k, now) {
			t.m[k] = hold{owner: owner, deadline: now.Add(ttl)}
		}
	}
}

// Release ends the leases of keys that owner still holds at now.
func (t *Table) Release(owner uint64, keys []string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if t.holds(owner, k, now) {
			delete(t.m, k)
		}
	}
}

// Take ends the lease of key if owner holds it at now, and reports whether
// it did: the right to store key, used once.
func (t *Table) Take(owner uint64, key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.holds(owner, key, now) {
		return false
	}
	delete(t.m, key)
	return true
}

// Holds reports whether owner holds the lease of key at now.
func (t *Table) Holds(owner uint64, key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.holds(owner, key, now)
}

// End ends the leases of keys, whoever holds them.
func (t *Table) End(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		delete(t.m, k)
	}
}

// EndPrefix ends the leases of every key that starts with prefix (every
// lease when prefix is empty), whoever holds them.
func (t *Table) EndPrefix(prefix string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.m {
		if strings.HasPrefix(k, prefix) {
			delete(t.m, k)
		}
	}
}

func (t *Table) holds(owner uint64, key string, now time.Time) bool {
	h, ok := t.m[key]
	return ok && h.owner == owner && h.deadline.After(now)
}

// Host is what a Lease needs of its store.
type Host interface {
	// Check returns the error a lease call fails with before doing
	// anything: the store is closed, or ctx has ended.
	Check(ctx context.Context) error
	// Now returns the store's time (a lease expires by the store's clock,
	// whatever year it shows).
	Now() time.Time
	// StoreLeased is Lease.Store for owner, the entries' keys being the
	// table's keys and their TTLs checked: for each entry, under the
	// store's write lock, Table.Take, then the guard, then the write.
	StoreLeased(ctx context.Context, owner uint64, entries []backend.GuardedEntry) ([]bool, error)
}

// Lease is the backend.Lease of one Acquire: the keys an owner took.
type Lease struct {
	t      *Table
	host   Host
	owner  uint64
	keys   []string // table keys
	prefix string   // added to the keys of Store's entries
}

var _ backend.Lease = (*Lease)(nil)

// AcquireLeases is backend.Capabilities.AcquireLeases on t for host: it
// checks the call, takes the leases of prefix+keys[i], and returns a Lease
// whose Store writes entries of keys given without prefix (a store's
// namespace view passes its namespace, "ns:"). It returns a nil Lease when
// no lease was taken.
func (t *Table) AcquireLeases(ctx context.Context, host Host, prefix string, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
	if err := host.Check(ctx); err != nil {
		return nil, nil, err
	}
	ttl, err := backend.CheckLeaseTTL(ttl)
	if err != nil {
		return nil, nil, err
	}
	if err := backend.CheckKeys(keys); err != nil {
		return nil, nil, err
	}
	full, _ := backend.PrefixKeys(prefix, keys) // keys are checked: it cannot fail
	held, owner, taken := t.Acquire(full, host.Now(), ttl)
	if taken == nil {
		return held, nil, nil
	}
	return held, &Lease{t: t, host: host, owner: owner, keys: taken, prefix: prefix}, nil
}

// Renew implements backend.Lease.Renew.
func (l *Lease) Renew(ctx context.Context, ttl time.Duration) error {
	ttl, err := backend.CheckLeaseTTL(ttl)
	if err != nil {
		return err
	}
	if err := l.host.Check(ctx); err != nil {
		return err
	}
	l.t.Renew(l.owner, l.keys, l.host.Now(), ttl)
	return nil
}

// Release implements backend.Lease.Release.
func (l *Lease) Release(ctx context.Context) error {
	if err := l.host.Check(ctx); err != nil {
		return err
	}
	l.t.Release(l.owner, l.keys, l.host.Now())
	return nil
}

// Store implements backend.Lease.Store through the host's StoreLeased.
func (l *Lease) Store(ctx context.Context, entries []backend.GuardedEntry) ([]bool, error) {
	if err := l.host.Check(ctx); err != nil {
		return nil, err
	}
	entries, err := backend.CheckGuardedEntries(entries)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return []bool{}, nil
	}
	// The keys are checked: Prefixed cannot fail.
	entries, _ = backend.Prefixed(l.prefix, entries, func(e *backend.GuardedEntry) *string { return &e.Key })
	return l.host.StoreLeased(ctx, l.owner, entries)
}
