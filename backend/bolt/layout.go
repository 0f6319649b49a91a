package bolt

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv/backend"
)

// The file layout. Every bucket of the backend is a top-level bucket whose
// name starts with "kv.", so a *bbolt.DB can hold other buckets beside them.
//
//	kv.r         backend keys without ":" (not written by kv.Map)
//	kv.x         the expiry index of kv.r
//	kv.d:NS      the keys of namespace NS: backend key "NS:k" is key "k" here
//	kv.x:NS      the expiry index of namespace NS: deadline||k -> empty
//	kv.meta      the file's clock: "clock" -> "wall" or "simulated",
//	             "latest" -> the latest time that clock showed at a write
//	             (8-byte big-endian Unix nanoseconds from 1678 to 2262; else
//	             12 bytes: big-endian Unix seconds and nanoseconds)
//
// A stored value is an 8-byte big-endian deadline code (Unix nanoseconds
// from 1970 to 2262, 0 for none; see timecode.go for the times outside)
// followed by the value. An index key is the same 8-byte code followed by
// the key in its data bucket, so a cursor walks a namespace's keys in the
// order they expire, range by range of codes.
var (
	rootBucket      = []byte("kv.r")
	rootIndexBucket = []byte("kv.x")
	metaBucket      = []byte("kv.meta")
	dataPrefix      = []byte("kv.d:")
	indexPrefix     = []byte("kv.x:")
	headerLength    = 8
)

// loc is where a backend key lives.
type loc struct {
	ns   string // namespace; meaningful when hasNS
	key  string // key within the bucket
	root bool   // the key has no ":" and lives in kv.r
}

func locate(k string) loc {
	ns, rest, ok := strings.Cut(k, ":")
	if !ok {
		return loc{key: k, root: true}
	}
	return loc{ns: ns, key: rest}
}

// dataName and indexName return the bucket names of a location.
func (l loc) dataName() []byte { return l.appendDataName(nil) }

// appendDataName appends the data bucket name of l to dst.
func (l loc) appendDataName(dst []byte) []byte {
	if l.root {
		return append(dst, rootBucket...)
	}
	return append(append(dst, dataPrefix...), l.ns...)
}

func (l loc) indexName() []byte {
	if l.root {
		return rootIndexBucket
	}
	return append(append([]byte(nil), indexPrefix...), l.ns...)
}

// deadlineOf reads the deadline code of a stored value or an index key (0,
// no deadline, for one too short to hold it).
func deadlineOf(stored []byte) uint64 {
	if len(stored) < headerLength {
		return 0
	}
	return binary.BigEndian.Uint64(stored)
}

// expired reports whether the deadline of code has passed at now.
func expired(code uint64, now instant) bool { return code != 0 && codeOrd(code) <= now.ord }

// indexKey returns the expiry-index key of key with the deadline code.
func indexKey(deadline uint64, key string) []byte {
	return appendIndexKey(make([]byte, 0, headerLength+len(key)), deadline, key)
}

// appendIndexKey appends the expiry-index key of key with the deadline code
// to dst.
func appendIndexKey(dst []byte, deadline uint64, key string) []byte {
	dst = binary.BigEndian.AppendUint64(dst, deadline)
	return append(dst, key...)
}

// remaining returns the TTL left at now before the deadline of code (not
// expired at now), or an error wrapping ErrTimeRange when it is longer than
// a time.Duration holds (about 292 years: the clock reads long before the
// key was written).
func remaining(code uint64, now instant) (time.Duration, error) {
	if code == 0 {
		return backend.NoTTL, nil
	}
	if !validCode(code) {
		return 0, corruptf("a key's deadline is %#016x, which no write stores (its bytes are damaged)", code)
	}
	at := timeOf(codeOrd(code))
	d := at.Sub(now.t)
	if d == math.MaxInt64 && !now.t.Add(d).Equal(at) {
		return 0, fmt.Errorf("%w: the key's deadline %s is more than 292 years after %s, too far for a Go duration (the clock reads long before the key was written, or the deadline's bytes are damaged)",
			ErrTimeRange, formatTime(at), formatTime(now.t))
	}
	return max(d, 1), nil
}

// firstExpired positions c, a cursor over an expiry index, on the entry with
// the earliest deadline and returns its key, when that deadline has passed
// at now; nil otherwise.
func firstExpired(c *bbolt.Cursor, now instant) []byte {
	for _, r := range codeRanges {
		k, _ := c.Seek(binary.BigEndian.AppendUint64(nil, r.from))
		if k == nil || len(k) < headerLength || deadlineOf(k) > r.to {
			continue // none in this range
		}
		if expired(deadlineOf(k), now) {
			return k
		}
		return nil // the earliest deadline is still ahead: so is every later one
	}
	return nil
}

// countExpired returns how many entries of an expiry index have a deadline
// that has passed at now.
func countExpired(idx *bbolt.Bucket, now instant) int {
	n := 0
	c := idx.Cursor()
	for _, r := range codeRanges {
		for k, _ := c.Seek(binary.BigEndian.AppendUint64(nil, r.from)); k != nil && len(k) >= headerLength && deadlineOf(k) <= r.to; k, _ = c.Next() {
			if !expired(deadlineOf(k), now) {
				return n
			}
			n++
		}
	}
	return n
}
