package bolt_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/clock"
)

// TestExpireWaitingForTheLockRevivesNothing: an Expire that waits for the
// write lock while its key's deadline passes finds the key gone and
// changes nothing. It read the clock before waiting and made the expired
// key live again (found by the conformance case Linearizable).
func TestExpireWaitingForTheLockRevivesNothing(t *testing.T) {
	ctx := context.Background()
	manual := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	clk := &signalClock{Manual: manual}
	b, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), bolt.WithSimulatedClock(clk), bolt.WithNoSync(), bolt.WithSweepInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.MSet(ctx, []backend.Entry{{Key: "k", Value: []byte("v"), TTL: time.Second}}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	done := bolt.HoldWriteLock(b, release)
	type result struct {
		ok  bool
		err error
	}
	res := make(chan result, 1)
	read := make(chan struct{})
	clk.arm(read)
	go func() {
		ok, err := b.Expire(ctx, "k", backend.NoTTL)
		res <- result{ok, err}
	}()
	<-read                          // the Expire read the clock; it cannot have the lock before release
	manual.Advance(2 * time.Second) // the key's deadline passes while it waits
	close(release)
	<-done
	r := <-res
	if r.err != nil || r.ok {
		t.Errorf("Expire = %v, %v; want false: the key expired while it waited", r.ok, r.err)
	}
	if v, err := b.Get(ctx, "k"); err != nil || v.Found {
		t.Errorf("Get = %+v, %v; want the expired key absent", v, err)
	}
}

// signalClock is a manual clock that closes a channel at the first reading
// after arm.
type signalClock struct {
	*clock.Manual
	mu sync.Mutex
	ch chan struct{}
}

func (c *signalClock) arm(ch chan struct{}) {
	c.mu.Lock()
	c.ch = ch
	c.mu.Unlock()
}

func (c *signalClock) Now() time.Time {
	now := c.Manual.Now()
	c.mu.Lock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
	c.mu.Unlock()
	return now
}
