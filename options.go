package kv

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultTTL is the TTL of a Map built without WithTTL: BaseMap's 300 seconds.
const DefaultTTL = 5 * time.Minute

// DefaultPageSize is the page-size hint of bulk operations built without
// WithPageSize. BaseMap used 100 (its SCAN COUNT); a larger page costs fewer
// round trips per key on Redis while still holding only one page of values at
// a time (see docs/performance.md).
const DefaultPageSize = 1000

// DefaultScanCount is DefaultPageSize.
//
// Deprecated: use DefaultPageSize.
const DefaultScanCount = DefaultPageSize

// Option configures a Map built by New.
type Option func(*options)

type options struct {
	ttl            time.Duration
	pageSize       int
	logger         *slog.Logger
	codec          any // a Codec[V], checked by New
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	noTelemetry    bool
	recordKeys     bool
}

// WithTTL sets the TTL of every write that does not name its own: a positive
// duration, or NoTTL for keys that never expire (DefaultTTL by default). Any
// other value makes New fail with ErrInvalidTTL.
func WithTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithPageSize sets the page-size hint of bulk operations (Clear, Size,
// ToArray, Iterate, Keys, Values; SCAN's COUNT on Redis): DefaultPageSize by
// default. A value below 1 makes New fail with ErrInvalidOption.
func WithPageSize(n int) Option { return func(o *options) { o.pageSize = n } }

// WithScanCount is WithPageSize.
//
// Deprecated: use WithPageSize.
func WithScanCount(n int) Option { return WithPageSize(n) }

// WithLogger makes every Map call emit one Info record to l (operation,
// namespace, key or count, duration, error; never a value), as BaseMap logs
// every call. nil, the default, logs nothing.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithCodec sets the codec of the Map's values, replacing the default (raw for
// string and []byte types, JSON otherwise). New fails with ErrInvalidOption
// when c is not a Codec of the Map's value type.
func WithCodec[V any](c Codec[V]) Option { return func(o *options) { o.codec = c } }

// WithTracerProvider sets the OpenTelemetry tracer provider of the Map's spans.
// By default the Map follows otel.GetTracerProvider() at every call: a
// provider installed after New still receives the spans, and while none is
// installed the Map starts no span at all.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithMeterProvider sets the OpenTelemetry meter provider of the Map's
// metrics (otel.GetMeterProvider() by default).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProvider = mp }
}

// WithKeysInTelemetry records the key of single-key calls as the span
// attribute kv.key. Keys are not recorded by default; values never are.
func WithKeysInTelemetry() Option { return func(o *options) { o.recordKeys = true } }

// WithoutTelemetry turns the Map's spans and metrics off.
func WithoutTelemetry() Option { return func(o *options) { o.noTelemetry = true } }
