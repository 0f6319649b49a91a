package compress_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/compress"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/nearcache"
)

// forced compresses every non-empty value, even when that lengthens it, so
// that the suite's short values are stored compressed.
func forced(alg compress.Algorithm) []compress.Option {
	return []compress.Option{compress.WithAlgorithm(alg), compress.WithThreshold(0), compress.Force()}
}

// over returns h with the decorator, made with opts, over each of its
// stores.
func over(h conformance.Harness, opts ...compress.Option) conformance.Harness {
	wrap := func(t conformance.T, b backend.Backend) backend.Backend {
		c, err := compress.New(b, opts...)
		if err != nil {
			t.Fatalf("compress.New: %v", err)
		}
		return c
	}
	if inner := h.New; inner != nil {
		h.New = func(t conformance.T) conformance.Store {
			s := inner(t)
			s.Backend = wrap(t, s.Backend)
			if open := s.Open; open != nil {
				s.Open = func(t conformance.T) backend.Backend { return wrap(t, open(t)) }
			}
			return s
		}
	}
	if inner := h.Faults; inner != nil {
		h.Faults = func(t conformance.T) (conformance.Store, conformance.Faults) {
			s, f := inner(t)
			s.Backend = wrap(t, s.Backend)
			return s, f
		}
	}
	return h
}

func memoryHarness() conformance.Harness {
	h := conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			return conformance.Store{Backend: memory.New(memory.WithClock(clk)), Advance: clk.Advance}
		},
		PageHint: true,
	}
	h.Faults = conformance.FaultsAround(h.New)
	return h
}

// TestConformanceMemory runs the suite over the decorator on the memory
// store, every value compressed, with each algorithm, and with the default
// options (values stored raw, as most of the suite's are short).
func TestConformanceMemory(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []compress.Option
	}{
		{"zstd", forced(compress.Zstd)},
		{"s2", forced(compress.S2)},
		{"defaults", nil},
	} {
		t.Run(c.name, func(t *testing.T) { conformance.Run(t, over(memoryHarness(), c.opts...)) })
	}
}

// TestConformanceMapOption runs the suite with kv.WithCompression on every
// Map of it, alone and with a near cache. Its options are the defaults: the
// suite's format cases read the store's bytes, as BaseMap would, and its
// values are short, so stored raw (the runs above put the decorator under
// the suite's Maps, compressing every value).
func TestConformanceMapOption(t *testing.T) {
	on := kv.WithCompression()
	t.Run("alone", func(t *testing.T) {
		h := memoryHarness()
		h.Options = []kv.Option{on}
		conformance.Run(t, h)
	})
	t.Run("near cache", func(t *testing.T) {
		h := memoryHarness()
		h.Options = []kv.Option{on, kv.WithNearCache(nearcache.Options{})}
		conformance.Run(t, h)
	})
}

// TestConformanceMemoryCoreOnly runs it with the store's optimisations
// hidden (ScanEntries then falls back to Scan and the decorator's MGet).
func TestConformanceMemoryCoreOnly(t *testing.T) {
	conformance.Run(t, conformance.WithoutOptimizations(over(memoryHarness(), forced(compress.Zstd)...)))
}

// TestConformanceBolt runs it over a bbolt file, whose namespaces are
// native views (buckets) that the decorator wraps.
func TestConformanceBolt(t *testing.T) {
	h := conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			dir, err := os.MkdirTemp("", "kvcompress")
			if err != nil {
				t.Fatalf("MkdirTemp: %v", err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			b, err := bolt.Open(filepath.Join(dir, "kv.db"), bolt.WithClock(clk), bolt.WithNoSync())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return conformance.Store{Backend: b, Advance: clk.Advance}
		},
		PageHint: true,
	}
	h.Faults = conformance.FaultsAround(h.New)
	conformance.Run(t, over(h, forced(compress.Zstd)...))
}

// TestConformanceMiniredis runs it over the Redis backend on miniredis.
func TestConformanceMiniredis(t *testing.T) {
	h := conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			s := miniredis.NewMiniRedis()
			if err := s.Start(); err != nil {
				t.Fatalf("miniredis: %v", err)
			}
			t.Cleanup(s.Close)
			c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
			t.Cleanup(func() { _ = c.Close() })
			b, err := redis.New(c)
			if err != nil {
				t.Fatalf("redis.New: %v", err)
			}
			return conformance.Store{Backend: b, Advance: s.FastForward}
		},
	}
	conformance.Run(t, over(h, forced(compress.S2)...))
}

// TestConformanceRedis runs it over the Redis server at KV_REDIS_ADDR, in
// real time, and is skipped when the variable is not set.
func TestConformanceRedis(t *testing.T) {
	c := standalone(t)
	h := conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			b, err := redis.New(c)
			if err != nil {
				t.Fatalf("redis.New: %v", err)
			}
			return conformance.Store{Backend: b}
		},
		PageHint: true,
	}
	conformance.Run(t, over(h, forced(compress.Zstd)...))
}
