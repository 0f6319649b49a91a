package main

import (
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/conformance"
)

// TestTimeoutForwards: the --timeout decorator forwards every capability
// of the store.
func TestTimeoutForwards(t *testing.T) {
	conformance.CheckForwards(t, "timeout", conformance.Decorator{
		Wrap: func(b backend.Backend) (backend.Backend, error) {
			return timeoutBackend{Wrapper: backend.Wrapper{Backend: b}, d: time.Minute}, nil
		},
	})
}
