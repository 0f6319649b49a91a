package kv_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
)

// TestTTLAboveMaxRefused: a TTL whose deadline would overflow used to be
// accepted and make the key invisible at once (now + ttl wrapped negative);
// in bbolt the wrapped deadline also sorted last in the expiry index, so Size
// counted a key ToArray never returned. Every entry point now refuses a TTL
// above MaxTTL before writing, and MaxTTL itself round-trips.
func TestTTLAboveMaxRefused(t *testing.T) {
	stores := map[string]func(t *testing.T) backend.Backend{
		"memory": func(t *testing.T) backend.Backend {
			b := memory.New()
			t.Cleanup(func() { b.Close() })
			return b
		},
		"bolt": func(t *testing.T) backend.Backend {
			b, err := bolt.Open(filepath.Join(t.TempDir(), "kv.db"), bolt.WithNoSync())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		},
	}
	huge := []time.Duration{math.MaxInt64, 250 * 365 * 24 * time.Hour, kv.MaxTTL + time.Millisecond}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := open(t)
			for _, ttl := range huge {
				if _, err := kv.New[string](b, "ns", kv.WithTTL(ttl)); !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("New(WithTTL(%v)) = %v; want ErrInvalidTTL", ttl, err)
				}
			}
			m := mustNew[string](t, b, "ns")
			if err := m.Set(ctx, "keep", "v"); err != nil {
				t.Fatal(err)
			}
			for _, ttl := range huge {
				if err := m.SetWithTTL(ctx, "k", "v", ttl); !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("SetWithTTL(%v) = %v; want ErrInvalidTTL", ttl, err)
				}
				if ok, err := m.Expire(ctx, "keep", ttl); !errors.Is(err, kv.ErrInvalidTTL) || ok {
					t.Errorf("Expire(%v) = %v, %v; want false, ErrInvalidTTL", ttl, ok, err)
				}
				err := b.MSet(ctx, []backend.Entry{{Key: "ns:a", Value: []byte("1"), TTL: time.Hour}, {Key: "ns:b", TTL: ttl}})
				if !errors.Is(err, kv.ErrInvalidTTL) {
					t.Errorf("MSet with TTL %v = %v; want ErrInvalidTTL", ttl, err)
				}
			}
			if ok, err := m.Has(ctx, "a"); err != nil || ok {
				t.Errorf("Has(a) after a refused batch = %v, %v; want false (nothing written)", ok, err)
			}
			if d, ok, err := m.TTL(ctx, "keep"); err != nil || !ok || d > kv.DefaultTTL {
				t.Errorf("TTL(keep) after refused Expires = %v, %v, %v; want the default TTL", d, ok, err)
			}
			if err := m.SetWithTTL(ctx, "max", "v", kv.MaxTTL); err != nil {
				t.Fatalf("SetWithTTL(MaxTTL) = %v", err)
			}
			if d, ok, err := m.TTL(ctx, "max"); err != nil || !ok || d <= kv.MaxTTL-time.Minute {
				t.Errorf("TTL(max) = %v, %v, %v; want about MaxTTL", d, ok, err)
			}
			all, err := m.ToArray(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := m.Size(ctx); err != nil || n != len(all) || n != 2 {
				t.Errorf("Size = %d, %v; ToArray has %d; want 2 both", n, err, len(all))
			}
		})
	}
}

// TestDeadlineSaturates: deadline arithmetic saturates instead of wrapping,
// so a clock far in the future cannot hide a write either.
func TestDeadlineSaturates(t *testing.T) {
	tests := []struct {
		now  int64
		ttl  time.Duration
		want int64
	}{
		{now: 100, ttl: backend.NoTTL, want: 0},
		{now: 100, ttl: 5, want: 105},
		{now: math.MaxInt64 - 10, ttl: kv.MaxTTL, want: math.MaxInt64},
		{now: -500, ttl: 100, want: 1},
	}
	for _, tt := range tests {
		if got := backend.Deadline(tt.now, tt.ttl); got != tt.want {
			t.Errorf("Deadline(%d, %v) = %d; want %d", tt.now, tt.ttl, got, tt.want)
		}
	}
}
