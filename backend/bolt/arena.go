package bolt

import "unsafe"

// arena copies the keys and values of a scan page out of their transaction
// into shared blocks, instead of one allocation each. A block is small, so a
// key or value the caller keeps holds at most arenaBlock bytes of others
// alive; anything larger than arenaLarge gets its own allocation.
type arena struct{ buf []byte }

const (
	arenaBlock = 4096
	arenaLarge = 512
)

// alloc returns n bytes of their own: appending to the result never writes
// into a neighbour.
func (a *arena) alloc(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	if n > arenaLarge {
		return make([]byte, n)
	}
	if len(a.buf)+n > cap(a.buf) {
		a.buf = make([]byte, 0, arenaBlock)
	}
	start := len(a.buf)
	a.buf = a.buf[:start+n]
	return a.buf[start : start+n : start+n]
}

// bytes returns a copy of b.
func (a *arena) bytes(b []byte) []byte {
	out := a.alloc(len(b))
	copy(out, b)
	return out
}

// string returns b as a string. The bytes are never written again.
func (a *arena) string(b []byte) string {
	out := a.bytes(b)
	return unsafe.String(unsafe.SliceData(out), len(out))
}

// string2 returns ns + ":" + k as a string.
func (a *arena) string2(ns string, k []byte) string {
	out := a.alloc(len(ns) + 1 + len(k))
	n := copy(out, ns)
	out[n] = ':'
	copy(out[n+1:], k)
	return unsafe.String(unsafe.SliceData(out), len(out))
}
