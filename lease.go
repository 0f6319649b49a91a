package kv

import (
	"context"
	"fmt"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/internal/tier"
)

// The waits of a load for another process's lease: from leaseWaitMin,
// doubling, up to leaseWaitMax or a quarter of the lease time.
const (
	leaseWaitMin = time.Millisecond
	leaseWaitMax = 50 * time.Millisecond
)

// leaseOne takes the lease of key before a load (WithLoadLease). It returns
// the lease to hold while loading (nil to load without one: the store has no
// leases, taking it failed, or the Map is closed) and true; or false when
// there is nothing to load: the key was stored by another process, before
// this one took the lease or while it waited (f holds its value), reading
// failed (f holds the error), or this is a refresh and another process is
// refreshing the key. A miss reads the key again once its lease is taken, as
// another process may have stored the key and released its lease since the
// first read.
func (m *Map[V]) leaseOne(ctx context.Context, key string, f *tier.Flight[V], refresh bool) (backend.Lease, bool) {
	if m.acquire == nil {
		return nil, true
	}
	wait := leaseWaitMin
	for {
		held, l, err := m.acquire(ctx, []string{key}, m.leaseTTL)
		if err != nil {
			if ctx.Err() != nil {
				f.Err = fmt.Errorf("load: %w", context.Cause(ctx))
				return nil, false
			}
			m.leaseFailed(ctx, "taking a load lease failed; loading without it", err, 1)
			return nil, refresh || !m.settle(ctx, key, f)
		}
		if held[0] {
			if !refresh && m.settle(ctx, key, f) {
				m.release(ctx, l)
				return nil, false
			}
			return l, true
		}
		if refresh {
			return nil, false
		}
		if !m.pause(ctx, wait, key) {
			f.Err = fmt.Errorf("load: %w", context.Cause(ctx))
			return nil, false
		}
		if m.tier.DropUnwanted(key, f) {
			// No caller waits for the key any more: nobody to load it for.
			f.Err = fmt.Errorf("load: %w", context.Canceled)
			return nil, false
		}
		wait = m.nextWait(wait)
		if m.settle(ctx, key, f) {
			if f.Found {
				m.recordLoad(ctx, loadWaited, 1)
			}
			return nil, false
		}
	}
}

// settle reads key into f, and reports whether that settled it: the key
// was found, or reading failed (unless the Map fails open, which takes the
// failure for a miss).
func (m *Map[V]) settle(ctx context.Context, key string, f *tier.Flight[V]) bool {
	v, ok, _, err := m.get(ctx, key)
	if m.mayFailOpen(ctx, err) {
		m.failedOpen(ctx, failOpenRead, err, 1)
		return false // WithFailOpen: a miss, loaded
	}
	if err != nil || ok {
		f.V, f.Found, f.Err = v, ok, err
		return true
	}
	return false
}

// release releases l, logging and counting a failure: the lease expires by
// itself. It runs on ctx's values but not its cancellation (a load cancelled
// by its timeout or by Close still releases its lease), for at most
// releaseTimeout.
func (m *Map[V]) release(ctx context.Context, l backend.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		m.leaseFailed(ctx, "releasing a load lease failed; it expires by itself", err, 1)
	}
}

// leaseFailed logs and counts (outcome lease_error of kv.client.loads) a
// failure of a lease call that the call does not return.
func (m *Map[V]) leaseFailed(ctx context.Context, msg string, err error, n int) {
	m.warn(ctx, msg, err)
	m.recordLoad(ctx, loadLeaseError, n)
}

// leaseMany takes the leases of keys[i] for i in idx before a batch load.
// mine are the indexes to load here (all of idx when the store has no
// leases, taking them failed, or noLease), others those another process
// holds the lease of; l holds the leases taken.
func (m *Map[V]) leaseMany(ctx context.Context, keys []string, idx []int, noLease bool) (mine, others []int, l backend.Lease) {
	if m.acquire == nil || noLease {
		return idx, nil, nil
	}
	ks := pick(keys, idx)
	held, l, err := m.acquire(ctx, ks, m.leaseTTL)
	if err != nil {
		m.leaseFailed(ctx, "taking load leases failed; loading without them", err, len(ks))
		return idx, nil, nil
	}
	for j, i := range idx {
		if held[j] {
			mine = append(mine, i)
		} else {
			others = append(others, i)
		}
	}
	return mine, others, l
}

// pause waits d, or less when the store reports a change of one of keys
// (a lease holder stored it: the waiter learns of it from the report, as
// rueidisaside's waiters do, instead of at its next poll), and reports false
// instead when the run's context ctx ends first (Close).
func (m *Map[V]) pause(ctx context.Context, d time.Duration, keys ...string) bool {
	wake, stop := m.tier.Wait(keys)
	defer stop()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// nextWait is the wait after one of d.
func (m *Map[V]) nextWait(d time.Duration) time.Duration {
	return min(2*d, leaseWaitMax, max(m.leaseTTL/4, leaseWaitMin))
}

// keepLease renews l every third of the lease time while a load runs, and
// returns the function that stops renewing and releases l (that does
// nothing for a nil l: no lease). Nothing renews after Close: the lease then
// expires by itself.
func (m *Map[V]) keepLease(ctx context.Context, l backend.Lease) (release func()) {
	if l == nil {
		return func() {}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	m.bgMu.Lock()
	if m.closed {
		close(stopped)
	} else {
		m.bg.Add(1) // under bgMu, so never once Close has begun to wait
		go func() {
			defer m.bg.Done()
			defer close(stopped)
			t := time.NewTicker(max(m.leaseTTL/3, time.Millisecond))
			defer t.Stop()
			for {
				select {
				case <-t.C:
					if err := l.Renew(ctx, m.leaseTTL); err != nil && ctx.Err() == nil {
						m.leaseFailed(ctx, "renewing a load lease failed", err, 1)
					}
				case <-stop:
					return
				case <-m.quit:
					return
				}
			}
		}()
	}
	m.bgMu.Unlock()
	return func() {
		close(stop)
		<-stopped
		m.release(ctx, l)
	}
}

// warn logs a failure that the call does not return (WithLogger).
func (m *Map[V]) warn(ctx context.Context, msg string, err error) {
	if m.logger != nil {
		m.logger.WarnContext(ctx, msg, "namespace", m.ns, "error", err.Error())
	}
}
