package kv_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
)

// spanText is everything a span carries as text: its name, attributes,
// status description and events.
func spanText(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	b.WriteString(s.Name() + " " + s.Status().Description)
	for _, a := range s.Attributes() {
		b.WriteString(" " + string(a.Key) + "=" + a.Value.String())
	}
	for _, e := range s.Events() {
		b.WriteString(" " + e.Name)
		for _, a := range e.Attributes {
			b.WriteString(" " + string(a.Key) + "=" + a.Value.String())
		}
	}
	return b.String()
}

// TestTelemetryHoldsNoKeyOrValue: without WithKeysInTelemetry no span holds
// a key or any part of a value, and no log record at any level holds any part
// of a value. Spans used to carry err.Error() as their status (naming the
// key), and a JSON decode error quoted the stored digits into the span
// status and the log's error attribute.
func TestTelemetryHoldsNoKeyOrValue(t *testing.T) {
	const (
		key    = "user:alice@example.com"
		digits = "4111111111111111111111"
	)
	ctx := context.Background()
	b := memory.New()
	t.Cleanup(func() { b.Close() })
	// A value that does not decode as an int: too large a number.
	if err := b.MSet(ctx, []backend.Entry{{Key: "acct:" + key, Value: []byte(digits), TTL: kv.NoTTL}}); err != nil {
		t.Fatal(err)
	}
	tel := newTelemetry(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := mustNew[int](t, b, "acct", append(tel.opts(), kv.WithLogger(logger))...)

	_, _, err := m.Get(ctx, key)
	var de *kv.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("Get = %v; want a *DecodeError", err)
	}
	if strings.Contains(err.Error(), "41111") {
		t.Errorf("DecodeError message %q quotes the stored value", err)
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("error %q does not name the key; the caller's error may", err)
	}
	_, _ = m.GetMany(ctx, []string{key})
	_, _ = m.GetOrLoad(ctx, key, func(context.Context) (int, error) { return 0, errors.New("unused") })
	for _, err := range m.Iterate(ctx) {
		_ = err
	}
	_, _ = m.ToArray(ctx)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, key, 7); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("Set after Close = %v; want ErrClosed", err)
	}
	_, _ = m.Has(ctx, key)

	spans := tel.spans.Ended()
	if len(spans) < 7 {
		t.Fatalf("%d spans; want one per call", len(spans))
	}
	errored := 0
	for _, s := range spans {
		text := spanText(s)
		if strings.Contains(text, "alice") || strings.Contains(text, "41111") {
			t.Errorf("span %q holds a key or value: %s", s.Name(), text)
		}
		if s.Status().Description != "" {
			errored++
		}
	}
	if errored == 0 {
		t.Error("no span recorded an error; the test proves nothing")
	}
	if strings.Contains(logs.String(), "41111") {
		t.Errorf("logs hold part of a value:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "alice") {
		t.Errorf("the Info records do not name the key (BaseMap's log did):\n%s", logs.String())
	}
}

func TestErrorTypes(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{context.Canceled, "canceled"},
		{errors.Join(errors.New("i/o timeout"), context.DeadlineExceeded), "timeout"},
		{&kv.DecodeError{Key: "k", Err: errors.New("x")}, "decode"},
		{kv.ErrClosed, "closed"},
		{kv.ErrCorrupt, "corrupt"},
		{&kv.BatchError{Op: "write", Err: kv.ErrTooLarge}, "too_large"},
		{replyError("WRONGPASS invalid username-password pair"), "auth"},
		{replyError("OOM command not allowed when used memory > 'maxmemory'."), "oom"},
		{replyError("ERR DB index is out of range"), "server"},
		{errors.New("something else"), "_OTHER"},
	}
	for _, tt := range tests {
		if got := kv.ErrorType(tt.err); got != tt.want {
			t.Errorf("ErrorType(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}

// replyError is a server reply, as go-redis reports one.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// TestErrorCapsLongKey: an error names its key cut to 64 bytes, with the
// key's length; it used to quote a 32 KiB key whole.
func TestErrorCapsLongKey(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	m := mustNew[string](t, b, "ns")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("k", 32<<10)
	err := m.Set(ctx, key, "v")
	if !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("Set = %v; want ErrClosed", err)
	}
	if msg := err.Error(); len(msg) > 300 || !strings.Contains(msg, "(32768 bytes)") {
		t.Errorf("the error is %d bytes long (%.120q...); want the key cut, with its length", len(msg), msg)
	}
}
