package memory_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kvmap/kv"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/namespace"
	"github.com/kvmap/kv/nearcache"
)

func harness(opts ...memory.Option) conformance.Harness {
	return conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			b := memory.New(append([]memory.Option{memory.WithClock(clk)}, opts...)...)
			return conformance.Store{Backend: b, Advance: clk.Advance}
		},
		PageHint: true,
	}
}

func TestConformance(t *testing.T) {
	h := harness()
	h.Faults = conformance.FaultsAround(h.New)
	conformance.Run(t, h)
}

// TestConformanceCoreOnly runs the suite with the backend's optimisations
// hidden: every one is a pure optimisation, so the results must be the same.
func TestConformanceCoreOnly(t *testing.T) {
	h := harness()
	h.Faults = conformance.FaultsAround(h.New)
	conformance.Run(t, conformance.WithoutOptimizations(h))
}

func TestConformanceWithCapacity(t *testing.T) {
	h := harness(memory.WithCapacity(2000))
	h.Capacity = 2000
	conformance.Run(t, h)
}

// TestConformanceUnderNamespace runs the suite over a store that is itself a
// namespace of the memory backend: the decorator must be a faithful Backend.
func TestConformanceUnderNamespace(t *testing.T) {
	h := harness()
	inner := h.New
	h.New = func(t conformance.T) conformance.Store {
		s := inner(t)
		nb, err := namespace.New(s.Backend, "outer")
		if err != nil {
			t.Fatalf("namespace.New: %v", err)
		}
		s.Backend = nb
		return s
	}
	conformance.Run(t, h)
}

// TestConformanceWithTelemetry runs the suite with tracing, metrics and a
// debug logger on, and checks that every span it made is named after a Map
// method and its namespace.
func TestConformanceWithTelemetry(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := harness()
	h.Options = []kv.Option{kv.WithTracerProvider(tp), kv.WithMeterProvider(mp), kv.WithLogger(logger)}
	conformance.Run(t, h)

	ended := spans.Ended()
	if len(ended) < 100 {
		t.Fatalf("the suite made %d spans; want many", len(ended))
	}
	for _, s := range ended {
		op, ns, ok := strings.Cut(s.Name(), " ")
		if !ok || ns == "" || op == "" {
			t.Errorf("span name %q is not \"<operation> <namespace>\"", s.Name())
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil || len(rm.ScopeMetrics) == 0 {
		t.Errorf("no metrics after the suite (%v)", err)
	}
}

func TestSweepReclaimsExpiredKeys(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Unix(0, 0))
	b := memory.New(memory.WithClock(clk), memory.WithSweepInterval(0))
	defer b.Close()
	var entries []backend.Entry
	for i := range 3000 { // more than one sweep chunk
		ttl := time.Second
		if i%3 == 0 {
			ttl = backend.NoTTL
		}
		entries = append(entries, backend.Entry{Key: string(rune('a'+i%26)) + time.Duration(i).String(), Value: []byte("v"), TTL: ttl})
	}
	if err := b.MSet(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if got := memory.Sweep(b); got != 0 {
		t.Errorf("sweep before expiry removed %d keys; want 0", got)
	}
	clk.Advance(time.Second)
	if got := memory.Sweep(b); got != 2000 {
		t.Errorf("sweep removed %d keys; want 2000", got)
	}
	if got := b.Len(); got != 1000 {
		t.Errorf("Len after sweep = %d; want 1000", got)
	}
}

// TestBackgroundSweep checks that the sweep runs by itself: expired keys leave
// the store without any call touching them.
func TestBackgroundSweep(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Unix(0, 0))
	b := memory.New(memory.WithClock(clk), memory.WithSweepInterval(time.Millisecond))
	if err := b.MSet(ctx, []backend.Entry{{Key: "k", Value: []byte("v"), TTL: time.Second}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for b.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("expired key not swept after 10s; Len = %d", b.Len())
		}
		time.Sleep(time.Millisecond) // polling, bounded by the deadline
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	select {
	case <-memory.SweepDone(b):
	default:
		t.Errorf("Close returned while the sweep goroutine still runs")
	}
}

func TestUnboundedByDefault(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	defer b.Close()
	var entries []backend.Entry
	for i := range 100_000 {
		entries = append(entries, backend.Entry{Key: time.Duration(i).String(), Value: nil, TTL: backend.NoTTL})
	}
	if err := b.MSet(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if got := b.Len(); got != 100_000 {
		t.Errorf("Len = %d; want 100000 (nothing evicted)", got)
	}
}

// TestConformanceNearCache runs the suite with a near cache in front of
// every Map (kv.WithNearCache): the cache must change nothing a caller can
// see, faults included.
func TestConformanceNearCache(t *testing.T) {
	h := harness()
	h.Options = []kv.Option{kv.WithNearCache(nearcache.Options{})}
	h.Faults = conformance.FaultsAround(h.New)
	conformance.Run(t, h)
}
