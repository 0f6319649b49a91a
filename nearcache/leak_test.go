package nearcache_test

import (
	"testing"

	"github.com/kvmap/kv/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }
