package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// setIfScript is Capabilities.SetIf for a key that the caller read holding a
// value (PrevFound). KEYS: the stored key. ARGV: the value read; the value
// to write; its TTL in milliseconds, "0" for none (a plain SET, which clears
// an old expiry). It returns 1 when it wrote, 0 when the key is absent,
// holds another value, or holds another Redis type (WRONGTYPE: the key is
// not a value, so it cannot hold the one read).
var setIfScript = newScript(`local cur = redis.pcall('GET', KEYS[1])
if type(cur) == 'table' then
  if string.find(tostring(cur.err), 'WRONGTYPE', 1, true) then return 0 end
  return redis.error_reply(tostring(cur.err))
end
if cur ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1`)

// setIf is Capabilities.SetIf, one command on the key's node (one slot on a
// cluster), never re-sent by the client (see noretry.go):
//
//   - PrevFound false: SET key value NX [PX ttl] (no PX for NoTTL). A key
//     that holds anything, another Redis type included, is left alone.
//   - PrevFound true: setIfScript, by SHA1 (EVALSHA), and by text (EVAL)
//     when the server answers NOSCRIPT (a reply: the script did not run).
//
// Like MSet's single-key path, it goes through the client's auto-pipeliner
// when another single-key call is under way (see pipeliner), so that
// concurrent compare-and-set loops share round trips; every command sent
// there is NoRetry, so a lost reply is never followed by a second send.
// The entry is checked as MSet checks it, before anything is sent. A lost
// reply is an error matching backend.ErrUnknownOutcome (wrapWrite), never
// false: a SET NX sent again would answer nil for a write that happened.
//
// The key's load lease (leaseKey) is not touched: a lease holder's
// Lease.Store finds the key changed and does not write.
func (b *Backend) setIf(ctx context.Context, e backend.GuardedEntry) (bool, error) {
	if err := b.check(ctx); err != nil {
		return false, err
	}
	checked, err := backend.CheckGuardedEntries([]backend.GuardedEntry{e})
	if err != nil {
		return false, err
	}
	e = checked[0]
	w, err := b.wireKey(e.Key)
	if err != nil {
		return false, err
	}
	value := e.Value
	if value == nil {
		value = []byte{}
	}
	auto := b.pipeliner()
	defer b.inflight.Add(-1)
	if !e.PrevFound {
		cmd := setNXValueCmd(ctx, w, value, e.TTL)
		if err := b.send(ctx, auto, cmd); err != nil {
			return false, b.wrapWrite(ctx, "SET NX", err)
		}
		return cmd.Val(), nil
	}
	prev := e.Prev
	if prev == nil {
		prev = []byte{}
	}
	px := int64(0)
	if e.TTL != backend.NoTTL {
		px = e.TTL.Milliseconds()
	}
	name := "EVALSHA"
	cmd := evalCmd(ctx, setIfScript, false, []string{w}, prev, value, px)
	err = b.send(ctx, auto, cmd)
	if goredis.HasErrorPrefix(err, "NOSCRIPT") {
		name = "EVAL"
		cmd = evalCmd(ctx, setIfScript, true, []string{w}, prev, value, px)
		err = b.send(ctx, auto, cmd)
	}
	if err != nil {
		return false, b.wrapWrite(ctx, name+" (set if)", err)
	}
	n, err := cmd.Int64()
	if err != nil { // not an integer: a reply no script of ours gives
		return false, b.wrap(ctx, name+" (set if)", err)
	}
	return n == 1, nil
}

// send sends one NoRetry write, through the auto-pipeliner when auto (see
// pipeliner), else on the client's direct path, and waits for its reply.
func (b *Backend) send(ctx context.Context, auto bool, cmd goredis.Cmder) error {
	if auto {
		return b.run(ctx, cmd)
	}
	return b.client.Process(ctx, cmd)
}

// setNXValueCmd returns SET wire value NX [PX ttl] for a checked TTL (NoTTL:
// no PX): true when set, false (a nil reply) when the key exists.
func setNXValueCmd(ctx context.Context, wire string, value []byte, ttl time.Duration) boolNR {
	if ttl == backend.NoTTL {
		return boolNR{goredis.NewBoolCmd(ctx, "set", wire, value, "nx")}
	}
	return boolNR{goredis.NewBoolCmd(ctx, "set", wire, value, "px", ttl.Milliseconds(), "nx")}
}
