package kv_test

import (
	"context"
	"testing"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/memory"
)

// BenchmarkGetTelemetry measures what instrumentation costs a memory Get with
// no OpenTelemetry SDK installed (the default global providers): otel=on is
// a Map with telemetry, otel=off one built WithoutTelemetry.
func BenchmarkGetTelemetry(b *testing.B) {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	on := mustNew[string](b, store, "ns")
	off := mustNew[string](b, store, "ns", kv.WithoutTelemetry())
	if err := on.Set(ctx, "binance:s:BTC/USDT:USDT", "66f1c0ffee0123456789abcd"); err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct {
		name string
		m    *kv.Map[string]
	}{{"otel=off", off}, {"otel=on", on}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, err := bm.m.Get(ctx, "binance:s:BTC/USDT:USDT"); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
