package kv

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// deadlineCap bounds the keys whose deadlines a Map remembers for
// WithRefreshAhead.
const deadlineCap = 10_000

// deadlines remembers, for WithRefreshAhead, the deadline of keys this Map
// read with their TTL or wrote, so that a hit on a key far from its
// deadline is a plain Get, without reading the TTL. A nil *deadlines
// remembers nothing.
type deadlines struct {
	c *lru.Cache[string, time.Time]
}

func newDeadlines() *deadlines {
	c, err := lru.New[string, time.Time](deadlineCap)
	if err != nil { // unreachable: the size is positive
		panic(err)
	}
	return &deadlines{c: c}
}

// far reports whether key is known to expire no sooner than until.
func (d *deadlines) far(key string, until time.Time) bool {
	if d == nil {
		return false
	}
	dl, ok := d.c.Get(key)
	return ok && !dl.Before(until)
}

// set records that key expires at dl.
func (d *deadlines) set(key string, dl time.Time) {
	if d != nil {
		d.c.Add(key, dl)
	}
}

// forget drops keys: their deadline is no longer known.
func (d *deadlines) forget(keys ...string) {
	if d != nil {
		for _, k := range keys {
			d.c.Remove(k)
		}
	}
}

// purge drops every deadline.
func (d *deadlines) purge() {
	if d != nil {
		d.c.Purge()
	}
}
