package backend

import (
	"context"
	"time"

	"github.com/kvmap/kv/clock"
)

// Optimizer is the one optional interface of a Backend: a store that can do
// some work better than the generic algorithm built on the core methods
// returns it from Optimizations. Callers find it with [OptimizationsOf], once,
// and use the helpers below, which fall back to the generic algorithm for a
// field that is nil.
//
// Every field but the last two is a pure optimisation: its observable
// behaviour is the fallback's, written in its doc comment, and the
// conformance suite checks it by running every case with the optimisations
// hidden (conformance.WithoutOptimizations). The last two are capabilities
// that change no call's result either: AcquireLeases changes how many
// processes call a load function for the same missing key, and Watch lets a
// near cache be put over the store. A decorator forwards them all in its own
// Optimizations method: each field of the Backend it wraps, wrapped in the
// decorator's key mapping, and nil where the wrapped one is nil.
type Optimizer interface {
	Optimizations() Optimizations
}

// Optimizations are the optional, faster ways of a Backend. A nil field
// means "use the fallback".
type Optimizations struct {
	// DeletePrefix deletes every key that starts with prefix (every key
	// when prefix is empty) that the core methods would show: a key of
	// another kind (a Redis list) is left, as Scan does not return it. Keys
	// written while it runs may survive. pageSize is the page-size hint.
	// Fallback: [Pages] over the prefix, each page deleted with Delete
	// (one locked pass in memory, a bucket delete in bolt, pipelined UNLINKs
	// on Redis).
	DeletePrefix func(ctx context.Context, prefix string, pageSize int) error

	// CountPrefix returns the number of unexpired keys that start with
	// prefix, each counted once. Fallback: [Pages] over the prefix, counting
	// keys (bolt reads the bucket's key count less its expired index
	// entries, without reading values).
	CountPrefix func(ctx context.Context, prefix string, pageSize int) (int, error)

	// ScanEntries is Scan returning each page's values too, with the same
	// cursor and the same guarantees; keys that expired or vanished before
	// their value was read are left out. Fallback: Scan, then MGet of the
	// page (bolt walks one cursor instead of looking every key up).
	ScanEntries func(ctx context.Context, prefix, cursor string, pageSize int) (EntryPage, error)

	// Namespace returns a native view of namespace ns (a bbolt bucket): key
	// k of the view is key "ns:k" of the Backend, for every call and both
	// ways, and a scan of the view returns the keys without the namespace.
	// The view's Close closes the Backend. Fallback: the namespace
	// decorator stores key k as "ns:k".
	Namespace func(ns string) (Backend, error)

	// AcquireLeases takes a lease on each of keys that no owner holds one
	// on, expiring ttl from now unless renewed, and reports which it took:
	// held[i] for keys[i]. lease holds every lease taken; it is nil when
	// none was. A lease is not a key: no call of the Backend reads, counts
	// or scans it (see LeasePrefix), and a key needs not exist to be
	// leased; but Delete, Expire and DeletePrefix end the leases of the
	// keys they reach, from any client of the store. Processes that share
	// a store take the lease of a key before loading it, so that one of
	// them loads it (kv's WithLoadLease), and store the loaded value with
	// Lease.Store, which writes it only while the lease holds and the key
	// is as it was read: a load that raced a Delete, an Expire, a Clear or
	// a write never stores its older value over it. ttl is positive and at
	// most MaxTTL. A lost reply is an error matching ErrUnknownOutcome (a
	// lease may have been taken; it expires by itself). Fallback: no lease
	// is taken, and a load is shared by the callers of one Map only.
	AcquireLeases func(ctx context.Context, keys []string, ttl time.Duration) (held []bool, lease Lease, err error)

	// Watch reports the changes to the keys that start with prefix, made by
	// any client (this process included), by calling report, one call at a
	// time (from the call that made the change, or from a goroutine of the
	// store's), until stop is called or ctx ends; no report starts after
	// stop returns. Watch returns at once: the first report is ChangeLive
	// once changes are reported, or ChangeLost if they cannot be yet (the
	// watch keeps trying, and reports ChangeLive when it succeeds). A change
	// made after a ChangeLive report is reported (ChangeKeys, ChangeAll)
	// unless a ChangeLost report comes first; a key reaching its deadline
	// may be reported late or not at all (its TTL says when it expires). A
	// key may be reported without having changed. report must not call the
	// Backend. The near cache (package nearcache) uses it to stay coherent.
	// Fallback: none; no near cache can be put over the store.
	Watch func(ctx context.Context, prefix string, report func(Change)) (stop func(), err error)
}

// OptimizationsOf returns the Optimizations of b, or none when b is not an
// Optimizer.
func OptimizationsOf(b Backend) Optimizations {
	if o, ok := b.(Optimizer); ok {
		return o.Optimizations()
	}
	return Optimizations{}
}

// DeletePrefix deletes every key of b that starts with prefix, with b's own
// DeletePrefix when it has one and page by page otherwise. pageSize is the
// page-size hint.
func DeletePrefix(ctx context.Context, b Backend, prefix string, pageSize int) error {
	if f := OptimizationsOf(b).DeletePrefix; f != nil {
		return f(ctx, prefix, pageSize)
	}
	for page, err := range Pages(ctx, b, prefix, pageSize) {
		if err != nil {
			return err
		}
		if err := b.Delete(ctx, page.Keys); err != nil {
			return err
		}
	}
	return nil
}

// CountPrefix returns the number of keys of b that start with prefix, each
// counted once, with b's own CountPrefix when it has one and by a scan
// otherwise. pageSize is the page-size hint.
func CountPrefix(ctx context.Context, b Backend, prefix string, pageSize int) (int, error) {
	if f := OptimizationsOf(b).CountPrefix; f != nil {
		return f(ctx, prefix, pageSize)
	}
	n := 0
	for page, err := range Pages(ctx, b, prefix, pageSize) {
		if err != nil {
			return 0, err
		}
		n += len(page.Keys)
	}
	return n, nil
}

// ScanEntries returns one page of the keys of b under prefix with their
// values, with b's own ScanEntries when it has one, and Scan then MGet
// otherwise.
func ScanEntries(ctx context.Context, b Backend, prefix, cursor string, pageSize int) (EntryPage, error) {
	if f := OptimizationsOf(b).ScanEntries; f != nil {
		return f(ctx, prefix, cursor, pageSize)
	}
	p, err := b.Scan(ctx, prefix, cursor, pageSize)
	if err != nil {
		return EntryPage{}, err
	}
	page := EntryPage{Keys: p.Keys, Cursor: p.Cursor}
	keep(&page, prefix, nil, false)
	if len(page.Keys) > 0 {
		if err := readValues(ctx, b, &page); err != nil {
			return EntryPage{}, err
		}
	}
	return page, nil
}

// ScansUnique reports whether b promises scans without duplicates
// (Description.UniqueScan).
func ScansUnique(b Backend) bool { return b.Describe().UniqueScan }

// EntryPage is one page of a scan that returns values with the keys.
type EntryPage struct {
	// Keys and Values are aligned: Values[i] is the value of Keys[i]. Keys
	// that expired or vanished before their value was read are left out.
	// The caller owns both.
	Keys   []string
	Values [][]byte
	// Cursor resumes the scan; it is empty when the scan is complete.
	Cursor string
}

// Description describes a store: for telemetry, and the promises its
// methods keep beyond the contract.
type Description struct {
	// System is the store's db.system.name: "redis", "bbolt", "memory".
	System string
	// Remote reports a store reached over the network: its calls are client
	// spans. An in-process store's calls are internal spans.
	Remote bool
	// ServerAddress and ServerPort name the server of a remote store, when
	// there is one to name (empty and 0 otherwise).
	ServerAddress string
	ServerPort    int
	// UniqueScan promises that a complete scan returns each key at most
	// once, so that callers need not remember the keys they have seen. A
	// decorator reports the value of the Backend it wraps.
	UniqueScan bool
	// ReservedInNamespace lists characters, beyond ":", that a namespace may
	// not hold in this store ("{}" for Redis in hash-tag mode): the
	// namespace decorator refuses such a namespace when a Map is built.
	ReservedInNamespace string
	// Clock is the clock an in-process store expires keys by (a test's fake
	// clock, a backtest's simulated one), nil for a store whose server keeps
	// time. A Map times what it remembers in the process by it unless given
	// a clock of its own (kv.WithClock). A decorator reports the value of
	// the Backend it wraps.
	Clock clock.Clock
}
