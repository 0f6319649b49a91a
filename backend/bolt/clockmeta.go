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
// at a write or at Close. A file written before clocks were recorded has an
// empty Kind and a zero Latest, and is never swept; a zero Latest with a
// Kind is a file that records no time (a backtest closed without moving its
// clock, by a version before the write that creates a file recorded it).
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
			fc.Latest = decodeLatest(mb.Get([]byte("latest")))
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

// decodeLatest reads the "latest" record: 8 bytes of Unix nanoseconds, or
// 12 bytes of Unix seconds and nanoseconds for a time outside 1678 to 2262.
// It returns the zero time for none (or a record of another length).
func decodeLatest(v []byte) time.Time {
	switch len(v) {
	case 8:
		return time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
	case 12:
		return time.Unix(int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint32(v[8:]))).UTC()
	}
	return time.Time{}
}

// encodeLatest returns the "latest" record of t: the 8 bytes every version
// reads when Unix nanoseconds hold t, else 12.
func encodeLatest(t time.Time) []byte {
	if ns := t.UnixNano(); time.Unix(0, ns).Equal(t) {
		return binary.BigEndian.AppendUint64(nil, uint64(ns))
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(v, uint32(t.Nanosecond()))
}

// stampClock records the kind of the file's clock (and, through update, the
// clock's time).
func (b *Backend) stampClock(kind ClockKind) error {
	return b.write(func(tx *bbolt.Tx, _ instant) error {
		mb, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		return mb.Put([]byte("clock"), []byte(kind))
	})
}

// recordTime records now as the latest time of the file's clock, when it is
// later than the one recorded, and reports whether it did; it runs in every
// write transaction.
func (b *Backend) recordTime(tx *bbolt.Tx, now instant) (bool, error) {
	if !b.sweeps || now.ord+1 <= b.recorded.Load() {
		return false, nil
	}
	mb, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return false, err
	}
	return true, mb.Put([]byte("latest"), encodeLatest(now.t))
}

// committed notes that now is on disk as the latest time, after the
// transaction that wrote it committed.
func (b *Backend) committed(now instant) {
	for {
		old := b.recorded.Load()
		if now.ord+1 <= old || b.recorded.CompareAndSwap(old, now.ord+1) {
			return
		}
	}
}
