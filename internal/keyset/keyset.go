// Package keyset is a set of strings for remembering the keys an iteration
// has already yielded. It holds no pointers the garbage collector must scan:
// keys are copied into one byte slice and indexed by an open-addressing
// table of integers, so a set of a million keys costs the collector nothing
// and an insert no allocation beyond amortised growth. A map[string]struct{}
// of the same keys is scanned in full by every collection.
package keyset

import "hash/maphash"

// Set is a set of strings. The zero Set is empty and ready to use. A Set is
// not safe for concurrent use.
type Set struct {
	seed    maphash.Seed
	data    []byte  // the keys, one after the other
	entries []entry // one per key
	table   []int32 // 0: empty; i+1: entries[i]
}

type entry struct {
	hash uint64
	off  int
	n    int
}

// Len returns the number of keys in the set.
func (s *Set) Len() int { return len(s.entries) }

// Add adds k and reports whether it was absent.
func (s *Set) Add(k string) bool {
	if s.table == nil {
		s.seed = maphash.MakeSeed()
		s.table = make([]int32, 64)
	}
	h := maphash.String(s.seed, k)
	mask := uint64(len(s.table) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		slot := s.table[i]
		if slot == 0 {
			s.entries = append(s.entries, entry{hash: h, off: len(s.data), n: len(k)})
			s.data = append(s.data, k...)
			s.table[i] = int32(len(s.entries))
			if len(s.entries)*4 >= len(s.table)*3 {
				s.grow()
			}
			return true
		}
		e := s.entries[slot-1]
		if e.hash == h && e.n == len(k) && string(s.data[e.off:e.off+e.n]) == k {
			return false
		}
	}
}

// grow doubles the table and re-inserts every entry.
func (s *Set) grow() {
	table := make([]int32, len(s.table)*2)
	mask := uint64(len(table) - 1)
	for idx, e := range s.entries {
		i := e.hash & mask
		for table[i] != 0 {
			i = (i + 1) & mask
		}
		table[i] = int32(idx + 1)
	}
	s.table = table
}
