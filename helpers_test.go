package kv_test

import (
	"testing"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/internal/testkv"
)

// mustNew returns a Map or fails the test.
func mustNew[V any](t testing.TB, b backend.Backend, ns string, opts ...kv.Option) *kv.Map[V] {
	t.Helper()
	return testkv.MustNew[V](t, b, ns, opts...)
}
