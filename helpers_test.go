package kv_test

import (
	"path/filepath"
	"testing"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/internal/testkv"
)

// mustNew returns a Map or fails the test.
func mustNew[V any](t testing.TB, b backend.Backend, ns string, opts ...kv.Option) *kv.Map[V] {
	t.Helper()
	return testkv.MustNew[V](t, b, ns, opts...)
}

// newBolt opens a bbolt store in a file of the test's, without fsync,
// closed when the test ends.
func newBolt(t *testing.T, opts ...bolt.Option) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "kv.db"), append([]bolt.Option{bolt.WithNoSync()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}
