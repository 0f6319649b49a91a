// Package keyset is a set of key fingerprints for remembering the keys an
// iteration has already yielded, in about 10 bytes a key whatever the key's
// length: a key is never copied, only hashed.
//
// A key is two 64-bit hashes (hash/maphash, two random seeds per Set): 8
// bits of one pick one of 256 shards, the other is stored in it. Each shard
// is an open-addressing table of uint64s (no pointers for the garbage
// collector to scan) that grows by a quarter alone, so growing never copies
// more than 1/256 of the set at once: a million keys take about 10 MiB.
//
// Two distinct keys are taken for one (Add reports the second as present)
// only when both hashes agree on those 72 bits: for a set of n keys this
// happens with probability below n²/2^73, 1.1e-10 for a million keys and
// 1.1e-8 for ten million. For comparison, about 1.3% of servers a year see an
// uncorrectable memory error (Schroeder, Pinheiro and Weber, "DRAM Errors in
// the Wild: A Large-Scale Field Study", SIGMETRICS 2009): 1.6e-9 within the
// 4 s a million-key Redis scan takes, fifteen times the set's figure, and a
// third of servers a year see a corrected one, 4e-8 within those 4 s.
package keyset

import (
	"hash/maphash"
	"math/bits"
)

// Set is a set of keys, known by their fingerprints. The zero Set is empty
// and ready to use. A Set is not safe for concurrent use.
type Set struct {
	seeds  [2]maphash.Seed
	n      int
	shards *[256]shard // nil until the first Add
}

// shard is an open-addressing table of fingerprints with linear probing; 0
// marks an empty slot. Its home slot is the fingerprint scaled to the
// table's length.
type shard struct {
	slots []uint64
	n     int
}

// Len returns the number of keys in the set.
func (s *Set) Len() int { return s.n }

// Add adds k and reports whether it was absent (by fingerprint: see the
// package doc for how likely a false "present" is).
func (s *Set) Add(k string) bool {
	if s.shards == nil {
		s.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
		s.shards = new([256]shard)
	}
	fp := maphash.String(s.seeds[0], k)
	if fp == 0 { // 0 marks an empty slot
		fp = 1
	}
	sh := &s.shards[maphash.String(s.seeds[1], k)>>56]
	if !sh.add(fp) {
		return false
	}
	s.n++
	return true
}

// add adds fp and reports whether it was absent.
func (sh *shard) add(fp uint64) bool {
	if (sh.n+1)*10 > len(sh.slots)*9 { // keep the load at most 0.9
		sh.grow()
	}
	size := uint64(len(sh.slots))
	i, _ := bits.Mul64(fp, size)
	for {
		switch sh.slots[i] {
		case fp:
			return false
		case 0:
			sh.slots[i] = fp
			sh.n++
			return true
		}
		if i++; i == size {
			i = 0
		}
	}
}

// grow replaces the table by one a quarter larger (16 slots at first).
func (sh *shard) grow() {
	old := sh.slots
	sh.slots = make([]uint64, max(16, len(old)+len(old)/4))
	sh.n = 0
	for _, fp := range old {
		if fp != 0 {
			sh.add(fp)
		}
	}
}
