package kv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/nearcache"
)

// A BaseMap cache service: one namespace, composite keys, string ids stored
// raw, keys that never expire (BaseMap's -1).
func Example() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()

	signals, err := kv.New[string](store, "signal_cache", kv.WithTTL(kv.NoTTL))
	if err != nil {
		panic(err)
	}
	_ = signals.Set(ctx, "binance:my-strategy:BTC/USDT:USDT", "66f1c0ffee0123456789abcd")

	id, ok, err := signals.Get(ctx, "binance:my-strategy:BTC/USDT:USDT")
	fmt.Println(id, ok, err)
	_, ok, _ = signals.Get(ctx, "binance:my-strategy:ETH/USDT:USDT")
	fmt.Println("ETH cached:", ok)
	// Output:
	// 66f1c0ffee0123456789abcd true <nil>
	// ETH cached: false
}

// GetOrLoad is BaseMap's real use: read an id from the cache, and on a miss
// load it from the database and store it.
func ExampleMap_GetOrLoad() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	cache, _ := kv.New[string](store, "strategy_cache")

	queries := 0
	loadFromDB := func(context.Context) (string, error) {
		queries++
		return "66f1c0ffee0123456789abcd", nil
	}
	for range 3 {
		id, err := cache.GetOrLoad(ctx, "binance:my-strategy:BTCUSDT", loadFromDB)
		fmt.Println(id, err)
	}
	fmt.Println("database queries:", queries)
	// Output:
	// 66f1c0ffee0123456789abcd <nil>
	// 66f1c0ffee0123456789abcd <nil>
	// 66f1c0ffee0123456789abcd <nil>
	// database queries: 1
}

// Keys expire after the map's TTL. A manual clock drives expiry here without
// waiting; production stores use the real time.
func ExampleWithTTL() {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(clk))
	defer store.Close()
	candles, _ := kv.New[string](store, "candle_cache", kv.WithTTL(5*time.Minute))

	_ = candles.Set(ctx, "binance:BTCUSDT:1m:1767225600000", "id-1")
	_ = candles.SetWithTTL(ctx, "binance:BTCUSDT:1d:1767225600000", "id-2", kv.NoTTL)
	ttl, _, _ := candles.TTL(ctx, "binance:BTCUSDT:1m:1767225600000")
	fmt.Println("TTL:", ttl)

	clk.Advance(5 * time.Minute)
	_, ok, _ := candles.Get(ctx, "binance:BTCUSDT:1m:1767225600000")
	fmt.Println("1m candle after 5 minutes:", ok)
	n, _ := candles.Size(ctx)
	fmt.Println("size:", n)
	// Output:
	// TTL: 5m0s
	// 1m candle after 5 minutes: false
	// size: 1
}

// Iterate streams a namespace page by page; errors come in the loop.
func ExampleMap_Iterate() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	risk, _ := kv.New[string](store, "risk_cache")
	_ = risk.SetMany(ctx, []kv.Entry[string]{
		{Key: "binance:max-drawdown", Value: "id-a"},
		{Key: "binance:max-exposure", Value: "id-b"},
	})

	var lines []string
	for e, err := range risk.Iterate(ctx) {
		if err != nil {
			fmt.Println("error:", err)
			break
		}
		lines = append(lines, e.Key+" = "+e.Value)
	}
	slices.Sort(lines) // a pass has no defined order
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// binance:max-drawdown = id-a
	// binance:max-exposure = id-b
}

// Typed values other than strings are stored as JSON.
func ExampleNew_json() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	type Signal struct {
		Symbol string  `json:"symbol"`
		Price  float64 `json:"price"`
	}
	signals, _ := kv.New[Signal](store, "signal")
	_ = signals.Set(ctx, "s1", Signal{Symbol: "BTCUSDT", Price: 97000.5})
	s, _, _ := signals.Get(ctx, "s1")
	fmt.Printf("%+v\n", s)
	// Output:
	// {Symbol:BTCUSDT Price:97000.5}
}

// Bad input is refused with a typed error and nothing is written.
func ExampleErrInvalidTTL() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	m, _ := kv.New[string](store, "ns")
	_ = m.Set(ctx, "k", "kept")

	err := m.SetWithTTL(ctx, "k", "lost?", 0) // BaseMap deleted the key here
	fmt.Println(errors.Is(err, kv.ErrInvalidTTL))
	v, _, _ := m.Get(ctx, "k")
	fmt.Println(v)

	_, err = kv.New[string](store, "a:b")
	fmt.Println(errors.Is(err, kv.ErrInvalidNamespace))
	// Output:
	// true
	// kept
	// true
}

// A backtest writes to a bbolt file under its simulated clock. The file
// remembers that clock: the wall clock may not open it for writing (its
// sweep would delete every key of 2021), and a read-only inspection as of
// the file's own latest time sees the backtest's data and changes nothing.
func Example_backtestFile() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "backtest")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "backtest.db")

	sim := clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	store, err := bolt.Open(path, bolt.WithSimulatedClock(sim))
	if err != nil {
		panic(err)
	}
	candles, _ := kv.New[string](store, "candle_cache") // 5-minute TTL
	if err := candles.Set(ctx, "binance:BTCUSDT:1m:1609459200000", "29000.5"); err != nil {
		panic(err)
	}
	sim.Advance(time.Minute) // the next tick
	if err := store.Close(); err != nil {
		panic(err)
	}

	_, err = bolt.Open(path) // the wall clock, for writing
	fmt.Println(errors.Is(err, bolt.ErrClockMismatch))

	ro, err := bolt.Open(path, bolt.WithReadOnly(), bolt.WithFileTime())
	if err != nil {
		panic(err)
	}
	defer ro.Close()
	fmt.Println(ro.FileClock().Kind, ro.FileClock().Latest.UTC().Format(time.RFC3339))
	view, _ := kv.New[string](ro, "candle_cache")
	n, _ := view.Size(ctx)
	fmt.Println(n)
	fmt.Println(errors.Is(view.Set(ctx, "k", "v"), kv.ErrReadOnly))
	// Output:
	// true
	// simulated 2021-01-01T00:01:00Z
	// 1
	// true
}

// Two services sharing a store (two Maps here; two pods on one Redis in
// production) miss the same key at once: with WithLoadLease one of them
// loads it, the other waits for its value.
func ExampleWithLoadLease() {
	ctx := context.Background()
	store := memory.New() // keeps leases, as Redis does
	defer store.Close()

	var loads atomic.Int32
	load := func(context.Context) (string, error) {
		loads.Add(1)
		time.Sleep(10 * time.Millisecond) // the database
		return "66f1c0ffee0123456789abcd", nil
	}
	var wg sync.WaitGroup
	for range 2 {
		pod, err := kv.New[string](store, "signal_cache", kv.WithLoadLease(10*time.Second))
		if err != nil {
			panic(err)
		}
		defer pod.Close()
		wg.Go(func() {
			id, err := pod.GetOrLoad(ctx, "binance:my-strategy:BTC/USDT:USDT", load)
			fmt.Println(id, err)
		})
	}
	wg.Wait()
	fmt.Println("loads:", loads.Load())
	// Output:
	// 66f1c0ffee0123456789abcd <nil>
	// 66f1c0ffee0123456789abcd <nil>
	// loads: 1
}

// A near cache serves repeated reads of a key from memory, and drops the
// key when any client writes it.
func ExampleWithNearCache() {
	ctx := context.Background()
	store := memory.New() // reports changes, as Redis does through CLIENT TRACKING
	defer store.Close()

	signals, err := kv.New[string](store, "signal_cache", kv.WithNearCache(nearcache.Options{}))
	if err != nil {
		panic(err)
	}
	defer signals.Close()
	other, err := kv.New[string](store, "signal_cache") // another service
	if err != nil {
		panic(err)
	}

	_ = other.Set(ctx, "BTC", "id-1")
	for range 3 {
		id, _, _ := signals.Get(ctx, "BTC")
		fmt.Println(id)
	}
	_ = other.Set(ctx, "BTC", "id-2")
	id, _, _ := signals.Get(ctx, "BTC")
	fmt.Println(id)
	stats, _ := signals.NearCacheStats()
	fmt.Printf("served from memory: %d of 4\n", stats.Hits)
	// Output:
	// id-1
	// id-1
	// id-1
	// id-2
	// served from memory: 2 of 4
}

// Act once per signal, whichever pod sees it first: SetIfAbsent is true for
// one caller only, in every process that shares the store. Update counts
// attempts without losing one to a racing pod.
func ExampleMap_SetIfAbsent() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	seen, err := kv.New[string](store, "signals_seen", kv.WithTTL(time.Hour))
	if err != nil {
		panic(err)
	}
	for _, pod := range []string{"pod-a", "pod-b"} {
		first, err := seen.SetIfAbsent(ctx, "signal-42", pod)
		fmt.Println(pod, "acts:", first, err)
	}

	attempts, err := kv.New[int](store, "attempts", kv.WithTTL(time.Hour))
	if err != nil {
		panic(err)
	}
	for range 3 {
		n, _, err := attempts.Update(ctx, "order-7", func(cur int, found bool) (int, bool, error) {
			return cur + 1, true, nil // found is false the first time: cur is 0
		})
		fmt.Println("attempt", n, err)
	}
	swapped, err := attempts.CompareAndSwap(ctx, "order-7", 3, 0)
	fmt.Println("reset from 3:", swapped, err)
	v, ttl, ok, err := attempts.GetWithTTL(ctx, "order-7")
	fmt.Println(v, ttl > 59*time.Minute, ok, err)
	// Output:
	// pod-a acts: true <nil>
	// pod-b acts: false <nil>
	// attempt 1 <nil>
	// attempt 2 <nil>
	// attempt 3 <nil>
	// reset from 3: true <nil>
	// 0 true true <nil>
}
