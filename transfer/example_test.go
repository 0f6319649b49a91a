package transfer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/transfer"
)

// Copy takes a snapshot of a namespace from one backend into another: here
// from memory (production would be Redis) into a bolt file for an offline
// backtest, without TTLs so that the snapshot does not expire before it is
// used.
func ExampleCopy() {
	ctx := context.Background()
	prod := memory.New() // redis.New(client) in production
	defer prod.Close()
	signals, _ := kv.New[string](prod, "signal_cache")
	_ = signals.Set(ctx, "binance:trend:BTC/USDT:USDT", "66f1c0ffee0123456789abcd")
	_ = signals.Set(ctx, "binance:trend:ETH/USDT:USDT", "66f1c0ffee0123456789abce")

	dir, _ := os.MkdirTemp("", "snapshot")
	defer os.RemoveAll(dir)
	snapshot, err := bolt.Open(filepath.Join(dir, "backtest.db"))
	if err != nil {
		panic(err)
	}
	defer snapshot.Close()

	res, err := transfer.Copy(ctx, snapshot, prod, "signal_cache", transfer.Options{DropTTL: true})
	fmt.Println("copied", res.Keys, err)

	offline, _ := kv.New[string](snapshot, "signal_cache")
	id, _, _ := offline.Get(ctx, "binance:trend:BTC/USDT:USDT")
	ttl, _, _ := offline.TTL(ctx, "binance:trend:BTC/USDT:USDT")
	fmt.Println(id, ttl == kv.NoTTL)
	// Output:
	// copied 2 <nil>
	// 66f1c0ffee0123456789abcd true
}
