package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// The timing of a watch.
const (
	// syncEvery is the interval of the PINGs on each tracking connection:
	// a PONG proves that every invalidation the server queued before the
	// PING was processed has arrived (backend.ChangeSynced).
	syncEvery = 20 * time.Millisecond
	// silentAfter gives a tracking connection up when a command has had no
	// reply for that long.
	silentAfter = time.Second
	// connectWithin bounds the making of a tracking connection: dial,
	// HELLO, CLIENT TRACKING and the first check.
	connectWithin = 5 * time.Second
	// checkEvery is the interval of the checks that the tracked server is
	// still the one written to (its role, a cluster's masters, the
	// sentinels' master); checkWithin bounds the sentinels' answer.
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
	// maxStale bounds the prefixes of stopped watches that a connection
	// tracks, unless the running watches have more.
	maxStale = 16
)

// failoverAddr is the Addr of the options of go-redis's Sentinel failover
// client (redis.NewFailoverClient): its dialer asks the sentinels for the
// master at each dial, whatever the address it is given.
const failoverAddr = "FailoverClient"

// errWider is why a tracking connection is made anew: a watch's prefix
// covers one the connection tracks, which Redis can neither add (prefixes
// of a connection must not overlap) nor replace (it removes none).
var errWider = errors.New("redis: watch: a wider prefix to track: tracking anew")

// errStale is why a tracking connection is made anew: it tracks more
// prefixes of stopped watches than maxStale and than of running ones.
var errStale = errors.New("redis: watch: the prefixes of stopped watches pile up: tracking anew")

// watch is Capabilities.Watch, with Redis's server-assisted invalidation.
// Every watch of the Backend shares one connection per master (the server,
// the master the sentinels name, or every master of a cluster, those that
// own no slot yet included, followed as the cluster changes): a RESP3
// connection of the watch's own (HELLO 3; the client's OnConnect does not
// run on it) that runs CLIENT TRACKING ON BCAST PREFIX <prefix> for each
// prefix it is asked to watch that no tracked one covers, so that a write,
// delete, expiry or eviction of a key under it by any client sends the key
// as a push frame, which the connection's reader hands to the watches of
// the key's prefix itself. A prefix that covers a tracked one makes the
// connection anew (Redis refuses overlapping prefixes); one whose watches
// all stopped stays tracked, its keys dropped, until the last watch stops,
// which closes the connections, or until such prefixes outnumber those of
// running watches and 16 (maxStale), which makes the connection anew
// (ChangeLost, then ChangeLive, for the running watches). Every 20 ms a
// PING proves, with its PONG, that every invalidation queued before it has
// arrived (ChangeSynced); a connection that breaks is reported at once
// (ChangeLost, before any reconnect, which the watch makes itself and the
// last stop cancels); one that answers nothing for a second is given up;
// each second the same connection checks that its server is still a master
// (HELLO's role; on a cluster its CLUSTER NODES, which also lists the
// masters to track), and on Sentinel that the sentinels still name it
// (through the client's own dialer, which asks them); a check that fails or
// cannot be made (HELLO missing, NOPERM) reports ChangeLost with its error.
// A change of the cluster's masters reports ChangeLost until every master's
// connection is live; FLUSHDB and FLUSHALL (an invalidation with no keys)
// report ChangeAll. A watch is live when every master's connection tracks
// its prefix; one started while a connection is down reports the latest
// loss at once. A report runs on a connection's reader, or on the goroutine
// that decided it (Watch, stop, Close, a connection's upkeep), without the
// hub's lock: a slow report delays the other watches' reports (a key waits
// for the reader), never a Watch, a stop (but its own) or Close.
func (b *Backend) watch(ctx context.Context, prefix string, report func(backend.Change)) (func(), error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	wire, err := b.wirePrefix(prefix)
	if err != nil {
		return nil, err
	}
	w := &watcher{prefix: prefix, wire: wire, report: report}
	b.watches.mu.Lock()
	if b.closed.Load() {
		b.watches.mu.Unlock()
		return nil, backend.ErrClosed
	}
	h := b.watches.h
	if h == nil {
		h = b.newHub()
		b.watches.h = h
	}
	h.mu.Lock()
	b.watches.mu.Unlock()
	h.add(w)
	h.unlock()
	stop := sync.OnceFunc(func() { b.unwatch(h, w) })
	unhook := context.AfterFunc(ctx, stop)
	return func() { unhook(); stop() }, nil
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

// watches holds the hub of a Backend's watches, while any runs.
type watches struct {
	mu sync.Mutex
	h  *hub
}

// close ends the watches of a closed Backend: they report ChangeLost (one
// whose report is under way, after it).
func (ws *watches) close() {
	ws.mu.Lock()
	h := ws.h
	ws.h = nil
	ws.mu.Unlock()
	if h != nil {
		h.shutdown()
		h.mu.Lock()
		h.lostAll(backend.ErrClosed, false)
		h.unlock()
	}
}

// unwatch stops w; the last watch of the hub ends it. A connection that
// tracks too many prefixes of stopped watches is made anew.
func (b *Backend) unwatch(h *hub, w *watcher) {
	b.watches.mu.Lock()
	h.mu.Lock()
	ws := slices.DeleteFunc(slices.Clone(*h.ws.Load()), func(x *watcher) bool { return x == w })
	h.ws.Store(&ws)
	for _, n := range h.nodes {
		used := 0
		for _, p := range n.asked {
			if slices.ContainsFunc(h.wires(), func(w string) bool { return strings.HasPrefix(w, p) }) {
				used++
			}
		}
		if stale := len(n.asked) - used; len(ws) > 0 && stale > max(used, maxStale) {
			h.drop(n, n.cn, errStale)
		}
	}
	last := len(ws) == 0 && b.watches.h == h
	if last {
		b.watches.h = nil
	}
	b.watches.mu.Unlock()
	h.unlock()
	w.rmu.Lock() // a report under way ends first; none follows
	w.report = func(backend.Change) {}
	w.rmu.Unlock()
	if last {
		h.shutdown()
	}
}

// hub runs the tracking connections that a Backend's watches share, one
// per master.
type hub struct {
	b      *Backend
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // asks for a reload of a cluster's masters

	ws atomic.Pointer[[]*watcher] // written under mu, read by the readers

	mu    sync.Mutex // guards nodes, their state and lost; never held while reporting
	nodes map[string]*node
	lost  error // of the latest ChangeLost of every watch
}

// watcher is one watch. The hub decides its reports under hub.mu and
// queues them; they are made after, in order, under rmu.
type watcher struct {
	prefix string // backend prefix
	wire   string // stored prefix

	rmu    sync.Mutex           // held while reporting
	report func(backend.Change) // a no-op once the watch stopped

	mu       sync.Mutex       // guards the rest; taken last, held briefly
	queue    []backend.Change // decided, not yet made
	live     bool
	reported bool
	lastErr  string    // of the latest ChangeLost
	synced   time.Time // of the latest ChangeLive or ChangeSynced
}

// unlock unlocks h.mu, then makes the reports decided under it.
func (h *hub) unlock() {
	h.mu.Unlock()
	for _, w := range *h.ws.Load() {
		w.flush()
	}
}

// flush makes w's queued reports unless a report of w is under way, whose
// goroutine makes them after it.
func (w *watcher) flush() {
	for {
		w.mu.Lock()
		n := len(w.queue)
		w.mu.Unlock()
		if n == 0 || !w.rmu.TryLock() {
			return
		}
		w.drain()
		w.rmu.Unlock()
	}
}

// drain makes w's queued reports, rmu held, and reports whether w is then
// live.
func (w *watcher) drain() bool {
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			defer w.mu.Unlock()
			return w.live
		}
		ch := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		w.report(ch)
	}
}

// node is the tracking of one master.
type node struct {
	addr    string
	opt     *goredis.Options
	cancel  context.CancelFunc
	cn      *respConn // the connection, while live
	asked   []string  // the prefixes asked on cn
	tracked []string  // those whose tracking cn confirmed
	synced  time.Time // every change of the master before it was reported
	view    []string  // the masters its CLUSTER NODES lists
	viewAt  time.Time
	done    chan struct{}
}

func (b *Backend) newHub() *hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{b: b, ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1), nodes: map[string]*node{}}
	h.ws.Store(&[]*watcher{})
	if b.cluster == nil {
		opt := b.client.(*goredis.Client).Options()
		h.startNode(opt.Addr, opt)
	} else {
		h.wg.Go(h.topology)
	}
	return h
}

// shutdown ends the hub's goroutines and connections.
func (h *hub) shutdown() {
	h.cancel()
	h.wg.Wait()
}

// add starts w; h.mu is held. Its first report is the latest loss while
// a connection is down.
func (h *hub) add(w *watcher) {
	ws := append(slices.Clone(*h.ws.Load()), w)
	h.ws.Store(&ws)
	for _, n := range h.nodes {
		h.track(n)
	}
	h.maybeLive()
	if !h.connected() && h.lost != nil {
		w.mu.Lock()
		w.lose(h.lost)
		w.mu.Unlock()
	}
}

// connected reports whether every master's connection is live; h.mu is
// held.
func (h *hub) connected() bool {
	for _, n := range h.nodes {
		if n.cn == nil {
			return false
		}
	}
	return len(h.nodes) > 0
}

// startNode starts the tracking of a master; h.mu is held, or the hub
// unshared.
func (h *hub) startNode(addr string, opt *goredis.Options) {
	ctx, cancel := context.WithCancel(h.ctx)
	n := &node{addr: addr, opt: opt, cancel: cancel, done: make(chan struct{})}
	h.nodes[addr] = n
	h.wg.Go(func() {
		defer close(n.done)
		h.runNode(ctx, n)
	})
}

// covers reports whether a prefix of ps is one of wire.
func covers(ps []string, wire string) bool {
	return slices.ContainsFunc(ps, func(p string) bool { return strings.HasPrefix(wire, p) })
}

// cover returns the shortest list of prefixes that covers every one of ps.
func cover(ps []string) []string {
	ps = slices.Compact(slices.Sorted(slices.Values(ps)))
	out := ps[:0]
	for _, p := range ps {
		if len(out) == 0 || !strings.HasPrefix(p, out[len(out)-1]) {
			out = append(out, p)
		}
	}
	return out
}

// trackArgs is the CLIENT TRACKING command of prefixes (none for "").
func trackArgs(prefixes []string) []string {
	args := []string{"CLIENT", "TRACKING", "ON", "BCAST"}
	for _, p := range prefixes {
		if p != "" {
			args = append(args, "PREFIX", p)
		}
	}
	return args
}

// wires returns the stored prefixes of the watches.
func (h *hub) wires() []string {
	var out []string
	for _, w := range *h.ws.Load() {
		out = append(out, w.wire)
	}
	return out
}

// track asks n's connection to track the prefixes of the watches that it
// does not cover yet, or makes it anew when one covers a tracked prefix.
// h.mu is held.
func (h *hub) track(n *node) {
	cn := n.cn
	if cn == nil {
		return
	}
	var add []string
	for _, wire := range h.wires() {
		if covers(n.asked, wire) {
			continue
		}
		if slices.ContainsFunc(n.asked, func(p string) bool { return strings.HasPrefix(p, wire) }) {
			h.drop(n, cn, errWider)
			return
		}
		add = append(add, wire)
	}
	if len(add) == 0 {
		return
	}
	add = cover(add)
	n.asked = append(n.asked, add...)
	err := cn.send(func(_ any, err error) {
		h.mu.Lock()
		defer h.unlock()
		if n.cn != cn {
			return
		}
		if err != nil {
			h.drop(n, cn, fmt.Errorf("redis: watch: CLIENT TRACKING on %s: %w", n.addr, err))
			return
		}
		n.tracked = append(n.tracked, add...)
		h.maybeLive()
	}, trackArgs(add)...)
	if err != nil {
		h.drop(n, cn, fmt.Errorf("redis: tracking connection to %s: %w", n.addr, err))
	}
}

// drop gives up n's connection cn, if still n's, reporting the loss to
// every watch: before anything else, and before any reconnect. h.mu is
// held.
func (h *hub) drop(n *node, cn *respConn, err error) {
	if n.cn != cn {
		return
	}
	n.cn, n.asked, n.tracked = nil, nil, nil
	cn.close()
	if h.ctx.Err() != nil {
		return
	}
	h.lostAll(err, false)
	if h.b.cluster != nil {
		// A failover shows as a lost master: have the client learn the
		// new slot map, and follow it.
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
}

// lostAll decides ChangeLost for err for the watches (those live only, if
// liveOnly). h.mu is held.
func (h *hub) lostAll(err error, liveOnly bool) {
	h.lost = err
	for _, w := range *h.ws.Load() {
		w.mu.Lock()
		if w.live || !liveOnly {
			w.lose(err)
		}
		w.mu.Unlock()
	}
}

// lose decides ChangeLost for err, once for the same error while not live.
// w.mu is held.
func (w *watcher) lose(err error) {
	msg := err.Error()
	if w.live || !w.reported || msg != w.lastErr {
		w.live, w.reported, w.lastErr = false, true, msg
		w.queue = append(w.queue, backend.Change{Kind: backend.ChangeLost, Err: err})
	}
}

// maybeLive decides ChangeLive for the watches not live whose prefix
// every master's connection tracks. h.mu is held.
func (h *hub) maybeLive() {
	for _, w := range *h.ws.Load() {
		w.mu.Lock()
		ok := !w.live && h.connected()
		for _, n := range h.nodes {
			ok = ok && covers(n.tracked, w.wire)
		}
		if ok {
			at := time.Now()
			w.live, w.reported, w.lastErr, w.synced = true, true, "", at
			w.queue = append(w.queue, backend.Change{Kind: backend.ChangeLive, At: at})
		}
		w.mu.Unlock()
	}
}

// synced decides ChangeSynced for the live watches once every master has
// proved its reports up to a later time than their latest. h.mu is held.
func (h *hub) synced() {
	var at time.Time
	for _, n := range h.nodes {
		if n.cn == nil {
			return
		}
		if at.IsZero() || n.synced.Before(at) {
			at = n.synced
		}
	}
	for _, w := range *h.ws.Load() {
		w.mu.Lock()
		if w.live && at.After(w.synced) {
			w.synced = at
			w.queue = append(w.queue, backend.Change{Kind: backend.ChangeSynced, At: at})
		}
		w.mu.Unlock()
	}
}

// push hands a push frame of a tracking connection to the live watches:
// the changed keys to those of their prefix, the null list of keys of
// FLUSHDB and FLUSHALL (any key may have changed) to all, after their
// queued reports. It runs on the connection's reader, without h.mu: a
// watch is live only while every master's connection tracks its prefix.
func (h *hub) push(p pushFrame) {
	if len(p) != 2 || p[0] != "invalidate" {
		return
	}
	wire, _ := p[1].([]any)
	for _, w := range *h.ws.Load() {
		ch := backend.Change{Kind: backend.ChangeAll}
		if p[1] != nil {
			ch.Kind = backend.ChangeKeys
			for _, k := range wire {
				if s, ok := k.(string); ok {
					if s = h.b.backendKey(s); strings.HasPrefix(s, w.prefix) {
						ch.Keys = append(ch.Keys, s)
					}
				}
			}
			if len(ch.Keys) == 0 {
				continue
			}
		}
		w.mu.Lock()
		live := w.live
		w.mu.Unlock()
		if !live {
			continue // nor wait for a report under way
		}
		w.rmu.Lock()
		if w.drain() {
			w.report(ch)
		}
		w.rmu.Unlock()
		w.flush()
	}
}

// topology follows a cluster's masters: a node per master, as the nodes'
// views list them.
func (h *hub) topology() {
	h.reconcile()
	t := time.NewTicker(topologyEvery)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
			h.b.cluster.ReloadState(h.ctx)
		}
		h.reconcile()
	}
}

// reconcile starts the tracking of the masters to watch and ends that of
// the others.
func (h *hub) reconcile() {
	h.mu.Lock()
	var views []string
	for _, n := range h.nodes {
		if n.cn != nil && time.Since(n.viewAt) < 3*checkEvery {
			views = append(views, n.view...)
		}
	}
	h.mu.Unlock()
	want, err := h.masters(views)
	h.mu.Lock()
	if err != nil {
		if h.ctx.Err() == nil {
			h.lostAll(err, false)
		}
		h.unlock()
		return
	}
	var gone []*node
	for addr, n := range h.nodes {
		if _, ok := want[addr]; !ok {
			n.cancel()
			gone = append(gone, n)
			delete(h.nodes, addr)
		}
	}
	changed := len(gone) > 0
	for addr, opt := range want {
		if _, ok := h.nodes[addr]; !ok && h.ctx.Err() == nil {
			h.startNode(addr, opt)
			changed = true
		}
	}
	if changed {
		h.lostAll(fmt.Errorf("redis: watch: the masters changed; tracking %d", len(h.nodes)), true)
	}
	if len(h.nodes) == 0 {
		h.lostAll(errors.New("redis: watch: no master to track"), false)
	}
	h.maybeLive()
	h.unlock()
	for _, n := range gone {
		<-n.done
	}
}

// masters returns the options of the masters to watch, by address: every
// master that views list (those that own no slot included), or, when
// there is none, that a node's CLUSTER NODES lists.
func (h *hub) masters(views []string) (map[string]*goredis.Options, error) {
	ctx, cancel := context.WithTimeout(h.ctx, topologyEvery)
	defer cancel()
	known, err := h.b.masters(ctx)
	if err != nil {
		return nil, err
	}
	if len(views) == 0 {
		view, err := h.b.anyView(ctx, known)
		if err != nil {
			return nil, err
		}
		views = view.masters
	}
	out := map[string]*goredis.Options{}
	for _, a := range views {
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
