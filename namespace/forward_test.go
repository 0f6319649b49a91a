package namespace_test

import (
	"testing"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/namespace"
)

// noViews is a store without native namespace views: the namespace
// decorator then prefixes keys.
type noViews struct{ backend.Wrapper }

func (n noViews) Capabilities() backend.Capabilities {
	c := n.Wrapper.Capabilities()
	c.Namespace = nil
	return c
}

// TestForwards: the namespace decorator forwards every capability but
// namespace views, keys under its prefix (or as they are on the store's
// own view of the namespace).
func TestForwards(t *testing.T) {
	conformance.CheckForwards(t, "prefixed", conformance.Decorator{
		Wrap: func(b backend.Backend) (backend.Backend, error) {
			return namespace.New(noViews{backend.Wrapper{Backend: b}}, "ns")
		},
		Key:   func(k string) string { return "ns:" + k },
		Drops: []string{"Namespace"},
	})
	conformance.CheckForwards(t, "native view", conformance.Decorator{
		Wrap:  func(b backend.Backend) (backend.Backend, error) { return namespace.New(b, "ns") },
		Drops: []string{"Namespace"},
	})
}
