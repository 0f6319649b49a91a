package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// WithAutoPipeline sends single-key reads and writes (Get, and MSet of one
// entry: kv.Map's Get, Has, Set, SetWithTTL) through go-redis's
// auto-pipeliner when another such call is under way, so that concurrent
// callers share round trips; a call made while none is under way takes the
// client's direct path, as without the option. Each call keeps its own context (a call whose
// context ends returns ctx.Err() at once; its command may still run, as a
// command whose reply is lost may) and its own error.
//
// The auto-pipeliner is the client's shared asynchronous one
// (client.AsyncAutoPipeline(), go-redis v9.23, marked experimental there):
// New fails if the client cannot make one. Closing the Backend does not
// close it; it ends with the client. Batches, scans and TTL reads use the
// client's pool as without the option.
func WithAutoPipeline() Option { return func(b *Backend) { b.autoPipe = true } }

// autoPipeliner is what WithAutoPipeline needs of a client.
type autoPipeliner interface {
	AsyncAutoPipeline() (*goredis.AutoPipeliner, error)
}

// startAutoPipeline gets the client's auto-pipeliner.
func (b *Backend) startAutoPipeline() error {
	c, ok := b.client.(autoPipeliner)
	if !ok {
		return fmt.Errorf("redis: %T has no auto-pipeliner", b.client)
	}
	ap, err := c.AsyncAutoPipeline()
	if err != nil {
		return fmt.Errorf("redis: auto-pipeline: %w", err)
	}
	b.ap = ap
	return nil
}

// busy counts a single-key call in and reports whether another is under
// way: only then is the call sent through the auto-pipeliner, so that a
// lone call takes the client's direct path, without the hand-off to the
// pipeliner's goroutines. A call that took the direct path ends with idle;
// one that took the pipeliner decrements inflight itself.
func (b *Backend) busy() bool { return b.inflight.Add(1) > 1 }

// idle ends a call counted by busy that took the direct path. Without
// WithAutoPipeline nothing is counted.
func (b *Backend) idle() {
	if b.ap != nil {
		b.inflight.Add(-1)
	}
}

// run sends cmd through the auto-pipeliner and waits for it, up to ctx.
func (b *Backend) run(ctx context.Context, cmd goredis.Cmder) error {
	return b.ap.Submit(ctx, cmd).WaitContext(ctx)
}

// getAuto is get through the auto-pipeliner.
func (b *Backend) getAuto(ctx context.Context, wire string) ([]byte, error) {
	cmd := goredis.NewStringCmd(ctx, "get", wire)
	if err := b.run(ctx, cmd); err != nil {
		return nil, err
	}
	return cmd.Bytes()
}

// setAuto is the SET of one entry through the auto-pipeliner, never re-sent
// (setCmd): the auto-pipeliner honours NoRetry, dispatching it in a
// pipeline of its own retry policy.
func (b *Backend) setAuto(ctx context.Context, wire string, value []byte, ttl time.Duration) error {
	return b.run(ctx, setCmd(ctx, wire, value, ttl))
}
