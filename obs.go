package kv

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Operation names, as logged (and traced): the Map method.
const (
	opSet        = "Set"
	opSetWithTTL = "SetWithTTL"
	opGet        = "Get"
	opGetOrLoad  = "GetOrLoad"
	opHas        = "Has"
	opDelete     = "Delete"
	opExpire     = "Expire"
	opTTL        = "TTL"
	opClear      = "Clear"
	opSize       = "Size"
	opToArray    = "ToArray"
	opIterate    = "Iterate"
	opKeys       = "Keys"
	opValues     = "Values"
	opSetMany    = "SetMany"
	opGetMany    = "GetMany"
	opDeleteMany = "DeleteMany"
)

// call is one Map call being observed. It lives on the caller's stack.
type call struct {
	op    string
	key   string
	n     int // keys of a batch or bulk call; -1 for a single-key call
	hit   bool
	start time.Time
}

// begin starts observing a call of op on key (single-key calls) or on n keys
// (batch and bulk calls, n < 0 when not known yet).
func (m *Map[V]) begin(op, key string, n int) call {
	c := call{op: op, key: key, n: n}
	if m.logger != nil {
		c.start = time.Now()
	}
	return c
}

// end finishes observing the call: it logs it when the Map has a logger, and
// returns err wrapped with the operation, namespace and key.
func (m *Map[V]) end(ctx context.Context, c *call, err error) error {
	if err != nil {
		err = m.wrap(c, err)
	}
	if m.logger != nil {
		m.log(ctx, c, err)
	}
	return err
}

// wrap names the operation, the namespace and the key (or key count) in err.
func (m *Map[V]) wrap(c *call, err error) error {
	switch {
	case c.key != "":
		return fmt.Errorf("kv: %s %s %q: %w", c.op, m.ns, c.key, err)
	case c.n >= 0 && c.op != opSize:
		return fmt.Errorf("kv: %s %s (%d keys): %w", c.op, m.ns, c.n, err)
	}
	return fmt.Errorf("kv: %s %s: %w", c.op, m.ns, err)
}

// log emits the call's one Info record: never a value.
func (m *Map[V]) log(ctx context.Context, c *call, err error) {
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs, slog.String("op", c.op), slog.String("namespace", m.ns))
	if c.key != "" {
		attrs = append(attrs, slog.String("key", c.key))
	}
	if c.n >= 0 {
		attrs = append(attrs, slog.Int("count", c.n))
	}
	attrs = append(attrs, slog.Duration("duration", time.Since(c.start)))
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	m.logger.LogAttrs(ctx, slog.LevelInfo, "kv "+c.op, attrs...)
}
