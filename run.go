package kv

import (
	"context"
	"fmt"
	"time"
)

// The loads of a Map run under its control: each load runs in a run,
// whose context carries the first caller's values but not its cancellation,
// and which Close cancels; the load function itself runs in a goroutine of
// its own, under the run's context and the Map's load timeout, so that a
// load function that ignores its context cannot hold its run, its lease or
// Close beyond the timeout.

// releaseTimeout bounds the release of a lease after its load ended, on a
// context that is no longer the load's (which may have been cancelled).
const releaseTimeout = time.Second

// runs are the loads a Map is running: their cancel functions, for Close,
// and the load functions still running.
type runs struct {
	next    uint64
	cancels map[uint64]context.CancelCauseFunc // made by New
	loaders int                                // load functions still running
	idle    chan struct{}                      // made by Close, closed when loaders reaches 0
}

// startRun runs fn in a load run, on the run's context: the values of ctx
// (and its cancellation, for a run that is not in the background),
// cancelled by Close or when fn returns. A run that goes on after its
// caller returns (anything but a synchronous refresh) runs, with background
// true, in a goroutine of its own, counted for Close; another runs in the
// caller. It returns false, running nothing, once the Map is closed.
func (m *Map[V]) startRun(ctx context.Context, background bool, fn func(context.Context)) bool {
	parent := ctx
	if background {
		parent = context.WithoutCancel(ctx)
	}
	// A run inside its call (a synchronous refresh) also ends with the call's
	// context.
	rctx, cancel := context.WithCancelCause(parent)
	m.bgMu.Lock()
	if m.closed {
		m.bgMu.Unlock()
		cancel(ErrClosed)
		return false
	}
	id := m.runs.next
	m.runs.next++
	m.runs.cancels[id] = cancel
	if background {
		m.bg.Add(1) // under bgMu, so never once Close has begun to wait
	}
	m.bgMu.Unlock()
	run := func() {
		defer func() {
			m.bgMu.Lock()
			delete(m.runs.cancels, id)
			m.bgMu.Unlock()
			cancel(nil)
			if background {
				m.bg.Done()
			}
		}()
		fn(rctx)
	}
	if background {
		go run()
	} else {
		run()
	}
	return true
}

// isClosed reports whether Close has been called.
func (m *Map[V]) isClosed() bool {
	m.bgMu.Lock()
	defer m.bgMu.Unlock()
	return m.closed
}

// callLoad calls fn in a goroutine of its own with a context derived from
// the run's context rctx that ends at the Map's load timeout, and returns
// its result; or, when the timeout or Close comes first, the error that
// ended the load. fn is then left running: its result, if it comes, is
// dropped, and Close waits for it up to the load timeout. A panic in fn is
// returned as an error.
func callLoad[V, T any](m *Map[V], rctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	// A load that runs past the timeout fails with an error that matches
	// ErrLoadTimeout and context.DeadlineExceeded.
	timeout := fmt.Errorf("%w after %v (%w)", ErrLoadTimeout, m.loadTimeout, context.DeadlineExceeded)
	lctx, cancel := context.WithTimeoutCause(rctx, m.loadTimeout, timeout)
	defer cancel()
	if lctx.Err() != nil {
		return zero, context.Cause(lctx) // Close came first
	}
	m.bgMu.Lock()
	m.runs.loaders++
	m.bgMu.Unlock()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1) // the goroutine never blocks on it
	go func() {
		defer m.loaderDone()
		defer func() {
			if r := recover(); r != nil {
				ch <- result{err: fmt.Errorf("load panicked: %v", r)}
			}
		}()
		v, err := fn(lctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		if lctx.Err() != nil {
			// Ended with the timeout or Close: not a result to store.
			return zero, context.Cause(lctx)
		}
		return r.v, r.err
	case <-lctx.Done():
		return zero, context.Cause(lctx)
	}
}

// loaderDone counts a load function that returned.
func (m *Map[V]) loaderDone() {
	m.bgMu.Lock()
	defer m.bgMu.Unlock()
	m.runs.loaders--
	if m.runs.loaders == 0 && m.runs.idle != nil {
		close(m.runs.idle)
		m.runs.idle = nil
	}
}

// Close stops the Map: it cancels the context of every load the Map runs
// (GetOrLoad's and GetManyOrLoad's, refreshes of WithRefreshAhead, reloads
// of WithStaleWhileRevalidate), ends every wait for another process's lease,
// stops renewing leases, and waits for its loads to end: a load function
// that honours its context never runs after Close returns. One that ignores
// it is waited for up to the load timeout (WithLoadTimeout), then abandoned:
// logged (WithLogger) and counted (outcome "abandoned" of kv.client.loads).
// Close stops the near cache (WithNearCache) and the Map's watch, and
// unregisters the callback that reports the Map's local tier (kv.local.*
// metrics): its only possible error.
//
// After Close, a call that would start a load (a miss of GetOrLoad or
// GetManyOrLoad) returns ErrClosed; every other call keeps working, on the
// store, which Close does not close. Closing twice is not an error.
func (m *Map[V]) Close() error {
	m.bgMu.Lock()
	if !m.closed {
		m.closed = true
		close(m.quit)
	}
	for _, cancel := range m.runs.cancels {
		cancel(ErrClosed)
	}
	m.bgMu.Unlock()
	m.bg.Wait()
	m.bgMu.Lock()
	n := m.runs.loaders
	if n > 0 && m.runs.idle == nil {
		m.runs.idle = make(chan struct{})
	}
	idle := m.runs.idle // nil when n is 0
	m.bgMu.Unlock()
	if idle != nil {
		t := time.NewTimer(m.loadTimeout)
		select {
		case <-idle:
		case <-t.C:
			// Close takes no context: the count is recorded without one
			// (no span, no I/O).
			m.recordLoad(context.Background(), loadAbandoned, n)
			if m.logger != nil {
				m.logger.Warn("kv: Close abandoned load functions that ignore their context", "namespace", m.ns, "loads", n)
			}
		}
		t.Stop()
	}
	m.tier.Stop() // first: no verifier starts once stopWatch has waited for them
	m.stopWatch()
	return m.unobserveLocal()
}
