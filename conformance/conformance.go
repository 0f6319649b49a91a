// Package conformance is the executable contract of [backend.Backend]: a table
// of cases, each stating the rule it checks, run against a backend through the
// typed kv.Map that users hold, through the namespace decorator, and
// through the Backend itself.
//
// A backend, ours or a third party's, runs it with one call from its own test:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			New: func(t conformance.T) conformance.Store {
//				clk := clock.NewManual(time.Now())
//				b := mystore.New(mystore.WithClock(clk))
//				return conformance.Store{Backend: b, Advance: clk.Advance}
//			},
//		})
//	}
//
// Every case gets a fresh Store from the Harness. "Fresh" means a new handle,
// possibly over existing data (a shared Redis): every case works in namespaces
// of its own, made unique per run, never scans outside them, and clears them
// when it ends. The suite depends only on package testing, this module and
// porcupine (github.com/anishathalye/porcupine, which has no dependencies of
// its own), the checker of the linearizability cases.
//
// [Test] runs the same cases without a *testing.T and returns what failed, so
// that a suite can prove it fails against broken backends.
//
// # Faults
//
// With [Harness.Faults] set, a group of fault cases runs on stores with a
// fault injector below them ([Faults]: fail, stall, lose replies): a write
// that returns nil is read back, a write that fails says so, a pass that hits
// an error never ends as if complete, no call outlives its deadline, and the
// same Map works once the fault clears. [FaultsAround] gives an in-process
// store its injector; a server's tests put a proxy of their own in front of
// it.
//
// # Leases and fleets
//
// A store that keeps leases (backend.Capabilities.AcquireLeases) runs the
// lease cases: one owner at a time, expiry and renewal, leases invisible to
// every read and Clear, one load across Maps. With [Harness.Shared] set (a
// server that another process reaches too), the fleet cases run the test
// binary again as several processes: 64 misses across 4 processes make one
// load, and a lease holder killed mid-load (SIGKILL) delays the others by at
// most the lease time. They run under go test only ([Run], not [Test]).
//
// # Linearizability
//
// The Linearizable case runs concurrent clients, each a Map of its own (over
// a handle of its own when [Store.Open] is set), doing random Set, Get,
// Delete, SetMany, GetMany, Expire (and SetWithTTL, Has, TTL, DeleteMany) on
// a few shared keys, and checks the history against a sequential model with
// porcupine: every single-key operation must appear to take effect at one
// instant between its call and its return. LinearizableFaults does the same
// on a store from [Harness.Faults] while connections are killed, replies
// lost and calls stalled; a write that returned an error may or may not have
// happened, and the model allows both. Through a near cache
// (kv.WithNearCache) the check is δ-linearizability: a read may be
// linearized up to δ before its call ([LinearOptions.Staleness]).
// [RunLinearizable] runs one such check with options of its own (longer
// histories, faults, more clients); KV_LINEAR_SECONDS makes every run last
// that many seconds.
//
// # Optimisations
//
// [WithoutOptimizations] runs every case with the store's optional
// optimisations hidden ([CoreOnly]): each is a pure optimisation, so the
// results must be those of the full store. Its capabilities are kept, but
// leases (see CoreOnly).
//
// # Capabilities
//
// [CheckForwards] proves that a decorator forwards every capability of the
// store below it (backend.Capabilities, field by field), and that each
// reaches the store with its keys mapped as the decorator says.
package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
)

// T is the part of *testing.T that the cases use. *testing.T implements it.
type T interface {
	Helper()
	Name() string
	Context() context.Context
	Cleanup(func())
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Store is a backend under test, as Harness.New returns it.
type Store struct {
	// Backend is a new handle on the store.
	Backend backend.Backend
	// Advance moves the store's clock forward by d: a fake clock's Advance,
	// or miniredis's FastForward. Nil means the store expires keys in real
	// time; the suite then waits for expiry, polling with a deadline, and
	// keeps its TTLs short.
	Advance func(d time.Duration)
	// Open, when set, returns another handle on the same data as Backend,
	// as a second process would open it: for a server, a Backend on a new
	// client of its own, made with the client library's default options
	// (go-redis's retries included). The linearizability cases
	// (Linearizable, LinearizableFaults) call it once per concurrent client,
	// to give each a handle of its own; the suite closes each handle, and
	// Open releases what else it made with t.Cleanup. Nil means the clients
	// share Backend, each through a Map of its own (an in-process store, or
	// a bbolt file, which one process opens once).
	Open func(t T) backend.Backend
}

// Harness describes a backend to the suite.
type Harness struct {
	// New returns a fresh Store for one case. It may use t.Cleanup to release
	// what it made; the suite closes the Backend itself (ignoring ErrClosed).
	New func(t T) Store
	// Capacity is the number of keys beyond which the store evicts the least
	// recently used one; 0 for a store that never evicts.
	Capacity int
	// PageHint reports that Scan honours its page-size hint, so a scan of
	// many keys with a small hint takes several pages. (miniredis returns
	// every key in one page; a real Redis does not.)
	PageHint bool
	// Options are added to every kv.New of the suite, for example to run it
	// with tracing, metrics or a codec on.
	Options []kv.Option
	// Faults, when set, returns a fresh Store with a fault injector below it
	// (between the Backend and the data: a TCP proxy in front of a server, or
	// WithFaults around an in-process store), and the fault cases run on it.
	// They are skipped when Faults is nil.
	Faults func(t T) (Store, Faults)
	// Shared reports that a Store made by New in another process (the test
	// binary run again) reaches the same data: a server. The fleet cases,
	// which run the test binary as several processes sharing the store, run
	// only then, and only under go test (Run, not Test).
	Shared bool
}

// Case names one rule of the contract.
type Case struct {
	// Name is the name of the subtest.
	Name string
	// Rule states what the case checks, in one line.
	Rule string
}

// Cases returns the cases of the suite, in the order Run runs them.
func Cases() []Case {
	out := make([]Case, len(cases))
	for i, c := range cases {
		out[i] = Case{Name: c.name, Rule: c.rule}
	}
	return out
}

// Run runs every case as a subtest of t, each with a fresh Store from h.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("conformance: Harness.New is nil")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if why := c.skipReason(h); why != "" {
				t.Skip(why)
			}
			e := newEnv(t, h, c.faults)
			c.run(t, e)
		})
	}
}

// Failure is one case that failed in Test.
type Failure struct {
	Case     string
	Rule     string
	Messages []string
}

// Error implements error.
func (f *Failure) Error() string {
	return fmt.Sprintf("%s (%s): %s", f.Case, f.Rule, strings.Join(f.Messages, "; "))
}

// Test runs every case without a *testing.T and returns nil when all pass, or
// an error joining one *Failure per failed case.
func Test(h Harness) error {
	var errs []error
	for _, c := range cases {
		if c.skipReason(h) != "" {
			continue
		}
		r := newRecorder(c.name)
		done := make(chan struct{})
		go func() {
			defer close(done)
			e := newEnv(r, h, c.faults)
			c.run(r, e)
		}()
		<-done
		r.finish()
		if r.failed() {
			errs = append(errs, &Failure{Case: c.name, Rule: c.rule, Messages: r.messages()})
		}
	}
	return errors.Join(errs...)
}

// Failures returns the *Failure values joined in an error returned by Test.
func Failures(err error) []*Failure {
	var out []*Failure
	var walk func(error)
	walk = func(err error) {
		var f *Failure
		if errors.As(err, &f) && err == error(f) {
			out = append(out, f)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// recorder is a T for Test. Fatalf ends the case's goroutine.
type recorder struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	msgs     []string
	fail     bool
	skipped  bool
	cleanups []func()
}

func newRecorder(name string) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	return &recorder{name: name, ctx: ctx, cancel: cancel}
}

func (r *recorder) Helper()                  {}
func (r *recorder) Name() string             { return r.name }
func (r *recorder) Context() context.Context { return r.ctx }
func (r *recorder) Logf(string, ...any)      {}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// Skipf ends the case's goroutine; the case neither passes nor fails.
func (r *recorder) Skipf(string, ...any) {
	r.mu.Lock()
	r.skipped = true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fail
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// finish runs the cleanups, last registered first, as testing does.
func (r *recorder) finish() {
	r.cancel()
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		done := make(chan struct{})
		go func() { // a cleanup may call Fatalf
			defer close(done)
			fs[i]()
		}()
		<-done
	}
}

// runID makes the namespaces of one test process unique on a shared store.
var runID = func() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}()

var nsCounter atomic.Int64

// env is what a case works with: the Store, and helpers that keep the case in
// namespaces of its own.
type env struct {
	t       T
	b       backend.Backend
	advance func(time.Duration)
	h       Harness
	faults  Faults                  // for the fault cases only
	open    func(T) backend.Backend // Store.Open; nil: share b
}

// newEnv returns the env of a case, on a store from h.New, or from h.Faults
// for a fault case.
func newEnv(t T, h Harness, faulty bool) *env {
	var s Store
	var f Faults
	if faulty {
		if s, f = h.Faults(t); f == nil {
			t.Fatalf("Harness.Faults returned a nil Faults")
		}
	} else {
		s = h.New(t)
	}
	if s.Backend == nil {
		t.Fatalf("Harness returned a nil Backend")
	}
	e := &env{t: t, b: s.Backend, advance: s.Advance, h: h, faults: f, open: s.Open}
	t.Cleanup(func() {
		if err := s.Backend.Close(); err != nil && !errors.Is(err, backend.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// ns returns a namespace unique to this case, ending with suffix.
func (e *env) ns(suffix string) string {
	return fmt.Sprintf("kvc%s%d_%s", runID, nsCounter.Add(1), suffix)
}

// realTime reports whether the store expires keys in real time.
func (e *env) realTime() bool { return e.advance == nil }

// ttl returns a TTL short enough for a real-time store, or d.
func (e *env) shortTTL() time.Duration {
	if e.realTime() {
		return 200 * time.Millisecond
	}
	return 1500 * time.Millisecond
}

// pass lets time pass by d: the store's clock moves, or the suite waits until
// cond holds (at most d plus a margin). cond reports whether the state the
// case waits for has come; it is checked once after Advance.
func (e *env) pass(d time.Duration, cond func() bool) bool {
	e.t.Helper()
	if !e.realTime() {
		e.advance(d)
		return cond()
	}
	deadline := time.Now().Add(d + 5*time.Second)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		// Polling interval, not a timed assertion: the deadline above bounds
		// the wait.
		select {
		case <-time.After(10 * time.Millisecond):
		case <-e.t.Context().Done():
			return false
		}
	}
}
