package memory_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
)

// fill stores n keys of 35 bytes with 100-byte values under "mill:" and
// "other:" (every tenth key).
func fill(t *testing.T, b *memory.Backend, n int) {
	t.Helper()
	val := make([]byte, 100)
	batch := make([]backend.Entry, 0, 1000)
	for i := 0; i < n; i += cap(batch) {
		batch = batch[:0]
		for j := i; j < i+cap(batch); j++ {
			ns := "mill:"
			if j%10 == 0 {
				ns = "othr:"
			}
			batch = append(batch, backend.Entry{Key: ns + fmt.Sprintf("binance:strat-%07d:BTC/USDT", j), Value: val, TTL: backend.NoTTL})
		}
		if err := b.MSet(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}

func heapAlloc() (live, total uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.TotalAlloc
}

// TestHeapPerKey checks that a key of 35 bytes with a 100-byte value costs
// at most 272 heap bytes, index and map included (385 with a simplelru list
// beside the index).
func TestHeapPerKey(t *testing.T) {
	const n = 200_000
	before, _ := heapAlloc()
	b := memory.New(memory.WithSweepInterval(0))
	defer b.Close()
	fill(t, b, n)
	after, _ := heapAlloc()
	perKey := float64(after-before) / n
	t.Logf("%.0f heap bytes a key", perKey)
	if perKey > 272 {
		t.Errorf("%.0f heap bytes a key; want at most 272", perKey)
	}
	runtime.KeepAlive(b)
}

// TestDeletePrefixHoldsNoKeyList checks that deleting a prefix allocates
// O(chunk), not a list of the prefix's keys, whether the prefix holds every
// key or a part of them, and deletes those keys only.
func TestDeletePrefixHoldsNoKeyList(t *testing.T) {
	const n = 100_000
	for _, tt := range []struct {
		name, prefix string
		left         int // keys left after the delete
	}{
		{"part", "mill:", n / 10},
		{"all", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := memory.New(memory.WithSweepInterval(0))
			defer b.Close()
			fill(t, b, n)
			_, total0 := heapAlloc()
			if err := backend.DeletePrefix(context.Background(), b, tt.prefix, 100); err != nil {
				t.Fatal(err)
			}
			_, total1 := heapAlloc()
			if got := b.Len(); got != tt.left {
				t.Errorf("Len after deleting %q = %d; want %d", tt.prefix, got, tt.left)
			}
			if alloc := total1 - total0; alloc > 1<<20 {
				t.Errorf("deleting %q of %d keys allocated %d KiB; want at most 1 MiB", tt.prefix, n, alloc>>10)
			}
		})
	}
}
