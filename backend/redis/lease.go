package redis

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// script is a Lua script, run by SHA1 (EVALSHA), and by text (EVAL) where
// the server does not have it yet.
type script struct{ src, hash string }

func newScript(src string) script {
	h := sha1.Sum([]byte(src))
	return script{src: src, hash: hex.EncodeToString(h[:])}
}

// The scripts that act on a lease only while it still holds the owner's
// token: a lease that expired, or was ended by a Delete, Expire or Clear,
// and perhaps taken by another owner since, is left alone.
var (
	renewScript   = newScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	releaseScript = newScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	// storeScript is Lease.Store for one key. KEYS: the lease, the data
	// key (one slot). ARGV: the token; "1" when the owner read a value,
	// "0" when the key was absent; the value read; the value to write; its
	// TTL in milliseconds, "0" for none. It returns 1 when it wrote, 0
	// when it ended the lease without writing (the key changed, or holds
	// another Redis type), -1 when the owner no longer held the lease.
	storeScript = newScript(`if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
local cur = redis.pcall('GET', KEYS[2])
if type(cur) == 'table' then
  if string.find(tostring(cur.err), 'WRONGTYPE', 1, true) then return 0 end
  return redis.error_reply(tostring(cur.err))
end
if ARGV[2] == '1' then
  if cur ~= ARGV[3] then return 0 end
elseif cur then
  return 0
end
if ARGV[5] == '0' then
  redis.call('SET', KEYS[2], ARGV[4])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
end
return 1`)
)

// leaseKey returns the stored lease of the stored key w:
// ":kv-lease:{T}:w", T being the slot tag of w's hash slot, so that the
// lease and the key share a cluster slot whatever w holds (braces included,
// hash-tag mode included): the first "{" of the lease key is the one before
// T, which holds none.
func leaseKey(w string) string {
	return backend.LeasePrefix + "{" + SlotTag(Slot(w)) + "}:" + w
}

// dataKeyOfLease returns the stored key whose lease is lk, and false when
// lk is not a lease key.
func dataKeyOfLease(lk string) (string, bool) {
	rest, ok := strings.CutPrefix(lk, backend.LeasePrefix+"{")
	if !ok {
		return "", false
	}
	i := strings.IndexByte(rest, '}')
	if i < 0 || i+1 >= len(rest) || rest[i+1] != ':' {
		return "", false
	}
	return rest[i+2:], true
}

// acquireLeases is Capabilities.AcquireLeases: the lease of key k is the
// string key leaseKey(stored key of k), set with SET NX PX to a random token
// of the owner's, all keys in one pipeline, never re-sent by the client.
// Renew, Release and Store run scripts that compare the token, pipelined, by
// SHA1 once the server has them. Delete, Expire and deletePrefix remove the
// lease keys of the keys they reach, in the same command or transaction.
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
	cmds := make([]goredis.Cmder, len(keys))
	for i, w := range wire {
		cmds[i] = setNXCmd(ctx, leaseKey(w), l.token, ttl)
		_ = pipe.Process(ctx, cmds[i]) // queues it; Exec reports its error
	}
	_, err = pipe.Exec(ctx)
	held := make([]bool, len(keys))
	for i, c := range cmds {
		if c.Err() == nil && c.(boolNR).Val() {
			held[i] = true
			l.keys = append(l.keys, leaseKey(wire[i]))
		}
	}
	if err := b.pipeErr(ctx, "SET NX", cmds, err); err != nil {
		// Leases that were taken expire by themselves; release them now
		// if the server can still be reached.
		if len(l.keys) > 0 {
			return nil, nil, fmt.Errorf("%w (releasing the leases taken: %w)", err, l.Release(ctx))
		}
		return nil, nil, err
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
	return l.each(ctx, renewScript, "renew lease", l.token, ttl.Milliseconds())
}

// Release implements backend.Lease.Release.
func (l *lease) Release(ctx context.Context) error {
	return l.each(ctx, releaseScript, "release lease", l.token)
}

// each runs s on every lease key, with args as ARGV; cmd names it in errors.
func (l *lease) each(ctx context.Context, s script, cmd string, args ...any) error {
	if err := l.b.check(ctx); err != nil {
		return err
	}
	keys := make([][]string, len(l.keys))
	for i, k := range l.keys {
		keys[i] = []string{k}
	}
	cmds, execErr := l.b.runScript(ctx, s, keys, func(int) []any { return args })
	return l.b.pipeErr(ctx, cmd, cmds, execErr)
}

// Store implements backend.Lease.Store: storeScript once per entry, in
// one pipeline. A failure part-way is a *backend.BatchError (Op "store")
// for several entries, with stored marking those known written.
func (l *lease) Store(ctx context.Context, entries []backend.GuardedEntry) ([]bool, error) {
	if err := l.b.check(ctx); err != nil {
		return nil, err
	}
	entries, err := backend.CheckGuardedEntries(entries)
	if err != nil {
		return nil, err
	}
	keys := make([][]string, len(entries))
	for i, e := range entries {
		w, err := l.b.wireKey(e.Key)
		if err != nil {
			return nil, err
		}
		keys[i] = []string{leaseKey(w), w}
	}
	stored := make([]bool, len(entries))
	if len(entries) == 0 {
		return stored, nil
	}
	args := func(i int) []any {
		e := entries[i]
		found, prev := "0", []byte{}
		if e.PrevFound {
			found, prev = "1", e.Prev
		}
		px := int64(0)
		if e.TTL != backend.NoTTL {
			px = e.TTL.Milliseconds()
		}
		value := e.Value
		if value == nil {
			value = []byte{}
		}
		return []any{l.token, found, prev, value, px}
	}
	cmds, execErr := l.b.runScript(ctx, storeScript, keys, args)
	for i, c := range cmds {
		if c.Err() == nil {
			n, _ := c.(cmdNR).Int64()
			stored[i] = n == 1
		}
	}
	if len(entries) == 1 {
		return stored, l.b.pipeErr(ctx, "store leased", cmds, execErr)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Key
	}
	return stored, l.b.batchError(ctx, "store", "store leased", names, cmds, execErr)
}

// runScript runs s once per element of keys (its KEYS), with args(i) as
// ARGV, pipelined and never re-sent by the client: by SHA1 (EVALSHA), and
// again by text (EVAL) for the calls whose server did not have it yet
// (NOSCRIPT), which loads it there. It returns each call's final command and
// the last Exec's error, for pipeErr or batchError.
func (b *Backend) runScript(ctx context.Context, s script, keys [][]string, args func(int) []any) ([]goredis.Cmder, error) {
	final := make([]goredis.Cmder, len(keys))
	if len(keys) == 0 {
		return final, nil
	}
	todo := make([]int, len(keys))
	for i := range todo {
		todo[i] = i
	}
	var lastErr error
	for _, byText := range []bool{false, true} {
		pipe := b.client.Pipeline()
		for _, i := range todo {
			final[i] = evalCmd(ctx, s, byText, keys[i], args(i)...)
			_ = pipe.Process(ctx, final[i]) // queues it; Exec reports its error
		}
		_, lastErr = pipe.Exec(ctx)
		var missing []int
		for _, i := range todo {
			if goredis.HasErrorPrefix(final[i].Err(), "NOSCRIPT") {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 || byText {
			break
		}
		todo = missing
		lastErr = nil
	}
	return final, lastErr
}
