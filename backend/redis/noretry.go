package redis

import (
	"context"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// Every write the Backend sends goes out as one of the command types below,
// whose NoRetry is true: go-redis then never sends it again after a failure
// (its default Options retry a command up to three times on a network
// error, so a SET whose reply was lost would be sent again, possibly after
// other clients' later writes). It honours the flag per command, in
// pipelines (a pipeline holding one is not retried) and in the
// auto-pipeliner, on the caller's own client and pool. Reads keep the
// client's retries. A write whose reply was lost returns an error matching
// backend.ErrUnknownOutcome (see wrapWrite and outcomes).

type (
	stringNR struct{ *goredis.StringCmd } // GET through the auto-pipeliner (autopipe.go)
	statusNR struct{ *goredis.StatusCmd }
	intNR    struct{ *goredis.IntCmd }
	boolNR   struct{ *goredis.BoolCmd }
	cmdNR    struct{ *goredis.Cmd }
)

// NoRetry implements goredis.Cmder: never re-sent.
func (stringNR) NoRetry() bool { return true }

// NoRetry implements goredis.Cmder: never re-sent.
func (statusNR) NoRetry() bool { return true }

// NoRetry implements goredis.Cmder: never re-sent.
func (intNR) NoRetry() bool { return true }

// NoRetry implements goredis.Cmder: never re-sent.
func (boolNR) NoRetry() bool { return true }

// NoRetry implements goredis.Cmder: never re-sent.
func (cmdNR) NoRetry() bool { return true }

// setCmd returns SET wire value [PX ttl] for a checked TTL (NoTTL: a plain
// SET, which clears an old expiry).
func setCmd(ctx context.Context, wire string, value []byte, ttl time.Duration) statusNR {
	if ttl == backend.NoTTL {
		return statusNR{goredis.NewStatusCmd(ctx, "set", wire, value)}
	}
	return statusNR{goredis.NewStatusCmd(ctx, "set", wire, value, "px", pxArg(ttl.Milliseconds()))}
}

// lastPX is the last TTL in milliseconds that setCmd boxed: go-redis takes
// a command's arguments as []any, and boxing an int64 above 255 allocates;
// a Map writes with one TTL (but with jitter), so the box is reused.
var lastPX atomic.Pointer[boxedPX]

type boxedPX struct {
	ms  int64
	arg any
}

// pxArg returns ms boxed, the box of the previous call when it was the same.
func pxArg(ms int64) any {
	if p := lastPX.Load(); p != nil && p.ms == ms {
		return p.arg
	}
	p := &boxedPX{ms: ms, arg: ms}
	lastPX.Store(p)
	return p.arg
}

// setNXCmd returns SET key value PX ttl NX: true when set.
func setNXCmd(ctx context.Context, key, value string, ttl time.Duration) boolNR {
	return boolNR{goredis.NewBoolCmd(ctx, "set", key, value, "px", ttl.Milliseconds(), "nx")}
}

// unlinkCmd returns UNLINK keys...
func unlinkCmd(ctx context.Context, keys []string) intNR {
	args := make([]any, 1+len(keys))
	args[0] = "unlink"
	for i, k := range keys {
		args[1+i] = k
	}
	return intNR{goredis.NewIntCmd(ctx, args...)}
}

// evalCmd returns EVALSHA (or, byText, EVAL) of s with keys and args.
func evalCmd(ctx context.Context, s script, byText bool, keys []string, args ...any) cmdNR {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	if byText {
		cmdArgs = append(cmdArgs, "eval", s.src)
	} else {
		cmdArgs = append(cmdArgs, "evalsha", s.hash)
	}
	cmdArgs = append(cmdArgs, len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	return cmdNR{goredis.NewCmd(ctx, cmdArgs...)}
}
