package bolt

import bbolt "go.etcd.io/bbolt"

// SweepDone returns the channel closed when the background sweeper has
// returned; nil when the backend has none.
func SweepDone(b *Backend) <-chan struct{} { return b.done }

// HoldWriteLock runs a write transaction of b's database that waits for
// release, and returns once the transaction holds the write lock; done is
// closed when it has ended.
func HoldWriteLock(b *Backend, release <-chan struct{}) (done <-chan struct{}) {
	held, end := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(end)
		_ = b.db.Update(func(*bbolt.Tx) error { // an empty transaction: nothing to report
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	return end
}
