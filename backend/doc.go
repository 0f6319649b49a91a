// Package backend defines the interface implemented by storage engines for
// package kv, and the values shared by every layer (errors, [NoTTL], [Clock]).
//
// Application code should use package kv: a [Backend] is for backend authors
// and for decorators such as package namespace and package ttl. A new backend
// proves it follows the contract written here by running package conformance.
//
// # Contract
//
// A Backend moves bytes: it never encodes values, never adds a namespace and
// never invents a default TTL. Every method may be called concurrently. Keys are
// non-empty strings of any bytes; values are any bytes, including none.
//
//   - A missing or expired key is not an error: [Backend.MGet] reports it as not
//     found, and [Backend.Delete] of a missing key succeeds.
//   - Expired keys are invisible to every method at once, whatever the store
//     does to reclaim them later.
//   - An entry's TTL is positive, [NoTTL], or 0 meaning "unset". Only the ttl
//     decorator accepts 0 and turns it into the map default; a Backend given 0,
//     or a negative TTL other than [NoTTL], returns [ErrInvalidTTL] and writes
//     nothing. TTLs have at least millisecond precision; a positive TTL under one
//     millisecond is rounded up to one millisecond.
//   - Slices passed in are not retained; slices returned are owned by the
//     caller.
//   - Any call after [Backend.Close] fails with [ErrClosed].
//
// # Optional interfaces
//
// A store that can do better than the generic algorithm implements one of the
// optional interfaces below; callers find it with the helper of the same name,
// which falls back to the generic algorithm when the Backend lacks it:
//
//   - [PrefixDeleter] ([DeletePrefix]): delete every key under a prefix, falling
//     back to scanning and deleting page by page.
//   - [PrefixCounter] ([CountPrefix]): count the keys under a prefix, falling back
//     to a scan that removes duplicates.
//   - [UniqueScanner] ([ScansUnique]): promise that a scan never returns a key
//     twice, so iteration can skip de-duplication; the fallback is to assume
//     duplicates.
//   - [EntryScanner] ([ScanEntries]): return each scan page with its values,
//     cheaper than a lookup per key; the fallback is Scan then MGet.
//   - [Describer] ([Describe]): name the store for telemetry; the fallback is
//     the system "other", in process.
//   - [Getter] ([Get]): read one key without the slices of MGet; the fallback
//     is MGet of one key.
//   - [Namespacer]: a native view of one namespace (a bbolt bucket); the
//     fallback is the namespace decorator's "ns:" prefix.
//
// Every decorator implements all of them by calling the helper on the Backend
// it wraps, so a capability is never lost when a decorator is stacked on top.
//
// # Errors
//
// The sentinel errors here are re-exported by package kv as the same values, so
// errors.Is(err, kv.ErrEmptyKey) holds whichever layer returned the error.
// Store errors are wrapped with %w, so errors.As reaches the store's own types.
package backend
