package kv

import (
	"context"
	"errors"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// The store calls that WithFailOpen serves through (kv.fail_open.step).
const (
	failOpenRead  = "read"  // a read of the keys, taken for a miss
	failOpenWrite = "write" // the write of loaded values, which are returned
)

// notStoreFailures are the errors that are not the store failing: bad
// input, data the Map cannot use, a loader's answer, and a closed Map or
// store. WithFailOpen returns them.
var notStoreFailures = []error{
	ErrClosed, ErrEmptyKey, ErrWrongType, ErrTooLarge, ErrInvalidTTL,
	ErrInvalidOption, ErrInvalidNamespace, ErrNotFound, ErrLoadTimeout,
}

// mayFailOpen reports whether a load path whose store call failed with err
// goes on without it (WithFailOpen): the store could not be read or
// written, ctx (the caller's, or the load run's, which Close cancels) has
// not ended, and the Map is open.
func (m *Map[V]) mayFailOpen(ctx context.Context, err error) bool {
	if !m.failOpen || err == nil || ctx.Err() != nil {
		return false
	}
	var de *DecodeError
	var ce codecError
	if errors.As(err, &de) || errors.As(err, &ce) {
		return false
	}
	for _, e := range notStoreFailures {
		if errors.Is(err, e) {
			return false
		}
	}
	return !m.isClosed()
}

// failedOpen records a store error of step (failOpenRead, failOpenWrite)
// that WithFailOpen served through for n keys: a kv.fail_open event on the
// span in ctx (the call's, when the call is still open), a point of
// kv.client.fail_open, and a Warn record of the Map's logger (or of
// slog.Default when it has none). It names no key.
func (m *Map[V]) failedOpen(ctx context.Context, step string, err error, n int) {
	et := ErrorType(err)
	if t := m.tel; t != nil {
		if s := trace.SpanFromContext(ctx); s.IsRecording() {
			s.AddEvent("kv.fail_open", trace.WithAttributes(AttrFailOpenStep.String(step),
				semconv.ErrorTypeKey.String(et), AttrKeys.Int(n)))
		}
		if t.failOpens.Enabled(ctx) {
			attrs := append(t.base[:len(t.base):len(t.base)], AttrFailOpenStep.String(step), semconv.ErrorTypeKey.String(et))
			t.failOpens.Add(ctx, int64(n), metric.WithAttributes(attrs...))
		}
	}
	logger := m.logger
	if logger == nil {
		logger = slog.Default() // a store error served through is never silent
	}
	logger.LogAttrs(ctx, slog.LevelWarn, "kv: the store failed; serving the loader's value (WithFailOpen)",
		slog.String("namespace", m.ns), slog.String("step", step), slog.Int("count", n),
		slog.String("error.type", et), slog.String("error", err.Error()))
}
