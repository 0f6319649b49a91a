// Package leaktest fails a test binary whose tests leave goroutines behind,
// with go.uber.org/goleak. Every package's TestMain calls Main.
package leaktest

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// ignored are goroutines of dependencies that outlive a closed client
// through no fault of this module: go-redis v9.23 starts a circuit-breaker
// cleanup loop per client for maintenance notifications and, on Close, stops
// only one of the two it may start.
var ignored = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/maintnotifications.(*CircuitBreakerManager).cleanupLoop"),
}

// Main runs the tests of m, then each cleanup (closing clients the tests
// share), then fails the binary if any goroutine is left.
func Main(m *testing.M, cleanup ...func() error) {
	code := m.Run()
	for _, c := range cleanup {
		if err := c(); err != nil {
			fmt.Fprintln(os.Stderr, "leaktest: cleanup:", err)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(ignored...); err != nil {
			fmt.Fprintln(os.Stderr, "leaktest: goroutines outlived the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}
