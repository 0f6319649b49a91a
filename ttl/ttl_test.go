package ttl_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/ttl"
)

// recorder keeps the entries it is asked to write.
type recorder struct {
	backend.Backend
	got    []backend.Entry
	expire time.Duration
}

func (r *recorder) MSet(_ context.Context, es []backend.Entry) error {
	r.got = append(r.got, es...)
	return nil
}

func (r *recorder) Expire(_ context.Context, _ string, d time.Duration) (bool, error) {
	r.expire = d
	return true, nil
}

func TestDefaultFilledIn(t *testing.T) {
	tests := []struct {
		name string
		def  time.Duration
		in   time.Duration
		want time.Duration
	}{
		{"unset gets the default", time.Minute, 0, time.Minute},
		{"unset gets NoTTL", backend.NoTTL, 0, backend.NoTTL},
		{"own TTL kept", time.Minute, time.Hour, time.Hour},
		{"own NoTTL kept", time.Minute, backend.NoTTL, backend.NoTTL},
		{"sub-millisecond rounded up", time.Minute, time.Microsecond, time.Millisecond},
	}
	for _, tt := range tests {
		r := &recorder{}
		b, err := ttl.New(r, tt.def)
		if err != nil {
			t.Fatalf("%s: New: %v", tt.name, err)
		}
		if err := b.MSet(context.Background(), []backend.Entry{{Key: "k", TTL: tt.in}}); err != nil {
			t.Fatalf("%s: MSet: %v", tt.name, err)
		}
		if r.got[0].TTL != tt.want {
			t.Errorf("%s: stored TTL %v; want %v", tt.name, r.got[0].TTL, tt.want)
		}
	}
}

func TestInvalidRefusedBeforeTheStore(t *testing.T) {
	for _, d := range []time.Duration{0, -2, -time.Second} {
		if _, err := ttl.New(&recorder{}, d); !errors.Is(err, backend.ErrInvalidTTL) {
			t.Errorf("New(default %v) = %v; want ErrInvalidTTL", d, err)
		}
	}
	r := &recorder{}
	b, _ := ttl.New(r, time.Minute)
	err := b.MSet(context.Background(), []backend.Entry{{Key: "a"}, {Key: "b", TTL: -5}})
	if !errors.Is(err, backend.ErrInvalidTTL) || len(r.got) != 0 {
		t.Errorf("MSet with TTL -5 = %v, wrote %d entries; want ErrInvalidTTL and none", err, len(r.got))
	}
	if _, err := b.Expire(context.Background(), "a", 0); !errors.Is(err, backend.ErrInvalidTTL) || r.expire != 0 {
		t.Errorf("Expire(0) = %v (store saw %v); want ErrInvalidTTL before the store", err, r.expire)
	}
}
