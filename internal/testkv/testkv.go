// Package testkv holds helpers shared by the module's tests.
package testkv

import (
	"testing"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
)

// MustNew returns a Map or fails the test: a broken setup must not show up
// as a confusing later assertion.
func MustNew[V any](t testing.TB, b backend.Backend, ns string, opts ...kv.Option) *kv.Map[V] {
	t.Helper()
	m, err := kv.New[V](b, ns, opts...)
	if err != nil {
		t.Fatalf("kv.New(%q): %v", ns, err)
	}
	return m
}
