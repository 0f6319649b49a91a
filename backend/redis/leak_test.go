package redis_test

import (
	"errors"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/internal/leaktest"
)

// TestMain closes the clients the tests share, then fails the package's
// tests when any goroutine outlives them.
func TestMain(m *testing.M) {
	leaktest.Main(m, func() error {
		var errs []error
		clientOnce.Range(func(_, c any) bool {
			errs = append(errs, c.(goredis.UniversalClient).Close())
			return true
		})
		return errors.Join(errs...)
	})
}
