package bolt

import (
	"bytes"
	"encoding/binary"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// ClockKind is the kind of clock a file's data was written under.
type ClockKind string

// The kinds of clock.
const (
	// WallClock is the system clock, or a stand-in for it in tests
	// (WithClock).
	WallClock ClockKind = "wall"
	// SimulatedClock is a backtest's clock (WithSimulatedClock).
	SimulatedClock ClockKind = "simulated"
)

// FileClock is the clock a file remembers in its own metadata: the kind of
// clock its data was written under, and the latest time that clock showed
// at a write. A file written before clocks were recorded has an empty Kind
// and a zero Latest, and is never swept.
type FileClock struct {
	Kind   ClockKind
	Latest time.Time
}

// readFileClock reads the file's clock, and whether the file holds any
// bucket of this package's (data written before clocks were recorded).
func (b *Backend) readFileClock() (FileClock, bool, error) {
	var fc FileClock
	hasData := false
	err := b.view(func(tx *bbolt.Tx) error {
		if mb := tx.Bucket(metaBucket); mb != nil {
			fc.Kind = ClockKind(mb.Get([]byte("clock")))
			if v := mb.Get([]byte("latest")); len(v) == 8 {
				fc.Latest = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			}
		}
		c := tx.Cursor()
		for name, _ := c.Seek([]byte("kv.")); name != nil && bytes.HasPrefix(name, []byte("kv.")); name, _ = c.Next() {
			if !bytes.Equal(name, metaBucket) {
				hasData = true
				break
			}
		}
		return nil
	})
	if err != nil {
		return FileClock{}, false, err
	}
	switch fc.Kind {
	case "", WallClock, SimulatedClock:
	default:
		return FileClock{}, false, corruptf("unknown clock kind %q in the file's metadata", fc.Kind)
	}
	return fc, hasData, nil
}

// stampClock records the kind of the file's clock.
func (b *Backend) stampClock(kind ClockKind) error {
	return b.update(b.now(), func(tx *bbolt.Tx) error {
		mb, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		return mb.Put([]byte("clock"), []byte(kind))
	})
}

// recordTime records now as the latest time of the file's clock, when it is
// later than the one recorded; it runs in every write transaction.
func (b *Backend) recordTime(tx *bbolt.Tx, now int64) error {
	if !b.sweeps || now <= b.recorded.Load() {
		return nil
	}
	mb, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(now))
	return mb.Put([]byte("latest"), v[:])
}

// committed notes that now is on disk as the latest time, after the
// transaction that wrote it committed.
func (b *Backend) committed(now int64) {
	for {
		old := b.recorded.Load()
		if now <= old || b.recorded.CompareAndSwap(old, now) {
			return
		}
	}
}
