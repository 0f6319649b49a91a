package redis_test

import (
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend/redis"
	"math/rand/v2"
	"net"
	"sync"
	"testing"

	"github.com/kvmap/kv/conformance"
)

// proxy is a TCP proxy between a client and a Redis server that injects the
// faults of conformance.Faults below the client: Fail refuses new
// connections and drops open ones, Stall holds every byte in both directions
// until Heal, and Flaky resets a connection in the middle of one reply in
// eight.
type proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu    sync.Mutex
	mode  int
	gate  chan struct{} // closed unless stalled
	conns map[net.Conn]struct{}
	rnd   *rand.Rand
}

// Fault modes of the proxy.
const (
	proxyOK = iota
	proxyFail
	proxyStall
	proxyFlaky
)

var _ conformance.Faults = (*proxy)(nil)

// newProxy starts a proxy to target on a free loopback port; it stops when
// the test ends.
func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &proxy{target: target, ln: ln, gate: make(chan struct{}), conns: map[net.Conn]struct{}{},
		rnd: rand.New(rand.NewPCG(1, 2))}
	close(p.gate)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		failing := p.mode == proxyFail
		p.mu.Unlock()
		if failing {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c, s)
		p.wg.Add(2)
		go p.pipe(c, s, false)
		go p.pipe(s, c, true)
	}
}

func (p *proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

// drop closes a pair of connections.
func (p *proxy) drop(a, b net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range []net.Conn{a, b} {
		if _, ok := p.conns[c]; ok {
			delete(p.conns, c)
			c.Close()
		}
	}
}

// pipe copies src to dst through the faults; reply marks the direction from
// the server.
func (p *proxy) pipe(src, dst net.Conn, reply bool) {
	defer p.wg.Done()
	defer p.drop(src, dst)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate, mode := p.gate, p.mode
			cut := reply && mode == proxyFlaky && p.rnd.IntN(8) == 0
			p.mu.Unlock()
			<-gate // stalled: hold the bytes until Heal or close
			p.mu.Lock()
			_, open := p.conns[src]
			mode = p.mode
			p.mu.Unlock()
			if !open || mode == proxyFail {
				return
			}
			if cut { // reset mid-reply: part of it, then the connection ends
				_, _ = dst.Write(buf[:n/2]) // the connection is dropped either way
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // a reset, not an orderly close
				}
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF, a reset, or a close by drop
			return
		}
	}
}

func (p *proxy) set(mode int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if mode == proxyStall && p.mode != proxyStall {
		p.gate = make(chan struct{})
	}
	if mode != proxyStall && p.mode == proxyStall {
		close(p.gate)
	}
	p.mode = mode
	if mode == proxyFail {
		for c := range p.conns {
			c.Close()
			delete(p.conns, c)
		}
	}
}

func (p *proxy) Fail()  { p.set(proxyFail) }
func (p *proxy) Stall() { p.set(proxyStall) }
func (p *proxy) Flaky() { p.set(proxyFlaky) }
func (p *proxy) Heal()  { p.set(proxyOK) }

func (p *proxy) close() {
	p.ln.Close()
	p.set(proxyFail) // drops every connection and opens the gate
	p.wg.Wait()
}

// throughProxy returns a Store whose client reaches addr through a new
// proxy, and the proxy as its Faults. The client retries nothing, so that a
// fault reaches the Backend as the first attempt saw it.
func throughProxy(t conformance.T, addr string, advance func(time.Duration), opts ...redis.Option) (conformance.Store, conformance.Faults) {
	tb, ok := t.(testing.TB)
	if !ok {
		t.Fatalf("throughProxy needs a testing.TB")
	}
	p := newProxy(tb, addr)
	c := goredis.NewClient(&goredis.Options{Addr: p.addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	b, err := redis.New(c, opts...)
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	return conformance.Store{Backend: b, Advance: advance}, p
}
