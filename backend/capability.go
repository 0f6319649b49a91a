package backend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Capabilities are what a store can do beyond the core methods that changes
// what a program can do, not only how fast: unlike an optimisation, a
// capability has no fallback that gives the same results. A nil field means
// the store (as wrapped) lacks it. Callers find them with [CapabilitiesOf].
type Capabilities struct {
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
	// key may be reported without having changed. report runs on the
	// store's reader and must return quickly: not block, not call the
	// Backend, and not stop a watch (its own or another's); a slow report
	// delays every watch of the store. The near cache (package nearcache)
	// uses it to stay coherent.
	// Fallback: none; no near cache can be put over the store.
	Watch func(ctx context.Context, prefix string, report func(Change)) (stop func(), err error)

	// SetIf writes e.Entry only if its key is as e's guard says
	// (GuardedEntry.Matches): absent when e.PrevFound is false (a key that
	// expired is absent; one holding data of another kind, a Redis list, is
	// not), holding exactly the bytes e.Prev otherwise (nil and empty are
	// the same value). It reports whether it wrote. Reading the key,
	// comparing and writing are one atomic step: of two concurrent SetIfs
	// with the same guard, at most one writes. What is written is what
	// MSet would write: the value with e.TTL (NoTTL: no expiry, an old one
	// cleared), checked as MSet checks it. A write that did not happen
	// reports false with a nil error; a lost reply is an error matching
	// ErrUnknownOutcome, never false (a SET NX sent again would report
	// false for a write that happened), and the call is never sent again.
	// A load lease on the key is left as it is: its Store finds the key
	// changed. Fallback: none; kv's SetIfAbsent, CompareAndSwap and Update
	// fail with an error matching errors.ErrUnsupported.
	SetIf func(ctx context.Context, e GuardedEntry) (bool, error)

	// Namespace returns a native view of namespace ns (a bbolt bucket): key
	// k of the view is key "ns:k" of the Backend, for every call and both
	// ways, and a scan of the view returns the keys without the namespace.
	// The view's Close closes the Backend. Fallback: the namespace
	// decorator stores key k as "ns:k".
	Namespace func(ns string) (Backend, error)
}

// Capable is implemented by a Backend that has capabilities.
type Capable interface {
	Capabilities() Capabilities
}

// CapabilitiesOf returns the Capabilities of b, or none when b is not
// Capable.
func CapabilitiesOf(b Backend) Capabilities {
	if c, ok := b.(Capable); ok {
		return c.Capabilities()
	}
	return Capabilities{}
}

// Wrapper is the base of a decorator, embedded in it: it forwards every
// call of Backend to the Backend it embeds, and that Backend's
// capabilities unchanged, so that a decorator writes only the methods it
// changes, and forwards a capability added later without a change. A
// decorator that changes what a capability does (a key mapping, a default,
// a deadline) overrides Capabilities, starting from the Wrapper's. Wrapper
// does not forward the Backend's Optimizations, which a decorator that
// changes calls would make wrong; their fallbacks give the same results,
// and a decorator that keeps them valid forwards them itself. One that
// forwards AcquireLeases must forward DeletePrefix too: its fallback
// deletes the keys it finds, and so cannot end the lease of an absent key.
type Wrapper struct {
	// Backend is the Backend decorated, whose methods Wrapper has.
	Backend
}

// Capabilities implements Capable: those of the Backend decorated,
// unchanged.
func (w Wrapper) Capabilities() Capabilities { return CapabilitiesOf(w.Backend) }

// Unwrap returns the Backend decorated.
func (w Wrapper) Unwrap() Backend { return w.Backend }

// Prefixed returns items with prefix put before the key of each (key
// returns a pointer to it): a copy, or items itself when prefix is empty.
// It fails with an error wrapping ErrEmptyKey when a key is empty.
func Prefixed[E any](prefix string, items []E, key func(*E) *string) ([]E, error) {
	out := items
	if prefix != "" {
		out = slices.Clone(items)
	}
	for i := range out {
		k := key(&out[i])
		if *k == "" {
			return nil, fmt.Errorf("key %d: %w", i, ErrEmptyKey)
		}
		if prefix != "" {
			*k = prefix + *k
		}
	}
	return out, nil
}

// PrefixKeys is Prefixed for keys.
func PrefixKeys(prefix string, keys []string) ([]string, error) {
	return Prefixed(prefix, keys, func(k *string) *string { return k })
}

// TrimKeys returns err with the keys of a *BatchError it holds given back
// without prefix, as the caller above a Prefixed call named them.
func TrimKeys(err error, prefix string) error {
	if err == nil || prefix == "" {
		return err // without errors.As, which would allocate on every call
	}
	var be *BatchError
	if !errors.As(err, &be) {
		return err
	}
	return be.MapKeys(func(k string) string { return strings.TrimPrefix(k, prefix) })
}

// PrefixCapabilities returns c as seen through a decorator that stores key
// k as prefix+k (package namespace): the keys of AcquireLeases, of its
// leases' Store and of SetIf go down under prefix and those of a
// *BatchError come back without it; Watch watches under prefix and reports keys without it. Such
// a decorator offers no views of its own: Namespace is dropped. With an
// empty prefix (a store's native view) the rest of c is returned as is.
// Every capability's key mapping lives here, so that adding a capability
// touches the Capabilities struct and this function only.
func PrefixCapabilities(c Capabilities, prefix string) Capabilities {
	c.Namespace = nil
	if prefix == "" {
		return c
	}
	if f := c.AcquireLeases; f != nil {
		c.AcquireLeases = func(ctx context.Context, keys []string, ttl time.Duration) ([]bool, Lease, error) {
			full, err := PrefixKeys(prefix, keys)
			if err != nil {
				return nil, nil, err
			}
			held, l, err := f(ctx, full, ttl)
			if l != nil {
				l = prefixLease{l, prefix}
			}
			return held, l, err
		}
	}
	if f := c.SetIf; f != nil {
		c.SetIf = func(ctx context.Context, e GuardedEntry) (bool, error) {
			if e.Key == "" {
				return false, ErrEmptyKey
			}
			e.Key = prefix + e.Key
			ok, err := f(ctx, e)
			return ok, TrimKeys(err, prefix)
		}
	}
	if f := c.Watch; f != nil {
		c.Watch = func(ctx context.Context, p string, report func(Change)) (func(), error) {
			return f(ctx, prefix+p, func(ch Change) {
				keys := ch.Keys[:0]
				for _, k := range ch.Keys {
					if rest, ok := strings.CutPrefix(k, prefix); ok {
						keys = append(keys, rest)
					}
				}
				if ch.Keys = keys; len(keys) > 0 || ch.Kind != ChangeKeys {
					report(ch) // a report of keys outside the prefix only is dropped
				}
			})
		}
	}
	return c
}

// prefixLease is a Lease of a store whose Store takes keys without prefix.
type prefixLease struct {
	Lease
	prefix string
}

// Store implements Lease.Store: the entries' keys go down under the prefix,
// and the keys of a *BatchError come back without it.
func (l prefixLease) Store(ctx context.Context, entries []GuardedEntry) ([]bool, error) {
	full, err := Prefixed(l.prefix, entries, func(e *GuardedEntry) *string { return &e.Key })
	if err != nil {
		return nil, err
	}
	ok, err := l.Lease.Store(ctx, full)
	return ok, TrimKeys(err, l.prefix)
}
