package backend

import (
	"context"

	"github.com/kvmap/kv/clock"
)

// Optimizer is implemented by a store that can do some work better than
// the generic algorithm built on the core methods: it returns the ways in
// Optimizations. Callers find them with [OptimizationsOf], once, and use the
// helpers below, which fall back to the generic algorithm for a field that
// is nil. Every field is a pure optimisation: its observable behaviour is
// the fallback's, written in its doc comment, and the conformance suite
// checks it by running every case with the optimisations hidden
// (conformance.WithoutOptimizations). What changes what a program can do
// is in [Capabilities] instead. A decorator forwards them only when it
// knows they stay valid above it ([Wrapper] does not).
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
}

// OptimizationsOf returns the Optimizations of b, or none when b is not an
// Optimizer.
func OptimizationsOf(b Backend) Optimizations {
	if o, ok := b.(Optimizer); ok {
		return o.Optimizations()
	}
	return Optimizations{}
}

// PrefixOptimizations returns o as a namespace under prefix sees it: each
// call's prefix is given without prefix, and ScanEntries returns its keys
// without it, dropping any key outside it (a faulty store must not leak
// another namespace's keys).
func PrefixOptimizations(o Optimizations, prefix string) Optimizations {
	var out Optimizations
	if f := o.DeletePrefix; f != nil {
		out.DeletePrefix = func(ctx context.Context, p string, pageSize int) error {
			return f(ctx, prefix+p, pageSize)
		}
	}
	if f := o.CountPrefix; f != nil {
		out.CountPrefix = func(ctx context.Context, p string, pageSize int) (int, error) {
			return f(ctx, prefix+p, pageSize)
		}
	}
	if f := o.ScanEntries; f != nil {
		out.ScanEntries = func(ctx context.Context, p, cursor string, pageSize int) (EntryPage, error) {
			page, err := f(ctx, prefix+p, cursor, pageSize)
			if err != nil {
				return EntryPage{}, err
			}
			keep(&page, prefix+p, nil, true)
			for i, k := range page.Keys {
				page.Keys[i] = k[len(prefix):]
			}
			return page, nil
		}
	}
	return out
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
	// Errs is nil, or aligned with Keys: Errs[i], when not nil, is the
	// failure of Keys[i] alone (Value.Err), whose Values[i] is nil.
	Errs []error
	// Cursor resumes the scan; it is empty when the scan is complete.
	Cursor string
}

// Description is what a store is and the facts about it that its callers
// rely on: its identity, for telemetry (System, Remote, the server), and
// promises and facts that change what callers do (UniqueScan,
// ReservedInNamespace, Clock). A decorator reports the description of the
// Backend it wraps.
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
