// Package clock holds the clocks of the module: the [Clock] interface that
// the stores which expire keys themselves (backend/memory, backend/bolt)
// read deadlines from, the [System] clock they use by default, and a
// [Manual] clock for tests and for backtests that expire keys by their
// simulated time instead of the wall clock.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
}

// System returns the clock of the system: time.Now.
func System() Clock { return system{} }

type system struct{}

func (system) Now() time.Time { return time.Now() }

var _ Clock = (*Manual)(nil)

// Manual is a Clock whose time moves only when Advance or Set is called. It
// is safe for concurrent use.
type Manual struct {
	mu  sync.Mutex
	now time.Time
}

// NewManual returns a Manual clock reading start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now returns the clock's current time.
func (c *Manual) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Manual) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t, forward or back.
func (c *Manual) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
