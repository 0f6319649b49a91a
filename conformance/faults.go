package conformance

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kvmap/kv/backend"
)

// Faults injects faults below a store under test, so that the fault cases
// can check what the layers above report. Each method sets the mode of every
// call that reaches the store from then on, until the next one.
type Faults interface {
	// Fail makes every call fail before it reaches the data: nothing is
	// carried out (a server proxy refuses and drops connections).
	Fail()
	// Stall makes every call hang until its context ends: no byte reaches
	// the data or comes back.
	Stall()
	// Flaky makes some calls fail at random, some before the store sees them
	// and some after it carried them out, with the reply lost (a server
	// proxy resets connections mid-reply).
	Flaky()
	// Heal ends the fault: calls reach the store again.
	Heal()
}

// ErrInjected is the error of a call that WithFaults made fail.
var ErrInjected = errors.New("conformance: injected fault")

// WithFaults wraps an in-process store (memory, bbolt, or a third party's)
// for Harness.Faults: the returned Backend passes every call to b unless the
// returned Faults says otherwise. It forwards b's Optimizations and
// Capabilities but its namespace views (which would bypass the faults), so
// the faults reach the paths the Map really takes. In Flaky mode every third call fails, in
// turn before and after reaching b. Closing the returned Backend closes b.
func WithFaults(b backend.Backend) (backend.Backend, Faults) {
	f := &faulty{Wrapper: backend.Wrapper{Backend: b}, healed: make(chan struct{})}
	close(f.healed)
	return f, f
}

// Fault modes.
const (
	modeOK = iota
	modeFail
	modeStall
	modeFlaky
)

// faulty is the Backend and the Faults that WithFaults returns.
type faulty struct {
	backend.Wrapper

	mu     sync.Mutex
	mode   int
	healed chan struct{} // closed unless stalled
	calls  int           // calls seen in Flaky mode
}

func (f *faulty) set(mode int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mode == modeStall {
		if f.mode != modeStall {
			f.healed = make(chan struct{})
		}
	} else if f.mode == modeStall {
		close(f.healed)
	}
	f.mode = mode
	f.calls = 0
}

func (f *faulty) Fail()  { f.set(modeFail) }
func (f *faulty) Stall() { f.set(modeStall) }
func (f *faulty) Flaky() { f.set(modeFlaky) }
func (f *faulty) Heal()  { f.set(modeOK) }

// before runs ahead of a call. It returns whether the call must fail after
// reaching the store (Flaky), and the error it fails with before.
func (f *faulty) before(ctx context.Context) (bool, error) {
	f.mu.Lock()
	mode, healed := f.mode, f.healed
	n := 0
	if mode == modeFlaky {
		f.calls++
		n = f.calls
	}
	f.mu.Unlock()
	switch mode {
	case modeFail:
		return false, ErrInjected
	case modeStall:
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-healed:
			return false, nil
		}
	case modeFlaky:
		switch n % 6 {
		case 2:
			return false, ErrInjected
		case 5:
			return true, nil
		}
	}
	return false, nil
}

// call runs do between the fault checks.
func call[R any](ctx context.Context, f *faulty, do func() (R, error)) (R, error) {
	var zero R
	after, err := f.before(ctx)
	if err != nil {
		return zero, err
	}
	r, err := do()
	if err == nil && after {
		return zero, ErrInjected // carried out; the reply is lost
	}
	return r, err
}

func (f *faulty) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	return call(ctx, f, func() ([]backend.Value, error) { return f.Backend.MGet(ctx, keys, withTTL) })
}

func (f *faulty) MSet(ctx context.Context, entries []backend.Entry) error {
	_, err := call(ctx, f, func() (struct{}, error) { return struct{}{}, f.Backend.MSet(ctx, entries) })
	return err
}

func (f *faulty) Delete(ctx context.Context, keys []string) error {
	_, err := call(ctx, f, func() (struct{}, error) { return struct{}{}, f.Backend.Delete(ctx, keys) })
	return err
}

func (f *faulty) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return call(ctx, f, func() (bool, error) { return f.Backend.Expire(ctx, key, ttl) })
}

func (f *faulty) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	type r struct {
		d  time.Duration
		ok bool
	}
	res, err := call(ctx, f, func() (r, error) {
		d, ok, err := f.Backend.TTL(ctx, key)
		return r{d, ok}, err
	})
	return res.d, res.ok, err
}

func (f *faulty) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	return call(ctx, f, func() (backend.Page, error) { return f.Backend.Scan(ctx, prefix, cursor, count) })
}

func (f *faulty) Get(ctx context.Context, key string) (backend.Value, error) {
	return call(ctx, f, func() (backend.Value, error) { return f.Backend.Get(ctx, key) })
}

// Optimizations forwards those of the wrapped store, each through the
// faults.
func (f *faulty) Optimizations() backend.Optimizations {
	o := backend.OptimizationsOf(f.Backend)
	var out backend.Optimizations
	if d := o.DeletePrefix; d != nil {
		out.DeletePrefix = func(ctx context.Context, prefix string, count int) error {
			_, err := call(ctx, f, func() (struct{}, error) { return struct{}{}, d(ctx, prefix, count) })
			return err
		}
	}
	if c := o.CountPrefix; c != nil {
		out.CountPrefix = func(ctx context.Context, prefix string, count int) (int, error) {
			return call(ctx, f, func() (int, error) { return c(ctx, prefix, count) })
		}
	}
	if s := o.ScanEntries; s != nil {
		out.ScanEntries = func(ctx context.Context, prefix, cursor string, count int) (backend.EntryPage, error) {
			return call(ctx, f, func() (backend.EntryPage, error) { return s(ctx, prefix, cursor, count) })
		}
	}
	return out
}

// Capabilities forwards those of the wrapped store, AcquireLeases and SetIf
// through the faults, but its namespace views, which would bypass them. A watch's
// reports come from the store; a fault below it (a broken connection) is
// the store's to report as ChangeLost.
func (f *faulty) Capabilities() backend.Capabilities {
	out := f.Wrapper.Capabilities()
	out.Namespace = nil
	if w := out.SetIf; w != nil {
		out.SetIf = func(ctx context.Context, e backend.GuardedEntry) (bool, error) {
			return call(ctx, f, func() (bool, error) { return w(ctx, e) })
		}
	}
	if a := out.AcquireLeases; a != nil {
		out.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
			type got struct {
				held  []bool
				lease backend.Lease
			}
			g, err := call(ctx, f, func() (got, error) {
				held, l, err := a(ctx, keys, ttl)
				return got{held, l}, err
			})
			return g.held, g.lease, err
		}
	}
	return out
}

var (
	_ backend.Backend   = (*faulty)(nil)
	_ backend.Optimizer = (*faulty)(nil)
	_ backend.Capable   = (*faulty)(nil)
)

// FaultsAround returns a Harness.Faults for an in-process store: each Store
// from newStore with its Backend wrapped by WithFaults.
//
//	h.Faults = conformance.FaultsAround(h.New)
func FaultsAround(newStore func(t T) Store) func(t T) (Store, Faults) {
	return func(t T) (Store, Faults) {
		s := newStore(t)
		b, f := WithFaults(s.Backend)
		s.Backend = b
		return s, f
	}
}
