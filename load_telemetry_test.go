package kv_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/nearcache"
)

// sums returns the points of an Int64 counter, by the value of attribute
// key ("" for points without it), summed.
func sums(t *testing.T, tel *telemetry, metric string, key attribute.Key) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != metric {
				continue
			}
			for _, p := range mt.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := p.Attributes.Value(key)
				out[v.AsString()] += p.Value
			}
		}
	}
	return out
}

// TestHitSourceInTelemetry: with a near cache, a hit's span and its point
// of kv.client.lookups say whether it was served locally or by the store.
func TestHitSourceInTelemetry(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	m := mustNew[string](t, newMem(t), "ns", append(tel.opts(), kv.WithNearCache(nearcache.Options{}))...)
	defer m.Close()
	if err := m.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, ok, err := m.Get(ctx, "k"); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	spans := tel.ended("Get ns")
	if len(spans) != 2 {
		t.Fatalf("%d Get spans; want 2", len(spans))
	}
	wantAttr(t, spans[0], kv.AttrHitSource, "remote")
	wantAttr(t, spans[1], kv.AttrHitSource, "local")
	if got := sums(t, tel, kv.MetricLookups, kv.AttrHitSource); got["remote"] != 1 || got["local"] != 1 {
		t.Errorf("kv.client.lookups by kv.hit.source = %v; want remote 1, local 1", got)
	}
}

// TestStaleAndWaitedOutcomes: a value served stale, and a miss settled by
// another Map's load under its lease, are counted by kv.client.loads.
func TestStaleAndWaitedOutcomes(t *testing.T) {
	ctx := context.Background()
	tel := newTelemetry(t)
	clk := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(clk), memory.WithSweepInterval(0))
	defer store.Close()
	m := mustNew[string](t, store, "ns", append(tel.opts(), kv.WithTTL(time.Minute),
		kv.WithStaleWhileRevalidate(time.Minute, 10), kv.WithSynchronousRefresh())...)
	load := func(context.Context) (string, error) { return "v", nil }
	if _, err := m.GetOrLoad(ctx, "k", load); err != nil {
		t.Fatal(err)
	}
	clk.Advance(61 * time.Second)
	if _, err := m.GetOrLoad(ctx, "k", load); err != nil { // stale, then reloaded
		t.Fatal(err)
	}
	got := sums(t, tel, kv.MetricLoads, kv.AttrOutcome)
	if got["stale"] != 1 || got["loaded"] != 2 {
		t.Errorf("kv.client.loads = %v; want stale 1, loaded 2", got)
	}

	synctest.Test(t, func(t *testing.T) {
		tel := newTelemetry(t)
		store := memory.New(memory.WithSweepInterval(0))
		defer store.Close()
		holder := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Minute))
		waiter := mustNew[string](t, store, "ns", append(tel.opts(), kv.WithLoadLease(time.Minute))...)
		done := make(chan error)
		go func() {
			_, err := holder.GetOrLoad(ctx, "w", func(context.Context) (string, error) {
				time.Sleep(time.Second)
				return "v", nil
			})
			done <- err
		}()
		synctest.Wait() // the holder has the lease and is loading
		if _, err := waiter.GetOrLoad(ctx, "w", load); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := sums(t, tel, kv.MetricLoads, kv.AttrOutcome); got["waited"] != 1 || got["loaded"] != 0 {
			t.Errorf("the waiting Map's kv.client.loads = %v; want waited 1 and no load", got)
		}
	})
}
