package conformance_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/conformance"
)

// TestForwards: backend.Wrapper, CoreOnly and the fault wrapper forward
// every capability of the store below them (the fault wrapper hides
// namespace views, which would bypass its faults; CoreOnly hides leases,
// which the fallback of DeletePrefix cannot end).
func TestForwards(t *testing.T) {
	for _, c := range []struct {
		name string
		d    conformance.Decorator
	}{
		{"Wrapper", conformance.Decorator{Wrap: func(b backend.Backend) (backend.Backend, error) {
			return backend.Wrapper{Backend: b}, nil
		}}},
		{"CoreOnly", conformance.Decorator{Drops: []string{"AcquireLeases"}, Wrap: func(b backend.Backend) (backend.Backend, error) {
			return conformance.CoreOnly(b), nil
		}}},
		{"WithFaults", conformance.Decorator{Drops: []string{"Namespace"}, Wrap: func(b backend.Backend) (backend.Backend, error) {
			fb, _ := conformance.WithFaults(b)
			return fb, nil
		}}},
	} {
		t.Run(c.name, func(t *testing.T) { conformance.CheckForwards(t, c.name, c.d) })
	}
}

// embedded is a decorator written the usual Go way, embedding the Backend
// interface: it exposes the core methods only.
type embedded struct{ backend.Backend }

// wrongKeys forwards the store's capabilities, with keys left as they are,
// while claiming to be a namespace.
type wrongKeys struct{ backend.Wrapper }

// TestForwardsCatches: the check fails a decorator that embeds the Backend
// interface, once per field of backend.Capabilities (so a field added later
// is checked too); one that offers a capability it claims to drop; and one
// whose capabilities do not map keys as it says.
func TestForwardsCatches(t *testing.T) {
	fields := reflect.TypeFor[backend.Capabilities]().NumField()
	errs := conformance.Forwards(conformance.Decorator{Wrap: func(b backend.Backend) (backend.Backend, error) {
		return embedded{b}, nil
	}})
	if len(errs) != fields {
		t.Errorf("Forwards(embedding) = %d errors %v; want %d, one per capability", len(errs), errs, fields)
	}
	for i, err := range errs {
		if name := reflect.TypeFor[backend.Capabilities]().Field(i).Name; !strings.Contains(err.Error(), name+" is lost") {
			t.Errorf("error %d = %v; want %s lost", i, err, name)
		}
	}
	wrapper := func(b backend.Backend) (backend.Backend, error) { return backend.Wrapper{Backend: b}, nil }
	if errs := conformance.Forwards(conformance.Decorator{Wrap: wrapper, Drops: []string{"Watch"}}); len(errs) != 1 || !strings.Contains(errs[0].Error(), "Watch is offered") {
		t.Errorf("Forwards(Drops Watch, forwarded) = %v; want one error for Watch", errs)
	}
	keys := conformance.Forwards(conformance.Decorator{
		Wrap:  func(b backend.Backend) (backend.Backend, error) { return wrongKeys{backend.Wrapper{Backend: b}}, nil },
		Key:   func(k string) string { return "ns:" + k },
		Drops: []string{"Namespace"},
	})
	var text []string
	for _, err := range keys {
		text = append(text, err.Error())
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{"AcquireLeases: argument 1", "AcquireLeases: Lease.Store", "Watch: argument 1", "Namespace is offered"} {
		if !strings.Contains(all, want) {
			t.Errorf("Forwards(unmapped keys) = %s; want an error containing %q", all, want)
		}
	}
}
