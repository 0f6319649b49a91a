package memory

// Sweep runs one sweep of b now, for tests.
func Sweep(b *Backend) int { return b.sweep() }
