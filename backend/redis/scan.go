package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/kvmap/kv/backend"
)

// Scan implements backend.Backend.Scan with SCAN MATCH prefix* TYPE string
// COUNT count. On a standalone server the cursor is SCAN's. On a cluster every
// master that CLUSTER NODES lists is scanned in turn (sorted by address),
// including one that owns no slot yet, where a reshard to a new master
// imports keys, and the cursor is the topology, the master and its SCAN
// cursor: a master that receives keys from one whose scan has not ended
// (a reshard, a failover) is scanned again after the others, which may
// return keys twice but never misses one (see scanCluster).
func (b *Backend) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	if err := b.check(ctx); err != nil {
		return backend.Page{}, err
	}
	if count <= 0 {
		count = 10
	}
	match, filter, err := b.matchPattern(prefix)
	if err != nil {
		return backend.Page{}, err
	}
	var (
		page backend.Page
		wire []string
	)
	if b.cluster == nil {
		cur, err := parseCursor(cursor)
		if err != nil {
			return backend.Page{}, err
		}
		var next uint64
		wire, next, err = b.client.ScanType(ctx, cur, match, int64(count), "string").Result()
		if err != nil {
			return backend.Page{}, b.wrap(ctx, "SCAN", err)
		}
		if next != 0 {
			page.Cursor = strconv.FormatUint(next, 10)
		}
	} else {
		if wire, page.Cursor, err = b.scanCluster(ctx, match, cursor, count); err != nil {
			return backend.Page{}, err
		}
	}
	page.Keys = backend.DropLeaseKeys(prefix, b.fromWire(wire, prefix, filter))
	return page, nil
}

// fromWire maps scanned keys back to backend keys, in place, keeping only
// those under prefix when filter is set.
func (b *Backend) fromWire(wire []string, prefix string, filter bool) []string {
	if !b.hashTag {
		return wire
	}
	out := wire[:0]
	for _, w := range wire {
		k := b.backendKey(w)
		if !filter || strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func parseCursor(cursor string) (uint64, error) {
	if cursor == "" {
		return 0, nil
	}
	cur, err := strconv.ParseUint(cursor, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis: invalid scan cursor %q", cursor)
	}
	return cur, nil
}

// masters returns the clients of the cluster's masters that the cluster
// client knows (the owners of slots in its slot map), by address.
func (b *Backend) masters(ctx context.Context) (map[string]*goredis.Client, error) {
	var mu sync.Mutex
	ms := map[string]*goredis.Client{}
	err := b.cluster.ForEachMaster(ctx, func(_ context.Context, c *goredis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		ms[c.Options().Addr] = c
		return nil
	})
	if err != nil {
		return nil, b.wrap(ctx, "CLUSTER", err)
	}
	return ms, nil
}

// nodeOptions returns the options of a client of the cluster node at addr:
// those of the node clients the cluster client makes (credentials, TLS,
// dialer, timeouts), for a master its slot map does not name yet (one that
// owns no slot, where a reshard to a new master starts).
func nodeOptions(known map[string]*goredis.Client, addr string) (*goredis.Options, error) {
	for _, c := range known {
		o := *c.Options()
		o.Addr = addr
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns = 1, 0, 0
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		return &o, nil
	}
	return nil, fmt.Errorf("redis: no cluster node known to reach %s through", addr)
}

// nodeClient returns a client of the master at addr: the cluster client's
// own when it knows the master, else one made for the call, which done
// closes.
func (b *Backend) nodeClient(known map[string]*goredis.Client, addr string) (c *goredis.Client, done func(), err error) {
	if c, ok := known[addr]; ok {
		return c, func() {}, nil
	}
	o, err := nodeOptions(known, addr)
	if err != nil {
		return nil, nil, err
	}
	c = goredis.NewClient(o)
	return c, func() { _ = c.Close() }, nil // a client of our own, unused after
}

// clusterNodes returns the view of the cluster that the node c has, from
// its CLUSTER NODES.
func (b *Backend) clusterNodes(ctx context.Context, c *goredis.Client) (clusterView, error) {
	reply, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return clusterView{}, b.wrap(ctx, "CLUSTER NODES", err)
	}
	return parseClusterNodes(reply), nil
}

// anyView returns the view of the first master, by address, that the
// cluster client knows.
func (b *Backend) anyView(ctx context.Context, known map[string]*goredis.Client) (clusterView, error) {
	if len(known) == 0 {
		return clusterView{}, b.wrap(ctx, "CLUSTER NODES", errors.New("no master known"))
	}
	addrs := slices.Sorted(maps.Keys(known))
	return b.clusterNodes(ctx, known[addrs[0]])
}

// forEachMaster runs fn concurrently on every master of the cluster, as a
// node's CLUSTER NODES lists them: the owners of slots and the masters that
// own none yet (a reshard to a new master imports keys there before it owns
// their slot), and returns the first error (see clearClient for the client
// each gets).
func (b *Backend) forEachMaster(ctx context.Context, fn func(ctx context.Context, c *goredis.Client) error) error {
	known, err := b.masters(ctx)
	if err != nil {
		return err
	}
	view, err := b.anyView(ctx, known)
	if err != nil {
		return err
	}
	errs := make([]error, len(view.masters))
	var wg sync.WaitGroup
	for i, addr := range view.masters {
		wg.Go(func() {
			c, done, err := b.clearClient(ctx, known, addr)
			if err != nil {
				errs[i] = err
				return
			}
			defer done()
			errs[i] = fn(ctx, c)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// clearClient returns the client of a prefix delete on the master at addr:
// the cluster client's own, unless the master is importing a slot (its
// CLUSTER NODES says so) or the cluster client does not know it; then a
// client of its own, which done closes, that sends ASKING before each
// UNLINK (see askingHook), so that the keys the master holds in a slot it
// is importing are deleted there.
func (b *Backend) clearClient(ctx context.Context, known map[string]*goredis.Client, addr string) (c *goredis.Client, done func(), err error) {
	if c, ok := known[addr]; ok {
		view, err := b.clusterNodes(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		if !view.importing {
			return c, func() {}, nil
		}
	}
	o, err := nodeOptions(known, addr)
	if err != nil {
		return nil, nil, err
	}
	o.PoolSize = 2 // a prefix delete scans on one connection while it unlinks on another
	c = goredis.NewClient(o)
	c.AddHook(&askingHook{c: c})
	return c, func() { _ = c.Close() }, nil // a client of our own, unused after
}

// askingHook sends ASKING before each UNLINK of the client it is added to,
// a client of a cluster node made for a prefix delete: a master serves a
// key of a slot it is importing only to a command that follows ASKING, and
// redirects any other (MOVED) to the slot's owner, which no longer has it.
// Where the slot is not being imported, ASKING changes nothing.
type askingHook struct{ c *goredis.Client }

// DialHook implements goredis.Hook.
func (h *askingHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

// ProcessHook implements goredis.Hook: an UNLINK goes out in a pipeline,
// after ASKING.
func (h *askingHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if cmd.Name() != "unlink" {
			return next(ctx, cmd)
		}
		pipe := h.c.Pipeline()
		_ = pipe.Process(ctx, cmd) // queues it; Exec reports its error
		_, err := pipe.Exec(ctx)
		return err
	}
}

// ProcessPipelineHook implements goredis.Hook: ASKING before each UNLINK.
func (h *askingHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		out := make([]goredis.Cmder, 0, 2*len(cmds))
		for _, c := range cmds {
			if c.Name() == "unlink" {
				out = append(out, goredis.NewStatusCmd(ctx, "asking"))
			}
			out = append(out, c)
		}
		return next(ctx, out)
	}
}

// clusterView is what one node's CLUSTER NODES says that a scan and a watch
// depend on.
type clusterView struct {
	// owners holds the slots each master that serves slots serves, as
	// CLUSTER NODES lists them ("0-5460,5462").
	owners map[string]string
	// masters are the addresses, sorted, of the masters that hold keys or
	// may receive them: every master that serves slots (failed or not: a
	// pass must fail there rather than miss its keys), and every master
	// without slots that is not marked failed (a reshard's target imports
	// keys before it owns their slot).
	masters []string
	// movingTo holds the addresses of the masters the node is migrating
	// slots to: keys of those slots may leave for them mid-scan.
	movingTo []string
	// master reports that the node says it is a master itself.
	master bool
	// importing reports that the node is importing a slot.
	importing bool
}

// parseClusterNodes reads the reply of CLUSTER NODES: lines of "id
// ip:port@cport[,hostname] flags master ping pong epoch link slot...", where
// the reporting node's own line ("myself") shows a slot being migrated out
// as "[slot->-targetid]" and one being imported as "[slot-<-sourceid]". A
// master in a handshake, or without an address, is left out.
func parseClusterNodes(reply string) clusterView {
	addrOf := map[string]string{}
	var masters, targets []string
	v := clusterView{owners: map[string]string{}}
	for _, line := range strings.Split(reply, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addrOf[f[0]] = addr
		flags := strings.Split(f[2], ",")
		myself := slices.Contains(flags, "myself")
		var ranges []string
		for _, tok := range f[8:] {
			if strings.HasPrefix(tok, "[") {
				if _, target, ok := strings.Cut(strings.Trim(tok, "[]"), "->-"); ok && myself {
					targets = append(targets, target)
				}
				if strings.Contains(tok, "-<-") && myself {
					v.importing = true
				}
				continue
			}
			ranges = append(ranges, tok)
		}
		isMaster := slices.Contains(flags, "master")
		if myself {
			v.master = isMaster
		}
		if !isMaster || slices.Contains(flags, "handshake") || slices.Contains(flags, "noaddr") || strings.HasPrefix(addr, ":") {
			continue
		}
		if len(ranges) == 0 && slices.Contains(flags, "fail") {
			continue
		}
		if len(ranges) > 0 {
			v.owners[addr] = strings.Join(ranges, ",")
		}
		masters = append(masters, addr)
	}
	slices.Sort(masters)
	v.masters = slices.Compact(masters)
	for _, id := range targets {
		if a, ok := addrOf[id]; ok {
			v.movingTo = append(v.movingTo, a)
		}
	}
	return v
}

// scanCluster runs one SCAN step on one master, in the same round trip as
// that master's CLUSTER NODES. Masters are scanned one after the other, in
// address order to begin with, every master the cluster lists (one that
// owns no slot yet holds the keys a reshard has moved to it so far). Keys
// move between masters only with their slots, from a master that migrates
// the slot to the one that imports it: a key present for the whole pass is
// missed only if it left a master before that master's scan ended, for a
// master whose scan began before it arrived. So a master is scanned (again)
// after the others when, while the pass runs, it is seen receiving a slot
// from a master whose scan has not ended: a master being scanned that is
// migrating slots to it (its CLUSTER NODES shows them), or a slot changing
// owner to it between two pages (the owners each page reads are in the
// cursor). A master whose scan ended before its keys left needs no second
// look: its scan returned them. A pass that overlaps a reshard therefore
// ends even if the reshard does not (a rescan of the target per source,
// at most), and returns keys twice, never misses one.
//
// The cursor is "scanned|schedule|cursor|owners": the masters whose scan
// has ended, the masters still to scan (the first being scanned), its SCAN
// cursor, and the slots each master owned at the latest page.
func (b *Backend) scanCluster(ctx context.Context, match, cursor string, count int) ([]string, string, error) {
	st, err := parseScanState(cursor)
	if err != nil {
		return nil, "", err
	}
	known, err := b.masters(ctx)
	if err != nil {
		return nil, "", err
	}
	if cursor == "" { // a pass begins: the masters as a node lists them
		view, err := b.anyView(ctx, known)
		if err != nil {
			return nil, "", err
		}
		if len(view.masters) == 0 {
			return nil, "", nil
		}
		st = scanState{scanned: map[string]bool{}, schedule: view.masters, owners: view.owners}
	}
	addr := st.schedule[0]
	c, done, err := b.nodeClient(known, addr)
	if err != nil {
		return nil, "", b.wrap(ctx, "SCAN", err)
	}
	defer done()
	pipe := c.Pipeline()
	scan := pipe.ScanType(ctx, st.cur, match, int64(count), "string")
	nodes := pipe.ClusterNodes(ctx)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, "", b.wrap(ctx, "SCAN", err)
	}
	keys, next, err := scan.Result()
	if err != nil {
		return nil, "", b.wrap(ctx, "SCAN", err)
	}
	view := parseClusterNodes(nodes.Val())
	for _, to := range view.movingTo {
		st.rescan(to, addr)
	}
	if !maps.Equal(st.owners, view.owners) {
		was, now := slotsOf(st.owners), slotsOf(view.owners)
		for s := range now {
			if from, to := was[s], now[s]; from != to && to != "" && !st.scanned[from] {
				st.rescan(to, addr)
			}
		}
		b.cluster.ReloadState(ctx) // the client's slot map is out of date
	}
	st.owners = view.owners
	for _, m := range view.masters { // a master that joined
		if !st.scanned[m] && !slices.Contains(st.schedule, m) {
			st.schedule = append(st.schedule, m)
		}
	}
	st.cur = next
	if next == 0 {
		st.scanned[addr] = true
		st.schedule = st.schedule[1:]
		// A master that has left the cluster (failed over, removed) has
		// nothing to scan: its slots' keys are where they went.
		st.schedule = slices.DeleteFunc(st.schedule, func(m string) bool {
			_, ok := slices.BinarySearch(view.masters, m)
			return !ok
		})
		if len(st.schedule) == 0 {
			return keys, "", nil
		}
	}
	return keys, st.String(), nil
}

// scanState is the state of a cluster scan, its cursor.
type scanState struct {
	scanned  map[string]bool   // the masters whose scan has ended
	schedule []string          // the masters to scan, the first being scanned
	cur      uint64            // the SCAN cursor of schedule[0]
	owners   map[string]string // master -> the slots it owns ("0-5460,5462")
}

// rescan makes the pass scan master to after now, because keys may have
// arrived there from cur, the master being scanned, or from another whose
// scan has not ended.
func (st *scanState) rescan(to, cur string) {
	if to == cur || st.scanned[to] {
		delete(st.scanned, to)
		if !slices.Contains(st.schedule[1:], to) {
			st.schedule = append(st.schedule, to)
		}
		return
	}
	if !slices.Contains(st.schedule, to) {
		st.schedule = append(st.schedule, to)
	}
}

// String returns the cursor of the state.
func (st *scanState) String() string {
	owners := make([]string, 0, len(st.owners))
	for _, m := range slices.Sorted(maps.Keys(st.owners)) {
		owners = append(owners, m+"="+st.owners[m])
	}
	scanned := slices.Sorted(maps.Keys(st.scanned))
	return fmt.Sprintf("%s|%s|%d|%s", strings.Join(scanned, ","), strings.Join(st.schedule, ","), st.cur, strings.Join(owners, ";"))
}

// parseScanState reads a cursor of scanCluster; the empty cursor begins a
// pass.
func parseScanState(cursor string) (scanState, error) {
	st := scanState{scanned: map[string]bool{}, owners: map[string]string{}}
	if cursor == "" {
		return st, nil
	}
	bad := fmt.Errorf("redis: invalid cluster scan cursor %q", cursor)
	f := strings.Split(cursor, "|")
	if len(f) != 4 || f[1] == "" {
		return st, bad
	}
	for _, m := range strings.Split(f[0], ",") {
		if m != "" {
			st.scanned[m] = true
		}
	}
	st.schedule = strings.Split(f[1], ",")
	cur, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return st, bad
	}
	st.cur = cur
	for _, o := range strings.Split(f[3], ";") {
		if o == "" {
			continue
		}
		m, r, ok := strings.Cut(o, "=")
		if !ok {
			return st, bad
		}
		st.owners[m] = r
	}
	return st, nil
}

// slotsOf returns the owner of each slot ("" for none) of an owners map.
func slotsOf(owners map[string]string) []string {
	out := make([]string, 16384)
	for m, ranges := range owners {
		for _, r := range strings.Split(ranges, ",") {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || l < 0 || h >= len(out) {
				continue
			}
			for s := l; s <= h; s++ {
				out[s] = m
			}
		}
	}
	return out
}

// Optimizations implements backend.Optimizer: a prefix delete that unlinks
// each page while the next is scanned.
func (b *Backend) Optimizations() backend.Optimizations {
	return backend.Optimizations{DeletePrefix: b.deletePrefix}
}

// Capabilities implements backend.Capable: watches of changes by
// server-assisted invalidation (see watch), leases kept as keys under
// backend.LeasePrefix (see acquireLeases) unless WithoutLeases, and
// conditional writes (see setIf).
func (b *Backend) Capabilities() backend.Capabilities {
	c := backend.Capabilities{AcquireLeases: b.acquireLeases, Watch: b.watch, SetIf: b.setIf}
	if b.noLeases {
		c.AcquireLeases = nil
	}
	return c
}

// deletePrefix is Optimizations.DeletePrefix: every string key under prefix
// (SCAN ... TYPE string, as Scan: keys of other Redis types are left, as the
// fallback leaves them) is deleted page by page (see clearNode), with the
// load leases of the keys under prefix (see clearMatch): a load in flight
// in any process then no longer stores its value. On a cluster the masters
// are cleared concurrently, with one UNLINK per hash slot.
func (b *Backend) deletePrefix(ctx context.Context, prefix string, count int) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if count <= 0 {
		count = 1000
	}
	match, keep, err := b.clearMatch(prefix)
	if err != nil {
		return err
	}
	if b.cluster == nil {
		c := b.client.(*goredis.Client)
		return b.clearNode(ctx, c, match, count, false, keep)
	}
	return b.forEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		return b.clearNode(ctx, c, match, count, true, keep)
	})
}

// clearMatch returns the SCAN MATCH pattern of a prefix delete and the
// function that keeps, of the keys it returns, exactly the stored keys under
// prefix and their lease keys (":kv-lease:{T}:" + such a key). One pass
// finds both: the stored prefix L is matched by "[c:]*" + L[1:] + "*", c
// being L's first byte, which the keys under L match and so do their lease
// keys (":" first, then L[1:] after L's first byte), and few others (a key
// must begin with c or ":" and hold L[1:]). A second SCAN pass for the lease
// keys alone would read the whole keyspace again, doubling the SCAN work of
// a Clear.
func (b *Backend) clearMatch(prefix string) (string, func(string) bool, error) {
	match, filter, err := b.matchPattern(prefix)
	if err != nil {
		return "", nil, err
	}
	under := func(w string) bool { return strings.HasPrefix(b.backendKey(w), prefix) }
	if b.noLeases { // the keys under prefix alone
		return match, func(w string) bool { return !backend.IsLeaseKey(w) && (!filter || under(w)) }, nil
	}
	if !filter {
		if match == "*" { // the empty prefix: every key
			return match, func(string) bool { return true }, nil
		}
		// The stored prefix (what matchPattern escaped): every stored key
		// under it starts with it.
		lit, err := b.wireKey(prefix)
		if err != nil {
			return "", nil, err
		}
		under = func(w string) bool { return strings.HasPrefix(w, lit) }
		if c := lit[0]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '{' {
			match = "[" + string(c) + ":]*" + globEscape(lit[1:]) + "*"
		} else {
			// A byte that a class would need escaped, which servers
			// and miniredis read differently: any first byte.
			match = "?*" + globEscape(lit[1:]) + "*"
		}
	}
	keep := func(w string) bool {
		if backend.IsLeaseKey(w) {
			d, ok := dataKeyOfLease(w)
			return ok && under(d)
		}
		return under(w)
	}
	return match, keep, nil
}

// clearScanCount is the least COUNT of the SCANs of a prefix delete: a
// page is not returned to any caller, and with fewer round trips per key a
// Clear of 100,000 keys among 100,000 others runs about 1.2x faster than with
// COUNT 1000 (docs/performance.md). One such SCAN holds the server for a few
// milliseconds.
const clearScanCount = 5000

// clearNode deletes the keys of one server that match the pattern. The
// UNLINK of each page runs on a connection of its own while the SCAN of the
// next page runs, so that the server is never idle while the client reads a
// reply: at most one page is being unlinked at a time, and a failed UNLINK
// ends the pass with its error.
func (b *Backend) clearNode(ctx context.Context, c *goredis.Client, match string, count int, bySlot bool, keep func(string) bool) (err error) {
	var inflight chan error // the UNLINK of the previous page; nil when none
	wait := func() error {
		if inflight == nil {
			return nil
		}
		err := <-inflight
		inflight = nil
		return err
	}
	defer func() {
		if werr := wait(); err == nil {
			err = werr
		}
	}()
	count = max(count, clearScanCount)
	cur := uint64(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		keys, next, err := c.ScanType(ctx, cur, match, int64(count), "string").Result()
		if err != nil {
			return b.wrap(ctx, "SCAN", err)
		}
		page := keys[:0]
		for _, k := range keys {
			if keep(k) {
				page = append(page, k)
			}
		}
		if err := wait(); err != nil {
			return err
		}
		if len(page) > 0 {
			inflight = make(chan error, 1)
			go func(done chan<- error) { done <- b.unlink(ctx, c, page, bySlot) }(inflight)
		}
		if next == 0 {
			return wait()
		}
		cur = next
	}
}

// unlink deletes keys of one server: one UNLINK, or on a cluster one per
// hash slot (a lease key is in its key's slot), pipelined; never re-sent by
// the client, so a lost reply fails with an error matching
// backend.ErrUnknownOutcome.
func (b *Backend) unlink(ctx context.Context, c *goredis.Client, keys []string, bySlot bool) error {
	if !bySlot {
		return b.wrapWrite(ctx, "UNLINK", c.Process(ctx, unlinkCmd(ctx, keys)))
	}
	pipe := c.Pipeline()
	var cmds []goredis.Cmder
	for _, idx := range slotGroups(keys) {
		cmd := unlinkCmd(ctx, pick(keys, idx))
		cmds = append(cmds, cmd)
		_ = pipe.Process(ctx, cmd) // queues it; Exec reports its error
	}
	_, err := pipe.Exec(ctx)
	return b.pipeErr(ctx, "UNLINK", cmds, err)
}
