package redis_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/redis"
)

// dropProxy is a TCP proxy in front of a Redis server that logs every
// command it hands to the server and, armed for a command name, closes the
// client's connection right after handing that command over: the server
// runs it, the client never gets its reply (a reply lost to a killed
// connection). The server's side of the connection stays open until the
// proxy closes, so that nothing the server was sent is discarded.
type dropProxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu    sync.Mutex
	armed map[string]int // command name -> drops left
	sent  map[string]int // command name -> commands handed to the server
	conns []net.Conn
}

func newDropProxy(t *testing.T, target string) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{target: target, ln: ln, armed: map[string]int{}, sent: map[string]int{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *dropProxy) addr() string { return p.ln.Addr().String() }

// arm makes the next command named name (lower case) lose its reply.
func (p *dropProxy) arm(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed[name]++
}

// count returns how many commands named name the server was handed since
// the last reset.
func (p *dropProxy) count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[name]
}

func (p *dropProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.sent)
	clear(p.armed)
}

func (p *dropProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		l := &link{}
		p.wg.Add(2)
		go p.forward(c, s, l)
		go p.back(s, c, l)
	}
}

// link is the state of one proxied connection.
type link struct {
	mu     sync.Mutex
	doomed bool // the client's side is to be dropped: no more replies
}

// forward hands the client's commands to the server one by one. A command
// whose reply is to be lost dooms the link before it reaches the server, so
// that no byte of its reply reaches the client.
func (p *dropProxy) forward(c, s net.Conn, l *link) {
	defer p.wg.Done()
	r := bufio.NewReader(c)
	for {
		raw, name, err := readCommand(r)
		if err != nil {
			c.Close()
			if errors.Is(err, io.EOF) {
				s.Close() // the client left: nothing is pending
			}
			return
		}
		p.mu.Lock()
		p.sent[name]++
		drop := p.armed[name] > 0
		if drop {
			p.armed[name]--
		}
		p.mu.Unlock()
		if drop {
			l.mu.Lock()
			l.doomed = true
			l.mu.Unlock()
		}
		if _, err := s.Write(raw); err != nil {
			c.Close()
			return
		}
		if drop {
			c.Close() // the server has the command; its reply is lost
			return
		}
	}
}

// back copies the server's replies to the client while it is there, and
// keeps reading the server's side until it closes.
func (p *dropProxy) back(s, c net.Conn, l *link) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	gone := false
	for {
		n, err := s.Read(buf)
		l.mu.Lock()
		gone = gone || l.doomed
		if n > 0 && !gone {
			if _, werr := c.Write(buf[:n]); werr != nil {
				gone = true
			}
		}
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (p *dropProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// readCommand reads one command of the RESP protocol (an array of bulk
// strings, or an inline command) and returns its bytes and its lower-case
// name.
func readCommand(r *bufio.Reader) ([]byte, string, error) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, "", err
	}
	raw := append([]byte(nil), line...)
	if line[0] != '*' {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			return raw, "", nil
		}
		return raw, strings.ToLower(f[0]), nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(line[1:])))
	if err != nil {
		return nil, "", fmt.Errorf("bad array header %q", line)
	}
	name := ""
	for i := range n {
		hdr, err := r.ReadBytes('\n')
		if err != nil {
			return nil, "", err
		}
		raw = append(raw, hdr...)
		size, err := strconv.Atoi(strings.TrimSpace(string(hdr[1:])))
		if err != nil || hdr[0] != '$' {
			return nil, "", fmt.Errorf("bad bulk header %q", hdr)
		}
		body := make([]byte, size+2)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, "", err
		}
		raw = append(raw, body...)
		if i == 0 {
			name = strings.ToLower(string(body[:size]))
		}
	}
	return raw, name, nil
}

// noRetryServers returns the servers the no-retry tests run on: miniredis,
// and a private redis-server under KV_REDIS_PRIVATE=1.
func noRetryServers(t *testing.T) map[string]string {
	t.Helper()
	s := miniredis.RunT(t)
	servers := map[string]string{"miniredis": s.Addr()}
	if os.Getenv("KV_REDIS_PRIVATE") == "1" {
		servers["redis-server"] = startServer(t, false, nil).addr()
	}
	return servers
}

// TestNoRetryProxySeesRetries checks the test below can fail: a plain
// go-redis SET with the client's default Options, whose reply the proxy
// drops, is sent again by go-redis, and the proxy counts it twice. If this
// fails, go-redis no longer retries by default and TestWritesNeverResent
// proves nothing more.
func TestNoRetryProxySeesRetries(t *testing.T) {
	for name, addr := range noRetryServers(t) {
		t.Run(name, func(t *testing.T) {
			p := newDropProxy(t, addr)
			c := goredis.NewClient(&goredis.Options{Addr: p.addr()}) // default Options: MaxRetries 3
			t.Cleanup(func() { _ = c.Close() })
			ctx := context.Background()
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			p.reset()
			p.arm("set")
			err := c.Set(ctx, "plain", "v", 0).Err()
			if got := p.count("set"); err != nil || got != 2 {
				t.Errorf("go-redis Set whose reply was lost = %v, sent %d times; want nil, 2 (retried by default)", err, got)
			}
		})
	}
}

// TestWritesNeverResent: every write the Backend sends goes out once, with
// the client's default Options (MaxRetries 3), even when its reply is lost
// to a killed connection; the caller gets an error matching
// kv.ErrUnknownOutcome (a batch: its keys in BatchError.Unknown), and the
// write is on the server. Counted by a proxy that drops the connection
// right after handing the command to the server. Without NoRetry, go-redis
// sends the command again (TestNoRetryProxySeesRetries).
func TestWritesNeverResent(t *testing.T) {
	type env struct {
		ctx    context.Context
		b      *redis.Backend
		direct *goredis.Client // to the server, not through the proxy
		l      backend.Lease   // taken by setup, for the lease cases
	}
	acquire := func(t *testing.T, e *env, keys ...string) backend.Lease {
		t.Helper()
		held, l, err := e.b.Capabilities().AcquireLeases(e.ctx, keys, time.Hour)
		if err != nil || l == nil || !held[0] {
			t.Fatalf("AcquireLeases(%q) = %v, %v, %v", keys, held, l, err)
		}
		return l
	}
	get := func(e *env, key string) string {
		v, err := e.direct.Get(e.ctx, key).Result()
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return v
	}
	pttl := func(e *env, key string) time.Duration {
		d, _ := e.direct.PTTL(e.ctx, key).Result()
		return d
	}
	cases := []struct {
		name    string
		cmd     string // the command whose reply is lost
		opts    []redis.Option
		setup   func(t *testing.T, e *env)
		do      func(e *env) error
		unknown []string // a batch: the keys in BatchError.Unknown
		applied func(e *env) bool
	}{
		{
			name: "Set", cmd: "set",
			do: func(e *env) error {
				return e.b.MSet(e.ctx, []backend.Entry{{Key: "ns:k", Value: []byte("v"), TTL: time.Hour}})
			},
			applied: func(e *env) bool { return get(e, "ns:k") == "v" },
		},
		{
			name: "SetAutoPipelined", cmd: "set", opts: []redis.Option{redis.WithAutoPipeline()},
			do:      func(e *env) error { return e.b.SetAutoForTest(e.ctx, "ns:k", []byte("v"), backend.NoTTL) },
			applied: func(e *env) bool { return get(e, "ns:k") == "v" },
		},
		{
			name: "SetMany", cmd: "set",
			do: func(e *env) error {
				return e.b.MSet(e.ctx, []backend.Entry{
					{Key: "ns:a", Value: []byte("1"), TTL: time.Hour},
					{Key: "ns:b", Value: []byte("2"), TTL: time.Hour},
					{Key: "ns:c", Value: []byte("3"), TTL: time.Hour},
				})
			},
			unknown: []string{"ns:a", "ns:b", "ns:c"},
			applied: func(e *env) bool { return get(e, "ns:a") == "1" },
		},
		{
			name: "Delete", cmd: "unlink",
			setup: func(t *testing.T, e *env) { e.direct.Set(e.ctx, "ns:k", "v", 0) },
			do:    func(e *env) error { return e.b.Delete(e.ctx, []string{"ns:k"}) },
			applied: func(e *env) bool {
				n, err := e.direct.Exists(e.ctx, "ns:k").Result()
				return err == nil && n == 0
			},
		},
		{
			name: "DeleteMany", cmd: "unlink",
			setup: func(t *testing.T, e *env) { e.direct.Set(e.ctx, "ns:a", "v", 0); e.direct.Set(e.ctx, "ns:b", "v", 0) },
			do:    func(e *env) error { return e.b.Delete(e.ctx, []string{"ns:a", "ns:b"}) },
			applied: func(e *env) bool {
				n, err := e.direct.Exists(e.ctx, "ns:a", "ns:b").Result()
				return err == nil && n == 0
			},
		},
		{
			name: "Expire", cmd: "exec",
			setup: func(t *testing.T, e *env) { e.direct.Set(e.ctx, "ns:k", "v", 0) },
			do: func(e *env) error {
				_, err := e.b.Expire(e.ctx, "ns:k", time.Hour)
				return err
			},
			applied: func(e *env) bool { return pttl(e, "ns:k") > 0 },
		},
		{
			name: "ExpireNoTTL", cmd: "exec",
			setup: func(t *testing.T, e *env) { e.direct.Set(e.ctx, "ns:k", "v", time.Hour) },
			do: func(e *env) error {
				_, err := e.b.Expire(e.ctx, "ns:k", backend.NoTTL)
				return err
			},
			applied: func(e *env) bool { return pttl(e, "ns:k") == -1 },
		},
		{
			name: "Clear", cmd: "unlink",
			setup: func(t *testing.T, e *env) { e.direct.Set(e.ctx, "ns:a", "v", 0); e.direct.Set(e.ctx, "ns:b", "v", 0) },
			do:    func(e *env) error { return backend.DeletePrefix(e.ctx, e.b, "ns:", 100) },
			applied: func(e *env) bool {
				n, err := e.direct.Exists(e.ctx, "ns:a", "ns:b").Result()
				return err == nil && n == 0
			},
		},
		{
			name: "AcquireLeases", cmd: "set",
			do: func(e *env) error {
				_, _, err := e.b.Capabilities().AcquireLeases(e.ctx, []string{"ns:k"}, time.Hour)
				return err
			},
			applied: func(e *env) bool { return pttl(e, e.b.LeaseKeyForTest("ns:k")) > 0 },
		},
		{
			name: "RenewLease", cmd: "evalsha",
			setup: func(t *testing.T, e *env) {
				e.l = acquire(t, e, "ns:k")
				if err := e.l.Renew(e.ctx, time.Minute); err != nil { // loads the script
					t.Fatal(err)
				}
			},
			do:      func(e *env) error { return e.l.Renew(e.ctx, 10*time.Hour) },
			applied: func(e *env) bool { return pttl(e, e.b.LeaseKeyForTest("ns:k")) > 5*time.Hour },
		},
		{
			name: "ReleaseLease", cmd: "evalsha",
			setup: func(t *testing.T, e *env) {
				if err := acquire(t, e, "ns:other").Release(e.ctx); err != nil { // loads the script
					t.Fatal(err)
				}
				e.l = acquire(t, e, "ns:k")
			},
			do: func(e *env) error { return e.l.Release(e.ctx) },
			applied: func(e *env) bool {
				n, err := e.direct.Exists(e.ctx, e.b.LeaseKeyForTest("ns:k")).Result()
				return err == nil && n == 0
			},
		},
		{
			name: "StoreLeased", cmd: "evalsha",
			setup: func(t *testing.T, e *env) {
				l := acquire(t, e, "ns:other")
				if _, err := l.Store(e.ctx, []backend.GuardedEntry{{Entry: backend.Entry{Key: "ns:other", Value: []byte("o"), TTL: time.Hour}}}); err != nil { // loads the script
					t.Fatal(err)
				}
				e.l = acquire(t, e, "ns:k", "ns:j")
			},
			do: func(e *env) error {
				_, err := e.l.Store(e.ctx, []backend.GuardedEntry{{Entry: backend.Entry{Key: "ns:k", Value: []byte("loaded"), TTL: time.Hour}}})
				return err
			},
			applied: func(e *env) bool { return get(e, "ns:k") == "loaded" },
		},
		{
			name: "StoreLeasedMany", cmd: "evalsha",
			setup: func(t *testing.T, e *env) {
				l := acquire(t, e, "ns:other")
				if _, err := l.Store(e.ctx, []backend.GuardedEntry{{Entry: backend.Entry{Key: "ns:other", Value: []byte("o"), TTL: time.Hour}}}); err != nil { // loads the script
					t.Fatal(err)
				}
				e.l = acquire(t, e, "ns:k", "ns:j")
			},
			do: func(e *env) error {
				_, err := e.l.Store(e.ctx, []backend.GuardedEntry{
					{Entry: backend.Entry{Key: "ns:k", Value: []byte("loaded"), TTL: time.Hour}},
					{Entry: backend.Entry{Key: "ns:j", Value: []byte("loaded"), TTL: time.Hour}},
				})
				return err
			},
			unknown: []string{"ns:k", "ns:j"},
			applied: func(e *env) bool { return get(e, "ns:k") == "loaded" },
		},
	}
	for server, addr := range noRetryServers(t) {
		for _, tc := range cases {
			t.Run(server+"/"+tc.name, func(t *testing.T) {
				p := newDropProxy(t, addr)
				c := goredis.NewClient(&goredis.Options{Addr: p.addr()}) // default Options: MaxRetries 3
				t.Cleanup(func() { _ = c.Close() })
				direct := goredis.NewClient(&goredis.Options{Addr: addr})
				t.Cleanup(func() { _ = direct.Close() })
				ctx := context.Background()
				if err := direct.FlushAll(ctx).Err(); err != nil { // a server of this test's own
					t.Fatal(err)
				}
				e := &env{ctx: ctx, b: mustRedis(t, c, tc.opts...), direct: direct}
				if tc.setup != nil {
					tc.setup(t, e)
				}
				p.reset()
				p.arm(tc.cmd)
				err := tc.do(e)
				if !errors.Is(err, backend.ErrUnknownOutcome) {
					t.Errorf("%s whose reply was lost = %v; want an error matching ErrUnknownOutcome", tc.name, err)
				}
				var be *backend.BatchError
				switch {
				case tc.unknown != nil && !errors.As(err, &be):
					t.Errorf("%s error %v is not a *BatchError", tc.name, err)
				case tc.unknown != nil && (len(be.Unknown) != len(tc.unknown) || len(be.Failed) != 0 || len(be.Written) != 0):
					t.Errorf("%s BatchError = written %q, failed %q, unknown %q; want unknown %q", tc.name, be.Written, be.Failed, be.Unknown, tc.unknown)
				}
				if got := p.count(tc.cmd); got != 1 {
					t.Errorf("%s: %s sent %d times; want once (never re-sent)", tc.name, strings.ToUpper(tc.cmd), got)
				}
				// The write reached the server: its outcome was unknown,
				// not "not written". Polled: the proxy handed it over as
				// the client saw its connection end.
				deadline := time.Now().Add(10 * time.Second)
				for !tc.applied(e) {
					if time.Now().After(deadline) {
						t.Fatalf("%s: the write whose reply was lost is not on the server", tc.name)
					}
					time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
				}
			})
		}
	}
}
