package backend

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
	// servers changed): a cache of the store's keys must be emptied and
	// bypassed.
	ChangeLost
	// ChangeLive reports that every change made from now on is reported:
	// caching may start (or start again). It is the first report of a
	// Watch whose store could be reached.
	ChangeLive
)

// Change is one report of Optimizations.Watch.
type Change struct {
	Kind ChangeKind
	// Keys are the changed keys, for ChangeKeys; owned by the receiver.
	Keys []string
}
