// Package tier is what one process knows of a store's keys: one slot per
// key, holding its cached value and deadline, the load under way, a
// remembered miss, and the waits for another process's load. kv.Map and the
// nearcache decorator are built on it.
//
// One rule keeps it true. Every write, delete, expiry change or clear
// through its owner forgets the keys it touches before and after (Forget,
// Purge); a read that may record what it read takes a ticket before its I/O
// (Begin) and records only while the ticket is still the key's (End): a
// Forget voids it. A change report of the store (Changed) removes the key's
// cached copy, and a recording that raced it records no cached copy; what
// is remembered of a key for stale serving becomes unverified instead, until
// a read finds the same bytes (Verified).
package tier

import (
	"bytes"
	"cmp"
	"container/list"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/clock"
)

// Options shape a Tier.
type Options struct {
	// Near serves values from memory while the store's change reports are
	// live (the near cache).
	Near bool
	// MaxEntries and MaxBytes bound the slots holding a value or a miss
	// (the least recently used leave first) and the bytes of their keys
	// and values. A value larger than a sixteenth of MaxBytes is not kept.
	MaxEntries int
	MaxBytes   int64
	// MaxLag is how old the store's latest proof of up-to-date reports
	// may be for a near hit (asynchronous reports only).
	MaxLag time.Duration
	// MaxStaleness, when positive, bounds how long ago a near hit's value
	// may have been read.
	MaxStaleness time.Duration
	// Remember keeps the values and deadlines read (refresh-ahead and
	// stale serving) also when they are not near-cached.
	Remember bool
	// Grace serves a remembered value that long past its deadline
	// (Stale); 0: never.
	Grace time.Duration
	// MissTTL is how long a miss is remembered (AddMiss); 0: never.
	MissTTL time.Duration
	// Watched: the store reports changes, and nothing is served (near or
	// stale) while its reports are not live.
	Watched bool
	// Clock tells deadlines.
	Clock clock.Clock
}

// Defaults of a near cache's bounds (nearcache.Options).
const (
	DefaultMaxEntries = 10_000
	DefaultMaxBytes   = 64 << 20
	DefaultMaxLag     = 100 * time.Millisecond
	minBytes          = 1024
)

// Near returns the Options of a near cache with these bounds, 0 meaning
// the default; a negative bound is an error.
func Near(maxEntries int, maxBytes int64, maxLag, maxStaleness time.Duration) (Options, error) {
	if maxEntries < 0 || maxBytes < 0 || maxLag < 0 || maxStaleness < 0 {
		return Options{}, fmt.Errorf("negative bound: MaxEntries %d, MaxBytes %d, MaxLag %v, MaxStaleness %v", maxEntries, maxBytes, maxLag, maxStaleness)
	}
	if maxBytes > 0 && maxBytes < minBytes {
		// A slot costs 64 bytes and a value may take a sixteenth: nothing
		// would be kept.
		return Options{}, fmt.Errorf("MaxBytes %d caches nothing (want 0 for the default, or at least %d)", maxBytes, minBytes)
	}
	return Options{
		Near:         true,
		Watched:      true,
		MaxEntries:   cmp.Or(maxEntries, DefaultMaxEntries),
		MaxBytes:     cmp.Or(maxBytes, DefaultMaxBytes),
		MaxLag:       cmp.Or(maxLag, DefaultMaxLag),
		MaxStaleness: maxStaleness,
	}, nil
}

// Stats are the counters of the near cache; nearcache.Stats has the same
// fields.
type Stats struct {
	Hits, Misses  int64
	Invalidations int64
	Entries       int
	Bytes         int64
	Live          bool
	Unsynced      int64
	Losses        int64
	LastLoss      error
}

// Flight is one load under way of one key. Callers that miss the key wait
// for Done instead of loading again.
type Flight[V any] struct {
	Done  chan struct{} // closed when the fields below are final
	V     V
	Found bool // the load produced a value for the key
	Err   error

	// Guarded by Tier.mu.
	refs    int  // callers waiting for the flight
	revoked bool // the key was forgotten since the load began
}

// Tier is one process's knowledge of a store's keys. It is safe for
// concurrent use.
type Tier[V any] struct {
	o Options

	mu      sync.Mutex
	slots   map[string]*slot[V]
	lru     list.List // *slot[V] holding a value or a miss; front: most recent
	bytes   int64
	ticket  uint64
	live    bool
	async   bool      // reports are asynchronous: near hits only within MaxLag of synced
	synced  time.Time // the latest time before which every change was reported
	stats   Stats
	stopped bool
	verify  map[string]bool // keys waiting for the verifier
	spawn   func()          // starts the verifier; nil until set
	running bool
}

// slot is what is known of one key.
type slot[V any] struct {
	elem *list.Element // in lru while it holds a value or a miss
	sz   int64         // its bytes as counted in Tier.bytes

	has      bool // raw, lo, hi and read hold a value read or written
	raw      []byte
	lo, hi   int64 // the key's deadline, bounded from below and above (Unix ns); 0: none
	read     int64 // when it was read (Unix ns)
	fresh    bool  // a near hit may serve it
	hasV     bool  // raw is a value read or loaded, to be served stale
	unverify bool  // a report came since: not to be served stale until verified

	missUntil int64 // a remembered miss, until then (Unix ns); 0: none

	flight *Flight[V]

	ticket  uint64 // the recording under way; 0: none
	tainted bool   // a change report came during it
	nearOK  bool   // it began while the near cache was live

	wake []chan struct{}
}

// size returns the bytes of s as counted in Tier.bytes (raw is nil unless
// s.has).
func (s *slot[V]) size(key string) int64 { return int64(len(key) + len(s.raw) + 64) }

// New returns an empty Tier. A Tier over a store that does not report
// changes (o.Watched false) is live from the start.
func New[V any](o Options) *Tier[V] {
	if o.Clock == nil {
		o.Clock = clock.System()
	}
	return &Tier[V]{o: o, slots: map[string]*slot[V]{}, verify: map[string]bool{}, live: !o.Watched}
}

// Near reports whether the tier serves near hits.
func (t *Tier[V]) Near() bool { return t.o.Near }

// Keeps reports whether the tier keeps what is read (Near or Remember):
// reads then ask for TTLs and take tickets.
func (t *Tier[V]) Keeps() bool { return t.o.Near || t.o.Remember }

// Bulk reports whether a read of n keys is a bulk read, which is to record
// nothing: more than a sixteenth of the entry bound, so that one batch
// cannot evict what the tier holds.
func (t *Tier[V]) Bulk(n int) bool { return n > max(t.o.MaxEntries/16, 1) }

// Serves reports whether the tier serves values stale (Grace).
func (t *Tier[V]) Serves() bool { return t.o.Remember && t.o.Grace > 0 }

func (t *Tier[V]) now() int64 { return t.o.Clock.Now().UnixNano() }

// get returns the slot of key, made if missing.
func (t *Tier[V]) get(key string) *slot[V] {
	s := t.slots[key]
	if s == nil {
		s = &slot[V]{}
		t.slots[key] = s
	}
	return s
}

// tidy removes the slot of key when it holds nothing.
func (t *Tier[V]) tidy(key string, s *slot[V]) {
	if s.elem == nil && s.flight == nil && s.ticket == 0 && len(s.wake) == 0 && !t.verify[key] {
		delete(t.slots, key)
	}
}

// drop forgets the value of the slot of key. A remembered miss stays: it
// is the loader's, not the store's, and no write changes it.
func (t *Tier[V]) drop(key string, s *slot[V]) {
	s.has, s.raw, s.lo, s.hi, s.read, s.fresh, s.hasV, s.unverify = false, nil, 0, 0, 0, false, false, false
	delete(t.verify, key)
	switch {
	case s.elem == nil:
	case s.missUntil != 0:
		t.resize(key, s)
	default:
		t.lru.Remove(s.elem)
		s.elem = nil
		t.bytes -= s.sz
		s.sz = 0
	}
}

// resize counts the bytes of s anew.
func (t *Tier[V]) resize(key string, s *slot[V]) {
	n := s.size(key)
	t.bytes += n - s.sz
	s.sz = n
}

// discard drops the value of the slot of key, and the slot if it holds
// nothing else.
func (t *Tier[V]) discard(key string, s *slot[V]) {
	t.drop(key, s)
	t.tidy(key, s)
}

// unmiss forgets the miss of the slot of key, and the slot if it holds
// nothing else.
func (t *Tier[V]) unmiss(key string, s *slot[V]) {
	s.missUntil = 0
	if s.has {
		t.resize(key, s)
	} else {
		t.drop(key, s)
	}
	t.tidy(key, s)
}

// keep puts s, just given a value or a miss, in the LRU and evicts the
// least recently used beyond the bounds.
func (t *Tier[V]) keep(key string, s *slot[V]) {
	if s.elem != nil {
		t.lru.MoveToFront(s.elem)
	} else {
		s.elem = t.lru.PushFront(key)
	}
	t.resize(key, s)
	for t.lru.Len() > max(t.o.MaxEntries, 1) || (t.o.MaxBytes > 0 && t.bytes > t.o.MaxBytes) {
		k := t.lru.Back().Value.(string)
		o := t.slots[k]
		o.missUntil = 0 // evicted: its miss too
		t.discard(k, o)
		if o == s {
			break
		}
	}
}

// touch marks s used.
func (t *Tier[V]) touch(s *slot[V]) {
	if s.elem != nil {
		t.lru.MoveToFront(s.elem)
	}
}

// Cached returns a copy of the near-cached value of key and its remaining
// TTL, when the cache is live, the store's reports are proved up to date
// within MaxLag, and the value is unexpired and fresh enough. stale marks a
// value served as one to serve stale too (GetOrLoad's hits).
func (t *Tier[V]) Cached(key string, stale bool) ([]byte, time.Duration, bool) {
	raw, ttl, ok := t.cached(key, stale)
	return bytes.Clone(raw), ttl, ok
}

// CachedString is Cached of a value read as a string, without a copy: the
// string is a view of the tier's bytes, which are never written once kept
// (a slot's value is only ever replaced by a new copy), so it stays valid
// and unchanged for as long as the caller holds it.
func (t *Tier[V]) CachedString(key string) (string, time.Duration, bool) {
	raw, ttl, ok := t.cached(key, false)
	return unsafe.String(unsafe.SliceData(raw), len(raw)), ttl, ok
}

// cached is Cached returning the tier's own bytes, which the caller must
// not write.
func (t *Tier[V]) cached(key string, stale bool) ([]byte, time.Duration, bool) {
	if !t.o.Near {
		return nil, 0, false
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.live || t.stopped {
		return nil, 0, false
	}
	if t.async && time.Since(t.synced) >= t.o.MaxLag {
		// A report of this key may be on its way: the store has not
		// proved within MaxLag that none is.
		t.stats.Unsynced++
		return nil, 0, false
	}
	s := t.slots[key]
	if s == nil || !s.fresh {
		t.stats.Misses++
		return nil, 0, false
	}
	old := t.o.MaxStaleness > 0 && now-s.read >= int64(t.o.MaxStaleness)
	if (s.lo != 0 && now >= s.lo) || old {
		s.fresh = false
		if !t.o.Remember {
			t.discard(key, s)
		}
		t.stats.Misses++
		return nil, 0, false
	}
	t.stats.Hits++
	t.touch(s)
	if stale && t.o.Remember {
		s.hasV = true
	}
	ttl := backend.NoTTL
	if s.lo != 0 {
		ttl = time.Duration(s.lo - now)
	}
	return s.raw, ttl, true
}

// Read is the tickets of a read of keys that may record what it read.
type Read struct {
	tickets []uint64 // per key; 0: not to be recorded
	sent    int64    // Unix ns, before the request
}

// Begin registers a read of keys about to start. A tier that keeps nothing
// gives no tickets.
func (t *Tier[V]) Begin(keys ...string) Read {
	if !t.o.Near && !t.o.Remember {
		return Read{tickets: make([]uint64, len(keys))}
	}
	return t.begin(keys, true)
}

// begin takes the tickets of a read of keys: a read to keep near (near)
// gets none once the tier stopped; a verifying read is never kept near.
func (t *Tier[V]) begin(keys []string, near bool) Read {
	r := Read{tickets: make([]uint64, len(keys))}
	t.mu.Lock()
	defer t.mu.Unlock()
	if near && t.stopped {
		return r
	}
	for i, k := range keys {
		t.ticket++
		r.tickets[i] = t.ticket
		s := t.get(k)
		s.ticket, s.tainted, s.nearOK = t.ticket, false, near && t.o.Near && t.live
	}
	r.sent = t.now()
	return r
}

// claim returns the slot of key if ticket is still its recording under
// way, and ends the recording.
func (t *Tier[V]) claim(key string, ticket uint64) *slot[V] {
	if ticket == 0 {
		return nil
	}
	s := t.slots[key]
	if s == nil || s.ticket != ticket {
		return nil
	}
	s.ticket = 0
	return s
}

// End records what a read of keys found (vals: nil after an error, each
// with its TTL when it was read with one) unless a Forget came in between.
// A value is kept near only if no report, no loss of reports and no Forget
// raced the read; it is remembered (Options.Remember) with its deadline
// also when a report raced it, unverified: End then returns its key among
// those to verify.
//
// stale marks the values as ones to serve stale (GetOrLoad's reads).
func (t *Tier[V]) End(r Read, keys []string, vals []backend.Value, stale bool) (raced []string) {
	if !t.o.Near && !t.o.Remember {
		return nil
	}
	after := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, k := range keys {
		s := t.claim(k, r.tickets[i])
		if s == nil {
			continue
		}
		switch {
		case vals == nil || !vals[i].Found || vals[i].Err != nil:
			// Failed, or not found: a value remembered stays, to be
			// served stale, but not near.
			s.fresh = false
			t.tidy(k, s)
			continue
		case vals[i].TTL == 0 || int64(len(vals[i].Bytes)) > t.o.MaxBytes/16:
			// Read without its TTL, or too large to keep.
			t.discard(k, s)
			continue
		}
		v := vals[i]
		// Kept near only if nothing raced the read, and not too close to
		// its deadline.
		fresh := s.nearOK && t.live && !s.tainted && (v.TTL == backend.NoTTL || v.TTL > time.Millisecond)
		if !fresh && !t.o.Remember {
			t.discard(k, s)
			continue
		}
		lo, hi := int64(0), int64(0)
		if v.TTL != backend.NoTTL {
			// A TTL read in whole milliseconds (Redis's PTTL) may be up
			// to one over what remains: the near copy's deadline takes
			// one off and counts from before the request, so that it
			// never outlives the stored key; the remembered deadline
			// counts from after the reply.
			lo = backend.Deadline(r.sent, v.TTL-time.Millisecond)
			hi = backend.Deadline(after, v.TTL)
		}
		// A value to serve stale stays one when read again unchanged:
		// the same bytes, the same deadline (another client's expiry
		// change makes it one no more, as for the verifier).
		stale := stale || (s.hasV && bytes.Equal(s.raw, v.Bytes) && s.hi != 0 && hi != 0 && sameDeadline(hi, s.hi))
		s.has, s.raw, s.lo, s.hi, s.read, s.fresh = true, bytes.Clone(v.Bytes), lo, hi, r.sent, fresh
		s.hasV, s.unverify = stale, false
		if s.tainted {
			if !stale {
				t.discard(k, s) // a deadline another client may have changed
				continue
			}
			s.unverify = true
			raced = append(raced, k)
		}
		t.keep(k, s)
	}
	return raced
}

// Wrote records, after a write through the owner that began with r, the
// deadlines of keys (Unix ns, 0: none) and, for a loaded value (raws[i] not
// nil), the value to serve stale: nothing is kept near (a write forgets its
// keys after it), and a report that raced the write makes a loaded value
// unverified (its key is returned, to verify) and leaves nothing else.
func (t *Tier[V]) Wrote(r Read, keys []string, raws [][]byte, deadlines []int64) (raced []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, k := range keys {
		s := t.claim(k, r.tickets[i])
		if s == nil {
			t.forgetLocked(k, true)
			continue
		}
		t.drop(k, s)
		loaded := raws != nil && raws[i] != nil
		if !t.o.Remember || deadlines[i] == 0 || (s.tainted && !loaded) {
			t.tidy(k, s)
			continue
		}
		s.has, s.lo, s.hi, s.read = true, deadlines[i], deadlines[i], r.sent
		if loaded && int64(len(raws[i])) <= t.o.MaxBytes/16 {
			s.raw, s.hasV = bytes.Clone(raws[i]), true
			if s.tainted {
				s.unverify = true
				raced = append(raced, k)
			}
		}
		t.keep(k, s)
	}
	return raced
}

// Abort ends the recordings of r without recording.
func (t *Tier[V]) Abort(r Read, keys []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, k := range keys {
		if s := t.claim(k, r.tickets[i]); s != nil {
			t.tidy(k, s)
		}
	}
}

// Far returns the remembered deadline of key when it is verified and not
// before until (Unix ns).
func (t *Tier[V]) Far(key string, until int64) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.slots[key]
	if s == nil || !s.has || s.unverify || (s.hi != 0 && s.hi < until) {
		return 0, false
	}
	t.touch(s)
	return s.hi, true
}

// Stale returns the remembered value of key if its deadline passed less
// than Grace ago. A key missing before its deadline was deleted, not
// expired: it is not served. On a watched store nothing is served while
// reports are not live, and no value that a report made unverified.
func (t *Tier[V]) Stale(key string) ([]byte, bool) {
	if t.o.Grace == 0 {
		return nil, false
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.live || t.stopped {
		return nil, false
	}
	s := t.slots[key]
	if s == nil || !s.hasV || s.unverify || s.hi == 0 {
		return nil, false
	}
	if now < s.hi || now >= s.hi+int64(t.o.Grace) {
		t.discard(key, s)
		return nil, false
	}
	return bytes.Clone(s.raw), true
}

// Forget forgets keys: their values, the recordings under way, and the
// right of their loads under way to store (the owner is writing, deleting
// or changing the expiry of the keys). A remembered miss stays: it is the
// loader's answer, which no write to the store changes.
func (t *Tier[V]) Forget(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		t.forgetLocked(k, true)
	}
}

// forgetLocked forgets the value of key and voids its recording under way;
// revoke also takes from its load under way the right to store.
func (t *Tier[V]) forgetLocked(k string, revoke bool) {
	s := t.slots[k]
	if s == nil {
		return
	}
	t.drop(k, s)
	s.ticket = 0
	if revoke && s.flight != nil {
		s.flight.revoked = true
	}
	t.tidy(k, s)
}

// Purge forgets everything and voids every recording under way; revoke
// also takes from every load under way the right to store (the owner
// cleared the store).
func (t *Tier[V]) Purge(revoke bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.purgeLocked(revoke)
}

func (t *Tier[V]) purgeLocked(revoke bool) {
	for k := range t.slots {
		t.forgetLocked(k, revoke)
	}
	clear(t.verify)
}

// Changed applies a change report of the store and wakes the waits of the
// keys it names (all waits for ChangeAll and ChangeLost).
func (t *Tier[V]) Changed(ch backend.Change) { t.Apply(ch) }

// Apply is Changed that returns what the report did: how many near-cached
// keys it invalidated, and whether it was a loss of live reports (for
// counters that must never go down, unlike the Stats of one tier).
func (t *Tier[V]) Apply(ch backend.Change) (invalidated int64, lost bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ch.Kind {
	case backend.ChangeKeys:
		for _, k := range ch.Keys {
			s := t.slots[k]
			if s == nil {
				continue
			}
			t.wakeLocked(s)
			if s.ticket != 0 {
				s.tainted = true
			}
			if !s.has {
				t.tidy(k, s)
				continue
			}
			if s.fresh {
				t.stats.Invalidations++
				invalidated++
				s.fresh = false
			}
			switch {
			case !t.o.Remember:
				t.drop(k, s)
			case s.hi != 0 && now >= s.hi:
				// Expired: kept to be served stale.
			case !s.hasV:
				t.drop(k, s) // a deadline another client may have changed
			default:
				s.unverify = true
				t.queueLocked(k)
			}
			t.tidy(k, s)
		}
	case backend.ChangeAll:
		t.wakeAllLocked()
		t.purgeLocked(false)
	case backend.ChangeLost:
		t.wakeAllLocked()
		if t.live {
			t.stats.Losses++
			lost = true
		}
		t.live = false
		t.stats.LastLoss = ch.Err
		t.purgeLocked(false)
	case backend.ChangeLive:
		t.live = !t.stopped
		t.async, t.synced = !ch.At.IsZero(), ch.At
		t.purgeLocked(false)
	case backend.ChangeSynced:
		if ch.At.After(t.synced) {
			t.synced = ch.At
		}
	}
	return invalidated, lost
}

// Stop empties the tier for good: nothing is recorded or served from then
// on.
func (t *Tier[V]) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped, t.live = true, false
	t.purgeLocked(false)
	t.wakeAllLocked()
}

// Stats returns the near cache's counters.
func (t *Tier[V]) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Entries, s.Bytes, s.Live = t.lru.Len(), t.bytes, t.live && t.o.Near
	return s
}

// AddMiss remembers that a load found no value for key (Options.MissTTL).
func (t *Tier[V]) AddMiss(key string) {
	if t.o.MissTTL <= 0 {
		return
	}
	until := t.o.Clock.Now().Add(t.o.MissTTL).UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(key)
	s.missUntil = until // a value remembered stays, to be served stale
	t.keep(key, s)
}

// Missing reports whether a miss of key is remembered.
func (t *Tier[V]) Missing(key string) bool {
	if t.o.MissTTL <= 0 {
		return false
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.slots[key]
	if s == nil || s.missUntil == 0 {
		return false
	}
	if now >= s.missUntil {
		t.unmiss(key, s)
		return false
	}
	return true
}

// Found forgets a remembered miss of key: a load produced its value.
func (t *Tier[V]) Found(key string) {
	if t.o.MissTTL <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.slots[key]; s != nil && s.missUntil != 0 {
		t.unmiss(key, s)
	}
}
