package conformance

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// record is one log record, flattened for checks.
type record struct {
	level string
	attrs map[string]string
	text  string // message and every attribute, to look for leaked values
}

// recordingHandler is a slog.Handler that keeps every record.
type recordingHandler struct {
	mu   sync.Mutex
	recs []record
}

func newLogger(h *recordingHandler) *slog.Logger { return slog.New(h) }

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level.String(), attrs: map[string]string{}}
	var text strings.Builder
	text.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value.String()
		rec.attrs[a.Key] = v
		text.WriteString(" " + a.Key + "=" + v)
		return true
	})
	rec.text = text.String()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, rec)
	return nil
}

func (h *recordingHandler) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.recs)
}

func (h *recordingHandler) since(i int) []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]record(nil), h.recs[i:]...)
}
