// Command tracing shows what a kv.Map records with OpenTelemetry: it installs
// the SDK for a service named "signal-service", makes a few calls inside a
// parent span, and prints the span tree (name, kind, duration, attributes,
// parent and children) and the metrics recorded (the
// db.client.operation.duration histogram and the kv.client.lookups counter,
// whose kv.hit attribute gives the hit rate).
//
//	go run ./examples/tracing
//
// In a service, export with an OTLP exporter and a batch span processor
// instead of printing.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/memory"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	res := resource.NewSchemaless(semconv.ServiceName("signal-service"))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader))
	defer func() {
		if err := tp.Shutdown(ctx); err != nil {
			log.Print(err)
		}
		if err := mp.Shutdown(ctx); err != nil {
			log.Print(err)
		}
	}()
	otel.SetTracerProvider(tp) // kv.Maps follow the global providers
	otel.SetMeterProvider(mp)

	store := memory.New()
	defer store.Close()
	signals, err := kv.New[string](store, "signal_cache")
	if err != nil {
		return err
	}

	ctx, parent := tp.Tracer("example").Start(ctx, "backtest tick")
	if err := signals.Set(ctx, "binance:trend:BTC/USDT:USDT", "66f1c0ffee0123456789abcd"); err != nil {
		return err
	}
	for _, key := range []string{"binance:trend:BTC/USDT:USDT", "binance:trend:ETH/USDT:USDT"} { // a hit, then a miss
		if _, _, err := signals.Get(ctx, key); err != nil {
			return err
		}
	}
	_, err = signals.GetOrLoad(ctx, "binance:trend:SOL/USDT:USDT", func(ctx context.Context) (string, error) {
		_, span := tp.Tracer("example").Start(ctx, "mongo findOne") // a child of GetOrLoad
		defer span.End()
		return "66f1c0ffee00000000000042", nil
	})
	if err != nil {
		return err
	}
	for _, err := range signals.Iterate(ctx) { // one span for the whole pass
		if err != nil {
			return err
		}
	}
	parent.End()

	fmt.Fprintf(out, "service.name=signal-service\n\nspans:\n")
	printTree(out, spans.Ended())
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nmetrics:\n")
	printMetrics(out, rm)
	return nil
}

// printTree prints the spans as a tree, children under their parent, in the
// order they started.
func printTree(out io.Writer, spans []sdktrace.ReadOnlySpan) {
	slices.SortFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	children := map[string][]sdktrace.ReadOnlySpan{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID().String()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		p := s.Parent().SpanID().String()
		if s.Parent().IsValid() && ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		fmt.Fprintf(out, "%s%s  [%s, %v]%s\n", strings.Repeat("    ", depth), s.Name(), s.SpanKind(),
			s.EndTime().Sub(s.StartTime()).Round(time.Microsecond), attrs(s.Attributes()))
		for _, c := range children[s.SpanContext().SpanID().String()] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
}

// attrs formats attributes as " k=v k=v", sorted.
func attrs(kvs []attribute.KeyValue) string {
	var parts []string
	for _, a := range kvs {
		parts = append(parts, string(a.Key)+"="+a.Value.String())
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, " ")
}

// printMetrics prints the histogram counts and the counter sums, one line
// per set of attributes.
func printMetrics(out io.Writer, rm metricdata.ResourceMetrics) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			fmt.Fprintf(out, "%s (%s)\n", m.Name, m.Unit)
			var lines []string
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("    count=%d sum=%.6fs%s", p.Count, p.Sum, attrs(p.Attributes.ToSlice())))
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("    %d%s", p.Value, attrs(p.Attributes.ToSlice())))
				}
			}
			slices.Sort(lines)
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
		}
	}
}
