package redis

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/kvmap/kv/backend"
)

// The timing of a watch: a tracking connection that answers nothing for
// two heartbeats is given up; a topology is checked once per topologyEvery
// on a cluster; a connection that could not be made is tried again after
// a wait that doubles from retryMin up to retryMax; the tracked server is
// asked its ROLE once per roleEvery.
const (
	heartbeat     = 500 * time.Millisecond
	topologyEvery = time.Second
	retryMin      = 10 * time.Millisecond
	retryMax      = time.Second
	roleEvery     = time.Second
)

// invalidateChannel is where Redis sends the invalidations of a tracking
// connection redirected to itself (RESP2).
const invalidateChannel = "__redis__:invalidate"

// watch is Optimizations.Watch, with Redis's server-assisted invalidation:
// on each master (the server, or every master of a cluster, followed as the
// cluster changes) a connection of the watch's own runs CLIENT TRACKING ON
// REDIRECT <its own id> BCAST PREFIX <prefix> and SUBSCRIBE
// __redis__:invalidate, so that a write, delete, expiry or eviction of a key
// under the prefix by any client sends the key. A connection that breaks or
// stops answering its PINGs (two heartbeats of 500 ms), a tracked server
// that answers ROLE with anything but "master" (asked every second, on a
// connection of its own), and a change of the cluster's masters report
// ChangeLost until every master's connection is back; FLUSHDB and FLUSHALL
// report ChangeAll.
func (b *Backend) watch(ctx context.Context, prefix string, report func(backend.Change)) (func(), error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	wire, err := b.wirePrefix(prefix)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{b: b, prefix: prefix, wire: wire, report: report, events: make(chan nodeEvent)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }, nil
}

// wirePrefix returns the stored form of a key prefix, for BCAST PREFIX. In
// hash-tag mode the namespace is in braces; a prefix that does not end its
// namespace cannot be tracked by prefix, and tracks every key.
func (b *Backend) wirePrefix(prefix string) (string, error) {
	if !b.hashTag {
		return prefix, nil
	}
	if _, _, ok := strings.Cut(prefix, ":"); !ok {
		return "", nil
	}
	return b.wireKey(prefix)
}

// watcher is one watch: a goroutine per master and the goroutine that
// joins their events into reports.
type watcher struct {
	b      *Backend
	prefix string // backend prefix
	wire   string // stored prefix
	report func(backend.Change)
	events chan nodeEvent
}

// nodeEvent is what one master's connection tells the watcher.
type nodeEvent struct {
	addr string
	kind backend.ChangeKind
	keys []string // stored keys, for ChangeKeys
}

// node is the watch of one master.
type node struct {
	cancel context.CancelFunc
	done   chan struct{}
	live   bool
}

func (w *watcher) run(ctx context.Context) {
	nodes := map[string]*node{}
	defer func() {
		for _, n := range nodes {
			n.cancel()
		}
		for _, n := range nodes {
			// Drain events while the node goroutines end.
			for ended := false; !ended; {
				select {
				case <-n.done:
					ended = true
				case <-w.events:
				}
			}
		}
	}()
	live, reported := false, false
	setLive := func(now bool) {
		if now == live && reported {
			return
		}
		live, reported = now, true
		if now {
			w.report(backend.Change{Kind: backend.ChangeLive})
		} else {
			w.report(backend.Change{Kind: backend.ChangeLost})
		}
	}
	reconcile := func() {
		opts, err := w.masters(ctx)
		if err != nil {
			if ctx.Err() == nil {
				setLive(false)
			}
			return
		}
		changed := false
		for addr, n := range nodes {
			if _, ok := opts[addr]; !ok {
				n.cancel()
				<-n.done
				delete(nodes, addr)
				changed = true
			}
		}
		for addr, opt := range opts {
			if _, ok := nodes[addr]; !ok {
				nctx, cancel := context.WithCancel(ctx)
				n := &node{cancel: cancel, done: make(chan struct{})}
				nodes[addr] = n
				go func() {
					defer close(n.done)
					w.node(nctx, addr, opt)
				}()
				changed = true
			}
		}
		if changed && live {
			setLive(false) // until every master's connection is live
		}
	}
	reconcile()
	var tick <-chan time.Time
	if w.b.cluster != nil {
		t := time.NewTicker(topologyEvery)
		defer t.Stop()
		tick = t.C
	}
	if len(nodes) == 0 {
		setLive(false)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			reconcile()
		case ev := <-w.events:
			n := nodes[ev.addr]
			if n == nil {
				continue // a node given up since
			}
			switch ev.kind {
			case backend.ChangeLive:
				n.live = true
				all := true
				for _, n := range nodes {
					all = all && n.live
				}
				if all {
					setLive(true)
				}
			case backend.ChangeLost:
				n.live = false
				setLive(false)
				if w.b.cluster != nil {
					// A failover shows as a lost master: have the client
					// learn the new slot map, and follow it.
					w.b.cluster.ReloadState(ctx)
					reconcile()
				}
			case backend.ChangeAll:
				if live {
					w.report(backend.Change{Kind: backend.ChangeAll})
				}
			case backend.ChangeKeys:
				if !live {
					continue
				}
				keys := ev.keys[:0]
				for _, k := range ev.keys {
					if k = w.b.backendKey(k); strings.HasPrefix(k, w.prefix) {
						keys = append(keys, k)
					}
				}
				if len(keys) > 0 {
					w.report(backend.Change{Kind: backend.ChangeKeys, Keys: keys})
				}
			}
		}
	}
}

// masters returns the options of the masters to watch, by address.
func (w *watcher) masters(ctx context.Context) (map[string]*goredis.Options, error) {
	out := map[string]*goredis.Options{}
	if w.b.cluster == nil {
		opt := w.b.client.(*goredis.Client).Options()
		out[opt.Addr] = opt
		return out, nil
	}
	ms, err := w.b.masters(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range ms {
		out[c.Options().Addr] = c.Options()
	}
	return out, nil
}

// send gives an event to the watcher, unless ctx ends first.
func (w *watcher) send(ctx context.Context, ev nodeEvent) bool {
	select {
	case w.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// node keeps a tracking connection to one master until ctx ends.
func (w *watcher) node(ctx context.Context, addr string, base *goredis.Options) {
	opt := *base
	opt.Protocol = 2 // invalidations as pub/sub messages
	// A config of its own: the client's is written by go-redis as its
	// connections negotiate, and is of no use to a pub/sub connection.
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	opt.PoolSize, opt.MinIdleConns, opt.MaxIdleConns = 1, 0, 0
	opt.ContextTimeoutEnabled = true
	opt.OnConnect = func(ctx context.Context, cn *goredis.Conn) error {
		if base.OnConnect != nil {
			if err := base.OnConnect(ctx, cn); err != nil {
				return err
			}
		}
		id, err := cn.ClientID(ctx).Result()
		if err != nil {
			return err
		}
		args := []any{"CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST"}
		if w.wire != "" {
			args = append(args, "PREFIX", w.wire)
		}
		return cn.Do(ctx, args...).Err()
	}
	// The server the tracking connection reached: the node's address, or,
	// through a dialer of the client's (Sentinel's failover client, which
	// asks the sentinels), whatever it dialed.
	var dialed atomic.Pointer[string]
	if dial := base.Dialer; dial != nil {
		opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			cn, err := dial(ctx, network, addr)
			if err == nil {
				a := cn.RemoteAddr().String()
				dialed.Store(&a)
			}
			return cn, err
		}
	}
	c := goredis.NewClient(&opt)
	defer c.Close()
	roles := &roleCheck{base: base}
	defer roles.close()
	wait := retryMin
	for ctx.Err() == nil {
		ps := c.Subscribe(ctx, invalidateChannel)
		// go-redis does not end a blocked read when ctx ends: closing the
		// connection does.
		unblock := context.AfterFunc(ctx, func() { ps.Close() })
		server := base.Addr
		if a := dialed.Load(); a != nil {
			server = *a
		}
		wasLive := w.listen(ctx, addr, ps, func() bool { return roles.master(ctx, server) })
		unblock()
		ps.Close()
		if ctx.Err() != nil || !w.send(ctx, nodeEvent{addr: addr, kind: backend.ChangeLost}) {
			return
		}
		if wasLive {
			wait = retryMin
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, retryMax)
	}
}

// listen reads the invalidations of one subscribed connection until it
// fails, or its server stops being a master (a replica is not relied on to
// send invalidations for the writes it replicates: a demoted master's
// tracking connection may fall silent), and reports whether it was live.
func (w *watcher) listen(ctx context.Context, addr string, ps *goredis.PubSub, isMaster func() bool) bool {
	msg, err := ps.ReceiveTimeout(ctx, 2*heartbeat)
	if err != nil {
		return false
	}
	if _, ok := msg.(*goredis.Subscription); !ok || !isMaster() {
		return false
	}
	if !w.send(ctx, nodeEvent{addr: addr, kind: backend.ChangeLive}) {
		return true
	}
	pinged := false
	checked := time.Now()
	for {
		if time.Since(checked) >= roleEvery {
			if !isMaster() {
				return true
			}
			checked = time.Now()
		}
		msg, err := ps.ReceiveTimeout(ctx, heartbeat)
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				return true
			case errors.As(err, &ne) && ne.Timeout() && !pinged:
				if ps.Ping(ctx) != nil {
					return true
				}
				pinged = true
				continue
			case strings.Contains(err.Error(), "unsupported pubsub message payload"):
				// FLUSHDB and FLUSHALL send a null list of keys, which
				// go-redis reads in full and refuses.
				if !w.send(ctx, nodeEvent{addr: addr, kind: backend.ChangeAll}) {
					return true
				}
				continue
			}
			return true
		}
		switch m := msg.(type) {
		case *goredis.Message:
			keys := m.PayloadSlice
			if len(keys) == 0 && m.Payload != "" {
				keys = []string{m.Payload}
			}
			ev := nodeEvent{addr: addr, kind: backend.ChangeKeys, keys: slices.Clone(keys)}
			if len(keys) == 0 {
				ev.kind = backend.ChangeAll
			}
			if !w.send(ctx, ev) {
				return true
			}
		case *goredis.Pong:
			pinged = false
		}
	}
}

// roleCheck asks a tracked server whether it is still a master, on a
// connection of its own (a subscribed RESP2 connection can run no other
// command).
type roleCheck struct {
	base *goredis.Options
	addr string
	c    *goredis.Client
}

// master reports whether the server at addr answers ROLE with "master". An
// error reports true: the tracking connection's PINGs judge whether the
// server is reachable.
func (r *roleCheck) master(ctx context.Context, addr string) bool {
	if r.c == nil || r.addr != addr {
		r.close()
		o := *r.base
		o.Addr, o.Dialer = addr, nil
		o.Protocol = 2
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns = 1, 0, 0
		o.ContextTimeoutEnabled = true
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		r.c, r.addr = goredis.NewClient(&o), addr
	}
	ctx, cancel := context.WithTimeout(ctx, heartbeat)
	defer cancel()
	role, err := r.c.Do(ctx, "ROLE").Slice()
	if err != nil || len(role) == 0 {
		return true
	}
	return role[0] == "master"
}

func (r *roleCheck) close() {
	if r.c != nil {
		r.c.Close()
		r.c = nil
	}
}
