package kv_test

// Regression tests of defects 1 to 4 of issue 18, each a table of the cases
// that broke; the defect-4 and defect-3 rows marked "model" are the shrunk
// counterexamples TestMapModel printed, written out.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	kvredis "github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/conformance"
)

// r18Ending is a context whose deadline the test makes pass at the moment
// it chooses: a loop body's own call then fails with
// context.DeadlineExceeded, as when the pass's deadline comes mid-loop.
type r18Ending struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newR18Ending() *r18Ending {
	return &r18Ending{Context: context.Background(), done: make(chan struct{})}
}

func (e *r18Ending) Done() <-chan struct{} { return e.done }

func (e *r18Ending) Err() error {
	select {
	case <-e.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (e *r18Ending) end() { e.once.Do(func() { close(e.done) }) }

// r18Stop is how a loop body leaves a pass at its stop entry.
type r18Stop string

const (
	r18Break         r18Stop = "break"               // plain break
	r18CancelBreak   r18Stop = "cancel, break"       // cancels the pass's context, then breaks
	r18CancelReturn  r18Stop = "cancel, return"      // cancels it, then returns from the function
	r18DeadlineBreak r18Stop = "deadline, break"     // the deadline passes; the body's own Get fails; it breaks
	r18SyncDeadline  r18Stop = "deadline (synctest)" // a real deadline on synctest's clock
)

// r18Pass runs iterator which of m over ctx and leaves it at entry stopAt
// as stop says. It returns how often the body ran, how often after it had
// returned false (must be 0), the panic, if any, and the error of the
// body's own Get at the deadline.
func r18Pass(m *kv.Map[string], which string, stop r18Stop, stopAt int) (calls, late int, panicked any, ownErr error) {
	var ctx context.Context
	var cancel func()
	var ending *r18Ending
	switch stop {
	case r18DeadlineBreak:
		ending = newR18Ending()
		ctx, cancel = ending, func() {}
	case r18SyncDeadline:
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	default:
		ctx, cancel = context.WithCancel(context.Background())
	}
	defer cancel()
	stopped := false
	// body returns false to leave the loop.
	body := func() bool {
		if stopped {
			late++
		}
		calls++
		if calls != stopAt {
			return true
		}
		switch stop {
		case r18CancelBreak, r18CancelReturn:
			cancel()
		case r18DeadlineBreak:
			ending.end()
			_, _, ownErr = m.Get(ctx, "k000") // the deadline passed (Redis may still answer)
		case r18SyncDeadline:
			time.Sleep(2 * time.Second) // synctest's clock: the deadline passed a second ago
			_, _, ownErr = m.Get(ctx, "k000")
		}
		stopped = true
		return false
	}
	defer func() { panicked = recover() }()
	switch which {
	case "Iterate":
		for range m.Iterate(ctx) {
			if !body() {
				if stop == r18CancelReturn {
					return calls, late, nil, ownErr
				}
				break
			}
		}
	case "Keys":
		for range m.Keys(ctx) {
			if !body() {
				if stop == r18CancelReturn {
					return calls, late, nil, ownErr
				}
				break
			}
		}
	case "Values":
		for range m.Values(ctx) {
			if !body() {
				if stop == r18CancelReturn {
					return calls, late, nil, ownErr
				}
				break
			}
		}
	}
	return calls, late, nil, ownErr
}

// r18Stops are the entries a pass is left at: the first, inside the first
// page, at both edges of the first page boundary (page size 50), and inside
// a later page.
var r18Stops = []int{1, 10, 49, 50, 51, 120}

// r18Fill writes keys k000..k149 through m, without expiry.
func r18Fill(t *testing.T, m *kv.Map[string]) {
	t.Helper()
	entries := make([]kv.Entry[string], 150)
	for i := range entries {
		entries[i] = kv.Entry[string]{Key: fmt.Sprintf("k%03d", i), Value: fmt.Sprintf("v%03d", i)}
	}
	if err := m.SetMany(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
}

// TestDefect1IteratorsStopWhenTold (issue 18, defect 1): no iterator calls
// its loop body again once the body returned false, however the body
// leaves: breaking or returning right after the pass's context was
// cancelled or its deadline passed (the old Iterate and Values then
// yielded ctx.Err(), and Go panicked "range function continued iteration
// after function for loop body returned false"), on every store, at page
// edges and inside pages.
func TestDefect1IteratorsStopWhenTold(t *testing.T) {
	type store struct {
		name string
		open func(t *testing.T) backend.Backend
	}
	stores := []store{
		{"memory", func(t *testing.T) backend.Backend { return newMem(t) }},
		{"memory, core only", func(t *testing.T) backend.Backend { return conformance.CoreOnly(newMem(t)) }},
		{"bolt", func(t *testing.T) backend.Backend { return newBolt(t) }},
	}
	if addr := os.Getenv("KV_REDIS_ADDR"); addr != "" {
		stores = append(stores, store{"redis", func(t *testing.T) backend.Backend {
			c := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
			b, err := kvredis.New(c)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := errors.Join(b.Close(), c.Close()); err != nil {
					t.Error(err)
				}
			})
			return b
		}})
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			ns := fmt.Sprintf("iter18_%d_%d", os.Getpid(), time.Now().UnixNano())
			m := mustNew[string](t, st.open(t), ns, kv.WithPageSize(50), kv.WithTTL(kv.NoTTL))
			r18Fill(t, m)
			t.Cleanup(func() {
				if err := m.Clear(context.Background()); err != nil {
					t.Error(err)
				}
			})
			for _, which := range []string{"Iterate", "Keys", "Values"} {
				for _, stop := range []r18Stop{r18Break, r18CancelBreak, r18CancelReturn, r18DeadlineBreak} {
					for _, at := range r18Stops {
						t.Run(fmt.Sprintf("%s/%s/at %d", which, stop, at), func(t *testing.T) {
							calls, late, p, ownErr := r18Pass(m, which, stop, at)
							if p != nil {
								t.Fatalf("panicked: %v", p)
							}
							if ownErr != nil && !errors.Is(ownErr, context.DeadlineExceeded) {
								t.Errorf("the body's Get at the deadline = %v; want DeadlineExceeded (or an answer)", ownErr)
							}
							if late != 0 || calls != at {
								t.Errorf("body ran %d times, %d after it returned false; want %d, 0", calls, late, at)
							}
						})
					}
				}
			}
		})
	}
	// The same with a real deadline passing inside the loop body, on
	// synctest's clock.
	for _, which := range []string{"Iterate", "Keys", "Values"} {
		for _, at := range r18Stops {
			t.Run(fmt.Sprintf("memory/%s/%s/at %d", which, r18SyncDeadline, at), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					mem := memory.New(memory.WithSweepInterval(0))
					defer mem.Close()
					m := mustNew[string](t, mem, "ns", kv.WithPageSize(50), kv.WithTTL(kv.NoTTL))
					r18Fill(t, m)
					calls, late, p, ownErr := r18Pass(m, which, r18SyncDeadline, at)
					if p != nil {
						t.Fatalf("panicked: %v", p)
					}
					if !errors.Is(ownErr, context.DeadlineExceeded) {
						t.Errorf("the body's Get after the deadline = %v; want DeadlineExceeded", ownErr)
					}
					if late != 0 || calls != at {
						t.Errorf("body ran %d times, %d after it returned false; want %d, 0", calls, late, at)
					}
				})
			})
		}
	}
}

// TestDefect2HungLoadFreesKey (issue 18, defect 2): a load whose function
// hangs, ignoring its context, holds the key for its load timeout only: at
// the timeout its context is cancelled and its lease released, so another
// Map on the same store loads the key within the timeout and one lease
// time; the hung load's callers get ErrLoadTimeout (and
// context.DeadlineExceeded), and its late result is never stored. On the
// old code the lease was renewed for as long as the function ran, and the
// other Map's GetOrLoad waited out its whole 4 s context without loading.
func TestDefect2HungLoadFreesKey(t *testing.T) {
	const (
		lease   = 90 * time.Millisecond
		timeout = time.Second
		patient = 4 * time.Second // the other caller's context
		polls   = 60 * time.Millisecond
	)
	type call func(ctx context.Context, m *kv.Map[string], load func(context.Context) (string, error)) (string, error)
	single := func(ctx context.Context, m *kv.Map[string], load func(context.Context) (string, error)) (string, error) {
		return m.GetOrLoad(ctx, "k", load)
	}
	batch := func(ctx context.Context, m *kv.Map[string], load func(context.Context) (string, error)) (string, error) {
		got, err := m.GetManyOrLoad(ctx, []string{"k"}, func(ctx context.Context, _ []string) (map[string]string, error) {
			v, err := load(ctx)
			if err != nil {
				return nil, err
			}
			return map[string]string{"k": v}, nil
		})
		return got["k"], err
	}
	for _, tc := range []struct {
		name         string
		hung, waiter call
	}{
		{"GetOrLoad hangs, GetOrLoad takes over (issue 18)", single, single},
		{"GetManyOrLoad hangs, GetOrLoad takes over", batch, single},
		{"GetOrLoad hangs, GetManyOrLoad takes over", single, batch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := memory.New(memory.WithSweepInterval(0))
				defer store.Close()
				opts := []kv.Option{kv.WithLoadLease(lease), kv.WithLoadTimeout(timeout)}
				m1 := mustNew[string](t, store, "ns", opts...)
				m2 := mustNew[string](t, store, "ns", opts...)
				hang := make(chan struct{})
				var hungCtx atomic.Pointer[context.Context]
				start := time.Now()
				var err1 error
				var took1 time.Duration
				var wg sync.WaitGroup
				wg.Go(func() {
					_, err1 = tc.hung(context.Background(), m1, func(ctx context.Context) (string, error) {
						hungCtx.Store(&ctx)
						<-hang // a dead database connection: the context is ignored
						return "late", nil
					})
					took1 = time.Since(start)
				})
				synctest.Wait() // m1 holds the lease; its load function hangs
				ctx, cancel := context.WithTimeout(context.Background(), patient)
				defer cancel()
				loads := 0
				v2, err2 := tc.waiter(ctx, m2, func(context.Context) (string, error) { loads++; return "second", nil })
				took2 := time.Since(start)
				if err2 != nil || v2 != "second" || loads != 1 {
					t.Errorf("the other Map got %q, %v after %v with %d loads; want its own load's value", v2, err2, took2, loads)
				}
				if limit := timeout + lease + polls; took2 > limit {
					t.Errorf("the other Map loaded after %v; want within the load timeout and a lease time (%v)", took2, limit)
				}
				close(hang) // the hung function returns at last
				wg.Wait()
				if !errors.Is(err1, kv.ErrLoadTimeout) || !errors.Is(err1, context.DeadlineExceeded) {
					t.Errorf("the hung load's caller got %v; want ErrLoadTimeout and DeadlineExceeded", err1)
				}
				if took1 > timeout+10*time.Millisecond {
					t.Errorf("the hung load's caller waited %v; want the load timeout, %v", took1, timeout)
				}
				if c := hungCtx.Load(); c == nil || (*c).Err() == nil {
					t.Error("the hung load's context was not cancelled at its timeout")
				}
				synctest.Wait()
				if v, ok, err := m2.Get(context.Background(), "k"); err != nil || v != "second" {
					t.Errorf("stored %q, %v, %v; want second: a load past its timeout never stores", v, ok, err)
				}
				if err := errors.Join(m1.Close(), m2.Close()); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestDefect3LoadsEndWithClose (issue 18, defect 3): Close cancels every
// load the Map runs and waits for it (up to the load timeout for a
// function that ignores its context); a wait for another process's lease
// ends with its last caller; after Close a call that would load returns
// ErrClosed. On the old code loads outlived Close, a waiter left alone took
// the lease later and loaded for nobody, and GetOrLoad loaded after Close.
func TestDefect3LoadsEndWithClose(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Close cancels a GetOrLoad that honours its context", func(t *testing.T) {
			r18CloseCancels(t, func(m *kv.Map[string], load func(context.Context) (string, error)) error {
				_, err := m.GetOrLoad(ctx, "k", load)
				return err
			})
		}},
		{"Close cancels a GetManyOrLoad that honours its context", func(t *testing.T) {
			r18CloseCancels(t, func(m *kv.Map[string], load func(context.Context) (string, error)) error {
				_, err := m.GetManyOrLoad(ctx, []string{"k", "j"}, func(ctx context.Context, _ []string) (map[string]string, error) {
					_, err := load(ctx)
					return nil, err
				})
				return err
			})
		}},
		{"Close waits for a load ignoring its context, up to the load timeout", func(t *testing.T) {
			const timeout = 2 * time.Second
			store := memory.New(memory.WithSweepInterval(0))
			defer store.Close()
			m := mustNew[string](t, store, "ns", kv.WithLoadTimeout(timeout))
			hang := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, err := m.GetOrLoad(ctx, "k", func(context.Context) (string, error) { <-hang; return "late", nil })
				done <- err
			}()
			time.Sleep(timeout / 4)
			start := time.Now()
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if took < timeout*3/4 || took > timeout {
				t.Errorf("Close returned after %v; want it to wait until the load's timeout (%v after Close), at most %v", took, timeout*3/4, timeout)
			}
			close(hang)
			if err := <-done; err == nil {
				t.Error("GetOrLoad returned no error; want the load's end (ErrClosed or ErrLoadTimeout)")
			}
			synctest.Wait()
			if ok, err := m.Has(ctx, "k"); err != nil || ok {
				t.Errorf("Has = %v, %v; want false: an abandoned load stores nothing", ok, err)
			}
		}},
		{"a waiter whose only caller left loads nothing", func(t *testing.T) {
			store := memory.New(memory.WithSweepInterval(0))
			defer store.Close()
			holder := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Second))
			waiter := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Second))
			fail := make(chan struct{})
			held := make(chan error, 1)
			go func() {
				_, err := holder.GetOrLoad(ctx, "k", func(context.Context) (string, error) {
					<-fail
					return "", errors.New("database down")
				})
				held <- err
			}()
			synctest.Wait() // holder loads, holding the lease
			cctx, cancel := context.WithCancel(ctx)
			var loads atomic.Int32
			left := make(chan error, 1)
			go func() {
				_, err := waiter.GetOrLoad(cctx, "k", func(context.Context) (string, error) { loads.Add(1); return "nobody's", nil })
				left <- err
			}()
			synctest.Wait() // the waiter polls the holder's lease
			cancel()        // its only caller leaves
			if err := <-left; !errors.Is(err, context.Canceled) {
				t.Errorf("the waiter's caller got %v; want context.Canceled", err)
			}
			close(fail) // the holder releases its lease without a value
			<-held
			time.Sleep(10 * time.Second) // synctest's clock: long after any poll
			if n := loads.Load(); n != 0 {
				t.Errorf("the waiter loaded %d times after its caller left; want 0", n)
			}
			if ok, err := waiter.Has(ctx, "k"); err != nil || ok {
				t.Errorf("Has = %v, %v; want false: nobody asked for the key any more", ok, err)
			}
			if err := errors.Join(holder.Close(), waiter.Close()); err != nil {
				t.Fatal(err)
			}
		}},
		{"after Close a load is ErrClosed, every other call works (model: Close, GetOrLoad a)", func(t *testing.T) {
			store := memory.New(memory.WithSweepInterval(0))
			defer store.Close()
			m := mustNew[string](t, store, "ns")
			if err := m.Set(ctx, "stored", "v"); err != nil {
				t.Fatal(err)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			loads := 0
			load := func(context.Context) (string, error) { loads++; return "loaded", nil }
			loadMany := func(context.Context, []string) (map[string]string, error) {
				loads++
				return map[string]string{"a": "loaded"}, nil
			}
			for _, c := range []struct {
				name    string
				do      func() (string, error)
				want    string
				wantErr error
			}{
				{"GetOrLoad of a missing key", func() (string, error) { return m.GetOrLoad(ctx, "a", load) }, "", kv.ErrClosed},
				{"GetManyOrLoad of a missing key", func() (string, error) {
					got, err := m.GetManyOrLoad(ctx, []string{"a"}, loadMany)
					return got["a"], err
				}, "", kv.ErrClosed},
				{"GetOrLoad of a stored key", func() (string, error) { return m.GetOrLoad(ctx, "stored", load) }, "v", nil},
				{"GetManyOrLoad of stored keys", func() (string, error) {
					got, err := m.GetManyOrLoad(ctx, []string{"stored"}, loadMany)
					return got["stored"], err
				}, "v", nil},
				{"Set, then Get", func() (string, error) {
					if err := m.Set(ctx, "new", "w"); err != nil {
						return "", err
					}
					v, _, err := m.Get(ctx, "new")
					return v, err
				}, "w", nil},
				{"Delete, then Has", func() (string, error) {
					if err := m.Delete(ctx, "new"); err != nil {
						return "", err
					}
					ok, err := m.Has(ctx, "new")
					return fmt.Sprint(ok), err
				}, "false", nil},
			} {
				got, err := c.do()
				if got != c.want || !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
					t.Errorf("%s after Close = %q, %v; want %q, %v", c.name, got, err, c.want, c.wantErr)
				}
			}
			if loads != 0 {
				t.Errorf("%d loads after Close; want 0", loads)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { synctest.Test(t, tc.run) })
	}
}

// r18CloseCancels: a load whose function honours its context, under way
// when Close is called, has returned when Close returns; its caller gets an
// error and nothing is stored. abort lets a function the old code never
// cancelled return at the end.
func r18CloseCancels(t *testing.T, call func(m *kv.Map[string], load func(context.Context) (string, error)) error) {
	store := memory.New(memory.WithSweepInterval(0))
	defer store.Close()
	m := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Second))
	var started, returned atomic.Bool
	abort := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- call(m, func(ctx context.Context) (string, error) {
			started.Store(true)
			defer returned.Store(true)
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-abort:
				return "aborted", nil
			}
		})
	}()
	synctest.Wait()
	if !started.Load() {
		t.Fatal("the load did not start")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Error("Close returned while the load function still ran")
	}
	close(abort)
	if err := <-done; err == nil {
		t.Error("the load's caller got no error; want the load's end (ErrClosed)")
	}
	synctest.Wait()
	if n, err := m.Size(context.Background()); err != nil || n != 0 {
		t.Errorf("Size = %d, %v; want 0: nothing stored", n, err)
	}
}

// r18Reads runs after once, after the store answered a read, before the
// read returns to the Map: a Delete or Clear that races the read.
type r18Reads struct {
	backend.Backend
	mu    sync.Mutex
	after func()
}

func (r *r18Reads) arm(f func()) {
	r.mu.Lock()
	r.after = f
	r.mu.Unlock()
}

func (r *r18Reads) fire() {
	r.mu.Lock()
	f := r.after
	r.after = nil
	r.mu.Unlock()
	if f != nil {
		f()
	}
}

func (r *r18Reads) Get(ctx context.Context, key string) (backend.Value, error) {
	v, err := r.Backend.Get(ctx, key)
	r.fire()
	return v, err
}

func (r *r18Reads) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	v, err := r.Backend.MGet(ctx, keys, withTTL)
	r.fire()
	return v, err
}

func (r *r18Reads) Optimizations() backend.Optimizations { return backend.OptimizationsOf(r.Backend) }

func (r *r18Reads) Capabilities() backend.Capabilities { return backend.CapabilitiesOf(r.Backend) }

// TestDefect4StaleNeverResurrects (issue 18, defect 4): with
// WithStaleWhileRevalidate a value is served stale only if it expired. A
// key deleted, cleared, overwritten or given a new expiry before its
// deadline, by this Map or by another Map on the same store (memory
// reports changes), is loaded after its deadline, within the grace, not
// served stale; and a read that raced a Delete or Clear recorded nothing.
// Each case: the key's value "old" expires at 10 s; the grace is 5 s; at
// 14.999 s GetOrLoad must load ("fresh"), or, after Close, return
// ErrClosed, and never "old".
func TestDefect4StaleNeverResurrects(t *testing.T) {
	ctx := context.Background()
	type env struct {
		clk   *clock.Manual
		reads *r18Reads
		m, o  *kv.Map[string] // the Map under test, another Map on the store
	}
	const ttl, grace = 10 * time.Second, 5 * time.Second
	load := func(v string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return v, nil }
	}
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	loadOld := func(t *testing.T, e *env) { // GetOrLoad loads "old" at 0 s
		v, err := e.m.GetOrLoad(ctx, "k", load("old"))
		if err != nil || v != "old" {
			t.Fatalf("GetOrLoad = %q, %v; want old", v, err)
		}
	}
	advance := func(d time.Duration) func(*testing.T, *env) {
		return func(_ *testing.T, e *env) { e.clk.Advance(d) }
	}
	// readOld: the other Map wrote "old" at 0 s (this Map knows nothing of
	// it); this Map's GetOrLoad reads it, while race runs between the
	// store's answer and the read's return.
	readOld := func(race func(t *testing.T, e *env)) func(*testing.T, *env) {
		return func(t *testing.T, e *env) {
			must(t, e.o.Set(ctx, "k", "old"))
			e.reads.arm(func() { race(t, e) })
			if v, err := e.m.GetOrLoad(ctx, "k", load("loaded")); err != nil || v != "old" {
				t.Fatalf("GetOrLoad = %q, %v; want old", v, err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		steps  []func(*testing.T, *env)
		closed bool // want ErrClosed instead of a load
	}{
		{"the other Map deletes it (issue 18; model: GetOrLoad a, OtherDelete a, clock +14.999s, GetOrLoad a)",
			[]func(*testing.T, *env){loadOld, func(t *testing.T, e *env) { must(t, e.o.Delete(ctx, "k")) }}, false},
		{"the other Map clears the namespace (model: GetOrLoad c, OtherClear, clock +14.999s, GetOrLoad c)",
			[]func(*testing.T, *env){loadOld, func(t *testing.T, e *env) { must(t, e.o.Clear(ctx)) }}, false},
		{"the other Map deletes it with DeleteMany", []func(*testing.T, *env){loadOld,
			func(t *testing.T, e *env) { must(t, e.o.DeleteMany(ctx, []string{"j", "k"})) }}, false},
		{"the other Map overwrites it with a value that expires at 2 s", []func(*testing.T, *env){loadOld, advance(time.Second),
			func(t *testing.T, e *env) { must(t, e.o.SetWithTTL(ctx, "k", "other", time.Second)) }}, false},
		{"the other Map moves its expiry to 1 s", []func(*testing.T, *env){loadOld,
			func(t *testing.T, e *env) {
				if ok, err := e.o.Expire(ctx, "k", time.Second); err != nil || !ok {
					t.Fatalf("Expire = %v, %v", ok, err)
				}
			}}, false},
		{"the other Map overwrites it after this Map's Close (model: GetManyOrLoad e, Close, OtherSet e, clock to 10s, GetOrLoad e)",
			[]func(*testing.T, *env){loadOld, func(t *testing.T, e *env) { must(t, e.m.Close()) },
				func(t *testing.T, e *env) { must(t, e.o.Set(ctx, "k", "other")) }}, true},
		{"this Map's Delete races its read", []func(*testing.T, *env){readOld(func(t *testing.T, e *env) {
			must(t, e.m.Delete(ctx, "k"))
		})}, false},
		{"this Map's Clear races its read", []func(*testing.T, *env){readOld(func(t *testing.T, e *env) {
			must(t, e.m.Clear(ctx))
		})}, false},
		{"the other Map's Delete races this Map's read", []func(*testing.T, *env){readOld(func(t *testing.T, e *env) {
			must(t, e.o.Delete(ctx, "k"))
		})}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
			clk := clock.NewManual(start)
			store := memory.New(memory.WithClock(clk), memory.WithSweepInterval(0))
			defer store.Close()
			e := &env{clk: clk, reads: &r18Reads{Backend: store}}
			e.m = mustNew[string](t, e.reads, "ns", kv.WithTTL(ttl), kv.WithClock(clk),
				kv.WithStaleWhileRevalidate(grace, 100), kv.WithSynchronousRefresh())
			e.o = mustNew[string](t, store, "ns", kv.WithTTL(ttl), kv.WithClock(clk))
			defer func() { must(t, errors.Join(e.m.Close(), e.o.Close())) }()
			for _, step := range tc.steps {
				step(t, e)
			}
			clk.Set(start.Add(ttl + grace - time.Millisecond)) // "old" expired 4.999 s ago
			loads := 0
			v, err := e.m.GetOrLoad(ctx, "k", func(context.Context) (string, error) { loads++; return "fresh", nil })
			switch {
			case v == "old":
				t.Errorf("GetOrLoad = %q, %v: served stale a value changed before its deadline", v, err)
			case tc.closed && (!errors.Is(err, kv.ErrClosed) || loads != 0):
				t.Errorf("GetOrLoad after Close = %q, %v with %d loads; want ErrClosed, no load", v, err, loads)
			case !tc.closed && (err != nil || v != "fresh" || loads != 1):
				t.Errorf("GetOrLoad = %q, %v with %d loads; want fresh, loaded once", v, err, loads)
			}
		})
	}
}
