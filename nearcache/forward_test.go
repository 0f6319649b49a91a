package nearcache_test

import (
	"testing"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/nearcache"
)

// TestForwards: the near cache forwards every capability but the watch it
// takes itself and namespace views, which would bypass it.
func TestForwards(t *testing.T) {
	conformance.CheckForwards(t, "nearcache", conformance.Decorator{
		Wrap:  func(b backend.Backend) (backend.Backend, error) { return nearcache.New(b, "", nearcache.Options{}) },
		Drops: []string{"Watch", "Namespace"},
	})
}
