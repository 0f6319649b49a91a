package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/kvmap/kv/backend"
)

// The timing of a watch.
const (
	// syncEvery is the interval of the PINGs on each tracking connection:
	// a PONG proves that every invalidation the server queued before the
	// PING was processed has arrived (backend.ChangeSynced).
	syncEvery = 20 * time.Millisecond
	// silentAfter gives a tracking connection up when a PING has had no
	// answer for that long.
	silentAfter = time.Second
	// connectWithin bounds the making of a tracking connection: dial,
	// handshake, CLIENT TRACKING, SUBSCRIBE and the first check.
	connectWithin = 5 * time.Second
	// checkEvery is the interval of the checks that the tracked server is
	// still the one written to (its role, a cluster's masters, the
	// sentinels' master); checkWithin bounds each.
	checkEvery  = time.Second
	checkWithin = 500 * time.Millisecond
	// topologyEvery is the interval at which a cluster's masters are
	// compared with the tracked ones.
	topologyEvery = time.Second
	// A connection that could not be made is tried again after a wait that
	// doubles from retryMin up to retryMax.
	retryMin = 10 * time.Millisecond
	retryMax = time.Second
	// maxPending bounds the PINGs awaiting their PONG.
	maxPending = int(silentAfter / syncEvery)
	// maxUnreadable consecutive messages that go-redis cannot read end a
	// connection.
	maxUnreadable = 8
)

// invalidateChannel is where Redis sends the invalidations of a tracking
// connection redirected to itself (RESP2).
const invalidateChannel = "__redis__:invalidate"

// failoverAddr is the Addr of the options of go-redis's Sentinel failover
// client (redis.NewFailoverClient): its dialer asks the sentinels for the
// master at each dial, whatever the address it is given.
const failoverAddr = "FailoverClient"

var (
	// errNoRedial is what the dialer of a tracking connection returns to
	// go-redis's own reconnect (inside ReceiveTimeout or Ping): a broken
	// connection is reported first, and reconnected by the watch.
	errNoRedial = errors.New("redis: watch: reconnecting is the watch's")
	errStopped  = errors.New("redis: watch: stopped")
)

// watch is Optimizations.Watch, with Redis's server-assisted invalidation:
// on each master (the server, the master the sentinels name, or every master
// of a cluster, those that own no slot yet included, followed as the cluster
// changes) a connection of the watch's own runs CLIENT TRACKING ON REDIRECT
// <its own id> BCAST PREFIX <prefix> and SUBSCRIBE __redis__:invalidate, so
// that a write, delete, expiry or eviction of a key under the prefix by any
// client sends the key. Every 20 ms a PING on each connection proves, with
// its PONG, that every invalidation queued before it has arrived
// (ChangeSynced). A connection that breaks is reported at once (ChangeLost,
// before any reconnect, which the watch makes itself and Stop cancels); one
// that answers no PING for a second is given up; each second a second
// connection checks that the server is still a master (HELLO, or ROLE where
// HELLO is refused; on a cluster its CLUSTER NODES, which also lists the
// masters to track), and on Sentinel that the sentinels still name it
// (through the client's own dialer, which asks them); a check that fails or
// cannot be made (NOPERM) reports ChangeLost with its error. A change of the
// cluster's masters reports ChangeLost until every master's connection is
// live; FLUSHDB and FLUSHALL (a message go-redis cannot read) report
// ChangeAll.
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

// eventKind is what a master's goroutine tells the watcher.
type eventKind int

const (
	evLive   eventKind = iota // tracking is on since at
	evLost                    // the connection was given up, for err
	evKeys                    // keys changed
	evAll                     // any key may have changed
	evSynced                  // every change before at was reported
	evView                    // the masters the node lists (cluster)
)

// nodeEvent is what one master's goroutine tells the watcher.
type nodeEvent struct {
	addr    string
	kind    eventKind
	keys    []string // stored keys, for evKeys
	at      time.Time
	err     error
	masters []string // for evView
}

// node is the watch of one master.
type node struct {
	cancel context.CancelFunc
	done   chan struct{}
	live   bool
	synced time.Time // every change of the master before it was reported
	view   []string  // the masters its CLUSTER NODES lists
	viewAt time.Time
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
	var lastErr string   // of the latest ChangeLost
	var synced time.Time // of the latest ChangeLive or ChangeSynced
	minSynced := func() (time.Time, bool) {
		var at time.Time
		for _, n := range nodes {
			if !n.live {
				return time.Time{}, false
			}
			if at.IsZero() || n.synced.Before(at) {
				at = n.synced
			}
		}
		return at, len(nodes) > 0
	}
	lost := func(err error) {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if !live && reported && msg == lastErr {
			return
		}
		live, reported, lastErr = false, true, msg
		w.report(backend.Change{Kind: backend.ChangeLost, Err: err})
	}
	maybeLive := func() {
		at, ok := minSynced()
		if !ok || live {
			return
		}
		live, reported, lastErr, synced = true, true, "", at
		w.report(backend.Change{Kind: backend.ChangeLive, At: at})
	}
	reconcile := func() {
		want, err := w.masters(ctx, nodes)
		if err != nil {
			if ctx.Err() == nil {
				lost(err)
			}
			return
		}
		changed := false
		for addr, n := range nodes {
			if _, ok := want[addr]; !ok {
				n.cancel()
				<-n.done
				delete(nodes, addr)
				changed = true
			}
		}
		for addr, opt := range want {
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
			lost(fmt.Errorf("redis: watch: the masters changed; tracking %d", len(nodes)))
		}
		if len(nodes) == 0 {
			lost(errors.New("redis: watch: no master to track"))
		}
		maybeLive()
	}
	reconcile()
	var tick <-chan time.Time
	if w.b.cluster != nil {
		t := time.NewTicker(topologyEvery)
		defer t.Stop()
		tick = t.C
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
			case evLive:
				n.live, n.synced = true, ev.at
				maybeLive()
			case evLost:
				n.live, n.view = false, nil
				lost(ev.err)
				if w.b.cluster != nil {
					// A failover shows as a lost master: have the client
					// learn the new slot map, and follow it.
					w.b.cluster.ReloadState(ctx)
					reconcile()
				}
			case evSynced:
				if ev.at.After(n.synced) {
					n.synced = ev.at
				}
				if at, ok := minSynced(); ok && live && at.After(synced) {
					synced = at
					w.report(backend.Change{Kind: backend.ChangeSynced, At: at})
				}
			case evView:
				n.view, n.viewAt = ev.masters, time.Now()
				if slices.ContainsFunc(ev.masters, func(a string) bool { return nodes[a] == nil }) {
					reconcile() // a master joined: track it
				}
			case evAll:
				if live {
					w.report(backend.Change{Kind: backend.ChangeAll})
				}
			case evKeys:
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

// masters returns the options of the masters to watch, by address: the
// server's, or on a cluster every master that the tracked masters' latest
// views list (those that own no slot included), or, when none has a recent
// view, that a node's CLUSTER NODES lists.
func (w *watcher) masters(ctx context.Context, nodes map[string]*node) (map[string]*goredis.Options, error) {
	out := map[string]*goredis.Options{}
	if w.b.cluster == nil {
		opt := w.b.client.(*goredis.Client).Options()
		out[opt.Addr] = opt
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, topologyEvery)
	defer cancel()
	known, err := w.b.masters(ctx)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, n := range nodes {
		if n.live && time.Since(n.viewAt) < 3*checkEvery {
			addrs = append(addrs, n.view...)
		}
	}
	if len(addrs) == 0 {
		view, err := w.b.anyView(ctx, known)
		if err != nil {
			return nil, err
		}
		addrs = view.masters
	}
	for _, a := range addrs {
		if c, ok := known[a]; ok {
			out[a] = c.Options()
			continue
		}
		o, err := nodeOptions(known, a)
		if err != nil {
			return nil, err
		}
		out[a] = o
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

// lastConn is the latest connection a client of a tracker dialed, closed
// when the watch stops: a handshake or a check that a stalled server (or a
// proxy that accepts and queues connections) holds up ends at once.
type lastConn struct {
	mu      sync.Mutex
	c       net.Conn
	stopped bool
}

// set records c, or closes it when the watch has stopped.
func (l *lastConn) set(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		c.Close()
		return false
	}
	l.c = c
	return true
}

func (l *lastConn) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	if l.c != nil {
		l.c.Close()
	}
}

// tracker keeps the tracking connection of one master.
type tracker struct {
	w        *watcher
	addr     string // the master's key in the watcher
	base     *goredis.Options
	sentinel bool
	c        *goredis.Client // the tracking connection's client
	mayDial  atomic.Bool     // only while the tracker connects
	dialed   atomic.Pointer[string]
	conn     lastConn // the tracking connection
	check    *goredis.Client
	checkFor string // the server check is a client of
	checkCn  lastConn
}

// node keeps a tracking connection to one master until ctx ends.
func (w *watcher) node(ctx context.Context, addr string, base *goredis.Options) {
	t := &tracker{w: w, addr: addr, base: base, sentinel: w.b.cluster == nil && base.Addr == failoverAddr}
	opt := *base
	opt.Protocol = 2 // invalidations as pub/sub messages
	// A config of its own: the client's is written by go-redis as its
	// connections negotiate, and is of no use to a pub/sub connection.
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	opt.PoolSize, opt.MinIdleConns, opt.MaxIdleConns = 1, 0, 0
	opt.DialerRetries = 1
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
	dial := base.Dialer
	if dial == nil {
		dial = goredis.NewDialer(&opt)
	}
	// go-redis reconnects a broken pub/sub connection inside the call that
	// found it broken (ReceiveTimeout, Ping), before returning: against a
	// server that accepts connections and then answers nothing, that call
	// would hold the report of the loss for the client's ReadTimeout. Its
	// dials are refused: the tracker reports the loss, then reconnects.
	opt.Dialer = func(ctx context.Context, network, a string) (net.Conn, error) {
		if !t.mayDial.Load() {
			return nil, errNoRedial
		}
		cn, err := dial(ctx, network, a)
		if err != nil {
			return nil, err
		}
		if !t.conn.set(cn) {
			return nil, errStopped
		}
		// The server reached: the node's address, or, through the dialer
		// of Sentinel's failover client, the master the sentinels named.
		ra := cn.RemoteAddr().String()
		t.dialed.Store(&ra)
		return cn, nil
	}
	t.c = goredis.NewClient(&opt)
	defer t.c.Close()
	stopConns := context.AfterFunc(ctx, func() {
		t.conn.stop()
		t.checkCn.stop()
	})
	defer stopConns()
	defer t.closeCheck()
	wait := retryMin
	for ctx.Err() == nil {
		if t.session(ctx) {
			wait = retryMin
		}
		if ctx.Err() != nil {
			return
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
		wait = min(2*wait, retryMax)
	}
}

// received is one read of a tracking connection.
type received struct {
	msg        any
	err        error // the connection failed
	unreadable error // a message go-redis could not read
}

// session makes one tracking connection and reads it until it fails or
// ctx ends, and reports whether it went live. Its end is reported
// (evLost) before anything else is done.
func (t *tracker) session(ctx context.Context) bool {
	w := t.w
	lost := func(err error) { w.send(ctx, nodeEvent{addr: t.addr, kind: evLost, err: err}) }

	cctx, cancel := context.WithTimeout(ctx, connectWithin)
	defer cancel()
	t.mayDial.Store(true)
	ps := t.c.Subscribe(cctx, invalidateChannel)
	msg, err := ps.ReceiveTimeout(cctx, 0)
	t.mayDial.Store(false)
	if err == nil {
		if _, ok := msg.(*goredis.Subscription); !ok {
			err = fmt.Errorf("unexpected first reply %v", msg)
		}
	}
	if err != nil {
		ps.Close()
		if ctx.Err() == nil {
			lost(fmt.Errorf("redis: tracking connection to %s: %w", t.addr, err))
		}
		return false
	}
	// Every change the server carries out from now on is reported: it
	// confirmed SUBSCRIBE (a RESP2 redirect target that is not subscribed
	// yet is sent nothing), after CLIENT TRACKING ON.
	from := time.Now()
	server := t.server()
	if err := t.checkServer(cctx, server); err != nil {
		ps.Close()
		if ctx.Err() == nil {
			lost(err)
		}
		return false
	}
	msgs := make(chan received)
	quit := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() { t.read(ctx, ps, msgs, quit) })
	defer func() {
		close(quit)
		ps.Close()
		reader.Wait()
	}()
	if !w.send(ctx, nodeEvent{addr: t.addr, kind: evLive, at: from}) {
		return true
	}

	type ping struct {
		seq uint64
		at  time.Time
	}
	var (
		pending []ping
		seq     uint64
	)
	tick := time.NewTicker(syncEvery)
	defer tick.Stop()
	nextCheck := time.Now().Add(checkEvery)
	for {
		select {
		case <-ctx.Done():
			return true
		case r := <-msgs:
			if r.err != nil {
				lost(fmt.Errorf("redis: tracking connection to %s: %w", t.addr, r.err))
				return true
			}
			ev := nodeEvent{addr: t.addr}
			switch m := r.msg.(type) {
			case nil: // r.unreadable: FLUSHDB and FLUSHALL send a null list of keys
				ev.kind = evAll
			case *goredis.Message:
				keys := m.PayloadSlice
				if len(keys) == 0 && m.Payload != "" {
					keys = []string{m.Payload}
				}
				ev.kind, ev.keys = evKeys, slices.Clone(keys)
				if len(keys) == 0 {
					ev.kind = evAll
				}
			case *goredis.Pong:
				n, err := strconv.ParseUint(m.Payload, 10, 64)
				if err != nil {
					continue
				}
				var at time.Time
				for len(pending) > 0 && pending[0].seq <= n {
					at = pending[0].at
					pending = pending[1:]
				}
				if at.IsZero() {
					continue
				}
				ev.kind, ev.at = evSynced, at
			default:
				continue
			}
			if !w.send(ctx, ev) {
				return true
			}
		case now := <-tick.C:
			if len(pending) > 0 && now.Sub(pending[0].at) >= silentAfter {
				lost(fmt.Errorf("redis: tracking connection to %s: no PONG for %v", t.addr, silentAfter))
				return true
			}
			if len(pending) < maxPending {
				seq++
				at := time.Now()
				pctx, cancel := context.WithTimeout(ctx, silentAfter)
				err := ps.Ping(pctx, strconv.FormatUint(seq, 10))
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						lost(fmt.Errorf("redis: tracking connection to %s: PING: %w", t.addr, err))
					}
					return true
				}
				pending = append(pending, ping{seq, at})
			}
			if now.After(nextCheck) {
				cctx, cancel := context.WithTimeout(ctx, checkWithin)
				err := t.checkServer(cctx, server)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						lost(err)
					}
					return true
				}
				nextCheck = time.Now().Add(checkEvery)
			}
		}
	}
}

// read passes what the tracking connection receives to out until the
// connection fails or quit is closed.
func (t *tracker) read(ctx context.Context, ps *goredis.PubSub, out chan<- received, quit <-chan struct{}) {
	bad := 0
	for {
		// No deadline: the session closes the connection when it gives it
		// up or stops.
		msg, err := ps.ReceiveTimeout(ctx, 0)
		r := received{msg: msg, err: err}
		switch {
		case err == nil:
			bad = 0
		case !connFailure(err) && bad < maxUnreadable:
			// go-redis read a whole reply it cannot turn into a message:
			// the null list of keys of FLUSHDB or FLUSHALL (nothing else
			// comes on the channel). Any key may have changed.
			bad++
			r = received{unreadable: err}
		}
		select {
		case out <- r:
		case <-quit:
			return
		}
		if r.err != nil {
			return
		}
	}
}

// connFailure reports an error of a pub/sub read that ends its connection:
// a network error, the connection closed or not reconnected, or an error
// reply of the server. Anything else is a reply go-redis read in full but
// could not parse as a message.
func connFailure(err error) bool {
	var ne net.Error
	var re goredis.Error
	return errors.As(err, &ne) || errors.As(err, &re) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, goredis.ErrClosed) || errors.Is(err, errNoRedial) || errors.Is(err, errStopped) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// server returns the address of the server the tracking connection
// reached: the master's, or on Sentinel the one the sentinels named.
func (t *tracker) server() string {
	if a := t.dialed.Load(); a != nil && t.sentinel {
		return *a
	}
	return t.base.Addr
}

// checkServer checks that the tracked server is still the one written to:
// on Sentinel, that the sentinels still name it (the failover client's
// dialer asks them at every dial); that it says it is a master; on a
// cluster, the masters its CLUSTER NODES lists go to the watcher. A check
// that cannot be made fails: it never counts as "still master".
func (t *tracker) checkServer(ctx context.Context, server string) error {
	if t.sentinel {
		cn, err := t.base.Dialer(ctx, "tcp", t.base.Addr)
		if err != nil {
			return fmt.Errorf("redis: watch: asking the sentinels for the master: %w", err)
		}
		named := cn.RemoteAddr().String()
		cn.Close()
		if named != server {
			return fmt.Errorf("redis: watch: the sentinels name %s as master, not the tracked %s", named, server)
		}
	}
	c := t.checkClient(server)
	if t.w.b.cluster != nil {
		reply, err := c.ClusterNodes(ctx).Result()
		if err != nil {
			return fmt.Errorf("redis: watch: CLUSTER NODES of %s: %w", server, err)
		}
		view := parseClusterNodes(reply)
		if !view.master {
			return fmt.Errorf("redis: watch: %s is no longer a master", server)
		}
		if !t.w.send(ctx, nodeEvent{addr: t.addr, kind: evView, masters: view.masters}) {
			return errStopped
		}
		return nil
	}
	role, err := helloRole(ctx, c)
	if err != nil {
		var rerr error
		if role, rerr = roleOf(ctx, c); rerr != nil {
			return fmt.Errorf("redis: watch: neither HELLO nor ROLE says whether %s is a master: %w", server, errors.Join(err, rerr))
		}
	}
	if role != "master" {
		return fmt.Errorf("redis: watch: %s is no longer a master (role %q)", server, role)
	}
	return nil
}

// helloRole returns the role that HELLO 2 reports: HELLO is in ACL
// category @connection, which a service's user has, where ROLE is @admin.
func helloRole(ctx context.Context, c *goredis.Client) (string, error) {
	reply, err := c.Do(ctx, "HELLO", "2").Slice()
	if err != nil {
		return "", err
	}
	for i := 0; i+1 < len(reply); i += 2 {
		if k, _ := reply[i].(string); k == "role" {
			if v, ok := reply[i+1].(string); ok {
				return v, nil
			}
		}
	}
	return "", errors.New("HELLO reported no role")
}

// roleOf returns the first element of ROLE's reply.
func roleOf(ctx context.Context, c *goredis.Client) (string, error) {
	reply, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	if len(reply) == 0 {
		return "", errors.New("empty ROLE reply")
	}
	role, _ := reply[0].(string)
	return role, nil
}

// checkClient returns the client of the checks of server, a connection of
// its own (a subscribed RESP2 connection can run no other command).
func (t *tracker) checkClient(server string) *goredis.Client {
	if t.check != nil && t.checkFor == server {
		return t.check
	}
	t.closeCheck()
	o := *t.base
	o.Addr = server
	o.Protocol = 2
	o.PoolSize, o.MinIdleConns, o.MaxIdleConns = 1, 0, 0
	o.DialerRetries = 1
	o.ContextTimeoutEnabled = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	dial := t.base.Dialer
	if dial == nil || t.sentinel {
		// The failover client's dialer dials the master it is told of,
		// not the address: the server's own.
		o.Dialer = nil
		dial = goredis.NewDialer(&o)
	}
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if !t.checkCn.set(cn) {
			return nil, errStopped
		}
		return cn, nil
	}
	t.check, t.checkFor = goredis.NewClient(&o), server
	return t.check
}

func (t *tracker) closeCheck() {
	if t.check != nil {
		t.check.Close()
		t.check = nil
	}
}
