// Command quickstart is a tour of kv on the in-memory backend, no server
// needed: the BaseMap cache services of backtest-kit with their composite
// keys, set, get, GetOrLoad, TTL expiry, iteration, size and clear.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	// A manual clock lets the tour show expiry without waiting.
	clk := clock.NewManual(time.Now())
	store := memory.New(memory.WithClock(clk))
	defer store.Close()

	// The cache services of backtest-kit: each a namespace holding Mongo ids
	// under composite keys; BaseMap's services never expire keys (-1).
	signals, err := kv.New[string](store, "signal_cache", kv.WithTTL(kv.NoTTL))
	if err != nil {
		return err
	}
	schedules, err := kv.New[string](store, "schedule_cache", kv.WithTTL(kv.NoTTL))
	if err != nil {
		return err
	}
	candles, err := kv.New[string](store, "candle_cache") // default TTL: 5 minutes
	if err != nil {
		return err
	}

	fmt.Println("== set and get (signal_cache, key exchange:strategy:symbol)")
	key := "binance:trend-follower:BTC/USDT:USDT"
	if err := signals.Set(ctx, key, "66f1c0ffee0123456789abcd"); err != nil {
		return err
	}
	id, ok, err := signals.Get(ctx, key)
	if err != nil {
		return err
	}
	fmt.Printf("get %s -> %s (found %v)\n", key, id, ok)
	_, ok, _ = signals.Get(ctx, "binance:trend-follower:ETH/USDT:USDT")
	fmt.Printf("get a key never set -> found %v\n", ok)

	fmt.Println("\n== GetOrLoad (schedule_cache): the database is asked once")
	queries := 0
	load := func(context.Context) (string, error) {
		queries++
		return "66f1c0ffee00000000000042", nil
	}
	for range 3 {
		id, err := schedules.GetOrLoad(ctx, "binance:trend-follower:BTC/USDT:USDT", load)
		if err != nil {
			return err
		}
		fmt.Printf("GetOrLoad -> %s\n", id)
	}
	fmt.Printf("database queries: %d\n", queries)

	fmt.Println("\n== TTL expiry (candle_cache, key exchange:symbol:interval:timestamp)")
	for i := range 3 {
		k := fmt.Sprintf("binance:BTCUSDT:1m:%d", 1767225600000+i*60000)
		if err := candles.Set(ctx, k, fmt.Sprintf("candle-id-%d", i)); err != nil {
			return err
		}
	}
	if err := candles.SetWithTTL(ctx, "binance:BTCUSDT:1d:1767225600000", "candle-id-day", kv.NoTTL); err != nil {
		return err
	}
	ttl, _, _ := candles.TTL(ctx, "binance:BTCUSDT:1m:1767225600000")
	n, _ := candles.Size(ctx)
	fmt.Printf("size %d, TTL of a 1m candle %v\n", n, ttl.Round(time.Second))
	clk.Advance(5*time.Minute + time.Second)
	n, _ = candles.Size(ctx)
	fmt.Printf("5 minutes later: size %d (the daily candle was set with kv.NoTTL)\n", n)

	fmt.Println("\n== iteration (signal_cache)")
	for _, sym := range []string{"ETH/USDT:USDT", "SOL/USDT:USDT"} {
		if err := signals.Set(ctx, "binance:trend-follower:"+sym, "id-"+sym); err != nil {
			return err
		}
	}
	var lines []string
	for e, err := range signals.Iterate(ctx) {
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("  %s = %s", e.Key, e.Value))
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}

	fmt.Println("\n== size and clear: clear touches only its namespace")
	ns, _ := signals.Size(ctx)
	ss, _ := schedules.Size(ctx)
	fmt.Printf("signal_cache %d keys, schedule_cache %d keys\n", ns, ss)
	if err := signals.Clear(ctx); err != nil {
		return err
	}
	ns, _ = signals.Size(ctx)
	ss, _ = schedules.Size(ctx)
	fmt.Printf("after signal_cache.Clear: signal_cache %d keys, schedule_cache %d keys\n", ns, ss)

	fmt.Fprintln(os.Stderr, "\nok")
	return nil
}
