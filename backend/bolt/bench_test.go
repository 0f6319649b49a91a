package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/bolt"
)

// The benchmarks compare the library with raw bbolt doing the same work, as
// sub-benchmarks impl=raw and impl=kv of one benchmark, on the machine's disk
// (the test's temporary directory), with the default 5-minute TTL so that the
// expiry index is exercised. docs/performance.md has the commands and the
// results.

const value = "66f1c0ffee0123456789abcd"

func benchFiles(b *testing.B, opts ...bolt.Option) (*bbolt.DB, *kv.Map[string]) {
	b.Helper()
	dir := b.TempDir()
	raw, err := bbolt.Open(filepath.Join(dir, "raw.db"), 0o600, &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = raw.Close() })
	if err := raw.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("raw")); return err }); err != nil {
		b.Fatal(err)
	}
	be, err := bolt.Open(filepath.Join(dir, "kv.db"), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close() })
	m, err := kv.New[string](be, "signal_cache")
	if err != nil {
		b.Fatal(err)
	}
	return raw, m
}

func BenchmarkSet(b *testing.B) {
	raw, m := benchFiles(b)
	ctx := context.Background()
	b.Run("impl=raw", func(b *testing.B) {
		for b.Loop() {
			err := raw.Update(func(tx *bbolt.Tx) error {
				return tx.Bucket([]byte("raw")).Put([]byte("binance:s:BTC/USDT:USDT"), []byte(value))
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=kv", func(b *testing.B) {
		for b.Loop() {
			if err := m.Set(ctx, "binance:s:BTC/USDT:USDT", value); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSetMany100(b *testing.B) {
	raw, m := benchFiles(b)
	ctx := context.Background()
	entries := make([]kv.Entry[string], 100)
	for i := range entries {
		entries[i] = kv.Entry[string]{Key: "binance:s:SYM" + strconv.Itoa(i), Value: value}
	}
	b.Run("impl=raw", func(b *testing.B) {
		for b.Loop() {
			err := raw.Update(func(tx *bbolt.Tx) error {
				bk := tx.Bucket([]byte("raw"))
				for _, e := range entries {
					if err := bk.Put([]byte(e.Key), []byte(e.Value)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=kv", func(b *testing.B) {
		for b.Loop() {
			if err := m.SetMany(ctx, entries); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	raw, m := benchFiles(b)
	ctx := context.Background()
	key := "binance:s:BTC/USDT:USDT"
	_ = raw.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("raw")).Put([]byte(key), []byte(value)) })
	if err := m.Set(ctx, key, value); err != nil {
		b.Fatal(err)
	}
	b.Run("impl=raw", func(b *testing.B) {
		for b.Loop() {
			var out string
			err := raw.View(func(tx *bbolt.Tx) error {
				out = string(tx.Bucket([]byte("raw")).Get([]byte(key)))
				return nil
			})
			if err != nil || out != value {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=kv", func(b *testing.B) {
		for b.Loop() {
			if v, ok, err := m.Get(ctx, key); err != nil || !ok || v != value {
				b.Fatal(err)
			}
		}
	})
}

const bulk = 100_000

// sink keeps the raw walk's copies alive.
var sink int

// fillBulk writes n keys into the Map (without sync) and the same keys into
// the raw bucket.
func fillBulk(b *testing.B, raw *bbolt.DB, m *kv.Map[string], n int) {
	b.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 10_000 {
		entries := make([]kv.Entry[string], 0, 10_000)
		for i := start; i < min(start+10_000, n); i++ {
			entries = append(entries, kv.Entry[string]{Key: fmt.Sprintf("k%06d", i), Value: value})
		}
		if m != nil {
			if err := m.SetMany(ctx, entries); err != nil {
				b.Fatal(err)
			}
		}
		if raw != nil {
			err := raw.Update(func(tx *bbolt.Tx) error {
				bk := tx.Bucket([]byte("raw"))
				for _, e := range entries {
					if err := bk.Put([]byte(e.Key), []byte(e.Value)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkIterate100k(b *testing.B) {
	raw, m := benchFiles(b, bolt.WithNoSync())
	raw.NoSync = true
	fillBulk(b, raw, m, bulk)
	ctx := context.Background()
	b.Run("impl=raw", func(b *testing.B) {
		for b.Loop() {
			n := 0
			// Copied out of the transaction, a page of 1000 at a time as a
			// caller that keeps them would.
			keys, vals := make([]string, 1000), make([]string, 1000)
			err := raw.View(func(tx *bbolt.Tx) error {
				c := tx.Bucket([]byte("raw")).Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					keys[n%1000], vals[n%1000] = string(k), string(v)
					n++
				}
				return nil
			})
			sink += len(keys[0]) + len(vals[0])
			if err != nil || n != bulk {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("impl=kv", func(b *testing.B) {
		for b.Loop() {
			n := 0
			for _, err := range m.Iterate(ctx) {
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != bulk {
				b.Fatal(n)
			}
		}
	})
}

// BenchmarkClear100k compares Clear of a 100,000-key namespace with what a
// store keyed by prefix must do: delete the namespace's 100,000 "ns:" keys
// one by one, in one transaction, from a bucket shared with 100,000 keys of
// another namespace. Filling is not timed.
func BenchmarkClear100k(b *testing.B) {
	ctx := context.Background()
	b.Run("impl=prefix", func(b *testing.B) {
		raw, _ := benchFiles(b, bolt.WithNoSync())
		raw.NoSync = true
		for b.Loop() {
			b.StopTimer()
			err := raw.Update(func(tx *bbolt.Tx) error {
				bk := tx.Bucket([]byte("raw"))
				for i := range bulk {
					if err := bk.Put(fmt.Appendf(nil, "ns:k%06d", i), []byte(value)); err != nil {
						return err
					}
					if err := bk.Put(fmt.Appendf(nil, "other:k%06d", i), []byte(value)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			err = raw.Update(func(tx *bbolt.Tx) error {
				c := tx.Bucket([]byte("raw")).Cursor()
				for k, _ := c.Seek([]byte("ns:")); k != nil && string(k[:3]) == "ns:"; k, _ = c.Seek([]byte("ns:")) {
					if err := c.Delete(); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=kv", func(b *testing.B) {
		_, m := benchFiles(b, bolt.WithNoSync())
		for b.Loop() {
			b.StopTimer()
			fillBulk(b, nil, m, bulk)
			b.StartTimer()
			if err := m.Clear(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
