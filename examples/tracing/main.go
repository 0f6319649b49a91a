// Command tracing shows the OpenTelemetry trace of a few kv.Map calls: it
// installs the SDK with a stdout exporter, makes the calls inside a parent
// span, and prints every span as JSON, children of the parent, named
// "<operation> <namespace>".
//
//	go run ./examples/tracing
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/memory"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	exporter, err := stdouttrace.New(stdouttrace.WithWriter(out), stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	// A synchronous processor prints each span as it ends; use
	// sdktrace.WithBatcher in production.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer func() { _ = tp.Shutdown(ctx) }()
	otel.SetTracerProvider(tp) // kv.Maps follow the global provider

	store := memory.New()
	defer store.Close()
	signals, err := kv.New[string](store, "signal_cache")
	if err != nil {
		return err
	}

	ctx, parent := tp.Tracer("example").Start(ctx, "backtest tick")
	_ = signals.Set(ctx, "binance:trend:BTC/USDT:USDT", "66f1c0ffee0123456789abcd")
	_, _, _ = signals.Get(ctx, "binance:trend:BTC/USDT:USDT")
	_, _, _ = signals.Get(ctx, "binance:trend:ETH/USDT:USDT") // a miss: kv.hit=false, not an error
	_, _ = signals.GetOrLoad(ctx, "binance:trend:SOL/USDT:USDT", func(ctx context.Context) (string, error) {
		_, span := tp.Tracer("example").Start(ctx, "mongo findOne") // a child of GetOrLoad
		defer span.End()
		return "66f1c0ffee00000000000042", nil
	})
	n := 0
	for _, err := range signals.Iterate(ctx) { // one span for the whole pass
		if err != nil {
			return err
		}
		n++
	}
	parent.End()
	fmt.Fprintf(os.Stderr, "iterated %d entries; spans above\n", n)
	return nil
}
