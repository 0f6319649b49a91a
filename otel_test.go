package kv_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/extra/redisotel/v9"
	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/backend/redis"
)

// telemetry is an SDK tracer and meter provider recording in memory.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newTelemetry(t *testing.T) *telemetry {
	t.Helper()
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	return tel
}

func (tel *telemetry) opts() []kv.Option {
	return []kv.Option{kv.WithTracerProvider(tel.tp), kv.WithMeterProvider(tel.mp)}
}

// ended returns the ended spans named name.
func (tel *telemetry) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tel.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func one(t *testing.T, tel *telemetry, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	got := tel.ended(name)
	if len(got) != 1 {
		var names []string
		for _, s := range tel.spans.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("%d spans named %q; want 1 (spans: %q)", len(got), name, names)
	}
	return got[0]
}

func wantAttr(t *testing.T, s sdktrace.ReadOnlySpan, key attribute.Key, want any) {
	t.Helper()
	v, ok := attrs(s)[key]
	if !ok {
		t.Errorf("span %q has no attribute %s; want %v", s.Name(), key, want)
		return
	}
	if got := v.AsInterface(); got != want {
		t.Errorf("span %q: %s = %v; want %v", s.Name(), key, got, want)
	}
}

func TestSpans(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	m, err := kv.New[string](newMem(t), "signal_cache", tel.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "66f1c0ffee-secret"
	if err := m.Set(ctx, "k", secret); err != nil {
		t.Fatal(err)
	}
	_, _, _ = m.Get(ctx, "k")
	_, _, _ = m.Get(ctx, "missing")
	if err := m.SetMany(ctx, []kv.Entry[string]{{Key: "a", Value: secret}, {Key: "b", Value: secret}, {Key: "c", Value: secret}}); err != nil {
		t.Fatal(err)
	}

	set := one(t, tel, "Set signal_cache")
	if set.SpanKind() != trace.SpanKindInternal {
		t.Errorf("memory span kind = %v; want internal", set.SpanKind())
	}
	wantAttr(t, set, "db.system.name", "memory")
	wantAttr(t, set, "db.operation.name", "Set")
	wantAttr(t, set, "kv.namespace", "signal_cache")
	if _, ok := attrs(set)["db.namespace"]; ok {
		t.Errorf("span sets db.namespace; the namespace goes in kv.namespace")
	}
	if _, ok := attrs(set)["kv.key"]; ok {
		t.Errorf("span records the key without WithKeysInTelemetry")
	}

	gets := tel.ended("Get signal_cache")
	if len(gets) != 2 {
		t.Fatalf("%d Get spans; want 2", len(gets))
	}
	wantAttr(t, gets[0], "kv.hit", true)
	wantAttr(t, gets[1], "kv.hit", false)
	for _, g := range gets {
		if g.Status().Code != codes.Unset {
			t.Errorf("Get span status = %v; want unset (a miss is not an error)", g.Status())
		}
	}
	wantAttr(t, one(t, tel, "SetMany signal_cache"), "kv.keys", int64(3))

	for _, s := range tel.spans.Ended() {
		for _, a := range s.Attributes() {
			if a.Value.String() == secret {
				t.Errorf("span %q records a value in %s", s.Name(), a.Key)
			}
		}
	}
}

func TestSpanError(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	b := memory.New()
	m := mustNew[string](t, b, "ns", tel.opts()...)
	_ = b.Close()
	if err := m.Set(ctx, "k", "v"); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("Set = %v", err)
	}
	s := one(t, tel, "Set ns")
	if s.Status().Code != codes.Error {
		t.Errorf("status = %v; want Error", s.Status())
	}
	wantAttr(t, s, "error.type", "closed")
}

func TestKeysInTelemetryOptIn(t *testing.T) {
	tel := newTelemetry(t)
	m := mustNew[string](t, newMem(t), "ns", append(tel.opts(), kv.WithKeysInTelemetry())...)
	_, _, _ = m.Get(context.Background(), "binance:s:BTC")
	wantAttr(t, one(t, tel, "Get ns"), "kv.key", "binance:s:BTC")
}

func TestIterationSpans(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	m := mustNew[string](t, newMem(t), "ns", append(tel.opts(), kv.WithPageSize(3))...)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if err := m.Set(ctx, k, k); err != nil {
			t.Fatal(err)
		}
	}
	it := m.Iterate(ctx)
	_ = m.Keys(ctx)
	if n := len(tel.ended("Iterate ns")) + len(tel.ended("Keys ns")); n != 0 {
		t.Errorf("%d spans for iterators never ranged over; want 0", n)
	}
	for range it {
	}
	n := 0
	for range it {
		if n++; n == 2 {
			break
		}
	}
	passes := tel.ended("Iterate ns")
	if len(passes) != 2 {
		t.Fatalf("%d Iterate spans for 2 passes; want 2", len(passes))
	}
	wantAttr(t, passes[0], "kv.keys", int64(5))
	if _, early := attrs(passes[0])["kv.early"]; early {
		t.Errorf("a full pass is marked kv.early")
	}
	wantAttr(t, passes[1], "kv.keys", int64(2))
	wantAttr(t, passes[1], "kv.early", true)
}

func TestSpanParentAndChildren(t *testing.T) {
	tel := newTelemetry(t)
	m := mustNew[string](t, newMem(t), "ns", tel.opts()...)
	ctx, parent := tel.tp.Tracer("app").Start(context.Background(), "handler")
	_, err := m.GetOrLoad(ctx, "id", func(ctx context.Context) (string, error) {
		_, db := tel.tp.Tracer("app").Start(ctx, "mongo find")
		db.End()
		return "v", nil
	})
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	ours := one(t, tel, "GetOrLoad ns")
	if ours.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("GetOrLoad span's parent = %v; want the caller's span", ours.Parent().SpanID())
	}
	if db := one(t, tel, "mongo find"); db.Parent().SpanID() != ours.SpanContext().SpanID() {
		t.Errorf("the load's span is not a child of the GetOrLoad span")
	}
}

// TestRedisSpans checks the Redis attributes, and that redisotel's command
// spans, when the user instruments the client, are children of ours.
func TestRedisSpans(t *testing.T) {
	ctx := context.Background()
	s := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	tel := newTelemetry(t)
	if err := redisotel.InstrumentTracing(c, redisotel.WithTracerProvider(tel.tp)); err != nil {
		t.Fatal(err)
	}
	b, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	m := mustNew[string](t, b, "ns", tel.opts()...)
	if err := m.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	ours := one(t, tel, "Set ns")
	if ours.SpanKind() != trace.SpanKindClient {
		t.Errorf("Redis span kind = %v; want client", ours.SpanKind())
	}
	wantAttr(t, ours, "db.system.name", "redis")
	wantAttr(t, ours, "server.address", "127.0.0.1")
	wantAttr(t, ours, "server.port", int64(s.Server().Addr().Port))
	var children []string
	for _, sp := range tel.spans.Ended() {
		if sp.Parent().SpanID() == ours.SpanContext().SpanID() {
			children = append(children, sp.Name())
		}
	}
	if !slices.Contains(children, "set") {
		t.Errorf("children of our span = %q; want redisotel's set", children)
	}
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	m := mustNew[string](t, newMem(t), "ns", tel.opts()...)
	if err := m.Set(ctx, "a", "v"); err != nil {
		t.Fatal(err)
	}
	_, _, _ = m.Get(ctx, "a")
	_, _, _ = m.Get(ctx, "nope")
	_, _ = m.GetMany(ctx, []string{"a", "x", "y"})

	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	durations := map[string]uint64{} // operation -> count
	lookups := map[[2]string]int64{} // (operation, hit) -> sum
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			switch md.Name {
			case "db.client.operation.duration":
				if md.Unit != "s" {
					t.Errorf("duration unit = %q; want s", md.Unit)
				}
				for _, dp := range md.Data.(metricdata.Histogram[float64]).DataPoints {
					op, _ := dp.Attributes.Value("db.operation.name")
					sys, _ := dp.Attributes.Value("db.system.name")
					if sys.AsString() != "memory" {
						t.Errorf("duration point with db.system.name %q", sys.AsString())
					}
					durations[op.AsString()] += dp.Count
					if len(dp.Bounds) != 9 || dp.Bounds[0] != 0.001 {
						t.Errorf("duration buckets = %v; want the conventions' 9 from 0.001", dp.Bounds)
					}
				}
			case "kv.client.lookups":
				for _, dp := range md.Data.(metricdata.Sum[int64]).DataPoints {
					op, _ := dp.Attributes.Value("db.operation.name")
					hit, _ := dp.Attributes.Value("kv.hit")
					lookups[[2]string{op.AsString(), hit.String()}] += dp.Value
				}
			}
		}
	}
	if durations["Set"] != 1 || durations["Get"] != 2 || durations["GetMany"] != 1 {
		t.Errorf("duration counts = %v; want Set 1, Get 2, GetMany 1", durations)
	}
	want := map[[2]string]int64{
		{"Get", "true"}: 1, {"Get", "false"}: 1, {"GetMany", "true"}: 1, {"GetMany", "false"}: 2,
	}
	for k, v := range want {
		if lookups[k] != v {
			t.Errorf("kv.client.lookups%v = %d; want %d (all: %v)", k, lookups[k], v, lookups)
		}
	}
}

// TestFollowsGlobalProvider: a Map built without a provider starts no span
// while no SDK is installed, and records into the SDK once one is installed
// as the global provider, without being rebuilt.
// TestFollowsGlobalProvider: a Map built before any SDK starts at most one
// span under a global provider that records nothing (it learns that from the
// span), and an SDK installed globally later receives its spans. Global
// providers cannot be reset, so the scenario runs in a child process.
func TestFollowsGlobalProvider(t *testing.T) {
	if os.Getenv("KV_OTEL_GLOBAL_CHILD") == "1" {
		followsGlobalProvider(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFollowsGlobalProvider$", "-test.v")
	cmd.Env = append(os.Environ(), "KV_OTEL_GLOBAL_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFollowsGlobalProvider") {
		t.Fatalf("the child failed: %v\n%s", err, out)
	}
}

// countingProvider makes spans without a trace, as the default global
// provider does before an SDK is installed, and counts them.
type countingProvider struct {
	noop.TracerProvider
	starts *atomic.Int32
}

func (p countingProvider) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return countingTracer{p.TracerProvider.Tracer(""), p.starts}
}

type countingTracer struct {
	trace.Tracer
	starts *atomic.Int32
}

func (c countingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	c.starts.Add(1)
	return c.Tracer.Start(ctx, name, opts...)
}

func followsGlobalProvider(t *testing.T) {
	ctx := context.Background()
	m := mustNew[string](t, newMem(t), "ns")
	starts := new(atomic.Int32)
	otel.SetTracerProvider(countingProvider{starts: starts})
	for range 5 {
		if _, _, err := m.Get(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	if n := starts.Load(); n != 1 {
		t.Errorf("5 calls under a provider that records nothing started %d spans; want 1", n)
	}
	tel := newTelemetry(t)
	otel.SetTracerProvider(tel.tp)
	if _, _, err := m.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if n := len(tel.ended("Get ns")); n != 1 {
		t.Errorf("%d spans after the SDK was installed globally; want 1", n)
	}
	// WithoutTelemetry records nothing, the global SDK installed or not.
	quiet := mustNew[string](t, newMem(t), "ns", kv.WithoutTelemetry())
	if err := quiet.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if n := len(tel.spans.Ended()); n != 1 {
		t.Errorf("%d spans in all after a call WithoutTelemetry; want 1 (the Get before)", n)
	}
}

func TestWithoutTelemetry(t *testing.T) {
	tel := newTelemetry(t)
	// Providers given with WithoutTelemetry would be ignored: refused.
	_, err := kv.New[string](newMem(t), "ns", append(tel.opts(), kv.WithoutTelemetry())...)
	if !errors.Is(err, kv.ErrInvalidOption) {
		t.Errorf("providers with WithoutTelemetry: got %v, want ErrInvalidOption", err)
	}
	m := mustNew[string](t, newMem(t), "ns", kv.WithoutTelemetry())
	if err := m.Set(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if n := len(tel.spans.Ended()); n != 0 {
		t.Errorf("%d spans with WithoutTelemetry; want 0", n)
	}
}

var _ backend.Backend = (*memory.Backend)(nil)
