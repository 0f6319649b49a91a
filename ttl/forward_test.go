package ttl_test

import (
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/ttl"
)

// TestForwards: the ttl decorator forwards every capability, keys as they
// are.
func TestForwards(t *testing.T) {
	conformance.CheckForwards(t, "ttl", conformance.Decorator{
		Wrap: func(b backend.Backend) (backend.Backend, error) { return ttl.New(b, time.Hour) },
	})
}
