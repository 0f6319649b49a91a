package kv

import (
	"context"
	"fmt"
	"slices"
	"sync"
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
			if ctx.Err() != nil {
				f.err = fmt.Errorf("load: %w", context.Cause(ctx))
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
			f.err = fmt.Errorf("load: %w", context.Cause(ctx))
			return nil, false
		}
		if m.loads.dropUnwanted(key, f) {
			// No caller waits for the key any more: nobody to load it for.
			f.err = fmt.Errorf("load: %w", context.Canceled)
			return nil, false
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
	ks := make([]string, len(idx))
	for j, i := range idx {
		ks[j] = keys[i]
	}
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
	wake := m.wakers.add(keys)
	defer m.wakers.remove(keys, wake)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// wakers are the channels of the lease waits under way, by key, closed by
// a change report of the key.
type wakers struct {
	mu sync.Mutex
	m  map[string][]chan struct{}
}

// add registers one channel for keys, closed at the first report of any.
func (w *wakers) add(keys []string) chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string][]chan struct{}{}
	}
	for _, k := range keys {
		w.m[k] = append(w.m[k], ch)
	}
	return ch
}

// remove unregisters ch from keys.
func (w *wakers) remove(keys []string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		chs := slices.DeleteFunc(w.m[k], func(c chan struct{}) bool { return c == ch })
		if len(chs) == 0 {
			delete(w.m, k)
		} else {
			w.m[k] = chs
		}
	}
}

// wake closes the channels waiting for keys (every channel when all).
func (w *wakers) wake(all bool, keys ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	closeAll := func(k string) {
		for _, ch := range w.m[k] {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
		delete(w.m, k)
	}
	if all {
		for k := range w.m {
			closeAll(k)
		}
		return
	}
	for _, k := range keys {
		closeAll(k)
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
