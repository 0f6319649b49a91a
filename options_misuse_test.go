package kv

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	mnoop "go.opentelemetry.io/otel/metric/noop"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/nearcache"
)

// noClockStore is a store that reports no clock of its own, as Redis.
type noClockStore struct{ backend.Backend }

func (s noClockStore) Describe() backend.Description {
	d := s.Backend.Describe()
	d.Clock = nil
	return d
}

// optionsEnv is a memory store on a manual clock, and another clock.
func optionsEnv(t *testing.T) (store *memory.Backend, storeClock, other *clock.Manual) {
	t.Helper()
	storeClock = clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	other = clock.NewManual(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	store = memory.New(memory.WithClock(storeClock), memory.WithSweepInterval(0))
	t.Cleanup(func() { _ = store.Close() })
	return store, storeClock, other
}

// TestOptionMisuse: every combination of options that cannot take effect
// together, or that sets one thing twice, makes New fail with
// ErrInvalidOption, in either order, with a message naming both.
func TestOptionMisuse(t *testing.T) {
	store, _, other := optionsEnv(t)
	for _, tc := range []struct {
		name  string
		opts  []Option
		noClk bool     // the store reports no clock (Redis)
		names []string // what the message must name
	}{
		{"page size and its alias with two values", []Option{WithPageSize(5), WithScanCount(7)}, false, []string{"WithPageSize", "WithScanCount"}},
		{"keys in telemetry without telemetry", []Option{WithKeysInTelemetry(), WithoutTelemetry()}, false, []string{"WithKeysInTelemetry", "WithoutTelemetry"}},
		{"tracer provider without telemetry", []Option{WithTracerProvider(tnoop.NewTracerProvider()), WithoutTelemetry()}, false, []string{"WithTracerProvider", "WithoutTelemetry"}},
		{"meter provider without telemetry", []Option{WithMeterProvider(mnoop.NewMeterProvider()), WithoutTelemetry()}, false, []string{"WithMeterProvider", "WithoutTelemetry"}},
		{"a Map clock other than the store's", []Option{WithClock(other)}, false, []string{"WithClock", "its WithClock or WithSimulatedClock"}},
		{"a near-cache clock other than the store's", []Option{WithNearCache(nearcache.Options{Clock: other})}, false, []string{"WithNearCache's Options.Clock", "its WithClock or WithSimulatedClock"}},
		{"a near-cache clock other than WithClock's", []Option{WithClock(clock.System()), WithNearCache(nearcache.Options{Clock: other})}, true, []string{"WithClock", "WithNearCache's Options.Clock"}},
		{"load timeout 0", []Option{WithLoadTimeout(0)}, false, []string{"load timeout 0"}},
		{"refresh-ahead without a TTL", []Option{WithRefreshAhead(0.2), WithTTL(NoTTL)}, false, []string{"WithRefreshAhead", "WithTTL(NoTTL)"}},
		{"stale serving without a TTL", []Option{WithStaleWhileRevalidate(time.Second, 10), WithTTL(NoTTL)}, false, []string{"WithStaleWhileRevalidate", "WithTTL(NoTTL)"}},
		{"jitter without a TTL", []Option{WithTTLJitter(0.1, 1), WithTTL(NoTTL)}, false, []string{"WithTTLJitter", "WithTTL(NoTTL)"}},
		{"synchronous refresh without a policy", []Option{WithSynchronousRefresh()}, false, []string{"WithSynchronousRefresh", "WithRefreshAhead or WithStaleWhileRevalidate"}},
		{"a codec of another type", []Option{WithCodec(JSON[int]())}, false, []string{"Codec[string]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b backend.Backend = store
			if tc.noClk {
				b = noClockStore{store}
			}
			for _, opts := range [][]Option{tc.opts, reversed(tc.opts)} {
				m, err := New[string](b, "ns", opts...)
				if err == nil {
					_ = m.Close()
				}
				if !errors.Is(err, ErrInvalidOption) {
					t.Fatalf("New = %v; want ErrInvalidOption", err)
				}
				for _, n := range tc.names {
					if !strings.Contains(err.Error(), n) {
						t.Errorf("New = %q; want a message naming %s", err, n)
					}
				}
			}
		})
	}
}

// TestOptionMisuseAllowed: what is meaningful together is not refused.
func TestOptionMisuseAllowed(t *testing.T) {
	store, storeClock, _ := optionsEnv(t)
	for _, tc := range []struct {
		name string
		b    backend.Backend
		opts []Option
	}{
		{"the same page size twice", store, []Option{WithPageSize(5), WithScanCount(5)}},
		{"the store's own clock", store, []Option{WithClock(storeClock), WithNearCache(nearcache.Options{Clock: storeClock})}},
		{"a clock over a store without one", noClockStore{store}, []Option{WithClock(clock.System())}},
		{"nil providers without telemetry", store, []Option{WithTracerProvider(nil), WithMeterProvider(nil), WithoutTelemetry()}},
		{"no lease, no stale serving", store, []Option{WithLoadLease(0), WithStaleWhileRevalidate(0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New[string](tc.b, "ns", tc.opts...)
			if err != nil {
				t.Fatalf("New = %v; want a Map", err)
			}
			_ = m.Close()
		})
	}
}

// TestOptionOrder: no order of two different options changes what New
// builds: both orders build Maps with the same settings, or both fail with
// the same error.
func TestOptionOrder(t *testing.T) {
	store, storeClock, other := optionsEnv(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	all := []struct {
		name string
		opt  Option
	}{
		{"WithTTL(1h)", WithTTL(time.Hour)},
		{"WithTTL(NoTTL)", WithTTL(NoTTL)},
		{"WithPageSize(7)", WithPageSize(7)},
		{"WithScanCount(9)", WithScanCount(9)},
		{"WithLogger", WithLogger(logger)},
		{"WithCodec(string)", WithCodec(Raw[string]())},
		{"WithCodec(int)", WithCodec(JSON[int]())},
		{"WithTracerProvider", WithTracerProvider(tnoop.NewTracerProvider())},
		{"WithMeterProvider", WithMeterProvider(mnoop.NewMeterProvider())},
		{"WithKeysInTelemetry", WithKeysInTelemetry()},
		{"WithoutTelemetry", WithoutTelemetry()},
		{"WithTTLJitter", WithTTLJitter(0.1, 1)},
		{"WithMissTTL", WithMissTTL(time.Minute)},
		{"WithClock(store's)", WithClock(storeClock)},
		{"WithClock(other)", WithClock(other)},
		{"WithRefreshAhead", WithRefreshAhead(0.2)},
		{"WithSynchronousRefresh", WithSynchronousRefresh()},
		{"WithLoadLease", WithLoadLease(time.Minute)},
		{"WithStaleWhileRevalidate", WithStaleWhileRevalidate(time.Second, 10)},
		{"WithNearCache", WithNearCache(nearcache.Options{MaxEntries: 5})},
		{"WithNearCache(other clock)", WithNearCache(nearcache.Options{Clock: other})},
		{"WithLoadTimeout", WithLoadTimeout(time.Second)},
	}
	build := func(opts ...Option) (string, error) {
		m, err := New[string](store, "ns", opts...)
		if err != nil {
			return "", err
		}
		defer m.Close()
		_, near := m.NearCacheStats()
		return fmt.Sprintf("ttl %v page %d codec %T logger %p clock %p tel %v jitter %v refresh %v sync %v lease %v timeout %v near %v",
			m.ttl, m.pageSize, m.codec, m.logger, m.clock, m.tel != nil, m.jitter != nil, m.refresh, m.syncRef, m.leaseTTL, m.loadTimeout, near), nil
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			if same(a.name, b.name) {
				continue // the same option twice takes its last value
			}
			ab, errAB := build(a.opt, b.opt)
			ba, errBA := build(b.opt, a.opt)
			if ab != ba || fmt.Sprint(errAB) != fmt.Sprint(errBA) {
				t.Errorf("%s, %s: %s (%v); reversed: %s (%v); want the same", a.name, b.name, ab, errAB, ba, errBA)
			}
		}
	}
}

func reversed(opts []Option) []Option {
	out := make([]Option, len(opts))
	for i, o := range opts {
		out[len(opts)-1-i] = o
	}
	return out
}

// same reports whether two option names, as TestOptionOrder writes them,
// are of the same option.
func same(a, b string) bool {
	a, _, _ = strings.Cut(a, "(")
	b, _, _ = strings.Cut(b, "(")
	return a == b
}
