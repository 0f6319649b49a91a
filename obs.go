package kv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kvmap/kv/backend"
)

// op is a Map operation, named after the method.
type op uint8

const (
	opSet op = iota
	opSetWithTTL
	opGet
	opGetOrLoad
	opHas
	opDelete
	opExpire
	opTTL
	opClear
	opSize
	opToArray
	opIterate
	opKeys
	opValues
	opSetMany
	opGetMany
	opDeleteMany
	opGetManyOrLoad
	opSetIfAbsent
	opCompareAndSwap
	opUpdate
	opGetWithTTL
	numOps
)

var opNames = [numOps]string{
	"Set", "SetWithTTL", "Get", "GetOrLoad", "Has", "Delete", "Expire", "TTL",
	"Clear", "Size", "ToArray", "Iterate", "Keys", "Values", "SetMany", "GetMany", "DeleteMany", "GetManyOrLoad",
	"SetIfAbsent", "CompareAndSwap", "Update", "GetWithTTL",
}

func (o op) String() string { return opNames[o] }

// isLookup reports the reads counted by kv.client.lookups.
func (o op) isLookup() bool {
	return o == opGet || o == opGetOrLoad || o == opHas || o == opGetMany || o == opGetManyOrLoad || o == opGetWithTTL
}

// call is one Map call being observed. It lives on the caller's stack.
type call struct {
	op    op
	key   string
	n     int // keys of a batch or bulk call; -1 for a single-key call
	hits  int // lookups: keys found, and (for GetMany) keys missed
	miss  int
	early bool // an iteration the loop left before its end
	local bool // a single-key hit served by the near cache
	start time.Time
	span  trace.Span
}

// setHit records the outcome of a single-key lookup.
func (c *call) setHit(ok bool) {
	if ok {
		c.hits = 1
	} else {
		c.miss = 1
	}
}

// begin starts observing a call of op on key (single-key calls) or on n keys
// (batch and bulk calls; n < 0 when not known yet). It returns the context
// the call runs with, which carries its span.
func (m *Map[V]) begin(ctx context.Context, o op, key string, n int) (context.Context, call) {
	c := call{op: o, key: key, n: n}
	if t := m.tel; t != nil {
		if tracer, g := t.currentTracer(); tracer != nil {
			parent := trace.SpanContextFromContext(ctx).IsValid()
			ctx, c.span = tracer.Start(ctx, t.spanNames[o], t.startOpts[o]...)
			if g != nil && !parent && !c.span.IsRecording() && !c.span.SpanContext().IsValid() {
				// Started without a parent, the span has no trace: the
				// provider is a no-op (the default global one, before an
				// SDK is installed). Start none under it again.
				g.noop.Store(true)
			}
		}
	}
	if m.logger != nil || (c.span != nil && c.span.IsRecording()) || (m.tel != nil && m.tel.duration.Enabled(ctx)) {
		c.start = time.Now()
	}
	return ctx, c
}

// end finishes observing the call: it ends its span, records its metrics,
// logs it when the Map has a logger, and returns err wrapped with the
// operation, namespace and key.
func (m *Map[V]) end(ctx context.Context, c *call, err error) error {
	if err != nil {
		err = m.wrap(c, err)
	}
	var elapsed time.Duration
	if !c.start.IsZero() {
		elapsed = time.Since(c.start)
	}
	if m.tel != nil {
		m.tel.record(ctx, c, err, elapsed)
	}
	if m.logger != nil {
		m.log(ctx, c, err, elapsed)
	}
	return err
}

// wrap names the operation, the namespace and the key (or key count) in err.
func (m *Map[V]) wrap(c *call, err error) error {
	switch {
	case c.key != "":
		return fmt.Errorf("kv: %s %s %s: %w", c.op, m.ns, backend.QuoteKey(c.key), err)
	case c.n >= 0 && (c.op == opSetMany || c.op == opGetMany || c.op == opDeleteMany || c.op == opGetManyOrLoad):
		return fmt.Errorf("kv: %s %s (%d keys): %w", c.op, m.ns, c.n, err)
	}
	return fmt.Errorf("kv: %s %s: %w", c.op, m.ns, err)
}

// log emits the call's one Info record: never a value.
func (m *Map[V]) log(ctx context.Context, c *call, err error, elapsed time.Duration) {
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String("op", c.op.String()), slog.String("namespace", m.ns))
	if c.key != "" {
		attrs = append(attrs, slog.String("key", c.key))
	}
	if c.n >= 0 {
		attrs = append(attrs, slog.Int("count", c.n))
	}
	if c.op.isLookup() {
		attrs = append(attrs, slog.Bool("hit", c.hits > 0))
	}
	attrs = append(attrs, slog.Duration("duration", elapsed))
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	m.logger.LogAttrs(ctx, slog.LevelInfo, "kv "+c.op.String(), attrs...)
}

// logPage emits the Debug record of one page of a bulk call.
func (m *Map[V]) logPage(ctx context.Context, o op, keys int) {
	if m.logger != nil && m.logger.Enabled(ctx, slog.LevelDebug) {
		m.logger.LogAttrs(ctx, slog.LevelDebug, "kv page", slog.String("op", o.String()),
			slog.String("namespace", m.ns), slog.Int("count", keys))
	}
}

// Attribute keys of ours, beside the OpenTelemetry semantic conventions.
const (
	AttrNamespace = attribute.Key("kv.namespace")    // the Map's namespace
	AttrKeys      = attribute.Key("kv.keys")         // keys of a batch, or entries of a bulk call
	AttrHit       = attribute.Key("kv.hit")          // a lookup found its key
	AttrHitSource = attribute.Key("kv.hit.source")   // with a near cache: a hit served "local"ly or by the "remote" store
	AttrKey       = attribute.Key("kv.key")          // the key, with WithKeysInTelemetry only
	AttrEarly     = attribute.Key("kv.early")        // an iteration left before its end
	AttrOutcome   = attribute.Key("kv.load.outcome") // of a load: loaded, refreshed, not_found, error, stale, waited, timeout, abandoned, superseded, lease_error
	// AttrFailOpenStep is the store call that failed under WithFailOpen:
	// "read" or "write".
	AttrFailOpenStep = attribute.Key("kv.fail_open.step")
)

// Instrument names.
const (
	MetricOperationDuration = "db.client.operation.duration"
	MetricLookups           = "kv.client.lookups"
	MetricLoads             = "kv.client.loads"
	// MetricFailOpen counts the keys whose store error GetOrLoad and
	// GetManyOrLoad served through with WithFailOpen (a failed read of a
	// batch counts each of its keys), by kv.fail_open.step and error.type.
	MetricFailOpen = "kv.client.fail_open"
	// MetricLocalEntries is the number of entries of the Map's local tier
	// (near-cached values, and what stale serving, refresh-ahead and
	// WithMissTTL remember), observed at each collection.
	MetricLocalEntries = "kv.local.entries"
	// MetricLocalBytes is the bytes of keys and values the local tier
	// holds, observed at each collection.
	MetricLocalBytes = "kv.local.bytes"
	// MetricLocalInvalidations counts the near-cached keys that a change
	// report of the store removed (NearCacheStats().Invalidations), as the
	// report is applied: a counter of the Maps of a namespace, which a Map
	// that closes takes nothing back from.
	MetricLocalInvalidations = "kv.local.invalidations"
	// MetricLocalLosses counts the losses of the store's change reports
	// while they were live (NearCacheStats().Losses): each emptied the
	// local tier until the reports were live again.
	MetricLocalLosses = "kv.local.losses"
)

// ScopeName is the instrumentation scope of the Map's tracer and meter.
const ScopeName = "github.com/kvmap/kv"

// durationBuckets are the advisory buckets of db.client.operation.duration.
var durationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// telemetry is what a Map needs to trace and measure its calls, built once
// per Map so that a call allocates nothing it does not record.
type telemetry struct {
	tracer     trace.Tracer // nil: follow otel.GetTracerProvider()
	global     atomic.Pointer[globalTracer]
	duration   metric.Float64Histogram
	lookups    metric.Int64Counter
	loads      metric.Int64Counter
	failOpens  metric.Int64Counter      // kv.client.fail_open
	meter      metric.Meter             // for the local tier's instruments (observeLocal)
	local      *localObs                // the local tier's callback; nil when not observed
	loadSets   map[string]attribute.Set // by outcome
	recordKeys bool

	spanNames [numOps]string
	startOpts [numOps][]trace.SpanStartOption
	base      []attribute.KeyValue        // the attributes of every call
	okSets    [numOps]attribute.Set       // metric attributes of a call without error
	hitSets   [numOps][3]attribute.Set    // lookups: miss, hit, hit served locally
	near      bool                        // a near cache: hits carry kv.hit.source
	okOpts    [numOps]metric.RecordOption // okSets as an option
}

func newTelemetry(ns string, d backend.Description, tp trace.TracerProvider, mp metric.MeterProvider, recordKeys, near bool) (*telemetry, error) {
	t := &telemetry{recordKeys: recordKeys, near: near}
	if tp != nil {
		t.tracer = tp.Tracer(ScopeName)
	}
	meter := mp.Meter(ScopeName)
	t.meter = meter
	var errs [4]error
	t.duration, errs[0] = meter.Float64Histogram(MetricOperationDuration,
		metric.WithDescription("Duration of kv.Map operations."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	t.lookups, errs[1] = meter.Int64Counter(MetricLookups,
		metric.WithDescription("Lookups of kv.Map keys, by kv.hit."),
		metric.WithUnit("{lookup}"))
	t.loads, errs[2] = meter.Int64Counter(MetricLoads,
		metric.WithDescription("Loads of GetOrLoad and GetManyOrLoad, by kv.load.outcome."),
		metric.WithUnit("{key}"))
	t.failOpens, errs[3] = meter.Int64Counter(MetricFailOpen,
		metric.WithDescription("Keys whose store error GetOrLoad and GetManyOrLoad served through with WithFailOpen, by kv.fail_open.step and error.type."),
		metric.WithUnit("{key}"))
	for i, name := range []string{MetricOperationDuration, MetricLookups, MetricLoads, MetricFailOpen} {
		if errs[i] != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidOption, name, errs[i])
		}
	}
	t.base = []attribute.KeyValue{semconv.DBSystemNameKey.String(d.System), AttrNamespace.String(ns)}
	t.loadSets = map[string]attribute.Set{}
	for _, outcome := range []string{loadLoaded, loadRefreshed, loadNotFound, loadError, loadStale, loadWaited, loadTimeout, loadAbandoned, loadSuperseded, loadLeaseError} {
		t.loadSets[outcome] = attribute.NewSet(append(append([]attribute.KeyValue(nil), t.base...), AttrOutcome.String(outcome))...)
	}
	if d.ServerAddress != "" {
		t.base = append(t.base, semconv.ServerAddress(d.ServerAddress))
		if d.ServerPort != 0 {
			t.base = append(t.base, semconv.ServerPort(d.ServerPort))
		}
	}
	kind := trace.SpanKindInternal
	if d.Remote {
		kind = trace.SpanKindClient
	}
	for o := range numOps {
		attrs := append(append([]attribute.KeyValue(nil), t.base...), semconv.DBOperationName(o.String()))
		t.spanNames[o] = o.String() + " " + ns
		t.startOpts[o] = []trace.SpanStartOption{trace.WithSpanKind(kind), trace.WithAttributes(attrs...)}
		t.okSets[o] = attribute.NewSet(attrs...)
		t.okOpts[o] = metric.WithAttributeSet(t.okSets[o])
		if o.isLookup() {
			for hit := range 2 {
				t.hitSets[o][hit] = attribute.NewSet(append(attrs[:len(attrs):len(attrs)], AttrHit.Bool(hit == 1))...)
			}
			if near {
				t.hitSets[o][1] = attribute.NewSet(append(attrs[:len(attrs):len(attrs)], AttrHit.Bool(true), AttrHitSource.String("remote"))...)
				t.hitSets[o][2] = attribute.NewSet(append(attrs[:len(attrs):len(attrs)], AttrHit.Bool(true), AttrHitSource.String("local"))...)
			}
		}
	}
	return t, nil
}

// globalTracer is the tracer of the global provider of the moment.
type globalTracer struct {
	tp         trace.TracerProvider
	comparable bool // tp's type can be compared with ==
	tracer     trace.Tracer
	noop       atomic.Bool // tp made a span without a trace: it records nothing
}

// currentTracer returns the tracer to start a span with, or nil when there
// is none worth starting: the Map's own tracer, or that of the global
// provider of the moment, so that an SDK installed after New receives the
// spans. Before one is installed the global provider makes spans without a
// trace, which cost allocations and record nothing: once begin has seen one,
// the Map starts no span until otel.GetTracerProvider returns another
// provider (installing an SDK changes it). The global tracer is returned with
// it, for begin to mark.
func (t *telemetry) currentTracer() (trace.Tracer, *globalTracer) {
	if t.tracer != nil {
		return t.tracer, nil
	}
	tp := otel.GetTracerProvider()
	g := t.global.Load()
	// == between interfaces panics only for two values of one type that
	// cannot be compared; g.comparable rules that out.
	if g == nil || !g.comparable || g.tp != tp {
		g = &globalTracer{tp: tp, comparable: comparableType(tp), tracer: tp.Tracer(ScopeName)}
		t.global.Store(g)
	}
	if g.noop.Load() {
		return nil, nil
	}
	return g.tracer, g
}

// comparableType reports whether values of tp's type can be compared.
func comparableType(tp trace.TracerProvider) bool {
	t := reflect.TypeOf(tp)
	return t != nil && t.Comparable()
}

// record ends the call's span and records its metrics.
func (t *telemetry) record(ctx context.Context, c *call, err error, elapsed time.Duration) {
	if s := c.span; s != nil && s.IsRecording() {
		if c.n >= 0 {
			s.SetAttributes(AttrKeys.Int(c.n))
		}
		if c.op.isLookup() {
			s.SetAttributes(AttrHit.Bool(c.hits > 0))
			if t.near && c.hits > 0 {
				source := "remote"
				if c.local {
					source = "local"
				}
				s.SetAttributes(AttrHitSource.String(source))
			}
		}
		if c.early {
			s.SetAttributes(AttrEarly.Bool(true))
		}
		if t.recordKeys && c.key != "" {
			s.SetAttributes(AttrKey.String(c.key))
		}
		if err != nil {
			// The description is the error type, never err.Error(): that
			// names the key, and a store's error may quote a value.
			et := semconv.ErrorTypeKey.String(ErrorType(err))
			s.SetAttributes(et)
			s.SetStatus(codes.Error, et.Value.AsString())
		}
	}
	if c.span != nil {
		c.span.End()
	}
	if t.duration.Enabled(ctx) {
		opt := t.okOpts[c.op]
		if err != nil {
			attrs := append(t.okSets[c.op].ToSlice(), semconv.ErrorTypeKey.String(ErrorType(err)))
			opt = metric.WithAttributes(attrs...)
		}
		t.duration.Record(ctx, elapsed.Seconds(), opt)
	}
	if c.op.isLookup() && (c.hits > 0 || c.miss > 0) && t.lookups.Enabled(ctx) {
		if c.hits > 0 {
			set := t.hitSets[c.op][1]
			if c.local {
				set = t.hitSets[c.op][2]
			}
			t.lookups.Add(ctx, int64(c.hits), metric.WithAttributeSet(set))
		}
		if c.miss > 0 {
			t.lookups.Add(ctx, int64(c.miss), metric.WithAttributeSet(t.hitSets[c.op][0]))
		}
	}
}

// ErrorType returns the low-cardinality name by which the Map's telemetry
// describes err, as the span status description and the error.type
// attribute: never a key or any part of a value. The names are timeout,
// canceled, closed, connection, auth, oom, wrong_type, too_large, decode,
// empty_key, invalid_ttl, invalid_namespace, invalid_option, corrupt,
// unavailable, server (another reply of a server) and _OTHER.
func ErrorType(err error) string {
	var de *DecodeError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &de):
		return "decode"
	}
	for _, s := range []struct {
		err  error
		name string
	}{
		{ErrClosed, "closed"}, {ErrEmptyKey, "empty_key"}, {ErrInvalidTTL, "invalid_ttl"},
		{ErrInvalidNamespace, "invalid_namespace"}, {ErrWrongType, "wrong_type"},
		{ErrTooLarge, "too_large"}, {ErrInvalidOption, "invalid_option"}, {ErrCorrupt, "corrupt"},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	// A server's reply: go-redis's errors have a RedisError method.
	var reply interface {
		error
		RedisError()
	}
	if errors.As(err, &reply) {
		code, _, _ := strings.Cut(reply.Error(), " ")
		switch code {
		case "WRONGPASS", "NOAUTH", "NOPERM":
			return "auth"
		case "OOM":
			return "oom"
		case "WRONGTYPE":
			return "wrong_type"
		case "READONLY", "MASTERDOWN", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK", "BUSY":
			return "unavailable"
		}
		return "server"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var op *net.OpError
	if errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) {
		return "connection"
	}
	return "_OTHER"
}

// Outcomes of a load, for kv.client.loads and the kv.load span event.
const (
	loadLoaded    = "loaded"    // a miss was loaded and stored
	loadRefreshed = "refreshed" // a hit near its expiry was loaded again
	loadNotFound  = "not_found" // the source does not have the key
	loadError     = "error"     // the load, or storing its value, failed
	loadStale     = "stale"     // an expired value was served in its grace period (WithStaleWhileRevalidate)
	loadWaited    = "waited"    // another process loaded the key while this one waited on its lease (WithLoadLease)
	loadTimeout   = "timeout"   // the load ran past WithLoadTimeout: cancelled, its result never stored
	loadAbandoned = "abandoned" // Close stopped waiting for a load function that ignores its context
	// loadSuperseded: loaded, returned, but not stored: a write, delete,
	// expiry change or clear of the key since the load began cancelled it.
	loadSuperseded = "superseded"
	loadLeaseError = "lease_error" // taking, renewing or releasing a lease failed (WithLoadLease)
)

// recordLoad counts n keys loaded with outcome, and adds a kv.load event to
// the span in ctx (the call's, when the call is still open). It names no key.
func (m *Map[V]) recordLoad(ctx context.Context, outcome string, n int) {
	t := m.tel
	if t == nil || n == 0 {
		return
	}
	if s := trace.SpanFromContext(ctx); s.IsRecording() {
		s.AddEvent("kv.load", trace.WithAttributes(AttrOutcome.String(outcome), AttrKeys.Int(n)))
	}
	if t.loads.Enabled(ctx) {
		t.loads.Add(ctx, int64(n), metric.WithAttributeSet(t.loadSets[outcome]))
	}
}
