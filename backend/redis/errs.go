package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// wrap names the command in a Redis error. When the call's context has
// ended, the error also wraps ctx.Err(), so that errors.Is(err,
// context.DeadlineExceeded) holds whatever the client returned (go-redis
// reports a deadline on a pipelined call as an i/o timeout).
//
// On a cluster, a failure (a node refused or dropped the connection, or
// answered CLUSTERDOWN or READONLY: it died, or failed over) makes the client
// reload its slot map, so that the next call goes to the node that serves the
// slot now instead of the dead one; go-redis alone keeps dialling a dead
// master for many seconds after its replica took over.
func (b *Backend) wrap(ctx context.Context, cmd string, err error) error {
	if err == nil {
		return nil
	}
	if b.cluster != nil && ctx.Err() == nil && !errors.Is(err, goredis.Nil) && !isWrongType(err) {
		b.cluster.ReloadState(ctx)
	}
	if cerr := ctxErr(ctx, err); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redis %s: %w: %w", cmd, cerr, err)
	}
	return fmt.Errorf("redis %s: %w", cmd, err)
}

// wrapWrite is wrap for a single write command, sent never to be re-sent
// (see noretry.go): an error that is neither a reply of the server nor a
// failure before sending (notSent) means the command may have been carried
// out, and wraps backend.ErrUnknownOutcome.
func (b *Backend) wrapWrite(ctx context.Context, cmd string, err error) error {
	if err == nil {
		return nil
	}
	if !isReply(err) && !notSent(err) {
		err = fmt.Errorf("%w: %w", backend.ErrUnknownOutcome, err)
	}
	return b.wrap(ctx, cmd, err)
}

// pipeErr returns the error of a pipeline of writes that is not reported key
// by key (a lease call, an Expire): nil when every command was acknowledged,
// else the first command's error (a MULTI's NOPERM rather than EXEC's
// EXECABORT), or Exec's when no command has one, wrapping
// backend.ErrUnknownOutcome when a command's outcome is unknown (see
// outcomes).
func (b *Backend) pipeErr(ctx context.Context, cmd string, cmds []goredis.Cmder, execErr error) error {
	first := cmp.Or(cmdErr(cmds), execErr)
	if first == nil {
		return nil
	}
	for _, o := range outcomes(cmds, execErr) {
		if o == unknown {
			return b.wrap(ctx, cmd, fmt.Errorf("%w: %w", backend.ErrUnknownOutcome, first))
		}
	}
	return b.wrap(ctx, cmd, first)
}

// ctxErr returns the context error that caused err, if any. go-redis sets
// the connection's deadline to the context's, so an i/o timeout can fire a
// moment before the context's own timer marks it done: a network timeout at
// (or within a millisecond of) the context's deadline is that deadline.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	var ne net.Error
	if dl, ok := ctx.Deadline(); ok && errors.As(err, &ne) && ne.Timeout() && time.Until(dl) < time.Millisecond {
		return context.DeadlineExceeded
	}
	return nil
}

// isReply reports an error that is a reply of the server (OOM, WRONGTYPE,
// WRONGPASS, ...), not a failure to reach it.
func isReply(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && !errors.Is(err, goredis.Nil)
}

// isWrongType reports a WRONGTYPE reply.
func isWrongType(err error) bool { return goredis.HasErrorPrefix(err, "WRONGTYPE") }

// notSent reports an error that go-redis returns before writing a command:
// no connection could be made or taken from the pool, or the client is
// closed.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, goredis.ErrClosed)
}

// Outcomes of one pipelined command.
const (
	done    = iota // acknowledged
	failed         // certainly not carried out
	unknown        // sent; the reply was lost
)

// outcomes classifies each command of a pipeline after Exec returned
// execErr. go-redis leaves every command's error empty when the connection
// could not be set up (a wrong password, a bad DB index): Exec's error is
// then the only sign that nothing was sent. When at least one command has an
// error of its own, the replies were being read, and a command without one
// was acknowledged.
func outcomes(cmds []goredis.Cmder, execErr error) []int {
	out := make([]int, len(cmds))
	anyErr := cmdErr(cmds) != nil
	for i, c := range cmds {
		err := c.Err()
		switch {
		case err == nil && (execErr == nil || anyErr):
			out[i] = done
		case err == nil:
			err = execErr
			fallthrough
		default:
			if isReply(err) || notSent(err) {
				out[i] = failed
			} else {
				out[i] = unknown
			}
		}
	}
	return out
}

// batchError returns nil when every command of a batch was acknowledged, and
// otherwise a *backend.BatchError that sorts keys[i] (the key of cmds[i]) by
// outcome, with the first error as its cause.
func (b *Backend) batchError(ctx context.Context, op, cmd string, keys []string, cmds []goredis.Cmder, execErr error) error {
	first := cmp.Or(execErr, cmdErr(cmds))
	if first == nil {
		return nil
	}
	be := &backend.BatchError{Op: op, Err: b.wrap(ctx, cmd, first)}
	for i, o := range outcomes(cmds, execErr) {
		switch o {
		case done:
			be.Written = append(be.Written, keys[i])
		case failed:
			be.Failed = append(be.Failed, keys[i])
		default:
			be.Unknown = append(be.Unknown, keys[i])
		}
	}
	return be
}

// cmdErr returns the first error of cmds, if any.
func cmdErr(cmds []goredis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

// execErr returns the error of a pipeline of reads: Exec's error unless it
// is a miss (redis.Nil) or a WRONGTYPE reply, which the commands report
// themselves.
func (b *Backend) execErr(ctx context.Context, cmd string, err error) error {
	if err == nil || errors.Is(err, goredis.Nil) || isWrongType(err) {
		return nil
	}
	return b.wrap(ctx, cmd, err)
}
