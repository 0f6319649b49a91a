// Package redis is a [backend.Backend] on Redis, through go-redis v9: a
// standalone server, a Sentinel-managed master, or a Redis Cluster.
//
// [New] takes the caller's client (a *redis.Client, including the one
// redis.NewFailoverClient returns for Sentinel, or a *redis.ClusterClient).
// The backend never installs hooks on it and never closes it: the caller
// closes the client after the backend.
//
// go-redis honours context deadlines on socket I/O only when the client's
// options set ContextTimeoutEnabled. Set it, so that a context deadline bounds
// every call even against a server that stopped answering.
//
// # Stored format
//
// Keys are stored as given by the layers above, "namespace:key" for a kv.Map,
// and values raw, which is the format of backtest-kit's BaseMap: BaseMap and
// kv services read each other's data. With [WithHashTag] keys are stored as
// "{namespace}:key" instead, so that a namespace lives in one cluster slot;
// that is a different format, which BaseMap services do not read.
//
// # Commands
//
// Writes are one SET key value PX ttl per key (plain SET for kv.NoTTL, which
// clears an old expiry), value and expiry atomic; batches go out as one
// pipeline, split per node on a cluster. Reads are one MGET on a standalone
// server, GETs grouped by hash slot (MGET per slot) on a cluster, so that no
// CROSSSLOT error can occur; remaining TTLs come in the same round trip
// (PTTL in the same pipeline). Scans use SCAN MATCH with the prefix
// glob-escaped, TYPE string, and COUNT set to the page hint; on a cluster every
// master CLUSTER NODES lists is scanned in turn (one that owns no slot yet
// too: a reshard's target), and one that receives keys from a master not
// yet scanned is scanned again. A multi-key read that meets TRYAGAIN (a slot
// migrating with its keys split between two masters) reads those keys one
// by one. Prefix deletes (kv.Map.Clear) SCAN with COUNT
// at least 5000 and UNLINK each page on a second connection while the next
// page is scanned.
//
// Load leases (kv.WithLoadLease) are string keys ":kv-lease:{T}:<stored
// key>", T being the shortest decimal string in the stored key's hash slot
// ([SlotTag]), so that a lease and its key share a slot; they are set with
// SET NX PX to a random token, and renewed, released and stored through
// (Lease.Store: compare the token and the key, then SET) by scripts
// (EVALSHA, EVAL when the server lacks them). No scan shows them; Delete
// and prefix deletes UNLINK them with their keys, Expire DELs the key's
// lease in the same MULTI, which ends a load's right to store the key.
//
// Conditional writes (backend.Capabilities.SetIf: kv's SetIfAbsent,
// CompareAndSwap, Update) are SET key value NX PX ttl when the key must be
// absent, and a compare-and-set script (EVALSHA, EVAL when the server lacks
// it) when it must hold given bytes: one round trip, never re-sent, lease
// keys untouched.
//
// # Writes are sent once
//
// Every write (SET, UNLINK, PEXPIRE, PERSIST, the lease commands and
// scripts) goes out as a command whose NoRetry is true, on the caller's
// client and pool, whatever its Options.MaxRetries: go-redis never sends it
// again, so a write whose reply was lost is never applied later behind the
// caller's back, after other clients' writes. Such a write fails with an
// error matching backend.ErrUnknownOutcome (kv.ErrUnknownOutcome), and a
// batch lists its keys in BatchError.Unknown. Reads keep the client's
// retries. Change reports (kv.WithNearCache, and a Map's own watch for
// leases and stale serving) come from one RESP3 connection per master,
// shared by every watch of the Backend, that runs CLIENT TRACKING ON BCAST
// PREFIX <namespace>: for each namespace watched, receives the invalidations
// as push frames, PINGs every 20 ms (the PONG proves the invalidations
// before it arrived) and checks once a second that the server is still the
// master (HELLO's role; CLUSTER NODES on a cluster, which also lists the
// masters to track, those that own no slot yet included; on Sentinel, the
// master the sentinels name). The client's OnConnect hook does not run on
// it. Close ends it. A single-key Get or Set made while another is under
// way goes through the client's go-redis auto-pipeliner (started then; its
// goroutines end with the client, not the Backend), so that concurrent calls
// share round trips; a lone call takes the direct path. [WithoutAutoPipeline]
// turns it off.
//
// # Other Redis types
//
// Keys of other types (lists, hashes, ...) under a namespace are not values:
// Get (kv.Map.Get) fails with backend.ErrWrongType; MGet and every other call
// (Size, Iterate, Keys, Values, GetMany, Has, Clear) neither see nor touch
// them: scans and prefix deletes skip them.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

var (
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Optimizer = (*Backend)(nil)
	_ backend.Capable   = (*Backend)(nil)
)

// Backend is a backend.Backend on a Redis client. It is safe for concurrent
// use.
type Backend struct {
	client   goredis.UniversalClient
	cluster  *goredis.ClusterClient // nil unless the client is a cluster client
	hashTag  bool
	owns     bool                                  // Close closes the client
	direct   bool                                  // WithoutAutoPipeline
	noLeases bool                                  // WithoutLeases
	ap       atomic.Pointer[goredis.AutoPipeliner] // the client's, once a call needed it
	inflight atomic.Int64                          // single-key calls under way
	closed   atomic.Bool
	watches  watches // the tracking connections of Watch (watch.go)
}

// Option configures a Backend.
type Option func(*Backend)

// WithoutLeases makes a Backend that keeps no load leases: it offers no
// Capabilities.AcquireLeases (kv.WithLoadLease then fails at kv.New), and
// its Delete, Expire and Clear touch only the keys they name, never a lease
// key. It is for a Redis ACL user that may not reach the lease keys
// (":kv-lease:{T}:<key>", see README's ACL section): with it, such a user
// needs only its namespace's key pattern, as with BaseMap. A load in flight
// in another process then keeps its right to store the key after a Delete,
// Expire or Clear through this Backend.
func WithoutLeases() Option { return func(b *Backend) { b.noLeases = true } }

// WithHashTag stores key "ns:key" as "{ns}:key", so that all the keys of a
// namespace live in one cluster slot: batches of a namespace go to one node
// in one command. A namespace holding "{" or "}" is then refused with
// backend.ErrInvalidNamespace. This is a different stored format from
// BaseMap's: BaseMap services do not read it, and data written without the
// option is not found with it.
func WithHashTag() Option { return func(b *Backend) { b.hashTag = true } }

// WithCloseClient makes Close close the client too: for a client made for
// the Backend alone, as package kvurl makes them. Without it the caller keeps
// the client, and closes it.
func WithCloseClient() Option { return func(b *Backend) { b.owns = true } }

// New returns a Backend on client, a *redis.Client (standalone or Sentinel
// failover) or a *redis.ClusterClient. It fails for other implementations of
// UniversalClient, such as a Ring, whose multi-key commands it cannot route.
func New(client goredis.UniversalClient, opts ...Option) (*Backend, error) {
	b := &Backend{client: client}
	switch c := client.(type) {
	case *goredis.Client:
	case *goredis.ClusterClient:
		b.cluster = c
	default:
		return nil, fmt.Errorf("redis: unsupported client type %T (want *redis.Client or *redis.ClusterClient)", client)
	}
	for _, o := range opts {
		o(b)
	}
	return b, nil
}

// Describe implements backend.Backend.Describe: the system "redis", remote,
// with the address of a standalone server, or of the first seed node of a
// cluster. SCAN may return a key twice. In hash-tag mode a namespace may not
// hold "{" or "}", which kv.New checks.
func (b *Backend) Describe() backend.Description {
	d := backend.Description{System: "redis", Remote: true}
	if b.hashTag {
		d.ReservedInNamespace = "{}"
	}
	var addr string
	switch c := b.client.(type) {
	case *goredis.Client:
		addr = c.Options().Addr
	case *goredis.ClusterClient:
		if addrs := c.Options().Addrs; len(addrs) > 0 {
			addr = addrs[0]
		}
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		d.ServerAddress = host
		d.ServerPort, _ = strconv.Atoi(port)
	}
	return d
}

// Client returns the client the Backend was built on.
func (b *Backend) Client() goredis.UniversalClient { return b.client }

// HashTag reports whether the Backend stores keys in hash-tag mode.
func (b *Backend) HashTag() bool { return b.hashTag }

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return backend.ErrClosed
	}
	return ctx.Err()
}

// checkedKey returns the stored key of key, once the Backend, ctx and key
// have passed their checks.
func (b *Backend) checkedKey(ctx context.Context, key string) (string, error) {
	if err := b.check(ctx); err != nil {
		return "", err
	}
	if err := backend.CheckKey(key); err != nil {
		return "", err
	}
	return b.wireKey(key)
}

// MGet implements backend.Backend.MGet with MGET (per hash slot on a
// cluster), which reports keys of other Redis types as absent, as the
// contract says; Get reports them with backend.ErrWrongType. On a cluster,
// the keys of a slot whose MGET meets TRYAGAIN (the slot is migrating, its
// keys split between two masters) are read one by one, each GET following
// its ASK redirection: a migration never fails the read.
func (b *Backend) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	wire, err := b.wireKeys(keys)
	if err != nil {
		return nil, err
	}
	out := make([]backend.Value, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if b.cluster == nil && !withTTL {
		vals, err := b.client.MGet(ctx, wire...).Result()
		if err != nil {
			return nil, b.wrap(ctx, "MGET", err)
		}
		for i, v := range vals {
			if s, ok := v.(string); ok {
				out[i] = backend.Value{Bytes: []byte(s), Found: true}
			}
		}
		return out, nil
	}

	var groups [][]int // indexes into keys: all of them, or on a cluster those of each slot
	if b.cluster != nil {
		groups = slotGroups(wire)
	} else {
		groups = [][]int{make([]int, len(keys))}
		for i := range keys {
			groups[0][i] = i
		}
	}
	pipe := b.client.Pipeline()
	mgets := make([]*goredis.SliceCmd, len(groups))
	gets := make([]*goredis.StringCmd, len(groups)) // instead, for a group of one key
	for gi, g := range groups {
		if len(g) == 1 {
			gets[gi] = pipe.Get(ctx, wire[g[0]])
		} else {
			mgets[gi] = pipe.MGet(ctx, pick(wire, g)...)
		}
	}
	var ttls []*goredis.DurationCmd
	if withTTL {
		ttls = make([]*goredis.DurationCmd, len(keys))
		for i, w := range wire {
			ttls[i] = pipe.PTTL(ctx, w)
		}
	}
	_, err = pipe.Exec(ctx)
	if err := b.execErr(ctx, "MGET", err); err != nil && !tryAgain(b, err) {
		return nil, err
	}
	var again []int // keys of the MGETs that met TRYAGAIN
	for gi, g := range groups {
		if gets[gi] != nil {
			if err := b.readGet(ctx, gets[gi], &out[g[0]]); err != nil {
				return nil, err
			}
			continue
		}
		vals, err := mgets[gi].Result()
		if tryAgain(b, err) {
			again = append(again, g...)
			continue
		}
		if err != nil {
			return nil, b.wrap(ctx, "MGET", err)
		}
		for j, v := range vals {
			if s, ok := v.(string); ok {
				out[g[j]] = backend.Value{Bytes: []byte(s), Found: true}
			}
		}
	}
	if len(again) > 0 {
		// A slot is migrating and its keys are split between two masters:
		// read them one by one (a single-key read follows the ASK
		// redirection), with their TTLs.
		if err := b.getEach(ctx, wire, again, out, ttls); err != nil {
			return nil, err
		}
	}
	for i, c := range ttls {
		if !out[i].Found {
			// A key that exists but was not read is of another type (or
			// was written since the read): Get tells.
			d, err := c.Result()
			out[i].OtherKind = err != nil || d != -2
			continue
		}
		d, err := c.Result()
		if err != nil {
			return nil, b.wrap(ctx, "PTTL", err)
		}
		if ttl, ok := remaining(d); ok {
			out[i].TTL = ttl
		} else {
			out[i] = backend.Value{} // expired between the read and PTTL
		}
	}
	return out, nil
}

// Get implements backend.Backend.Get with GET: a key of another Redis type
// fails with backend.ErrWrongType.
func (b *Backend) Get(ctx context.Context, key string) (backend.Value, error) {
	w, err := b.checkedKey(ctx, key)
	if err != nil {
		return backend.Value{}, err
	}
	return b.get(ctx, key, w)
}

func (b *Backend) get(ctx context.Context, key, wire string) (backend.Value, error) {
	var v []byte
	var err error
	if b.pipeliner() {
		v, err = b.getAuto(ctx, wire)
	} else {
		v, err = b.client.Get(ctx, wire).Bytes()
	}
	b.inflight.Add(-1)
	switch {
	case errors.Is(err, goredis.Nil):
		return backend.Value{}, nil
	case isWrongType(err):
		return backend.Value{}, fmt.Errorf("key %s: %w", backend.QuoteKey(key), backend.ErrWrongType)
	case err != nil:
		return backend.Value{}, b.wrap(ctx, "GET", err)
	}
	return backend.Value{Bytes: v, Found: true}, nil
}

// MSet implements backend.Backend.MSet with one SET ... PX per key, in one
// pipeline for a batch, never re-sent by the client (see noretry.go): a
// single write whose reply was lost fails with an error matching
// backend.ErrUnknownOutcome, and a batch lists such keys in
// BatchError.Unknown.
func (b *Backend) MSet(ctx context.Context, entries []backend.Entry) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	entries, err := backend.CheckEntries(entries)
	if err != nil {
		return err
	}
	if len(entries) == 1 { // the single write: no slices
		w, err := b.wireKey(entries[0].Key)
		if err != nil {
			return err
		}
		if b.pipeliner() {
			err = b.setAuto(ctx, w, entries[0].Value, entries[0].TTL)
		} else {
			err = b.client.Process(ctx, setCmd(ctx, w, entries[0].Value, entries[0].TTL))
		}
		b.inflight.Add(-1)
		return b.wrapWrite(ctx, "SET", err)
	}
	wire := make([]string, len(entries))
	for i, e := range entries {
		if wire[i], err = b.wireKey(e.Key); err != nil {
			return err
		}
	}
	if len(entries) == 0 {
		return nil
	}
	pipe := b.client.Pipeline()
	cmds := make([]goredis.Cmder, len(entries))
	keys := make([]string, len(entries))
	for i, e := range entries {
		cmds[i] = setCmd(ctx, wire[i], e.Value, e.TTL)
		_ = pipe.Process(ctx, cmds[i]) // queues it; Exec reports its error
		keys[i] = e.Key
	}
	_, err = pipe.Exec(ctx)
	return b.batchError(ctx, "write", "SET", keys, cmds, err)
}

// Delete implements backend.Backend.Delete with UNLINK (per hash slot on a
// cluster) of the keys and their load leases (leaseKey, in the key's slot),
// never re-sent by the client.
func (b *Backend) Delete(ctx context.Context, keys []string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	wire, err := b.wireKeys(keys)
	if err != nil {
		return err
	}
	if len(wire) == 0 {
		return nil
	}
	if b.cluster == nil || len(wire) == 1 {
		return b.wrapWrite(ctx, "UNLINK", b.client.Process(ctx, unlinkCmd(ctx, b.withLeases(wire))))
	}
	return b.unlinkBySlot(ctx, keys, wire)
}

// withLeases returns the stored keys wire each followed by its lease key
// (wire itself WithoutLeases).
func (b *Backend) withLeases(wire []string) []string {
	if b.noLeases {
		return wire
	}
	out := make([]string, 0, 2*len(wire))
	for _, w := range wire {
		out = append(out, w, leaseKey(w))
	}
	return out
}

// unlinkBySlot deletes keys (stored as wire) and their leases with one
// UNLINK per hash slot, in one pipeline on the cluster client. A failure
// part-way is a *backend.BatchError that names keys as given.
func (b *Backend) unlinkBySlot(ctx context.Context, keys, wire []string) error {
	pipe := b.client.Pipeline()
	cmds := make([]goredis.Cmder, 0, len(keys))
	order := make([]string, 0, len(keys))
	for _, idx := range slotGroups(wire) {
		c := unlinkCmd(ctx, b.withLeases(pick(wire, idx)))
		_ = pipe.Process(ctx, c) // queues it; Exec reports its error

		for _, i := range idx { // one entry per key: its slot's command
			cmds = append(cmds, c)
			order = append(order, keys[i])
		}
	}
	_, err := pipe.Exec(ctx)
	return b.batchError(ctx, "delete", "UNLINK", order, cmds, err)
}

// Expire implements backend.Backend.Expire: PEXPIRE for a TTL, and for NoTTL
// PERSIST with EXISTS (PERSIST alone answers 0 both for a missing key and
// for a key without expiry), in one MULTI with the DEL of the key's load
// lease (leaseKey, in the key's slot), never re-sent by the client.
func (b *Backend) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := b.check(ctx); err != nil {
		return false, err
	}
	if err := backend.CheckKey(key); err != nil {
		return false, err
	}
	ttl, err := backend.CheckTTL(ttl)
	if err != nil {
		return false, err
	}
	w, err := b.wireKey(key)
	if err != nil {
		return false, err
	}
	pipe := b.client.TxPipeline()
	// The first command ends the key's lease (a no-op WithoutLeases).
	cmds := []goredis.Cmder{intNR{goredis.NewIntCmd(ctx, "del", leaseKey(w))}}
	if b.noLeases {
		cmds[0] = intNR{goredis.NewIntCmd(ctx, "exists", w)}
	}
	name := "PEXPIRE"
	if ttl != backend.NoTTL {
		cmds = append(cmds, boolNR{goredis.NewBoolCmd(ctx, "pexpire", w, ttl.Milliseconds())})
	} else {
		name = "PERSIST"
		cmds = append(cmds, intNR{goredis.NewIntCmd(ctx, "exists", w)}, boolNR{goredis.NewBoolCmd(ctx, "persist", w)})
	}
	for _, c := range cmds {
		_ = pipe.Process(ctx, c) // queues it; Exec reports its error
	}
	_, err = pipe.Exec(ctx)
	if err := b.pipeErr(ctx, name, cmds, err); err != nil {
		return false, err
	}
	if ttl != backend.NoTTL {
		return cmds[1].(boolNR).Val(), nil
	}
	return cmds[1].(intNR).Val() == 1, nil
}

// TTL implements backend.Backend.TTL with PTTL.
func (b *Backend) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	w, err := b.checkedKey(ctx, key)
	if err != nil {
		return 0, false, err
	}
	d, err := b.client.PTTL(ctx, w).Result()
	if err != nil {
		return 0, false, b.wrap(ctx, "PTTL", err)
	}
	ttl, ok := remaining(d)
	return ttl, ok, nil
}

// Close implements backend.Backend.Close. It closes the client only when
// the Backend was built WithCloseClient.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return backend.ErrClosed
	}
	b.watches.close()
	if b.owns {
		return b.client.Close()
	}
	return nil
}
