package redis

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// The scripts that act on a lease only while it still holds the owner's
// token: a lease that expired and was taken by another owner is left alone.
var (
	renewScript   = goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	releaseScript = goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
)

// acquireLeases is Optimizations.AcquireLeases: the lease of key k is the
// string key ":kv-lease:" + the stored key of k, set with SET NX PX to a
// random token of the owner's, all keys in one pipeline. Renew and Release
// run a compare-and-PEXPIRE and a compare-and-DEL script, pipelined, by
// SHA1 once the server has them.
func (b *Backend) acquireLeases(ctx context.Context, keys []string, ttl time.Duration) ([]bool, backend.Lease, error) {
	if err := b.check(ctx); err != nil {
		return nil, nil, err
	}
	ttl, err := backend.CheckLeaseTTL(ttl)
	if err != nil {
		return nil, nil, err
	}
	wire, err := b.wireKeys(keys)
	if err != nil {
		return nil, nil, err
	}
	l := &lease{b: b, token: rand.Text()}
	pipe := b.client.Pipeline()
	cmds := make([]*goredis.BoolCmd, len(keys))
	for i, w := range wire {
		cmds[i] = pipe.SetNX(ctx, backend.LeasePrefix+w, l.token, ttl)
	}
	_, err = pipe.Exec(ctx)
	held := make([]bool, len(keys))
	for i, c := range cmds {
		if c.Err() == nil && c.Val() {
			held[i] = true
			l.keys = append(l.keys, backend.LeasePrefix+wire[i])
		}
	}
	if err != nil {
		// Leases that were taken expire by themselves; release them now
		// if the server can still be reached.
		if len(l.keys) > 0 {
			err = fmt.Errorf("%w (releasing the leases taken: %w)", b.wrap(ctx, "SET NX", err), l.Release(ctx))
			return nil, nil, err
		}
		return nil, nil, b.wrap(ctx, "SET NX", err)
	}
	if len(l.keys) == 0 {
		return held, nil, nil
	}
	return held, l, nil
}

// lease is the backend.Lease of one acquireLeases call.
type lease struct {
	b     *Backend
	token string
	keys  []string // stored lease keys
}

// Renew implements backend.Lease.Renew.
func (l *lease) Renew(ctx context.Context, ttl time.Duration) error {
	ttl, err := backend.CheckLeaseTTL(ttl)
	if err != nil {
		return err
	}
	return l.run(ctx, "renew lease", renewScript, ttl.Milliseconds())
}

// Release implements backend.Lease.Release.
func (l *lease) Release(ctx context.Context) error {
	return l.run(ctx, "release lease", releaseScript)
}

// run runs script on every lease key, pipelined: by its SHA1 (EVALSHA),
// and again with its text (EVAL) for the keys whose server did not have it
// yet (NOSCRIPT), which loads it there.
func (l *lease) run(ctx context.Context, what string, script *goredis.Script, args ...any) error {
	if err := l.b.check(ctx); err != nil {
		return err
	}
	argv := append([]any{l.token}, args...)
	keys := l.keys
	for _, eval := range []bool{false, true} {
		pipe := l.b.client.Pipeline()
		cmds := make([]*goredis.Cmd, len(keys))
		for i, k := range keys {
			if eval {
				cmds[i] = script.Eval(ctx, pipe, []string{k}, argv...)
			} else {
				cmds[i] = script.EvalSha(ctx, pipe, []string{k}, argv...)
			}
		}
		_, err := pipe.Exec(ctx)
		var missing []string
		for i, c := range cmds {
			if goredis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
				missing = append(missing, keys[i])
			}
		}
		if len(missing) == 0 || eval {
			return l.b.wrap(ctx, what, err)
		}
		for _, c := range cmds {
			if e := c.Err(); e != nil && !goredis.HasErrorPrefix(e, "NOSCRIPT") {
				return l.b.wrap(ctx, what, e)
			}
		}
		keys = missing
	}
	return nil
}
