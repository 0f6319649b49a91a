package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/kvurl"
	"github.com/kvmap/kv/transfer"
)

// demo is a self-contained tour on a bolt file in a temporary directory.
func (c *cmdCtx) demo(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "kv-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "backtest.db")
	out := c.stdout
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if c.f.json { // one JSON object per line of the tour
		enc := json.NewEncoder(out)
		say = func(format string, args ...any) {
			for _, line := range strings.Split(strings.TrimPrefix(fmt.Sprintf(format, args...), "\n"), "\n") {
				if err := enc.Encode(map[string]string{"line": line}); err != nil {
					return // stdout is gone; the tour goes on and ends
				}
			}
		}
	}

	// A manual clock makes expiry visible without waiting, as a backtest
	// drives expiry by its simulated time.
	clk := clock.NewManual(time.Date(2026, 1, 5, 9, 30, 0, 0, time.UTC))
	store, err := bolt.Open(path, bolt.WithSimulatedClock(clk))
	if err != nil {
		return err
	}
	defer store.Close()
	say("kv demo: a bolt file at %s, no server", path)

	services := map[string]*kv.Map[string]{}
	for _, ns := range []string{"signal_cache", "schedule_cache", "strategy_cache", "candle_cache"} {
		opts := []kv.Option{kv.WithTTL(kv.NoTTL)} // BaseMap's services use -1
		if ns == "candle_cache" {
			opts = nil // the default TTL, 5 minutes
		}
		if services[ns], err = kv.New[string](store, ns, opts...); err != nil {
			return err
		}
	}

	say("\n== set and get: BaseMap's cache services, keys exchange:strategy:symbol")
	for i, sym := range []string{"BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"} {
		key := "binance:trend-follower:" + sym
		id := fmt.Sprintf("66f1c0ffee01234567890%03d", i)
		if err := services["signal_cache"].Set(ctx, key, id); err != nil {
			return err
		}
		say("set signal_cache %s = %s", key, id)
	}
	id, ok, err := services["signal_cache"].Get(ctx, "binance:trend-follower:BTC/USDT:USDT")
	if err != nil {
		return err
	}
	say("get signal_cache binance:trend-follower:BTC/USDT:USDT -> %s (found %v)", id, ok)
	_, ok, _ = services["signal_cache"].Get(ctx, "binance:trend-follower:XRP/USDT:USDT")
	say("get a key never set -> found %v", ok)

	say("\n== GetOrLoad (schedule_cache): on a miss, load from the database once, then cache")
	queries := 0
	for range 3 {
		id, err := services["schedule_cache"].GetOrLoad(ctx, "binance:trend-follower:BTC/USDT:USDT", func(context.Context) (string, error) {
			queries++
			return "66f1c0ffee00000000000042", nil
		})
		if err != nil {
			return err
		}
		say("GetOrLoad -> %s", id)
	}
	say("database queries: %d", queries)

	say("\n== TTL expiry (candle_cache, key exchange:symbol:interval:timestamp, TTL 5m)")
	for i := range 3 {
		k := fmt.Sprintf("binance:BTCUSDT:1m:%d", 1767605400000+i*60000)
		if err := services["candle_cache"].Set(ctx, k, fmt.Sprintf("candle-%d", i)); err != nil {
			return err
		}
	}
	if err := services["candle_cache"].SetWithTTL(ctx, "binance:BTCUSDT:1d:1767571200000", "candle-day", kv.NoTTL); err != nil {
		return err
	}
	n, _ := services["candle_cache"].Size(ctx)
	ttl, _, _ := services["candle_cache"].TTL(ctx, "binance:BTCUSDT:1m:1767605400000")
	say("size %d, TTL of a 1m candle %v", n, ttl)
	clk.Advance(5*time.Minute + time.Second)
	n, _ = services["candle_cache"].Size(ctx)
	say("the backtest clock moves 5m1s: size %d (the daily candle has no TTL)", n)

	say("\n== iteration (signal_cache), page by page")
	var lines []string
	for e, err := range services["signal_cache"].Iterate(ctx) {
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("  %s = %s", e.Key, e.Value))
	}
	slices.Sort(lines)
	for _, l := range lines {
		say("%s", l)
	}

	say("\n== copy signal_cache into a second backend (mem://), TTLs kept")
	dst, err := kvurl.Open("mem://", nil)
	if err != nil {
		return err
	}
	defer dst.Close()
	res, err := transfer.Copy(ctx, dst, store, "signal_cache", transfer.Options{})
	if err != nil {
		return err
	}
	copyMap, _ := kv.New[string](dst, "signal_cache")
	cn, _ := copyMap.Size(ctx)
	say("copied %s; the copy holds %d", plural(res.Keys, "key"), cn)

	say("\n== size and clear: clear touches only its own namespace")
	sn, _ := services["signal_cache"].Size(ctx)
	hn, _ := services["schedule_cache"].Size(ctx)
	say("signal_cache %d keys, schedule_cache %d keys", sn, hn)
	if err := services["signal_cache"].Clear(ctx); err != nil {
		return err
	}
	sn, _ = services["signal_cache"].Size(ctx)
	hn, _ = services["schedule_cache"].Size(ctx)
	say("after clear of signal_cache: signal_cache %d keys, schedule_cache %d keys", sn, hn)
	say("\ndone; the temporary directory is removed")
	return nil
}
