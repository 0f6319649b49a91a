package bolt

import (
	"encoding/binary"
	"strings"
	"time"
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
//	             (8-byte big-endian Unix nanoseconds)
//
// A stored value is an 8-byte big-endian deadline (Unix nanoseconds, 0 for
// none) followed by the value. An index key is the same 8-byte deadline
// followed by the key in its data bucket, so a cursor walks a namespace's
// keys in the order they expire.
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

// encode returns the stored form of value with its deadline.
func encode(deadline int64, value []byte) []byte {
	out := make([]byte, headerLength+len(value))
	binary.BigEndian.PutUint64(out, uint64(deadline))
	copy(out[headerLength:], value)
	return out
}

// deadlineOf reads the deadline of a stored value.
func deadlineOf(stored []byte) int64 {
	if len(stored) < headerLength {
		return 0
	}
	return int64(binary.BigEndian.Uint64(stored))
}

func expired(deadline, now int64) bool { return deadline != 0 && deadline <= now }

// indexKey returns the expiry-index key of key with deadline.
func indexKey(deadline int64, key string) []byte {
	return appendIndexKey(make([]byte, 0, headerLength+len(key)), deadline, key)
}

// appendIndexKey appends the expiry-index key of key with deadline to dst.
func appendIndexKey(dst []byte, deadline int64, key string) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(deadline))
	return append(dst, key...)
}

// remaining returns the TTL left before deadline.
func remaining(deadline, now int64) time.Duration {
	if deadline == 0 {
		return -1 // backend.NoTTL
	}
	return time.Duration(deadline - now)
}
