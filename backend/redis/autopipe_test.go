package redis_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
)

// batchHook records what a client sends: the command names of each
// pipeline, and how many commands went out alone.
type batchHook struct {
	mu      sync.Mutex
	batches [][]string
	single  int
}

func (h *batchHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *batchHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.mu.Lock()
		h.single++
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *batchHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		h.mu.Lock()
		h.batches = append(h.batches, names)
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// mixed reports whether a pipeline held both a GET and a SET, and how many
// GETs and SETs went out in pipelines (a new connection's handshake is one
// too).
func (h *batchHook) mixed() (bool, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	found, n := false, 0
	for _, b := range h.batches {
		var get, set bool
		for _, name := range b {
			get = get || name == "get"
			set = set || name == "set"
			if name == "get" || name == "set" {
				n++
			}
		}
		found = found || get && set
	}
	return found, n
}

// pipeServers returns miniredis and, when KV_REDIS_ADDR is set, that server.
func pipeServers(t *testing.T) map[string]string {
	t.Helper()
	servers := map[string]string{"miniredis": miniredis.RunT(t).Addr()}
	if addr := os.Getenv("KV_REDIS_ADDR"); addr != "" {
		servers["redis-server"] = addr
	}
	return servers
}

// hookedClient returns a client of addr with default Options and a
// batchHook, closed at the end of the test.
func hookedClient(t *testing.T, addr string) (*goredis.Client, *batchHook) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	h := &batchHook{}
	c.AddHook(h)
	return c, h
}

type (
	getNR struct{ *goredis.StringCmd }
	setNR struct{ *goredis.StatusCmd }
)

func (getNR) NoRetry() bool { return true }
func (setNR) NoRetry() bool { return true }

// TestAutoPipelinerPinned pins the behaviour of go-redis's experimental
// auto-pipeliner (v9.23) that the Backend relies on, so that an upgrade
// that changes it fails here: commands submitted to the client's
// AsyncAutoPipeline() without waiting go out in pipelines (the
// ProcessPipelineHook sees them, none goes out alone), and NoRetry GETs and
// SETs share one pipeline (a batch mixing retry policies would be split
// into pipelines sent one after the other: the Backend makes every command
// it sends there NoRetry for that reason).
func TestAutoPipelinerPinned(t *testing.T) {
	for name, addr := range pipeServers(t) {
		t.Run(name, func(t *testing.T) {
			c, h := hookedClient(t, addr)
			ap, err := c.AsyncAutoPipeline()
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			const n = 200
			futures := make([]goredis.AutoFuture, 0, n)
			for i := range n {
				key := "kvtest_pin:" + t.Name()
				if i%2 == 0 {
					futures = append(futures, ap.Submit(ctx, setNR{goredis.NewStatusCmd(ctx, "set", key, "v")}))
				} else {
					futures = append(futures, ap.Submit(ctx, getNR{goredis.NewStringCmd(ctx, "get", key)}))
				}
			}
			for i, f := range futures {
				if err := f.Wait(); err != nil {
					t.Fatalf("command %d: %v", i, err)
				}
			}
			_ = c.Del(ctx, "kvtest_pin:"+t.Name())
			mixed, pipelined := h.mixed()
			if !mixed || pipelined != n {
				t.Errorf("%d NoRetry GETs and SETs submitted at once: a pipeline with both %v, %d pipelined; want true, %d ",
					n, mixed, pipelined, n)
			}
		})
	}
}

// TestAutoPipelinerNoRetryOnce pins that the auto-pipeliner sends a NoRetry
// command once when its reply is lost (the command fails), where it sends
// a plain one again: the Backend's writes rely on the first, and its reads
// through the auto-pipeliner, NoRetry too, are sent again by the Backend
// itself (TestAutoPipelinedGetRetried).
func TestAutoPipelinerNoRetryOnce(t *testing.T) {
	for name, addr := range noRetryServers(t) {
		t.Run(name, func(t *testing.T) {
			p := newDropProxy(t, addr)
			c := goredis.NewClient(&goredis.Options{Addr: p.addr()}) // MaxRetries 3
			t.Cleanup(func() { _ = c.Close() })
			ap, err := c.AsyncAutoPipeline()
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for _, tc := range []struct {
				name    string
				cmd     goredis.Cmder
				wantErr bool
				want    int
			}{
				{"NoRetry", setNR{goredis.NewStatusCmd(ctx, "set", "kvtest_pin1", "v")}, true, 1},
				{"plain", goredis.NewStatusCmd(ctx, "set", "kvtest_pin1", "v"), false, 2},
			} {
				p.reset()
				p.arm("set")
				err := ap.Submit(ctx, tc.cmd).Wait()
				if got := p.count("set"); (err != nil) != tc.wantErr || got != tc.want {
					t.Errorf("%s SET whose reply was lost: error %v, sent %d times; want error %v, %d", tc.name, err, got, tc.wantErr, tc.want)
				}
			}
			_ = c.Del(ctx, "kvtest_pin1")
		})
	}
}

// TestAutoPipelinedGetRetried: a Get sent through the auto-pipeliner (as a
// NoRetry command) whose reply is lost is sent again on the client's direct
// path, and returns the value: reads keep the client's retries.
func TestAutoPipelinedGetRetried(t *testing.T) {
	for name, addr := range noRetryServers(t) {
		t.Run(name, func(t *testing.T) {
			p := newDropProxy(t, addr)
			c := goredis.NewClient(&goredis.Options{Addr: p.addr()})
			t.Cleanup(func() { _ = c.Close() })
			b := mustRedis(t, c)
			ctx := context.Background()
			if err := b.MSet(ctx, []backend.Entry{{Key: "ns:k", Value: []byte("v"), TTL: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			p.reset()
			p.arm("get")
			v, err := b.GetAutoForTest(ctx, "ns:k")
			if got := p.count("get"); err != nil || string(v) != "v" || got != 2 {
				t.Errorf("auto-pipelined Get whose reply was lost = %q, %v, sent %d times; want \"v\", nil, 2", v, err, got)
			}
			_ = b.Delete(ctx, []string{"ns:k"})
		})
	}
}

// TestConcurrentCallsShareBatches: with the default options (and
// WithAutoPipeline), concurrent single-key Sets and Gets go out together in
// the auto-pipeliner's pipelines, a GET and a SET in one; WithoutAutoPipeline
// sends each alone.
func TestConcurrentCallsShareBatches(t *testing.T) {
	for name, addr := range pipeServers(t) {
		for _, tc := range []struct {
			name string
			opts []redis.Option
			want bool
		}{
			{"default", nil, true},
			{"WithAutoPipeline", []redis.Option{redis.WithAutoPipeline()}, true},
			{"WithoutAutoPipeline", []redis.Option{redis.WithoutAutoPipeline()}, false},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				c, h := hookedClient(t, addr)
				b := mustRedis(t, c, tc.opts...)
				ctx := context.Background()
				key := "kvtest_share:" + t.Name()
				t.Cleanup(func() { _ = c.Del(context.Background(), key) })
				deadline := time.Now().Add(10 * time.Second)
				const workers, minOps = 20, 50
				var wg sync.WaitGroup
				for w := range workers {
					wg.Go(func() {
						for i := 0; i < minOps || tc.want && time.Now().Before(deadline); i++ {
							if found, _ := h.mixed(); found {
								return
							}
							var err error
							if (w+i)%2 == 0 {
								err = b.MSet(ctx, []backend.Entry{{Key: key, Value: []byte("v"), TTL: time.Hour}})
							} else {
								_, err = b.Get(ctx, key)
							}
							if err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				found, pipelined := h.mixed()
				if found != tc.want || !tc.want && pipelined != 0 {
					t.Errorf("a pipeline held both a GET and a SET: %v (%d commands pipelined); want %v", found, pipelined, tc.want)
				}
			})
		}
	}
}
