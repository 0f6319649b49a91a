// Package clock provides a manually driven [backend.Clock], for tests and for
// backtests that expire keys by their simulated time instead of the wall
// clock.
package clock

import (
	"sync"
	"time"

	"github.com/kvmap/kv/backend"
)

var _ backend.Clock = (*Manual)(nil)

// Manual is a backend.Clock whose time moves only when Advance or Set is
// called. It is safe for concurrent use.
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
