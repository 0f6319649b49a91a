package bolt

// SweepDone returns the channel closed when the background sweeper has
// returned; nil when the backend has none.
func SweepDone(b *Backend) <-chan struct{} { return b.done }
