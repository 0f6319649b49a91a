package conformance

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
)

// Decorator describes a backend.Backend decorator to CheckForwards.
type Decorator struct {
	// Wrap puts the decorator over b.
	Wrap func(b backend.Backend) (backend.Backend, error)
	// Key returns what the store below receives for key (or prefix, or
	// name) k given above: "ns:"+k under a namespace. Nil means k itself.
	Key func(k string) string
	// Drops names the fields of backend.Capabilities that the decorator
	// hides by design (a namespace offers no views of its own); every
	// other capability must be forwarded.
	Drops []string
}

// CheckForwards fails t unless the decorator forwards every capability of
// the store below it: see Forwards.
func CheckForwards(t T, name string, d Decorator) {
	t.Helper()
	for _, err := range Forwards(d) {
		t.Errorf("%s: %v", name, err)
	}
}

// Forwards puts d over a store that has every capability, each a function
// that records its calls, and returns what d fails to forward. By
// reflection over the fields of backend.Capabilities, so that a field added
// later is checked with no change here, it checks that each capability the
// store has is present above d (unless d.Drops names it, and then that it
// is absent), and that calling it above reaches the store with its string
// arguments mapped by d.Key. What a capability returns is followed through:
// a backend.Lease's Store, Renew and Release reach the store's lease (keys
// mapped down, and back up in the *backend.BatchError it returns), a
// report callback gets the store's backend.Change with its keys mapped
// back, and a stop function reaches the store's.
func Forwards(d Decorator) []error {
	key := d.Key
	if key == nil {
		key = func(k string) string { return k }
	}
	store := newCapStore(&callLog{})
	defer store.Backend.Close()
	above, err := d.Wrap(store)
	if err != nil {
		return []error{fmt.Errorf("wrap: %w", err)}
	}
	defer above.Close()
	caps := reflect.ValueOf(backend.CapabilitiesOf(above))
	var errs []error
	for i := range caps.NumField() {
		name := caps.Type().Field(i).Name
		f, dropped := caps.Field(i), slices.Contains(d.Drops, name)
		switch {
		case f.IsNil() && !dropped:
			errs = append(errs, fmt.Errorf("capability %s is lost: the store has it, the decorator does not offer it", name))
		case !f.IsNil() && dropped:
			errs = append(errs, fmt.Errorf("capability %s is offered, though listed in Drops", name))
		case !f.IsNil():
			errs = append(errs, store.check(name, f, key)...)
		}
	}
	return errs
}

// capStore is a memory store whose capabilities record their calls.
type capStore struct {
	backend.Wrapper
	*callLog
}

// callLog records the calls of a capStore and of the views it returns.
type callLog struct {
	mu    sync.Mutex
	calls map[string][]reflect.Value // capability -> arguments of its last call
}

func newCapStore(r *callLog) *capStore {
	return &capStore{Wrapper: backend.Wrapper{Backend: memory.New()}, callLog: r}
}

// The types whose values the check follows through.
var (
	ctxType    = reflect.TypeFor[context.Context]()
	leaseType  = reflect.TypeFor[backend.Lease]()
	changeType = reflect.TypeFor[backend.Change]()
	guardType  = reflect.TypeFor[backend.GuardedEntry]()
	errType    = reflect.TypeFor[error]()
	bkType     = reflect.TypeFor[backend.Backend]()
)

func (s *callLog) record(name string, args []reflect.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string][]reflect.Value{}
	}
	s.calls[name] = args
}

func (s *callLog) last(name string) ([]reflect.Value, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	args, ok := s.calls[name]
	delete(s.calls, name)
	return args, ok
}

// Capabilities implements backend.Capable: every field, each recording its
// calls under its name and returning a recording Lease, a capStore sharing
// the log for a Backend (a view), a stop function that records its
// call, zero values otherwise.
func (s *capStore) Capabilities() backend.Capabilities {
	var c backend.Capabilities
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		v.Field(i).Set(reflect.MakeFunc(v.Field(i).Type(), func(args []reflect.Value) []reflect.Value {
			s.record(name, args)
			return s.results(name, v.Field(i).Type())
		}))
	}
	return c
}

func (s *capStore) results(name string, ft reflect.Type) []reflect.Value {
	out := make([]reflect.Value, ft.NumOut())
	for i := range out {
		t := ft.Out(i)
		out[i] = reflect.Zero(t)
		switch {
		case t == leaseType:
			out[i] = reflect.ValueOf(&capLease{s: s, name: name}).Convert(t)
		case t == bkType:
			out[i] = reflect.ValueOf(newCapStore(s.callLog)).Convert(t)
		case t.Kind() == reflect.Func:
			out[i] = reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
				s.record(name+".stop", args)
				return zeros(t)
			})
		}
	}
	return out
}

func zeros(ft reflect.Type) []reflect.Value {
	out := make([]reflect.Value, ft.NumOut())
	for i := range out {
		out[i] = reflect.Zero(ft.Out(i))
	}
	return out
}

// capLease is the recording Lease of capStore.
type capLease struct {
	s    *capStore
	name string
}

func (l *capLease) Renew(ctx context.Context, ttl time.Duration) error {
	l.s.record(l.name+".Renew", nil)
	return nil
}

func (l *capLease) Release(ctx context.Context) error {
	l.s.record(l.name+".Release", nil)
	return nil
}

// Store records the keys of entries, and fails with a *BatchError that
// names them all.
func (l *capLease) Store(ctx context.Context, entries []backend.GuardedEntry) ([]bool, error) {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	l.s.record(l.name+".Store", []reflect.Value{reflect.ValueOf(keys)})
	return make([]bool, len(entries)), &backend.BatchError{Op: "store", Failed: keys, Err: ErrInjected}
}

// check calls capability f above the decorator and checks that it reached
// the store, with its arguments mapped, and follows what it returns.
func (s *capStore) check(name string, f reflect.Value, key func(string) string) []error {
	ctx := context.Background()
	ft := f.Type()
	var reported []backend.Change
	in := make([]reflect.Value, ft.NumIn())
	for i := range in {
		t := ft.In(i)
		switch {
		case t == ctxType:
			in[i] = reflect.ValueOf(ctx)
		case t.Kind() == reflect.String:
			in[i] = reflect.ValueOf("k").Convert(t)
		case t == reflect.TypeFor[[]string]():
			in[i] = reflect.ValueOf([]string{"k"})
		case t == reflect.TypeFor[time.Duration]():
			in[i] = reflect.ValueOf(time.Minute)
		case t == guardType:
			in[i] = reflect.ValueOf(backend.GuardedEntry{Entry: backend.Entry{Key: "k", Value: []byte("v"), TTL: time.Minute}})
		case t.Kind() == reflect.Func:
			in[i] = reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
				for _, a := range args {
					if a.Type() == changeType {
						reported = append(reported, a.Interface().(backend.Change))
					}
				}
				return zeros(t)
			})
		default:
			in[i] = reflect.Zero(t)
		}
	}
	out := f.Call(in)
	got, ok := s.last(name)
	if !ok {
		return []error{fmt.Errorf("capability %s does not reach the store", name)}
	}
	var errs []error
	for i, a := range got {
		switch {
		case a.Kind() == reflect.String && a.String() != key("k"):
			errs = append(errs, fmt.Errorf("%s: argument %d reaches the store as %q; want %q", name, i, a.String(), key("k")))
		case a.Type() == reflect.TypeFor[[]string]() && !slices.Equal(a.Interface().([]string), []string{key("k")}):
			errs = append(errs, fmt.Errorf("%s: argument %d reaches the store as %q; want [%q]", name, i, a.Interface(), key("k")))
		case a.Type() == guardType && a.Interface().(backend.GuardedEntry).Key != key("k"):
			errs = append(errs, fmt.Errorf("%s: the entry of key \"k\" reaches the store as key %q; want %q", name, a.Interface().(backend.GuardedEntry).Key, key("k")))
		case a.Kind() == reflect.Func && a.Type().NumIn() == 1 && a.Type().In(0) == changeType:
			a.Call([]reflect.Value{reflect.ValueOf(backend.Change{Kind: backend.ChangeKeys, Keys: []string{key("k")}})})
			if len(reported) != 1 || !slices.Equal(reported[0].Keys, []string{"k"}) {
				errs = append(errs, fmt.Errorf("%s: the store's report of key %q reaches the caller as %+v; want one report of key \"k\"", name, key("k"), reported))
			}
		}
	}
	for i, r := range out {
		if i == len(out)-1 && r.Type() == errType {
			if !r.IsNil() {
				errs = append(errs, fmt.Errorf("%s: %v", name, r.Interface()))
			}
			continue
		}
		switch {
		case r.Type() == leaseType && r.IsNil():
			errs = append(errs, fmt.Errorf("%s: the store's lease does not reach the caller", name))
		case r.Type() == leaseType:
			errs = append(errs, s.checkLease(name, r.Interface().(backend.Lease), key)...)
		case r.Type() == bkType && r.IsNil():
			errs = append(errs, fmt.Errorf("%s: the store's Backend does not reach the caller", name))
		case r.Type() == bkType:
			r.Interface().(backend.Backend).Close()
		case r.Kind() == reflect.Func && r.Type().NumIn() == 0:
			if !r.IsNil() {
				r.Call(nil)
			}
			if _, ok := s.last(name + ".stop"); !ok {
				errs = append(errs, fmt.Errorf("%s: result %d does not reach the store's", name, i))
			}
		}
	}
	return errs
}

// checkLease checks that each method of l reaches the store's lease.
func (s *capStore) checkLease(name string, l backend.Lease, key func(string) string) []error {
	ctx := context.Background()
	var errs []error
	e := backend.GuardedEntry{Entry: backend.Entry{Key: "k", Value: []byte("v"), TTL: time.Minute}}
	_, err := l.Store(ctx, []backend.GuardedEntry{e})
	got, ok := s.last(name + ".Store")
	var be *backend.BatchError
	switch {
	case !ok:
		errs = append(errs, fmt.Errorf("%s: Lease.Store does not reach the store", name))
	case !slices.Equal(got[0].Interface().([]string), []string{key("k")}):
		errs = append(errs, fmt.Errorf("%s: Lease.Store of key \"k\" reaches the store as %q; want [%q]", name, got[0].Interface(), key("k")))
	case !errors.As(err, &be) || !slices.Equal(be.Failed, []string{"k"}):
		errs = append(errs, fmt.Errorf("%s: Lease.Store = %v; want the store's *BatchError naming key \"k\"", name, err))
	}
	for method, call := range map[string]func() error{
		"Renew":   func() error { return l.Renew(ctx, time.Minute) },
		"Release": func() error { return l.Release(ctx) },
	} {
		err := call()
		if _, ok := s.last(name + "." + method); !ok || err != nil {
			errs = append(errs, fmt.Errorf("%s: Lease.%s = %v, reached the store: %t; want nil, true", name, method, err, ok))
		}
	}
	return errs
}
