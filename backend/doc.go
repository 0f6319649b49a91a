// Package backend defines the interface implemented by storage engines for
// package kv, and the values shared by every layer (errors, [NoTTL], [MaxTTL]).
//
// Application code should use package kv: a [Backend] is for backend authors
// and for decorators such as package namespace. A new backend
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
//     a negative TTL other than [NoTTL], or one above [MaxTTL], returns
//     [ErrInvalidTTL] and writes nothing. Deadlines are computed with
//     [Deadline], which cannot overflow. TTLs have at least millisecond precision; a positive TTL under one
//     millisecond is rounded up to one millisecond.
//   - Slices passed in are not retained; slices returned are owned by the
//     caller.
//   - Data of another kind under a key (a Redis list) is not a value: Get
//     fails with [ErrWrongType]; MGet, Scan and the prefix operations neither
//     see nor touch it.
//   - A batch a store writes in parts fails part-way with a [*BatchError]
//     that says which keys were written, which were not, and which are
//     unknown; a store that writes a batch in one transaction writes all or
//     nothing.
//   - Any call after [Backend.Close] fails with [ErrClosed].
//
// # Scans
//
// [Pages] and [EntryPages] run a complete scan: cursor, context checks, keys
// outside the prefix dropped, each key once. Every loop of the module runs on
// them; a backend author only writes Scan.
//
// # Optimisations
//
// A store that can do some work better than the generic algorithm implements
// [Optimizer], whose [Optimizations] hold a function per optimisation; a nil
// field means "use the fallback". Each is a pure optimisation: its
// observable behaviour is its fallback's.
//
//   - DeletePrefix ([DeletePrefix]): delete every key under a prefix; fallback:
//     [Pages] and Delete, page by page.
//   - CountPrefix ([CountPrefix]): count the keys under a prefix; fallback:
//     [Pages], counting keys.
//   - ScanEntries ([ScanEntries], [EntryPages]): a scan page with its values;
//     fallback: Scan, then MGet of the page.
//
// # Capabilities
//
// What changes what a program can do is a capability: a store that has one
// implements [Capable], whose [Capabilities] hold a function per capability,
// found with [CapabilitiesOf] and nothing else.
//
//   - AcquireLeases ([Lease], [LeasePrefix]): leases on keys, so that the
//     processes sharing a store load a missing key once; without it: loads
//     shared within one Map.
//   - Watch ([Change]): reports of the changes made to keys by any client,
//     which keep a near cache coherent; without it: no near cache.
//   - Namespace: a native view of one namespace (a bbolt bucket); without
//     it: the namespace decorator's "ns:" prefix.
//
// A decorator embeds [Wrapper], which forwards every call to the Backend it
// wraps and that Backend's capabilities unchanged, and writes only what it
// changes: one that intercepts a capability overrides Capabilities,
// starting from the Wrapper's and replacing the fields it changes; one that
// maps keys uses [PrefixCapabilities]. So adding a capability touches two
// places, the Capabilities struct and PrefixCapabilities, and every
// decorator built on the Wrapper forwards it without a change
// (conformance.CheckForwards proves it of each). A decorator that embeds the
// Backend interface instead hides every capability. The Wrapper does not
// forward [Optimizations] (a decorator that changes calls would make them
// wrong, and the fallbacks give the same results): a decorator that keeps
// them valid forwards them itself. One that forwards AcquireLeases must
// forward DeletePrefix too: its fallback deletes the keys it finds, and so
// cannot end the lease of an absent key.
//
// What every backend must do well is in the core instead: Get (one key,
// ErrWrongType for data of another kind) and Describe (what the store is,
// and facts such as [Description.UniqueScan] that callers rely on).
//
// # Errors
//
// The sentinel errors here are re-exported by package kv as the same values, so
// errors.Is(err, kv.ErrEmptyKey) holds whichever layer returned the error.
// Store errors are wrapped with %w, so errors.As reaches the store's own types.
package backend
