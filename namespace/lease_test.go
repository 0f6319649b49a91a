package namespace_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/namespace"
)

// lostStore is a memory store whose leases' Store also reports every entry
// as unknown, as Redis does for a pipeline whose replies were lost.
type lostStore struct{ *memory.Backend }

func (s lostStore) Capabilities() backend.Capabilities {
	o := s.Backend.Capabilities()
	acquire := o.AcquireLeases
	o.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
		held, l, err := acquire(ctx, keys, ttl)
		if l != nil {
			l = lostLease{l}
		}
		return held, l, err
	}
	return o
}

type lostLease struct{ backend.Lease }

func (l lostLease) Store(ctx context.Context, entries []backend.GuardedEntry) ([]bool, error) {
	stored, err := l.Lease.Store(ctx, entries)
	be := &backend.BatchError{Op: "store", Err: errors.Join(err, backend.ErrUnknownOutcome)}
	for _, e := range entries {
		be.Unknown = append(be.Unknown, e.Key)
	}
	return stored, be
}

// TestLeaseStoreKeys: a lease taken through the namespace stores key k as
// the store's "ns:k", and a BatchError names the keys of the namespace.
func TestLeaseStoreKeys(t *testing.T) {
	ctx := context.Background()
	m := memory.New(memory.WithSweepInterval(0))
	t.Cleanup(func() { _ = m.Close() })
	nb, err := namespace.New(lostStore{m}, "ns")
	if err != nil {
		t.Fatal(err)
	}
	held, l, err := nb.Capabilities().AcquireLeases(ctx, []string{"k"}, time.Minute)
	if err != nil || !slices.Equal(held, []bool{true}) {
		t.Fatalf("AcquireLeases = %v, %v", held, err)
	}
	stored, err := l.Store(ctx, []backend.GuardedEntry{{Entry: backend.Entry{Key: "k", Value: []byte("v"), TTL: backend.NoTTL}}})
	if !slices.Equal(stored, []bool{true}) {
		t.Errorf("Store = %v; want [true]", stored)
	}
	var be *backend.BatchError
	if !errors.As(err, &be) || !slices.Equal(be.Unknown, []string{"k"}) || !errors.Is(err, backend.ErrUnknownOutcome) {
		t.Errorf("Store error = %v; want a BatchError naming k (without the namespace) as unknown", err)
	}
	if v, err := m.Get(ctx, "ns:k"); err != nil || string(v.Bytes) != "v" {
		t.Errorf("store's ns:k = %q, %v; want v", v.Bytes, err)
	}
	if _, err := l.Store(ctx, []backend.GuardedEntry{{Entry: backend.Entry{Value: []byte("v"), TTL: backend.NoTTL}}}); !errors.Is(err, backend.ErrEmptyKey) {
		t.Errorf("Store of an empty key = %v; want ErrEmptyKey", err)
	}
}
