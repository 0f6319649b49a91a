package redis_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/nearcache"
)

// lossBound is how soon a broken tracking connection must show: the loss
// is reported as the connection's end is read, within milliseconds; the
// bound is generous for a loaded CI machine, and far below the 10 s the
// tests' client waits for a stalled handshake (the old watch reported the
// loss only after its own reconnect gave up).
const lossBound = 2 * time.Second

// holdProxy is a TCP proxy in front of a Redis server that, once holding,
// accepts new connections and queues them without a byte in either
// direction (a proxy whose backend is restarting), while the connections
// it already forwards keep working.
type holdProxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu      sync.Mutex
	holding bool
	held    []net.Conn
	conns   map[net.Conn]struct{}
}

func newHoldProxy(t *testing.T, target string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *holdProxy) addr() string { return p.ln.Addr().String() }

func (p *holdProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		if p.holding {
			p.held = append(p.held, c)
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(c, s) })
		p.wg.Go(func() { p.pipe(s, c) })
	}
}

func (p *holdProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src) // ends with either side
	dst.Close()
	src.Close()
}

// hold makes the proxy queue the connections it accepts from now on.
func (p *holdProxy) hold() {
	p.mu.Lock()
	p.holding = true
	p.mu.Unlock()
}

// heldCount returns how many connections are queued.
func (p *holdProxy) heldCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}

func (p *holdProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.held {
		c.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// awaitStats polls m's near cache counters until cond holds, failing after
// 10 s, and returns how long that took.
func awaitStats(t *testing.T, m *kv.Map[string], what string, cond func(nearcache.Stats) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		s, _ := m.NearCacheStats()
		if cond(s) {
			return time.Since(start)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: not within 10s: %+v", what, s)
		}
		time.Sleep(time.Millisecond) // polling, bounded by the deadline
	}
}

// TestNearCacheLossReportedBeforeReconnect kills the tracking connection
// (CLIENT KILL ID of the connection with flag t) while a proxy in front of the server queues
// every new connection, as one whose backend restarts does, and the client
// waits 10 s for a reply. Another client's write made after the kill must
// be read at once: the loss is reported as the connection's end is read,
// before any reconnect (go-redis reconnects inside the read that fails, and
// the old watch reported the loss only when that reconnect gave up, 10 s
// later: the old value was served all along). Map.Close must not wait for
// the queued reconnect either (it took 10 s).
func TestNearCacheLossReportedBeforeReconnect(t *testing.T) {
	private(t)
	srv := startServer(t, false, nil)
	p := newHoldProxy(t, srv.addr())
	c := goredis.NewClient(&goredis.Options{Addr: p.addr(), ContextTimeoutEnabled: true,
		ReadTimeout: 10 * time.Second, DialTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	admin := goredis.NewClient(&goredis.Options{Addr: srv.addr()})
	t.Cleanup(func() { _ = admin.Close() })
	b, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kv.New[string](b, "kvloss", kv.WithNearCache(nearcache.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = m.Close()
		}
	})
	ctx := t.Context()
	servedLocally(t, m, "id", "v1")
	before, _ := m.NearCacheStats()

	p.hold()
	killTracking(t, admin, "")
	killed := time.Now()
	if err := admin.Set(ctx, "kvloss:id", "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	d := awaitStats(t, m, "the loss in NearCacheStats", func(s nearcache.Stats) bool { return !s.Live })
	if d > lossBound {
		t.Errorf("the loss showed %v after the tracking connection was killed; want at once (< %v)", time.Since(killed), lossBound)
	}
	if v, ok, err := m.Get(ctx, "id"); err != nil || !ok || v != "v2" {
		t.Errorf("Get after the loss = %q, %v, %v; want v2, written by another client after the kill", v, ok, err)
	}
	if s, _ := m.NearCacheStats(); s.Losses != before.Losses+1 || s.LastLoss == nil {
		t.Errorf("NearCacheStats after the loss = %+v; want one more loss, with its reason", s)
	}
	// The watch's reconnect is queued by the proxy; Close cancels it.
	awaitHeld := time.Now()
	for p.heldCount() == 0 {
		if time.Since(awaitHeld) > 10*time.Second {
			t.Fatal("the watch did not try to reconnect within 10s")
		}
		time.Sleep(time.Millisecond) // polling, bounded above
	}
	start := time.Now()
	closed = true
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > lossBound {
		t.Errorf("Close took %v with a reconnect held by the proxy; want it cancelled (< %v)", d, lossBound)
	}
}

// TestNearCacheSilentLink: a link that stops carrying bytes (a proxy that
// stalls) sends no error: the cache stops serving from memory once the
// tracking connection has proved nothing for MaxLag (Stats.Unsynced, while
// still live), and the heartbeat then gives the connection up (Live
// false); when the link heals, tracking resumes.
func TestNearCacheSilentLink(t *testing.T) {
	private(t)
	srv := startServer(t, false, nil)
	p := newProxy(t, srv.addr())
	c := goredis.NewClient(&goredis.Options{Addr: p.addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	m := nearMap(t, c, "kvsilent")
	ctx := t.Context()
	servedLocally(t, m, "id", "v1")
	before, _ := m.NearCacheStats()
	p.Stall()
	get := func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, _, err := m.Get(cctx, "id")
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Get on a stalled link: %v", err)
		}
	}
	start := time.Now()
	for {
		get()
		s, _ := m.NearCacheStats()
		if s.Unsynced > before.Unsynced {
			if !s.Live {
				t.Logf("the link was given up before a read found the cache unsynced")
			}
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the cache kept serving from memory 10s into a silent link: %+v", s)
		}
	}
	awaitStats(t, m, "the silent link given up", func(s nearcache.Stats) bool { return !s.Live })
	hits, _ := m.NearCacheStats()
	get()
	if s, _ := m.NearCacheStats(); s.Hits != hits.Hits {
		t.Errorf("a read was served from memory on a silent link")
	}
	p.Heal()
	servedLocally(t, m, "id", "v2") // tracking is back
}

// TestNearCacheRoleCheckRefused runs the near cache as an ACL user who may
// not run ROLE (@admin), the usual service user. The watch asks HELLO
// instead, which reports the role and which ACL rules do not restrict
// (checked on Redis 7.0: a user with -hello runs it), and caches. On a
// server without HELLO (renamed away here; Redis before 6) the watch can
// neither track (its connection is RESP3) nor learn the role: the cache
// must then stay unused, with the reason (HELLO refused) in its Stats, where
// an older watch counted a refused ROLE as "still master" and cached, with
// nothing to show for it.
func TestNearCacheRoleCheckRefused(t *testing.T) {
	private(t)
	const pw = "kv-acl-pw"
	user := []string{"user svc on >" + pw + " ~kvacl:* &* +@all -@admin -hello"}
	for _, tc := range []struct {
		name  string
		conf  []string
		cache bool
	}{
		{"HELLO", user, true},
		{"noHELLO", append([]string{`rename-command HELLO ""`}, user...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, false, tc.conf)
			c := goredis.NewClient(&goredis.Options{Addr: s.addr(), Username: "svc", Password: pw, ContextTimeoutEnabled: true})
			t.Cleanup(func() { _ = c.Close() })
			m := nearMap(t, c, "kvacl")
			if tc.cache {
				servedLocally(t, m, "id", "v")
				return
			}
			ctx := t.Context()
			if _, _, err := m.Get(ctx, "id"); err != nil { // starts the watch
				t.Fatal(err)
			}
			awaitStats(t, m, "a reason for not caching", func(s nearcache.Stats) bool { return s.LastLoss != nil })
			for range 3 {
				if err := m.Set(ctx, "id", "v"); err != nil {
					t.Fatal(err)
				}
				if v, ok, err := m.Get(ctx, "id"); err != nil || !ok || v != "v" {
					t.Fatalf("Get = %q, %v, %v", v, ok, err)
				}
			}
			st, _ := m.NearCacheStats()
			var re goredis.Error
			if st.Live || st.Hits != 0 || !errors.As(st.LastLoss, &re) || !strings.Contains(st.LastLoss.Error(), "HELLO") {
				t.Errorf("NearCacheStats when HELLO is refused = %+v; want not live, no hits, LastLoss HELLO's error", st)
			}
			if strings.Contains(st.LastLoss.Error(), pw) {
				t.Errorf("LastLoss %q shows the password", st.LastLoss)
			}
		})
	}
}
