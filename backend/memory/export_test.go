package memory

// Sweep runs one sweep of b now, for tests.
func Sweep(b *Backend) int { return b.sweep() }

// SweepDone returns the channel closed when the background sweep has
// returned; nil when the backend has none.
func SweepDone(b *Backend) <-chan struct{} { return b.done }
