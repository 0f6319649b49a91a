// Package kv is a namespaced, TTL-aware key-value map over pluggable storage
// backends: the same typed [Map] runs on Redis (standalone, Sentinel or
// Cluster), on a bbolt file and in memory.
//
// It is a Go port of the BaseMap class of backtest-kit, with BaseMap's flaws
// fixed: a value and its expiry are written atomically, a TTL of 0 or a
// negative TTL is refused instead of deleting the key, namespaces cannot
// collide, bulk operations never leave the namespace and count each key once.
// Data is stored as BaseMap stores it (a string value raw under
// "namespace:key"), so a Map and a BaseMap service can share a Redis.
//
// # Layers
//
// [New] stacks, from the top:
//
//	Map[V]             validation, codec, TTLs, iteration, batching, GetOrLoad, telemetry
//	  local tier       what the process knows of each key, in one slot per key:
//	                   near-cached value (WithNearCache), remembered deadline and
//	                   value (WithRefreshAhead, WithStaleWhileRevalidate), the load
//	                   under way, a remembered miss (WithMissTTL)
//	compress.Backend   values compressed (WithCompression only)
//	namespace.Backend  key k is stored as "namespace:k"
//	backend.Backend    the store: backend/memory, backend/redis, backend/bolt
//
// One rule keeps the local tier true: every write, delete, expiry change or
// clear through the Map forgets the keys it touches before and after, every
// change report of the store (one watch per Map, where the store reports
// changes) forgets the keys it names, and a read that raced either never
// records what it read as fresh. Every layer below Map is a
// [backend.Backend], so decorators compose and the conformance suite (package
// conformance) runs over each of them. A store that
// keeps namespaces apart itself (bbolt, a bucket each; see
// [backend.Capabilities]) gives the namespace layer its own view of the
// namespace instead of having every key prefixed; the stored keys are the same.
//
// # TTL
//
// Every write gets the map's TTL ([WithTTL], five minutes by default) unless
// it names its own ([Map.SetWithTTL]). [NoTTL] means "never expires"; writing
// a key with NoTTL clears an expiry it had. A TTL of 0, or negative other than
// NoTTL, is refused with [ErrInvalidTTL] before anything is written. A
// positive TTL under one millisecond is rounded up to one millisecond.
//
// # Values
//
// A value is stored raw when V's underlying type is string or []byte, so data
// written by BaseMap reads back unchanged; any other V, any included, is
// stored as JSON. [WithCodec] replaces both.
//
// # Errors
//
// Errors are wrapped with %w and name the operation, the namespace and the
// key (cut to 64 bytes); check them with errors.Is and errors.As:
//
//   - [ErrEmptyKey], [ErrInvalidNamespace], [ErrInvalidTTL], [ErrInvalidOption]:
//     bad input, refused before anything is written. A TTL is positive and at
//     most [MaxTTL], or [NoTTL].
//   - [ErrClosed]: the backend was closed.
//   - [ErrReadOnly]: the store was opened read-only; nothing was written.
//   - [ErrCorrupt]: the store's data is damaged (a bbolt file); the process
//     keeps running.
//   - [ErrWrongType]: the key holds data the backend cannot read as a value.
//   - [*BatchError]: a SetMany or DeleteMany that a store carried out in parts
//     (Redis) failed part-way; it lists the keys done, not done and unknown.
//   - [*DecodeError]: a stored value did not decode; it names the key, never
//     the value.
//   - context.Canceled, context.DeadlineExceeded: the context ended, reported
//     as such whatever error the client returned.
//
// A missing key is never an error: Get reports it with ok == false. A call
// that returns nil has done what it says; see README's "Failure behaviour"
// for what each call guarantees on error.
//
// # Telemetry
//
// Every Map call makes one OpenTelemetry span and one point of the
// db.client.operation.duration histogram (seconds, the conventions' buckets).
// A span is named "<operation> <namespace>" ("Get signal_cache"), of kind
// client for Redis and internal for memory and bbolt, with the attributes
// db.system.name, db.operation.name (the Map method), server.address and
// server.port (Redis), and ours: kv.namespace, kv.keys (keys of a batch,
// entries of a bulk call), kv.hit (lookups), and with [WithNearCache]
// kv.hit.source ("local" for a hit served by the near cache, "remote"
// otherwise). The counter kv.client.lookups, by kv.hit (and kv.hit.source),
// gives the hit rate. A miss is not an error; an error sets the
// span status and error.type to the low-cardinality name [ErrorType] gives
// it, never to the error's text (which names the key). Iterate, Keys and Values make one span per pass
// over the whole pass (kv.keys entries yielded, kv.early when the loop left
// early), and none when never ranged over. Values are never recorded; keys
// only with [WithKeysInTelemetry].
//
// A Map with a local tier (near cache, stale serving, refresh-ahead,
// remembered misses) reports its size at each collection, through
// asynchronous instruments (kv.local.entries and kv.local.bytes; [Map.Close]
// unregisters them), and where it watches its namespace counts what the
// store's change reports do to it as they are applied
// (kv.local.invalidations and kv.local.losses, counters that never go down),
// with the attributes of its other metrics. Loads are counted by
// kv.client.loads, by kv.load.outcome (lease_error and abandoned among
// them), and the keys whose store error [WithFailOpen] served through by
// kv.client.fail_open.
//
// A Map follows otel.GetTracerProvider and otel.GetMeterProvider unless given
// [WithTracerProvider] or [WithMeterProvider]; with no SDK installed it starts
// no span and records nothing. [WithoutTelemetry] turns both off. Backend
// calls run in the context of the Map's span, so a go-redis client
// instrumented with redisotel shows its commands as children of it.
//
// With [WithLogger], every call also emits one Info record (operation,
// namespace, key or count, hit, duration, error), and bulk calls one Debug
// record per page.
//
// # Loading
//
// [Map.GetOrLoad] and [Map.GetManyOrLoad] read a key and, on a miss, load it
// from the caller's source and store it: one load per key at a time in a
// process, whether single or batch, and with [WithLoadLease] one across every
// process sharing the store (a lease per key in Redis). [WithMissTTL]
// remembers keys the source does not have, [WithTTLJitter] spreads the TTL
// of writes, [WithRefreshAhead] reloads a hot key before it expires, and
// [WithStaleWhileRevalidate] serves an expired value for a grace period while
// it is reloaded; they run on the Map's clock ([WithClock], the store's by
// default), so that a backtest replays identically. A lease is also the
// right to store: a write, delete, expiry change or clear of the key through
// any Map since the load began leaves the loaded value unstored. Every load
// ends at [WithLoadTimeout] (its lease released), and [Map.Close] cancels
// every load and waits for it; after Close a miss returns [ErrClosed].
//
// # Conditional writes
//
// [Map.SetIfAbsent], [Map.CompareAndSwap] and [Map.Update] write a key only
// if it is as the caller expects, in one atomic step of the store (SET NX
// or a script on Redis, a transaction in bbolt): of concurrent callers in
// any number of processes, one wins. A lost reply is an error matching
// [ErrUnknownOutcome], never false. A store without them
// (backend.Capabilities.SetIf) fails with errors.ErrUnsupported.
//
// # Concurrency
//
// A Map is safe for concurrent use by multiple goroutines, and so is every
// backend of this module.
//
// Single-key calls (the conditional writes included) are linearizable on
// every store of this module (memory, bbolt, Redis standalone, Sentinel and
// Cluster), and batch calls key by key; the conformance suite checks it with porcupine histories, under
// injected faults too. A write whose reply was lost returns an error
// matching [ErrUnknownOutcome] and is never re-sent behind the caller's
// back. Through the near cache ([WithNearCache]) reads are δ-linearizable,
// δ being its MaxLag (100 ms by default). A Redis failover may lose
// acknowledged writes (replication is asynchronous): that is outside these
// guarantees.
package kv
