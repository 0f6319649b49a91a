package backend

import "time"

// Clock tells the time. Backends that expire keys themselves (memory, bolt)
// take one so that tests and backtests can drive expiry without waiting.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
}

// SystemClock returns the Clock of the system: time.Now.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
