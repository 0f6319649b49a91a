package tier

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/clock"
)

// review19Check checks the tier's accounting: the LRU holds exactly the
// slots with a value or a miss, t.bytes is the sum of their sizes, the
// bounds hold, and (when quiet: no recording, flight or wait under way) no
// slot holds nothing.
func review19Check(t *testing.T, tr *Tier[int], quiet bool, step string) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var sum int64
	inLRU := map[string]bool{}
	for e := tr.lru.Front(); e != nil; e = e.Next() {
		k := e.Value.(string)
		s := tr.slots[k]
		if s == nil || s.elem != e {
			t.Fatalf("%s: LRU key %q has no slot pointing at it", step, k)
		}
		if !s.has && s.missUntil == 0 {
			t.Fatalf("%s: LRU slot %q holds neither value nor miss", step, k)
		}
		if s.sz != s.size(k) {
			t.Fatalf("%s: slot %q counted %d bytes, holds %d", step, k, s.sz, s.size(k))
		}
		sum += s.sz
		inLRU[k] = true
	}
	if sum != tr.bytes {
		t.Fatalf("%s: bytes %d, want %d (sum of the LRU's slots)", step, tr.bytes, sum)
	}
	if tr.lru.Len() > max(tr.o.MaxEntries, 1) || (tr.o.MaxBytes > 0 && tr.bytes > tr.o.MaxBytes) {
		t.Fatalf("%s: %d entries, %d bytes: over the bounds %d, %d", step, tr.lru.Len(), tr.bytes, tr.o.MaxEntries, tr.o.MaxBytes)
	}
	for k, s := range tr.slots {
		if !inLRU[k] && (s.has || s.missUntil != 0) {
			t.Fatalf("%s: slot %q holds a value or miss outside the LRU", step, k)
		}
		if quiet && !inLRU[k] && !tr.verify[k] {
			t.Fatalf("%s: slot %q holds nothing and was not tidied: %+v", step, k, *s)
		}
	}
}

// TestReview19Accounting drives a tier (near cache, stale serving and
// misses together, small bounds) through random sequences of its calls and
// checks its accounting after each.
func TestReview19Accounting(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 19))
			clk := clock.NewManual(t0)
			o, err := Near(4, 2048, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			o.Remember, o.Grace, o.MissTTL, o.Clock = true, time.Second, time.Second, clk
			tr := New[int](o)
			tr.Changed(backend.Change{Kind: backend.ChangeLive})
			keys := []string{"a", "b", "c", "d", "e", "f"}
			key := func() string { return keys[rnd.IntN(len(keys))] }
			val := func() []backend.Value {
				switch rnd.IntN(4) {
				case 0:
					return []backend.Value{{}}
				case 1:
					return []backend.Value{{Bytes: make([]byte, rnd.IntN(200)), Found: true, TTL: backend.NoTTL}}
				default:
					return []backend.Value{{Bytes: make([]byte, rnd.IntN(200)), Found: true, TTL: time.Duration(1+rnd.IntN(3)) * time.Second}}
				}
			}
			type open struct {
				r    Read
				keys []string
			}
			var reads []open
			for i := range 300 {
				var step string
				switch rnd.IntN(13) {
				case 0, 1:
					k := key()
					reads = append(reads, open{tr.Begin(k), []string{k}})
					step = "Begin " + k
				case 2, 3:
					if len(reads) > 0 {
						j := rnd.IntN(len(reads))
						rd := reads[j]
						reads = append(reads[:j], reads[j+1:]...)
						tr.End(rd.r, rd.keys, val(), rnd.IntN(2) == 0)
						step = "End " + rd.keys[0]
					}
				case 4:
					if len(reads) > 0 {
						j := rnd.IntN(len(reads))
						rd := reads[j]
						reads = append(reads[:j], reads[j+1:]...)
						var raws [][]byte
						if rnd.IntN(2) == 0 {
							raws = [][]byte{make([]byte, rnd.IntN(200))}
						}
						tr.Wrote(rd.r, rd.keys, raws, []int64{clk.Now().Add(time.Second).UnixNano()})
						step = "Wrote " + rd.keys[0]
					}
				case 5:
					k := key()
					tr.Forget(k)
					step = "Forget " + k
				case 6:
					k := key()
					tr.Changed(backend.Change{Kind: backend.ChangeKeys, Keys: []string{k}})
					step = "Changed " + k
				case 7:
					k := key()
					tr.AddMiss(k)
					step = "AddMiss " + k
				case 8:
					k := key()
					tr.Missing(k)
					step = "Missing " + k
				case 9:
					k := key()
					tr.Found(k)
					step = "Found " + k
				case 10:
					k := key()
					tr.Cached(k, false)
					tr.Stale(k)
					step = "Cached+Stale " + k
				case 11:
					clk.Advance(time.Duration(rnd.IntN(1500)) * time.Millisecond)
					step = "advance"
				case 12:
					if rnd.IntN(5) == 0 {
						tr.Purge(rnd.IntN(2) == 0)
						step = "Purge"
					} else {
						k := key()
						tr.Far(k, clk.Now().UnixNano())
						step = "Far " + k
					}
				}
				// Drain the verifier's queue as a verifier would.
				if ks, r := tr.TakeVerify(false); ks != nil {
					tr.Verified(r, ks, nil)
				}
				review19Check(t, tr, len(reads) == 0, fmt.Sprintf("op %d (%s)", i, step))
			}
		})
	}
}
