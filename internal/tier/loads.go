package tier

import (
	"bytes"
	"maps"
	"slices"
	"time"

	"github.com/kvmap/kv/backend"
)

// Join returns the flight of key, and whether the caller started it (and so
// must run the load and Finish it). A caller (caller true) is counted as
// waiting for the flight until it calls Leave.
func (t *Tier[V]) Join(key string, caller bool) (*Flight[V], bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(key)
	f, started := s.flight, false
	if f == nil {
		f, started = &Flight[V]{Done: make(chan struct{})}, true
		s.flight = f
	}
	if caller {
		f.refs++
	}
	return f, started
}

// Leave ends a caller's wait for f.
func (t *Tier[V]) Leave(f *Flight[V]) {
	t.mu.Lock()
	f.refs--
	t.mu.Unlock()
}

// DropUnwanted removes the flight f of key when no caller waits for it any
// more, and reports whether it did: a later miss of the key starts a new
// flight, so the one dropped can end without a result.
func (t *Tier[V]) DropUnwanted(key string, f *Flight[V]) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f.refs > 0 {
		return false
	}
	t.unflight(key, f)
	return true
}

func (t *Tier[V]) unflight(key string, f *Flight[V]) {
	if s := t.slots[key]; s != nil && s.flight == f {
		s.flight = nil
		t.tidy(key, s)
	}
}

// MayStore reports whether the load of f still has the right to store its
// result: its key was not forgotten since it began.
func (t *Tier[V]) MayStore(f *Flight[V]) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !f.revoked
}

// Finish ends the flight f of key: later misses start a new one.
func (t *Tier[V]) Finish(key string, f *Flight[V]) {
	t.mu.Lock()
	t.unflight(key, f)
	t.mu.Unlock()
	close(f.Done)
}

// Wait returns a channel closed at the first change report of any of keys
// (or of all keys), and the function that stops the wait.
func (t *Tier[V]) Wait(keys []string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		s := t.get(k)
		s.wake = append(s.wake, ch)
	}
	return ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, k := range keys {
			s := t.slots[k]
			if s == nil {
				continue
			}
			if i := slices.Index(s.wake, ch); i >= 0 {
				s.wake = slices.Delete(s.wake, i, i+1)
			}
			t.tidy(k, s)
		}
	}
}

func (t *Tier[V]) wakeLocked(s *slot[V]) {
	for _, ch := range s.wake {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
	s.wake = s.wake[:0]
}

func (t *Tier[V]) wakeAllLocked() {
	for k, s := range t.slots {
		if len(s.wake) > 0 {
			t.wakeLocked(s)
			t.tidy(k, s)
		}
	}
}

// SetVerifier sets the function that starts the verifier: it runs while
// keys wait (TakeVerify), until TakeVerify returns none. Until it is set,
// an unverified value stays so.
func (t *Tier[V]) SetVerifier(spawn func()) {
	t.mu.Lock()
	t.spawn = spawn
	t.mu.Unlock()
}

func (t *Tier[V]) queueLocked(key string) {
	t.verify[key] = true
	if !t.running && t.spawn != nil && !t.stopped {
		t.running = true
		t.spawn()
	}
}

// BeginVerify returns the read of keys to verify in the caller (a
// recording that a report raced).
func (t *Tier[V]) BeginVerify(keys []string) Read {
	t.mu.Lock()
	for _, k := range keys {
		delete(t.verify, k)
	}
	t.mu.Unlock()
	return t.begin(keys, false)
}

// TakeVerify returns the keys waiting for the verifier, with their read;
// none when the verifier is to end (nothing waits, or stop).
func (t *Tier[V]) TakeVerify(stop bool) ([]string, Read) {
	t.mu.Lock()
	if len(t.verify) == 0 || stop {
		t.running = false
		t.mu.Unlock()
		return nil, Read{}
	}
	keys := slices.Collect(maps.Keys(t.verify))
	clear(t.verify)
	t.mu.Unlock()
	return keys, t.begin(keys, false)
}

// deadlineSlack is how far the deadline a verifying read finds may be from
// the one remembered for the same write: the two are measured on this
// process's clock at different moments, from TTLs read in whole
// milliseconds, a round trip apart. Another client's expiry change moves it
// further.
const deadlineSlack = 100 * time.Millisecond

// sameDeadline reports whether deadlines a and b (Unix ns) are within
// deadlineSlack of each other.
func sameDeadline(a, b int64) bool {
	d := a - b
	return max(d, -d) <= int64(deadlineSlack)
}

// Verified applies what a verifying read r of keys found (vals read with
// their TTLs; nil after an error): an unverified value whose key still holds
// the same bytes and deadline is verified; any other is forgotten. A key
// reported again during the read waits for the next verification.
func (t *Tier[V]) Verified(r Read, keys []string, vals []backend.Value) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, k := range keys {
		s := t.claim(k, r.tickets[i])
		if s == nil {
			continue
		}
		if s.tainted {
			t.queueLocked(k) // reported again during the read
			continue
		}
		// Only a key that still holds the same bytes with the same deadline
		// is verified: a report comes before the deadline, so a key gone
		// since was deleted, or its expiry changed, even if its deadline
		// has passed by the time of this read.
		switch {
		case !s.has || !s.unverify:
			t.tidy(k, s)
		case vals != nil && vals[i].Found && vals[i].TTL != backend.NoTTL && bytes.Equal(vals[i].Bytes, s.raw) && sameDeadline(now+int64(vals[i].TTL), s.hi):
			s.unverify = false
		default:
			t.discard(k, s)
		}
	}
}
