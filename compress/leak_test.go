package compress_test

import (
	"testing"

	"github.com/kvmap/kv/internal/leaktest"
)

// TestMain fails the package's tests when any goroutine outlives them.
func TestMain(m *testing.M) { leaktest.Main(m) }
