package backend

import "time"

// ChangeKind is what a Change reports.
type ChangeKind int

const (
	// ChangeKeys reports that Change.Keys were written, deleted, expired or
	// evicted, by any client.
	ChangeKeys ChangeKind = iota
	// ChangeAll reports that any key under the prefix may have changed (the
	// store was flushed).
	ChangeAll
	// ChangeLost reports that changes may go unreported from now on until
	// ChangeLive (the connection that reports them broke, or the set of
	// servers changed, or the store could not confirm that the server
	// reporting them is still the one written to): a cache of the store's
	// keys must be emptied and bypassed. Change.Err says why, when known.
	// It is reported as soon as the loss is seen, before the watch tries
	// to reconnect.
	ChangeLost
	// ChangeLive reports that every change made from now on is reported:
	// caching may start (or start again). It is the first report of a
	// Watch whose store could be reached. Change.At is zero for a store
	// whose reports are synchronous (each change is reported before the
	// call that made it returns: memory); otherwise reports travel
	// asynchronously (Redis's invalidation messages) and the watch reports
	// ChangeSynced from then on, Change.At being the time from which
	// changes are reported.
	ChangeLive
	// ChangeSynced reports that every change the store carried out before
	// Change.At has been reported (Redis: the tracking connection answered
	// a PING sent at At, and its server sends invalidations in order with
	// replies). A watch whose ChangeLive had a non-zero At reports it
	// regularly while live (every 20 ms on Redis); a cache bounds how stale
	// a value it serves may be by how old the latest At is.
	ChangeSynced
)

// changeKindNames are the names of the kinds, in order.
var changeKindNames = [...]string{"ChangeKeys", "ChangeAll", "ChangeLost", "ChangeLive", "ChangeSynced"}

// String returns the kind's name.
func (k ChangeKind) String() string {
	if k < 0 || int(k) >= len(changeKindNames) {
		return "ChangeKind(?)"
	}
	return changeKindNames[k]
}

// Change is one report of Capabilities.Watch.
type Change struct {
	Kind ChangeKind
	// Keys are the changed keys, for ChangeKeys; owned by the receiver.
	Keys []string
	// At is, for ChangeSynced, the time before which every change has been
	// reported; for ChangeLive, zero when reports are synchronous, else the
	// time from which changes are reported. Its monotonic clock reading is
	// kept: compare it with time.Since.
	At time.Time
	// Err is, for ChangeLost, why changes may go unreported (a broken
	// connection, a refused command such as NOPERM for ROLE, a server no
	// longer master), or nil when not known.
	Err error
}
