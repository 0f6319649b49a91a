package kv_test

// Reproductions of defects in WithFailOpen and the kv.local.* metrics
// (issue 21 items 4 and 5), by a reviewer: each test fails on the code as
// committed, and says why.

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/nearcache"
)

// r21bClientTimeout is how long a hung store's client waits for a reply
// before it gives up (a go-redis ReadTimeout/WriteTimeout).
const r21bClientTimeout = 100 * time.Millisecond

// r21bHung is a store that has stopped answering, behind a client with a
// timeout of its own: every read (Get, MGet) and write (MSet) waits
// r21bClientTimeout and fails with an i/o timeout, as go-redis does with a
// ReadTimeout; a caller's context that ends first ends the call.
type r21bHung struct{ backend.Wrapper }

func r21bTimeout(ctx context.Context) error {
	t := time.NewTimer(r21bClientTimeout)
	defer t.Stop()
	select {
	case <-t.C:
		return &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *r21bHung) Get(ctx context.Context, key string) (backend.Value, error) {
	return backend.Value{}, r21bTimeout(ctx)
}

func (h *r21bHung) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	return nil, r21bTimeout(ctx)
}

func (h *r21bHung) MSet(ctx context.Context, entries []backend.Entry) error {
	return r21bTimeout(ctx)
}

// Capabilities are the store's without its namespace views, which would
// bypass the hang.
func (h *r21bHung) Capabilities() backend.Capabilities {
	c := h.Wrapper.Capabilities()
	c.Namespace = nil
	return c
}

// TestReview21bFailOpenHungStoreReadTwice: WithFailOpen documents that "a
// store that hangs is failed open only when its client gives up before the
// caller's context ends (a go-redis ReadTimeout shorter than the caller's
// deadline)". Here the client gives up after 100ms and the caller allows
// 250ms: time for the failed read (100ms) and the failed write of the
// loaded value (100ms). GetManyOrLoad serves the loader's value in 200ms.
// GetOrLoad does not: after its own read failed open, the load's leader
// (loadOne) reads the key again through settle, which hangs another 100ms
// and fails open a second time, so the value is ready only after 300ms and
// the caller gets context.DeadlineExceeded instead of the loader's value.
//
// Defect: under WithFailOpen a GetOrLoad miss pays the hung store's client
// timeout three times (read, re-read, write), so the loader's value is lost
// to any caller deadline under 3x the client timeout, against the
// documented promise. Right: a read that the caller just failed open on is
// not read again before loading (as GetManyOrLoad does not), so GetOrLoad
// returns the loader's value within the same read + write time as
// GetManyOrLoad.
func TestReview21bFailOpenHungStoreReadTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := memory.New(memory.WithSweepInterval(0))
		defer mem.Close()
		store := &r21bHung{backend.Wrapper{Backend: mem}}
		tel := newTelemetry(t)
		m := mustNew[string](t, store, "ns", append(tel.opts(), kv.WithFailOpen())...)
		defer m.Close()
		const deadline = 250 * time.Millisecond // > one read + one write of the hung store

		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		got, err := m.GetManyOrLoad(ctx, []string{"k"}, func(_ context.Context, keys []string) (map[string]string, error) {
			return map[string]string{"k": "v"}, nil
		})
		cancel()
		if err != nil || got["k"] != "v" {
			t.Fatalf("GetManyOrLoad = %v, %v after %v; want the loader's value (control)", got, err, time.Since(start))
		}
		t.Logf("GetManyOrLoad served the loader's value after %v", time.Since(start))

		ctx, cancel = context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start = time.Now()
		v, err := m.GetOrLoad(ctx, "k2", func(context.Context) (string, error) { return "v", nil })
		if err != nil || v != "v" {
			t.Errorf("GetOrLoad with a %v deadline on a store whose client gives up after %v = %q, %v after %v; want the loader's value, as GetManyOrLoad gave",
				deadline, r21bClientTimeout, v, err, time.Since(start))
		}
		synctest.Wait()
		if got := sums(t, tel, kv.MetricFailOpen, kv.AttrFailOpenStep); got["read"] > 2 {
			t.Errorf("kv.client.fail_open by step = %v: GetOrLoad read the hung key twice", got)
		}
	})
}

// TestReview21bLocalCountersNeverDecrease: kv.local.invalidations and
// kv.local.losses are observable (monotonic) counters, and the Maps of one
// namespace on one meter provider report one attribute set, their sum
// ("so that the Maps of one namespace add up"). When one of them is closed
// its callback is unregistered and its counts leave the sum: the
// cumulative counter goes down (same start time), and with delta
// temporality the SDK reports a negative delta of a monotonic counter.
// Exporters read the drop as a counter reset (Prometheus rate() then adds
// the whole remaining count as a spurious increase).
//
// Defect: closing (or garbage-collecting) one Map of a namespace makes the
// monotonic kv.local.invalidations (and kv.local.losses) of the others
// decrease. Right: a monotonic counter never decreases for an attribute
// set while the provider reports it: the counts of a closed Map stay in the
// namespace's sum (or each Map reports its own attribute set).
func TestReview21bLocalCountersNeverDecrease(t *testing.T) {
	ctx := context.Background()
	tel := &telemetry{reader: sdkmetric.NewManualReader()}
	delta := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(func(sdkmetric.InstrumentKind) metricdata.Temporality {
		return metricdata.DeltaTemporality
	}))
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader), sdkmetric.WithReader(delta))
	store := newMem(t)
	near := []kv.Option{kv.WithMeterProvider(tel.mp), kv.WithNearCache(nearcache.Options{})}
	a := mustNew[string](t, store, "both", near...)
	b := mustNew[string](t, store, "both", near...)
	defer b.Close()
	writer := mustNew[string](t, store, "both")
	defer writer.Close()
	if err := writer.Set(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Get(ctx, "k"); !ok || err != nil {
		t.Fatalf("a.Get = %v, %v", ok, err)
	}
	if err := writer.Set(ctx, "k", "v2"); err != nil { // reported: a's copy invalidated
		t.Fatal(err)
	}
	deltaPoint := func() int64 {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := delta.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				if mt.Name == kv.MetricLocalInvalidations {
					for _, p := range mt.Data.(metricdata.Sum[int64]).DataPoints {
						sum += p.Value
					}
				}
			}
		}
		return sum
	}
	before := readLocal(t, tel, "both").invalidations
	if d := deltaPoint(); before < 1 || d != before {
		t.Fatalf("kv.local.invalidations = %d (delta %d); want a's invalidation counted", before, d)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	after := readLocal(t, tel, "both").invalidations
	if after < before {
		t.Errorf("kv.local.invalidations (a monotonic counter, cumulative) went from %d to %d when one Map of the namespace was closed; want it never to decrease", before, after)
	}
	if d := deltaPoint(); d < 0 {
		t.Errorf("kv.local.invalidations, delta temporality: %d after one Map of the namespace was closed; a monotonic counter's delta is never negative", d)
	}
}

// TestReview21bLocalMetricsKeepDroppedMapAlive: "a Map dropped without
// Close is unregistered when collected"; observeLocal takes care that its
// callback holds the tier, "not m: the registration must not keep the Map
// alive". But with stale serving (WithStaleWhileRevalidate) on a store that
// reports changes, the Map's first call sets the tier's verifier to a
// closure over m (startWatch: m.tier.SetVerifier(func() { ...
// m.verifier(vctx) })): the meter provider then holds the callback, the
// callback the tier, the tier m, and m its store. The Map is never
// collected, so never unregistered: the Map, its store and everything they
// hold leak for the life of the meter provider, and the dropped Map is
// reported forever. Without telemetry the same Map and store are collected
// at the next GC (checked by hand with a weak pointer while reviewing).
//
// Defect: the kv.local.* registration keeps a dropped Map with stale
// serving alive, defeating the GC cleanup that is to unregister it. Right:
// the dropped Map is collected and stops being reported, as the one of
// TestLocalTierMetricsUnregisteredByGC (WithMissTTL) is.
func TestReview21bLocalMetricsKeepDroppedMapAlive(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	func() {
		mem := memory.New(memory.WithSweepInterval(0)) // dropped with the Map: nothing else holds it
		m := mustNew[string](t, mem, "dropped", append(tel.opts(), kv.WithTTL(time.Hour), kv.WithStaleWhileRevalidate(time.Minute, 10))...)
		if _, err := m.GetOrLoad(ctx, "k", func(context.Context) (string, error) { return "v", nil }); err != nil {
			t.Fatal(err)
		}
	}()
	if got := readLocal(t, tel, "dropped"); got.entries != 1 {
		t.Fatalf("a loaded key remembered for stale serving: kv.local.entries = %d; want 1", got.entries)
	}
	deadline := time.Now().Add(5 * time.Second)
	for readLocal(t, tel, "dropped").entries != -1 {
		if time.Now().After(deadline) {
			t.Fatal("the Map dropped without Close is still observed (so never collected) 5s and many GCs later; want it collected and unregistered")
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// TestReview21bFailOpenSilentByDefault: the issue asks that under fail
// open "the error [be] recorded in telemetry and logs, never swallowed
// silently", and New refuses WithFailOpen where it "would record it
// nowhere" — but only for WithoutTelemetry without WithLogger. The default
// Map follows the global OpenTelemetry providers, which record nothing
// until a program installs an SDK (README: "with no SDK installed it starts
// no span and records nothing"), and logs only to WithLogger's logger. So
// kv.New(b, ns, kv.WithFailOpen()) in a program without an SDK (the common
// case of a service that only logs) serves every store failure through
// with no trace anywhere: no span, no metric, no log record, not even in
// the process's default logger.
//
// Defect: with WithFailOpen and no WithLogger, store errors served through
// are recorded nowhere unless an OpenTelemetry SDK happens to be installed.
// Right: the Warn record goes to slog.Default() when the Map has no logger
// (or New refuses WithFailOpen without WithLogger), so a store failure
// served through is always logged.
func TestReview21bFailOpenSilentByDefault(t *testing.T) {
	var buf bytes.Buffer
	saved := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer slog.SetDefault(saved)
	store := newFailing(newMem(t))
	m, err := kv.New[string](store, "ns", kv.WithFailOpen()) // defaults: the global providers, no logger
	if err != nil {
		t.Fatalf("New(WithFailOpen) = %v", err)
	}
	defer m.Close()
	store.reads.Store(true)
	store.writes.Store(true)
	v, err := m.GetOrLoad(context.Background(), "k", func(context.Context) (string, error) { return "v", nil })
	if v != "v" || err != nil {
		t.Fatalf("GetOrLoad = %q, %v; want the loader's value", v, err)
	}
	if n := store.readFails.Load() + store.wrFails.Load(); n == 0 || !strings.Contains(buf.String(), "WithFailOpen") {
		t.Errorf("%d store errors served through by a Map with default telemetry and no WithLogger; the default logger holds %q: want each logged (Warn), not swallowed silently", n, buf.String())
	}
}
