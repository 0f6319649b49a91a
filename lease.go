package kv

import (
	"context"
	"time"

	"github.com/kvmap/kv/backend"
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
func (m *Map[V]) leaseOne(ctx context.Context, key string, f *flight[V], refresh bool) (backend.Lease, bool) {
	if m.acquire == nil {
		return nil, true
	}
	wait := leaseWaitMin
	for {
		held, l, err := m.acquire(ctx, []string{key}, m.leaseTTL)
		if err != nil {
			m.warn(ctx, "taking a load lease failed; loading without it", err)
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
		if !m.pause(wait) {
			return nil, true
		}
		wait = m.nextWait(wait)
		if m.settle(ctx, key, f) {
			if f.found {
				m.recordLoad(ctx, loadWaited, 1)
			}
			return nil, false
		}
	}
}

// settle reads key into f, and reports whether that settled it: the key
// was found, or reading failed.
func (m *Map[V]) settle(ctx context.Context, key string, f *flight[V]) bool {
	v, ok, err := m.get(ctx, key)
	if err != nil || ok {
		f.v, f.found, f.err = v, ok, err
		return true
	}
	return false
}

// release releases l, logging a failure: the lease expires by itself.
func (m *Map[V]) release(ctx context.Context, l backend.Lease) {
	if err := l.Release(ctx); err != nil {
		m.warn(ctx, "releasing a load lease failed; it expires by itself", err)
	}
}

// leaseMany takes the leases of keys[i] for i in idx before a batch load.
// mine are the indexes to load here (all of idx when the store has no
// leases, taking them failed, or noLease), others those another process
// holds the lease of; l holds the leases taken.
func (m *Map[V]) leaseMany(ctx context.Context, keys []string, idx []int, noLease bool) (mine, others []int, l backend.Lease) {
	if m.acquire == nil || noLease {
		return idx, nil, nil
	}
	ks := make([]string, len(idx))
	for j, i := range idx {
		ks[j] = keys[i]
	}
	held, l, err := m.acquire(ctx, ks, m.leaseTTL)
	if err != nil {
		m.warn(ctx, "taking load leases failed; loading without them", err)
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

// pause waits d, and reports false instead when the Map is closed first.
func (m *Map[V]) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.quit:
		return false
	}
}

// nextWait is the wait after one of d.
func (m *Map[V]) nextWait(d time.Duration) time.Duration {
	return min(2*d, leaseWaitMax, max(m.leaseTTL/4, leaseWaitMin))
}

// keepLease renews l every third of the lease time while a load runs, and
// returns the function that stops renewing and releases l. Nothing renews
// after Close: the lease then expires by itself.
func (m *Map[V]) keepLease(ctx context.Context, l backend.Lease) (release func()) {
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
					if err := l.Renew(ctx, m.leaseTTL); err != nil {
						m.warn(ctx, "renewing a load lease failed", err)
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
