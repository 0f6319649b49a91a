package redis

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The auto-pipeliner is client.AsyncAutoPipeline() (go-redis v9.23,
// experimental there: autopipe_test.go pins what is relied on). Every command
// sent there is NoRetry, reads too, so that reads and writes share batches (a
// batch mixing retry policies goes out as pipelines one after the other); a
// read that fails there is sent again on the direct path, with retries.

// WithoutAutoPipeline makes every single-key call take the client's direct
// path, one pooled connection per call in flight, and never starts the
// client's auto-pipeliner.
func WithoutAutoPipeline() Option { return func(b *Backend) { b.direct = true } }

// WithAutoPipeline is the default, auto-pipelining: it undoes an earlier
// WithoutAutoPipeline.
func WithAutoPipeline() Option { return func(b *Backend) { b.direct = false } }

// pipeliner counts a single-key call in (the caller counts it out) and
// reports whether it goes through the auto-pipeliner: only if another is
// under way.
func (b *Backend) pipeliner() bool {
	return b.inflight.Add(1) > 1 && !b.direct && b.autoPipeliner() != nil
}

// autoPipeliner returns the client's auto-pipeliner, got at the first call;
// nil when the client cannot make one (closed: the direct path reports it).
func (b *Backend) autoPipeliner() *goredis.AutoPipeliner {
	if ap := b.ap.Load(); ap != nil {
		return ap
	}
	c, ok := b.client.(interface {
		AsyncAutoPipeline() (*goredis.AutoPipeliner, error)
	})
	if !ok {
		return nil
	}
	ap, err := c.AsyncAutoPipeline()
	if err != nil {
		return nil
	}
	b.ap.Store(ap)
	return ap
}

// getAuto is get through the auto-pipeliner, then the direct path if it failed.
func (b *Backend) getAuto(ctx context.Context, wire string) ([]byte, error) {
	cmd := stringNR{goredis.NewStringCmd(ctx, "get", wire)}
	err := b.run(ctx, cmd)
	if err == nil {
		return cmd.Bytes()
	}
	if errors.Is(err, goredis.Nil) || ctx.Err() != nil {
		return nil, err
	}
	return b.client.Get(ctx, wire).Bytes()
}

// setAuto is the SET of one entry through the auto-pipeliner, never re-sent.
func (b *Backend) setAuto(ctx context.Context, wire string, value []byte, ttl time.Duration) error {
	return b.run(ctx, setCmd(ctx, wire, value, ttl))
}

// run sends cmd through the auto-pipeliner and waits for it, up to ctx.
func (b *Backend) run(ctx context.Context, cmd goredis.Cmder) error {
	ap := b.autoPipeliner()
	if ap == nil {
		return goredis.ErrClosed
	}
	return ap.Submit(ctx, cmd).WaitContext(ctx)
}
