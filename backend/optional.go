package backend

import (
	"context"
)

// PrefixDeleter is an optional interface a Backend implements when it can
// delete every key under a prefix better than page by page (one bucket delete
// in bolt, one locked pass in memory, pipelined UNLINKs on Redis).
//
// If a Backend does not implement PrefixDeleter, [DeletePrefix] scans the
// prefix and deletes each page with [Backend.Delete].
type PrefixDeleter interface {
	// DeletePrefix deletes every key that starts with prefix (every key when
	// prefix is empty). Keys written while it runs may survive. count is the
	// page-size hint for a store that works page by page.
	DeletePrefix(ctx context.Context, prefix string, count int) error
}

// PrefixCounter is an optional interface a Backend implements when it can
// count the keys under a prefix without a scan that removes duplicates.
//
// If a Backend does not implement PrefixCounter, [CountPrefix] scans the
// prefix and counts distinct keys (or all keys, when [ScansUnique] is true).
type PrefixCounter interface {
	// CountPrefix returns the number of unexpired keys that start with prefix,
	// each counted once. count is the page-size hint for a store that works
	// page by page.
	CountPrefix(ctx context.Context, prefix string, count int) (int, error)
}

// UniqueScanner is an optional interface a Backend implements to tell whether
// its scans are free of duplicates.
//
// If a Backend does not implement UniqueScanner, [ScansUnique] reports false and
// callers remove duplicates themselves.
type UniqueScanner interface {
	// ScansUnique reports whether a complete scan returns each key at most
	// once. Decorators report the value of the Backend they wrap.
	ScansUnique() bool
}

// DeletePrefix deletes every key of b that starts with prefix, with
// [PrefixDeleter] when b implements it and page by page otherwise. count is
// the page-size hint.
func DeletePrefix(ctx context.Context, b Backend, prefix string, count int) error {
	if d, ok := b.(PrefixDeleter); ok {
		return d.DeletePrefix(ctx, prefix, count)
	}
	for page, err := range Pages(ctx, b, prefix, count) {
		if err != nil {
			return err
		}
		if err := b.Delete(ctx, page.Keys); err != nil {
			return err
		}
	}
	return nil
}

// CountPrefix returns the number of keys of b that start with prefix, with
// [PrefixCounter] when b implements it and by a scan otherwise, each key
// counted once. count is the page-size hint.
func CountPrefix(ctx context.Context, b Backend, prefix string, count int) (int, error) {
	if c, ok := b.(PrefixCounter); ok {
		return c.CountPrefix(ctx, prefix, count)
	}
	n := 0
	for page, err := range Pages(ctx, b, prefix, count) {
		if err != nil {
			return 0, err
		}
		n += len(page.Keys)
	}
	return n, nil
}

// ScansUnique reports whether b promises scans without duplicates, through
// [UniqueScanner]; false when b does not implement it.
func ScansUnique(b Backend) bool {
	u, ok := b.(UniqueScanner)
	return ok && u.ScansUnique()
}

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

// EntryScanner is an optional interface a Backend implements when it can
// return each scan page with its values more cheaply than a Scan followed by
// an MGet of the page (bbolt walks one cursor instead of looking every key
// up).
//
// If a Backend does not implement EntryScanner, or ScansEntries reports
// false, [ScanEntries] runs Scan and then MGet for the page.
type EntryScanner interface {
	// ScanEntries is Scan returning the values of the keys too, with the
	// same cursor and the same guarantees.
	ScanEntries(ctx context.Context, prefix, cursor string, count int) (EntryPage, error)
	// ScansEntries reports whether ScanEntries is the store's own, cheaper
	// than Scan and MGet. Decorators report the value of the Backend they
	// wrap.
	ScansEntries() bool
}

// ScanEntries returns one page of the keys of b under prefix with their
// values, through [EntryScanner] when b scans entries natively, and with
// Scan then MGet otherwise.
func ScanEntries(ctx context.Context, b Backend, prefix, cursor string, count int) (EntryPage, error) {
	if ScansEntries(b) {
		return b.(EntryScanner).ScanEntries(ctx, prefix, cursor, count)
	}
	p, err := b.Scan(ctx, prefix, cursor, count)
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

// ScansEntries reports whether b returns scan pages with their values
// natively, through [EntryScanner]; false when b does not implement it.
func ScansEntries(b Backend) bool {
	e, ok := b.(EntryScanner)
	return ok && e.ScansEntries()
}

// Description tells telemetry what store a Backend is.
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
}

// Describer is an optional interface a Backend implements to describe itself
// to telemetry.
//
// If a Backend does not implement Describer, [Describe] reports the system
// "other", in process.
type Describer interface {
	// Describe returns the description of the store. Decorators return the
	// description of the Backend they wrap.
	Describe() Description
}

// Describe returns the description of b, through [Describer] when b
// implements it.
func Describe(b Backend) Description {
	if d, ok := b.(Describer); ok {
		return d.Describe()
	}
	return Description{System: "other"}
}

// Getter is an optional interface a Backend implements when it reads one key
// more cheaply than an MGet of a one-key slice: no slices to allocate on the
// way down the decorators, which matters for an in-process store.
//
// If a Backend does not implement Getter, [Get] calls MGet with the one key.
type Getter interface {
	// Get is MGet of one key, without its TTL: a miss is a Value with Found
	// false, and a key holding data of another kind may fail with
	// ErrWrongType.
	Get(ctx context.Context, key string) (Value, error)
}

// Get reads one key of b, through [Getter] when b implements it.
func Get(ctx context.Context, b Backend, key string) (Value, error) {
	if g, ok := b.(Getter); ok {
		return g.Get(ctx, key)
	}
	vals, err := b.MGet(ctx, []string{key}, false)
	if err != nil {
		return Value{}, err
	}
	return vals[0], nil
}

// Namespacer is an optional interface a Backend implements when it keeps
// namespaces apart natively (bbolt: a bucket per namespace), so that the
// namespace decorator need not put the namespace in front of every key and
// the store need not split it off again.
//
// If a Backend does not implement Namespacer, or Namespace fails with an
// error wrapping errors.ErrUnsupported, the namespace decorator prefixes the
// keys. Decorators that can stand below the namespace decorator (ttl, and
// third-party ones) forward it and wrap the Backend it returns.
type Namespacer interface {
	// Namespace returns a view of namespace ns: key k of the view is key
	// "ns:k" of the Backend, for every call and both ways, and a scan of the
	// view returns the keys without the namespace. The view's Close closes
	// the Backend.
	Namespace(ns string) (Backend, error)
}
