package nearcache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/nearcache"
)

// asyncStore is a memory store whose watch reports as Redis's does: its
// ChangeLive carries a time (reports are asynchronous), ChangeSynced comes
// only when the test sends it, and key reports can be held back (a report
// on its way, a silent link).
type asyncStore struct {
	*memory.Backend
	mu     sync.Mutex
	report func(backend.Change)
	hold   bool // drop the store's key reports
}

func (s *asyncStore) Capabilities() backend.Capabilities {
	o := s.Backend.Capabilities()
	watch := o.Watch
	o.Watch = func(ctx context.Context, prefix string, report func(backend.Change)) (func(), error) {
		s.mu.Lock()
		s.report = report
		s.mu.Unlock()
		return watch(ctx, prefix, func(c backend.Change) {
			s.mu.Lock()
			hold := s.hold
			s.mu.Unlock()
			switch {
			case c.Kind == backend.ChangeLive:
				c.At = time.Now()
			case hold && c.Kind == backend.ChangeKeys:
				return
			}
			report(c)
		})
	}
	return o
}

func (s *asyncStore) send(c backend.Change) {
	s.mu.Lock()
	r := s.report
	s.mu.Unlock()
	r(c)
}

func (s *asyncStore) setHold(h bool) {
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
}

// TestMaxLagBoundsStaleness: on a store whose reports are asynchronous, a
// value is served from memory only while the store's latest proof that its
// reports are up to date (ChangeSynced) is younger than MaxLag. Another
// client's write whose report never comes (a silent link) is then served
// stale for less than MaxLag, never longer: reads go to the store, and
// Stats.Unsynced counts them, until a proof arrives.
func TestMaxLagBoundsStaleness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lag = 100 * time.Millisecond
		m := memory.New(memory.WithSweepInterval(0))
		defer m.Close()
		s := &asyncStore{Backend: m}
		c, err := nearcache.New(s, "", nearcache.Options{MaxLag: lag})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		set(t, s, "k", "v1", backend.NoTTL)
		if v, local := get(t, c, "k"); v != "v1" || local {
			t.Fatalf("first read = %q (local %v); want v1 from the store", v, local)
		}
		if v, local := get(t, c, "k"); v != "v1" || !local {
			t.Fatalf("second read = %q (local %v); want v1 from memory", v, local)
		}
		// Another client writes; its report is lost on the way.
		s.setHold(true)
		set(t, s.Backend, "k", "v2", backend.NoTTL)
		written := time.Now()
		time.Sleep(lag / 2)
		if v, local := get(t, c, "k"); v != "v1" || !local {
			t.Fatalf("read within MaxLag = %q (local %v); want the stale v1, which δ allows", v, local)
		}
		time.Sleep(lag / 2)
		before := c.Stats().Unsynced
		v, local := get(t, c, "k")
		if v != "v2" || local {
			t.Fatalf("read %v after the unreported write, with no proof for MaxLag = %q (local %v); want v2 from the store", time.Since(written), v, local)
		}
		if got := c.Stats().Unsynced; got != before+1 {
			t.Errorf("Stats.Unsynced = %d; want %d", got, before+1)
		}
		// A proof comes: the store has reported everything before now (here
		// the test vouches for it, the write's report being dropped by the
		// test, so the cache's copy is refreshed first).
		s.setHold(false)
		set(t, c, "k", "v3", backend.NoTTL)
		s.send(backend.Change{Kind: backend.ChangeSynced, At: time.Now()})
		if v, _ := get(t, c, "k"); v != "v3" {
			t.Fatalf("read after a proof = %q; want v3", v)
		}
		if v, local := get(t, c, "k"); v != "v3" || !local {
			t.Errorf("read after a proof = %q (local %v); want v3 from memory", v, local)
		}
		// An older proof changes nothing.
		time.Sleep(lag)
		s.send(backend.Change{Kind: backend.ChangeSynced, At: time.Now().Add(-2 * lag)})
		if _, local := get(t, c, "k"); local {
			t.Errorf("served from memory on a proof older than MaxLag")
		}
	})
}

// TestSynchronousStoreNeedsNoProof: a store whose ChangeLive has no time
// (memory, which reports a change before the call that made it returns)
// is served from memory however long no ChangeSynced comes.
func TestSynchronousStoreNeedsNoProof(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := memory.New(memory.WithSweepInterval(0))
		defer m.Close()
		c, err := nearcache.New(m, "", nearcache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		set(t, m, "k", "v", backend.NoTTL)
		get(t, c, "k")
		time.Sleep(time.Hour)
		if v, local := get(t, c, "k"); v != "v" || !local {
			t.Errorf("read an hour later = %q (local %v); want v from memory", v, local)
		}
		if s := c.Stats(); s.Unsynced != 0 {
			t.Errorf("Stats.Unsynced = %d; want 0", s.Unsynced)
		}
	})
}

// TestLossIsVisible: a ChangeLost empties the cache, and Stats show it:
// Live false, Losses counted once per loss of a live cache, LastLoss the
// store's reason (a refused role check must not pass silently).
func TestLossIsVisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := memory.New(memory.WithSweepInterval(0))
		defer m.Close()
		s := &asyncStore{Backend: m}
		c, err := nearcache.New(s, "", nearcache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		set(t, s, "k", "v", backend.NoTTL)
		get(t, c, "k")
		if _, local := get(t, c, "k"); !local {
			t.Fatal("not served from memory before the loss")
		}
		noperm := errors.New("NOPERM this user has no permissions to run the 'role' command")
		s.send(backend.Change{Kind: backend.ChangeLost, Err: noperm})
		s.send(backend.Change{Kind: backend.ChangeLost, Err: noperm}) // while not live: no second loss
		st := c.Stats()
		if st.Live || st.Entries != 0 || st.Losses != 1 || !errors.Is(st.LastLoss, noperm) {
			t.Errorf("Stats after a loss = %+v; want not live, empty, 1 loss, LastLoss %v", st, noperm)
		}
		if _, local := get(t, c, "k"); local {
			t.Errorf("served from memory after a loss")
		}
	})
}

// TestNegativeMaxLag: a negative MaxLag is refused.
func TestNegativeMaxLag(t *testing.T) {
	m := memory.New()
	defer m.Close()
	if _, err := nearcache.New(m, "", nearcache.Options{MaxLag: -time.Second}); !errors.Is(err, nearcache.ErrInvalidOptions) {
		t.Errorf("New with MaxLag -1s = %v; want ErrInvalidOptions", err)
	}
}
