package kv_test

// A model-based test of the Map (issue 18, item 3): rapid state machines run
// random sequences of every Map call, loads under each policy, writes of a
// second Map on the same store and steps of a manual clock, and check each
// step against a reference model.
//
// The model is exact where the documentation is: the store's contents and
// TTLs, what every read returns (GetWithTTL's TTL too), whether a
// conditional write (SetIfAbsent, CompareAndSwap, Update) writes, when a load runs and what it stores, when a
// key is refreshed ahead (WithRefreshAhead with WithSynchronousRefresh), when
// a miss is remembered (WithMissTTL), the range of jittered TTLs
// (WithTTLJitter), and stale serving (WithStaleWhileRevalidate): a value is
// served stale only if it expired, never after the key was deleted or written
// before its deadline, by this Map or (on a store that reports changes) by the
// other one; and it must be served when nothing but this Map and the clock
// touched the key. Where the documentation leaves room (another Map changed a
// key this Map remembers, a store that reports no changes), the model accepts
// each documented outcome and follows the one observed (the load calls tell).
//
// Run longer with KV_MODEL_CHECKS=n (random sequences per variant: 50 by
// default, 10 with -short; about 60 steps each) or rapid's own -rapid.checks
// and -rapid.steps;
// KV_MODEL_SKIP=Action1,Action2 leaves actions out (to look for one defect
// at a time). The Redis variants run when KV_REDIS_ADDR is set, without a
// manual clock: every TTL there outlasts the run.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	kvredis "github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/clock"
)

// modelKeys are the keys of every sequence: few, so that calls collide.
var modelKeys = []string{"a", "b", "c", "d", "e"}

// modelDefaults sets rapid's counts for this test when neither its flags
// nor its environment variables say otherwise: a short run by default,
// KV_MODEL_CHECKS sequences per variant when set.
var modelDefaults sync.Once

func setModelDefaults(t *testing.T) {
	modelDefaults.Do(func() {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		checks := "50"
		if testing.Short() {
			checks = "10"
		}
		if n := os.Getenv("KV_MODEL_CHECKS"); n != "" {
			if _, err := strconv.Atoi(n); err != nil {
				t.Fatalf("KV_MODEL_CHECKS=%q: %v", n, err)
			}
			checks = n
		}
		if !set["rapid.checks"] && os.Getenv("RAPID_CHECKS") == "" {
			if err := flag.Set("rapid.checks", checks); err != nil {
				t.Fatal(err)
			}
		}
		if !set["rapid.steps"] && os.Getenv("RAPID_STEPS") == "" {
			if err := flag.Set("rapid.steps", "60"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// modelVariant is one policy setup of the Map under test.
type modelVariant struct {
	name    string
	refresh float64 // WithRefreshAhead
	stale   bool    // WithStaleWhileRevalidate
	miss    bool    // WithMissTTL
	jitter  float64 // WithTTLJitter
	lease   bool    // WithLoadLease (both Maps)
}

var modelVariants = []modelVariant{
	{name: "plain"},
	{name: "refresh", refresh: 0.2},
	{name: "stale", stale: true},
	{name: "miss", miss: true},
	{name: "jitter", jitter: 0.3},
	{name: "lease", lease: true},
	{name: "all", refresh: 0.2, stale: true, miss: true, jitter: 0.3, lease: true},
}

// modelTimes are the durations of a backend's runs: short ones on a manual
// clock, ones that outlast the run without it.
type modelTimes struct {
	ttl, grace, missTTL, lease time.Duration
	ttls                       []time.Duration // for SetWithTTL and Expire (0 is refused)
}

var (
	modelManualTimes = modelTimes{ttl: 10 * time.Second, grace: 5 * time.Second, missTTL: 3 * time.Second, lease: 5 * time.Second,
		ttls: []time.Duration{0, time.Millisecond, time.Second, 3 * time.Second, 10 * time.Second, 30 * time.Second, kv.NoTTL}}
	modelWallTimes = modelTimes{ttl: time.Hour, grace: 5 * time.Minute, missTTL: time.Hour, lease: 5 * time.Second,
		ttls: []time.Duration{0, 5 * time.Minute, 2 * time.Hour, kv.NoTTL}}
)

// modelStore opens a fresh store for one sequence.
type modelStore struct {
	name    string
	manual  bool // expiry follows the sequence's manual clock
	reports bool // the store reports changes (Capabilities.Watch)
	leases  bool // the store keeps load leases (Capabilities.AcquireLeases)
	times   modelTimes
	// open returns the store, its namespace for this sequence and a
	// function that ends both.
	open func(clk clock.Clock) (backend.Backend, string, func() error, error)
}

func modelStores(t *testing.T) []modelStore {
	dir := t.TempDir()
	var n atomic.Int64
	stores := []modelStore{
		{name: "memory", manual: true, reports: true, leases: true, times: modelManualTimes,
			open: func(clk clock.Clock) (backend.Backend, string, func() error, error) {
				b := memory.New(memory.WithClock(clk), memory.WithSweepInterval(0))
				return b, "model", b.Close, nil
			}},
		{name: "bolt", manual: true, leases: true, times: modelManualTimes,
			open: func(clk clock.Clock) (backend.Backend, string, func() error, error) {
				path := filepath.Join(dir, fmt.Sprintf("model%d.db", n.Add(1)))
				b, err := bolt.Open(path, bolt.WithSimulatedClock(clk), bolt.WithNoSync(), bolt.WithSweepInterval(0))
				if err != nil {
					return nil, "", nil, err
				}
				return b, "model", func() error { return errors.Join(b.Close(), os.Remove(path)) }, nil
			}},
	}
	if addr := os.Getenv("KV_REDIS_ADDR"); addr != "" {
		client := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() {
			if err := client.Close(); err != nil {
				t.Error(err)
			}
		})
		stores = append(stores, modelStore{name: "redis", reports: true, leases: true, times: modelWallTimes,
			open: func(clock.Clock) (backend.Backend, string, func() error, error) {
				b, err := kvredis.New(client)
				if err != nil {
					return nil, "", nil, err
				}
				ns := fmt.Sprintf("kvmodel%d_%d_%d", os.Getpid(), time.Now().UnixNano(), n.Add(1))
				return b, ns, func() error {
					err := backend.DeletePrefix(context.Background(), b, ns+":", 100)
					return errors.Join(err, b.Close())
				}, nil
			}})
	}
	return stores
}

// TestMapModel runs the model on every store and policy variant.
func TestMapModel(t *testing.T) {
	setModelDefaults(t)
	skip := map[string]bool{}
	for _, a := range strings.Split(os.Getenv("KV_MODEL_SKIP"), ",") {
		skip[strings.TrimSpace(a)] = true
	}
	for _, st := range modelStores(t) {
		for _, v := range modelVariants {
			t.Run(st.name+"/"+v.name, func(t *testing.T) {
				if v.name == "lease" && !st.leases {
					t.Skipf("%s keeps no leases (one process per file)", st.name)
				}
				var stats modelStats
				defer func() { t.Logf("outcomes: %s", stats.String()) }()
				rapid.Check(t, func(rt *rapid.T) {
					s := newModelMachine(rt, st, v)
					s.stats = &stats
					defer s.close(rt)
					rt.Repeat(s.actions(skip))
				})
			})
		}
	}
}

// modelStats counts the outcomes the sequences of a variant reached, to
// show what they covered (go test -v).
type modelStats struct {
	mu sync.Mutex
	n  map[string]int
}

func (st *modelStats) add(outcome string) {
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.n == nil {
		st.n = map[string]int{}
	}
	st.n[outcome]++
}

func (st *modelStats) String() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []string
	for k, n := range st.n {
		out = append(out, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// modelVal is a value in the model store.
type modelVal struct {
	v        string
	deadline time.Time // zero: no expiry
}

// modelCand is a value the Map under test may serve stale for a key.
type modelCand struct {
	v        string
	deadline time.Time // when the key holding v expires (zero: never)
	required bool      // must be served within its grace while the key's modelMemo is exact
	tainted  bool      // another Map changed the key before deadline, after v was recorded
}

// modelMemo is the model of what the Map under test remembers of a key for
// refresh-ahead and stale serving. exact: nothing but this Map (and the
// clock) touched the key since this Map last wrote, deleted or loaded it, so
// its deadline and value are known exactly. loose: another Map did, and
// the store may or may not have told this one.
type modelMemo struct {
	loose bool
	cands []modelCand
}

// modelLoad is one call of a load function of the Map under test.
type modelLoad struct {
	keys  []string
	found map[string]string // what it returned
}

// modelMachine is one random sequence: the Maps, the store and the model.
type modelMachine struct {
	ctx    context.Context
	cancel context.CancelFunc
	v      modelVariant
	st     modelStore
	times  modelTimes
	clk    *clock.Manual // nil: the system clock (Redis)
	raw    backend.Backend
	hooked *modelHookStore
	ns     string
	end    func() error

	m *kv.Map[string] // under test, with the variant's policies
	o *kv.Map[string] // another process: plain, with leases if the variant has them
	c *kv.Map[string] // the checker's reads

	stats   *modelStats
	refresh time.Duration // of m's TTL
	hasSeen bool          // m remembers deadlines (refresh or stale)
	closed  bool          // m.Close was called

	store  map[string]modelVal
	source map[string]int // key -> generation of its source value; absent: not in the source
	misses map[string]time.Time
	memos  map[string]*modelMemo
	seq    int

	mu     sync.Mutex // guards calls and nload: loads run in the Map's goroutines
	calls  []modelLoad
	nload  int
	ocalls int
}

func newModelMachine(rt *rapid.T, st modelStore, v modelVariant) *modelMachine {
	s := &modelMachine{v: v, st: st, times: st.times,
		store: map[string]modelVal{}, source: map[string]int{}, misses: map[string]time.Time{}, memos: map[string]*modelMemo{}}
	for _, k := range modelKeys {
		s.source[k] = 1 // SourceDelete takes keys out
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var clk clock.Clock = clock.System()
	if st.manual {
		s.clk = clock.NewManual(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
		clk = s.clk
	}
	raw, ns, end, err := st.open(clk)
	if err != nil {
		rt.Fatalf("open %s: %v", st.name, err)
	}
	s.raw, s.ns, s.end = raw, ns, end
	s.hooked = &modelHookStore{Backend: raw}
	common := []kv.Option{kv.WithTTL(s.times.ttl), kv.WithPageSize(2), kv.WithoutTelemetry(), kv.WithClock(clk)}
	mOpts := append([]kv.Option(nil), common...)
	oOpts := append([]kv.Option(nil), common...)
	if v.refresh > 0 {
		mOpts = append(mOpts, kv.WithRefreshAhead(v.refresh))
		s.refresh = time.Duration(float64(s.times.ttl) * v.refresh)
	}
	if v.stale {
		mOpts = append(mOpts, kv.WithStaleWhileRevalidate(s.times.grace, 100))
	}
	if v.refresh > 0 || v.stale {
		mOpts = append(mOpts, kv.WithSynchronousRefresh())
		s.hasSeen = true
	}
	if v.miss {
		mOpts = append(mOpts, kv.WithMissTTL(s.times.missTTL))
	}
	if v.jitter > 0 {
		mOpts = append(mOpts, kv.WithTTLJitter(v.jitter, 42))
	}
	if v.lease && st.leases {
		mOpts = append(mOpts, kv.WithLoadLease(s.times.lease))
		oOpts = append(oOpts, kv.WithLoadLease(s.times.lease))
	}
	for _, x := range []struct {
		m    **kv.Map[string]
		opts []kv.Option
	}{{&s.m, mOpts}, {&s.o, oOpts}, {&s.c, common}} {
		if *x.m, err = kv.New[string](s.hooked, s.ns, x.opts...); err != nil {
			s.close(rt)
			rt.Fatalf("kv.New: %v", err)
		}
	}
	return s
}

func (s *modelMachine) close(rt *rapid.T) {
	var errs []error
	for _, m := range []*kv.Map[string]{s.m, s.o, s.c} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	s.cancel()
	errs = append(errs, s.end())
	if err := errors.Join(errs...); err != nil {
		rt.Errorf("closing the sequence: %v", err)
	}
}

// modelHookStore is the store as every Map of a sequence sees it: the store
// itself, with a hook on lease acquisition for ConcurrentLoad.
type modelHookStore struct {
	backend.Backend
	onAcquire atomic.Pointer[func(held []bool)]
}

func (h *modelHookStore) Capabilities() backend.Capabilities {
	return h.hook(backend.CapabilitiesOf(h.Backend))
}

// modelHookView is a native namespace view of the store (bbolt's buckets),
// with the store's hook.
type modelHookView struct {
	backend.Backend
	h *modelHookStore
}

func (v *modelHookView) Capabilities() backend.Capabilities {
	return v.h.hook(backend.CapabilitiesOf(v.Backend))
}

// hook returns o with the hook on lease acquisition, in the native
// namespace views it makes too.
func (h *modelHookStore) hook(o backend.Capabilities) backend.Capabilities {
	if nsf := o.Namespace; nsf != nil {
		o.Namespace = func(ns string) (backend.Backend, error) {
			v, err := nsf(ns)
			if err != nil {
				return nil, err
			}
			return &modelHookView{Backend: v, h: h}, nil
		}
	}
	if a := o.AcquireLeases; a != nil {
		o.AcquireLeases = func(ctx context.Context, keys []string, d time.Duration) ([]bool, backend.Lease, error) {
			held, l, err := a(ctx, keys, d)
			if f := h.onAcquire.Load(); f != nil && err == nil {
				(*f)(held)
			}
			return held, l, err
		}
	}
	return o
}

func (s *modelMachine) now() time.Time {
	if s.clk != nil {
		return s.clk.Now()
	}
	return time.Now()
}

func (s *modelMachine) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, 10*time.Second) // a hang fails the step, not the run
}

// live returns the model's value of k at now.
func (s *modelMachine) live(k string, now time.Time) (modelVal, bool) {
	e, ok := s.store[k]
	if ok && !e.deadline.IsZero() && !now.Before(e.deadline) {
		return modelVal{}, false
	}
	return e, ok
}

func (s *modelMachine) liveMap(now time.Time) map[string]string {
	out := map[string]string{}
	for k := range s.store {
		if e, ok := s.live(k, now); ok {
			out[k] = e.v
		}
	}
	return out
}

func (s *modelMachine) value(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%d", prefix, s.seq)
}

func (s *modelMachine) memo(k string) *modelMemo {
	mm := s.memos[k]
	if mm == nil {
		mm = &modelMemo{}
		s.memos[k] = mm
	}
	return mm
}

// forget: the Map under test wrote, deleted, expired or cleared k; it
// knows k exactly again, and remembers no value of it.
func (s *modelMachine) forget(k string) { s.memos[k] = &modelMemo{} }

// perhapsForgot: a call of the Map under test on k failed; it may or may
// not have forgotten k.
func (s *modelMachine) perhapsForgot(k string) { s.memo(k).loose = true }

// otherChanged: the other Map wrote, deleted or changed the expiry of k (or
// tried to). What the Map under test remembers of k is no longer exact, and
// a value it recorded is tainted when the change came before its deadline.
func (s *modelMachine) otherChanged(k string, now time.Time) {
	mm := s.memo(k)
	mm.loose = true
	for i := range mm.cands {
		if c := &mm.cands[i]; c.deadline.IsZero() || now.Before(c.deadline) {
			c.tainted = true
		}
	}
}

// recordHit: a GetOrLoad of the Map under test read cur.
func (s *modelMachine) recordHit(k string, cur modelVal) {
	if !s.hasSeen {
		return
	}
	mm := s.memo(k)
	switch {
	case !cur.deadline.IsZero():
		mm.cands = []modelCand{{v: cur.v, deadline: cur.deadline, required: !mm.loose}}
	case mm.loose:
		// A value without expiry is not recorded when the Map reads its
		// TTL, but is when it trusts a deadline it remembered.
		mm.cands = append(mm.cands, modelCand{v: cur.v})
	}
}

// staleAllowed returns the values the Map under test may serve stale for
// k at now, and the one it must serve, if any.
func (s *modelMachine) staleAllowed(k string, now time.Time) (allowed []string, required *modelCand) {
	if !s.v.stale {
		return nil, nil
	}
	mm := s.memo(k)
	for i, c := range mm.cands {
		inWindow := !c.deadline.IsZero() && !now.Before(c.deadline) && now.Before(c.deadline.Add(s.times.grace))
		switch {
		case !mm.loose:
			if inWindow {
				allowed = append(allowed, c.v)
				if c.required && !s.closed {
					required = &mm.cands[i]
				}
			}
		case s.st.reports:
			// Another Map touched the key: never a value it deleted or
			// overwrote before its deadline.
			if !c.tainted && !c.deadline.IsZero() && !now.Before(c.deadline) {
				allowed = append(allowed, c.v)
			}
		default:
			// A store that reports no changes: the Map cannot tell.
			allowed = append(allowed, c.v)
		}
	}
	return allowed, required
}

func (s *modelMachine) missValid(k string, now time.Time) bool {
	until, ok := s.misses[k]
	return s.v.miss && ok && now.Before(until)
}

// writeDeadline is the deadline of k, just written at now by a Map with
// TTL ttl (spread: the Map under test's TTL, spread by its jitter). A spread
// TTL is read back from the store and checked against the jitter's range.
func (s *modelMachine) writeDeadline(rt *rapid.T, k string, now time.Time, ttl time.Duration, spread bool) time.Time {
	if ttl == kv.NoTTL {
		return time.Time{}
	}
	if !spread || s.v.jitter == 0 {
		return now.Add(ttl)
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	got, ok, err := s.raw.TTL(ctx, s.ns+":"+k)
	if err != nil || !ok {
		rt.Fatalf("reading back the TTL of %q: %v, %v, %v", k, got, ok, err)
	}
	lo := time.Duration(float64(ttl) * (1 - s.v.jitter))
	hi := time.Duration(float64(ttl) * (1 + s.v.jitter))
	if !s.st.manual {
		lo -= 2 * time.Second // the TTL went down while we read it
	}
	if got < lo || got > hi {
		rt.Fatalf("jittered TTL of %q = %v; want within [%v, %v]", k, got, lo, hi)
	}
	return now.Add(got)
}

// loader is the load function of the Map under test for key k: the
// source's value, unique per call, or ErrNotFound.
func (s *modelMachine) loader(k string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.nload++
		c := modelLoad{keys: []string{k}, found: map[string]string{}}
		defer func() { s.calls = append(s.calls, c) }()
		gen, ok := s.source[k]
		if !ok {
			return "", fmt.Errorf("source has no %s: %w", k, kv.ErrNotFound)
		}
		v := fmt.Sprintf("src-%s-%d#%d", k, gen, s.nload)
		c.found[k] = v
		return v, nil
	}
}

func (s *modelMachine) loadMany(_ context.Context, keys []string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nload++
	c := modelLoad{keys: slices.Clone(keys), found: map[string]string{}}
	for _, k := range keys {
		if gen, ok := s.source[k]; ok {
			c.found[k] = fmt.Sprintf("src-%s-%d#%d", k, gen, s.nload)
		}
	}
	s.calls = append(s.calls, c)
	return maps.Clone(c.found), nil
}

// callsSince returns the load calls of the Map under test since n.
func (s *modelMachine) callsSince(n int) []modelLoad {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls[n:])
}

func (s *modelMachine) ncalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// applyLoad applies a single-key load of the Map under test, made at now.
func (s *modelMachine) applyLoad(rt *rapid.T, k string, c modelLoad, now time.Time) {
	v, ok := c.found[k]
	if !ok {
		if s.v.miss {
			s.misses[k] = now.Add(s.times.missTTL)
		}
		return
	}
	d := s.writeDeadline(rt, k, now, s.times.ttl, true)
	s.store[k] = modelVal{v: v, deadline: d}
	delete(s.misses, k)
	s.forget(k)
	if s.hasSeen && !d.IsZero() {
		s.memo(k).cands = []modelCand{{v: v, deadline: d, required: true}}
	}
}

func modelDrawKey(rt *rapid.T) string { return rapid.SampledFrom(modelKeys).Draw(rt, "key") }

func modelDrawKeys(rt *rapid.T, label string) []string {
	return rapid.SliceOfN(rapid.SampledFrom(modelKeys), 0, 4).Draw(rt, label)
}

func modelDrawDistinct(rt *rapid.T, label string) []string {
	return rapid.SliceOfNDistinct(rapid.SampledFrom(modelKeys), 0, 4, func(k string) string { return k }).Draw(rt, label)
}

func (s *modelMachine) drawTTL(rt *rapid.T) time.Duration {
	return rapid.SampledFrom(s.times.ttls).Draw(rt, "ttl")
}

// modelAction is one action of the state machine.
type modelAction struct {
	name string
	do   func(*rapid.T)
}

// actions returns the state machine's actions in groups: rapid draws a
// group, then an action of it, so that no action is drawn much less often
// than another (rapid favours the first of a list it draws from). Each
// group lists its most telling action first. skip names actions to leave
// out.
func (s *modelMachine) actions(skip map[string]bool) map[string]func(*rapid.T) {
	groups := map[string][]modelAction{
		"Load": {{"GetOrLoad", s.getOrLoad}, {"GetManyOrLoad", s.getManyOrLoad}, {"OtherLoad", s.otherLoad}},
		"Write": {{"Set", s.set}, {"Delete", s.delete}, {"SetWithTTL", s.setWithTTL}, {"Expire", s.expire},
			{"SetMany", s.setMany}, {"DeleteMany", s.deleteMany}, {"Clear", s.clear}},
		"Conditional": {{"CompareAndSwap", s.compareAndSwap}, {"SetIfAbsent", s.setIfAbsent}, {"Update", s.update},
			{"GetWithTTL", s.getWithTTL}},
		"Read": {{"Get", s.get}, {"PassStopped", s.passStopped}, {"Pass", s.pass}, {"GetMany", s.getMany},
			{"TTL", s.ttl}, {"Has", s.has}, {"Size", s.size}},
		"Other": {{"OtherDelete", s.otherDelete}, {"OtherSet", s.otherSet}, {"OtherExpire", s.otherExpire},
			{"OtherClear", s.otherClear}, {"OtherSetMany", s.otherSetMany}, {"OtherGet", s.otherGet}},
		"Misc": {{"SourceDelete", s.sourceDelete}, {"SourceSet", s.sourceSet}, {"EmptyKey", s.emptyKey},
			{"Close", s.closeMap}},
	}
	if s.clk != nil {
		groups["Clock"] = []modelAction{{"ClockToEdge", s.clockToEdge}, {"ClockAdvance", s.clockAdvance},
			{"ClockIntoWindow", s.clockIntoWindow}}
	}
	if s.v.lease && s.st.leases {
		groups["Load"] = append(groups["Load"], modelAction{"ConcurrentLoad", s.concurrentLoad})
	}
	out := map[string]func(*rapid.T){"": s.check}
	for g, as := range groups {
		as = slices.DeleteFunc(as, func(a modelAction) bool { return skip[a.name] })
		if len(as) == 0 {
			continue
		}
		names := make([]string, len(as))
		for i, a := range as {
			names[i] = a.name
		}
		out[g] = func(rt *rapid.T) {
			i := slices.Index(names, rapid.SampledFrom(names).Draw(rt, g))
			as[i].do(rt)
		}
	}
	return out
}

// check compares the whole store with the model, through a plain Map.
func (s *modelMachine) check(rt *rapid.T) {
	ctx, cancel := s.callCtx()
	defer cancel()
	s.leasesReleased(rt, ctx)
	now := s.now()
	want := s.liveMap(now)
	got, err := s.c.GetMany(ctx, modelKeys)
	if err != nil {
		rt.Fatalf("check: GetMany: %v", err)
	}
	if !modelEqual(got, want) {
		rt.Fatalf("check: the store holds %v; the model %v", got, want)
	}
	n, err := s.c.Size(ctx)
	if err != nil || n != len(want) {
		rt.Fatalf("check: Size = %d, %v; want %d", n, err, len(want))
	}
}

// leasesReleased waits until no lease of a key of the sequence is held. A
// load releases its lease just after its callers got their value, so the
// next call of a sequence could find it still held and wait for it, as for
// another process's: the model would not know which. It probes by taking
// every lease itself (and releasing them at once).
func (s *modelMachine) leasesReleased(rt *rapid.T, ctx context.Context) {
	acquire := backend.CapabilitiesOf(s.raw).AcquireLeases
	if !s.v.lease || !s.st.leases || acquire == nil {
		return
	}
	keys := make([]string, len(modelKeys))
	for i, k := range modelKeys {
		keys[i] = s.ns + ":" + k
	}
	for {
		held, l, err := acquire(ctx, keys, time.Minute)
		if err != nil {
			rt.Fatalf("probing the leases: %v", err)
		}
		if l != nil {
			if err := l.Release(ctx); err != nil {
				rt.Fatalf("releasing the probe's leases: %v", err)
			}
		}
		if !slices.Contains(held, false) {
			return
		}
		runtime.Gosched() // a load's release is under way
	}
}

func modelEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (s *modelMachine) set(rt *rapid.T) {
	k, v := modelDrawKey(rt), s.value("m")
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	if err := s.m.Set(ctx, k, v); err != nil {
		rt.Fatalf("Set(%s): %v", k, err)
	}
	s.forget(k)
	s.store[k] = modelVal{v: v, deadline: s.writeDeadline(rt, k, now, s.times.ttl, true)}
}

func (s *modelMachine) setWithTTL(rt *rapid.T) {
	k, v, d := modelDrawKey(rt), s.value("m"), s.drawTTL(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	err := s.m.SetWithTTL(ctx, k, v, d)
	if d == 0 {
		if !errors.Is(err, kv.ErrInvalidTTL) {
			rt.Fatalf("SetWithTTL(%s, 0) = %v; want ErrInvalidTTL", k, err)
		}
		s.perhapsForgot(k)
		return
	}
	if err != nil {
		rt.Fatalf("SetWithTTL(%s, %v): %v", k, d, err)
	}
	s.forget(k)
	s.store[k] = modelVal{v: v, deadline: s.writeDeadline(rt, k, now, d, false)}
}

func (s *modelMachine) get(rt *rapid.T) {
	k := modelDrawKey(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	want, wantOK := s.live(k, s.now())
	got, ok, err := s.m.Get(ctx, k)
	if err != nil || ok != wantOK || got != want.v {
		rt.Fatalf("Get(%s) = %q, %v, %v; want %q, %v", k, got, ok, err, want.v, wantOK)
	}
}

func (s *modelMachine) has(rt *rapid.T) {
	k := modelDrawKey(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	_, want := s.live(k, s.now())
	got, err := s.m.Has(ctx, k)
	if err != nil || got != want {
		rt.Fatalf("Has(%s) = %v, %v; want %v", k, got, err, want)
	}
}

func (s *modelMachine) delete(rt *rapid.T) {
	k := modelDrawKey(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	if err := s.m.Delete(ctx, k); err != nil {
		rt.Fatalf("Delete(%s): %v", k, err)
	}
	delete(s.store, k)
	s.forget(k)
}

func (s *modelMachine) expire(rt *rapid.T) {
	k, d := modelDrawKey(rt), s.drawTTL(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	cur, live := s.live(k, now)
	ok, err := s.m.Expire(ctx, k, d)
	if d == 0 {
		if !errors.Is(err, kv.ErrInvalidTTL) || ok {
			rt.Fatalf("Expire(%s, 0) = %v, %v; want ErrInvalidTTL", k, ok, err)
		}
		s.perhapsForgot(k)
		return
	}
	if err != nil || ok != live {
		rt.Fatalf("Expire(%s, %v) = %v, %v; want %v", k, d, ok, err, live)
	}
	s.forget(k)
	if live {
		cur.deadline = s.writeDeadline(rt, k, now, d, false)
		s.store[k] = cur
	}
}

func (s *modelMachine) ttl(rt *rapid.T) {
	k := modelDrawKey(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	cur, live := s.live(k, now)
	got, ok, err := s.m.TTL(ctx, k)
	if err != nil || ok != live {
		rt.Fatalf("TTL(%s) = %v, %v, %v; want found %v", k, got, ok, err, live)
	}
	if !live {
		return
	}
	want := kv.NoTTL
	if !cur.deadline.IsZero() {
		want = cur.deadline.Sub(now)
	}
	slack := time.Duration(0)
	if !s.st.manual && want != kv.NoTTL {
		slack = 2 * time.Second // the wall clock runs; the server rounds to milliseconds
	}
	if got > want+slack || got < want-slack || (want == kv.NoTTL) != (got == kv.NoTTL) {
		rt.Fatalf("TTL(%s) = %v; want %v", k, got, want)
	}
}

func (s *modelMachine) clear(rt *rapid.T) {
	ctx, cancel := s.callCtx()
	defer cancel()
	if err := s.m.Clear(ctx); err != nil {
		rt.Fatalf("Clear: %v", err)
	}
	s.store = map[string]modelVal{}
	for _, k := range modelKeys {
		s.forget(k)
	}
}

func (s *modelMachine) size(rt *rapid.T) {
	ctx, cancel := s.callCtx()
	defer cancel()
	want := len(s.liveMap(s.now()))
	if n, err := s.m.Size(ctx); err != nil || n != want {
		rt.Fatalf("Size = %d, %v; want %d", n, err, want)
	}
}

// pass runs one whole pass of an iterator, or ToArray, and compares it with
// the model.
func (s *modelMachine) pass(rt *rapid.T) {
	which := rapid.SampledFrom([]string{"Iterate", "Keys", "Values", "ToArray"}).Draw(rt, "iterator")
	ctx, cancel := s.callCtx()
	defer cancel()
	want := s.liveMap(s.now())
	var got []kv.Entry[string]
	var err error
	switch which {
	case "ToArray":
		got, err = s.m.ToArray(ctx)
	default:
		for e, e2 := range modelIter(s.m, which, ctx) {
			if e2 != nil {
				err = e2
				break
			}
			got = append(got, e)
		}
	}
	if err != nil {
		rt.Fatalf("%s: %v", which, err)
	}
	if msg := modelCompare(which, got, want); msg != "" {
		rt.Fatalf("%s", msg)
	}
}

// modelIter runs iterator which of m as a sequence of entries: Keys
// yields keys without values, Values values without keys.
func modelIter(m *kv.Map[string], which string, ctx context.Context) iter.Seq2[kv.Entry[string], error] {
	return func(yield func(kv.Entry[string], error) bool) {
		switch which {
		case "Iterate":
			for e, err := range m.Iterate(ctx) {
				if !yield(e, err) {
					return
				}
			}
		case "Keys":
			for k, err := range m.Keys(ctx) {
				if !yield(kv.Entry[string]{Key: k}, err) {
					return
				}
			}
		case "Values":
			for v, err := range m.Values(ctx) {
				if !yield(kv.Entry[string]{Value: v}, err) {
					return
				}
			}
		}
	}
}

// modelCompare compares entries of one pass of iterator which with the
// model's live map: each once, all of them. It returns "" when they agree.
func modelCompare(which string, got []kv.Entry[string], want map[string]string) string {
	var gotKeys, wantKeys []string
	switch which {
	case "Values":
		for _, e := range got {
			gotKeys = append(gotKeys, e.Value)
		}
		for _, v := range want {
			wantKeys = append(wantKeys, v)
		}
	default:
		for _, e := range got {
			if w, ok := want[e.Key]; which != "Keys" && (!ok || w != e.Value) {
				return fmt.Sprintf("%s yielded %s=%q; the model has %q, %v", which, e.Key, e.Value, w, ok)
			}
			gotKeys = append(gotKeys, e.Key)
		}
		for k := range want {
			wantKeys = append(wantKeys, k)
		}
	}
	sort.Strings(gotKeys)
	sort.Strings(wantKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		return fmt.Sprintf("%s yielded %q; want %q", which, gotKeys, wantKeys)
	}
	return ""
}

// passStopped breaks out of a pass at a random entry: after cancelling the
// pass's context or not, and breaking, or going on after the cancel. The
// iterator must never call the loop body again once it returned false
// (issue 18, defect 1), and after a cancel it yields at most the context's
// error, last.
func (s *modelMachine) passStopped(rt *rapid.T) {
	which := rapid.SampledFrom([]string{"Iterate", "Keys", "Values"}).Draw(rt, "iterator")
	mode := rapid.SampledFrom([]string{"cancel+break", "cancel+continue", "break"}).Draw(rt, "mode")
	want := s.liveMap(s.now())
	stopAt := rapid.IntRange(1, len(want)+1).Draw(rt, "stopAt")
	base, cancelBase := s.callCtx()
	defer cancelBase()
	ctx, cancel := context.WithCancel(base)
	defer cancel()
	var got []kv.Entry[string]
	var errs []error
	afterErr := 0
	panicked := func() (p any) {
		defer func() { p = recover() }()
		n := 0
		for e, err := range modelIter(s.m, which, ctx) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if len(errs) > 0 {
				afterErr++
			}
			got = append(got, e)
			if n++; n == stopAt {
				if mode != "break" {
					cancel()
				}
				if mode != "cancel+continue" {
					break
				}
			}
		}
		return nil
	}()
	s.stats.add("pass stopped (" + mode + ")")
	if panicked != nil {
		rt.Fatalf("%s stopped at entry %d (%s) panicked: %v", which, stopAt, mode, panicked)
	}
	if afterErr > 0 {
		rt.Fatalf("%s yielded %d entries after an error", which, afterErr)
	}
	stopped := stopAt <= len(want)
	switch {
	case stopped && mode == "cancel+continue":
		if len(errs) > 1 || (len(errs) == 1 && !errors.Is(errs[0], context.Canceled)) {
			rt.Fatalf("%s cancelled at entry %d yielded errors %v; want at most context.Canceled", which, stopAt, errs)
		}
	case len(errs) > 0:
		rt.Fatalf("%s (%s at %d) yielded errors %v; want none", which, mode, stopAt, errs)
	}
	if stopped && mode != "cancel+continue" && len(got) != stopAt {
		rt.Fatalf("%s broken at entry %d yielded %d entries", which, stopAt, len(got))
	}
	for _, e := range got {
		if which == "Values" {
			continue
		}
		if w, ok := want[e.Key]; !ok || (which == "Iterate" && w != e.Value) {
			rt.Fatalf("%s yielded %s=%q; the model has %q, %v", which, e.Key, e.Value, w, ok)
		}
	}
	if !stopped {
		if msg := modelCompare(which, got, want); msg != "" {
			rt.Fatalf("%s", msg)
		}
	}
}

func (s *modelMachine) setMany(rt *rapid.T) {
	keys := modelDrawDistinct(rt, "keys")
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	entries := make([]kv.Entry[string], len(keys))
	for i, k := range keys {
		entries[i] = kv.Entry[string]{Key: k, Value: s.value("m")}
	}
	if err := s.m.SetMany(ctx, entries); err != nil {
		rt.Fatalf("SetMany(%v): %v", keys, err)
	}
	for _, e := range entries {
		s.forget(e.Key)
		s.store[e.Key] = modelVal{v: e.Value, deadline: s.writeDeadline(rt, e.Key, now, s.times.ttl, true)}
	}
}

func (s *modelMachine) getMany(rt *rapid.T) {
	keys := modelDrawKeys(rt, "keys")
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	want := map[string]string{}
	for _, k := range keys {
		if e, ok := s.live(k, now); ok {
			want[k] = e.v
		}
	}
	got, err := s.m.GetMany(ctx, keys)
	if err != nil || !modelEqual(got, want) {
		rt.Fatalf("GetMany(%v) = %v, %v; want %v", keys, got, err, want)
	}
}

func (s *modelMachine) deleteMany(rt *rapid.T) {
	keys := modelDrawKeys(rt, "keys")
	ctx, cancel := s.callCtx()
	defer cancel()
	if err := s.m.DeleteMany(ctx, keys); err != nil {
		rt.Fatalf("DeleteMany(%v): %v", keys, err)
	}
	for _, k := range keys {
		delete(s.store, k)
		s.forget(k)
	}
}

// getOrLoad is GetOrLoad of the Map under test, with every policy.
func (s *modelMachine) getOrLoad(rt *rapid.T) {
	k := modelDrawKey(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	cur, live := s.live(k, now)
	allowed, required := s.staleAllowed(k, now)
	missValid := s.missValid(k, now)
	n0 := s.ncalls()
	got, err := s.m.GetOrLoad(ctx, k, s.loader(k))
	calls := s.callsSince(n0)
	if len(calls) > 1 {
		rt.Fatalf("GetOrLoad(%s) called load %d times", k, len(calls))
	}
	if live {
		if err != nil || got != cur.v {
			rt.Fatalf("GetOrLoad(%s) of a stored key = %q, %v; want %q", k, got, err, cur.v)
		}
		s.afterHit(rt, k, cur, now, calls)
		return
	}
	loaded := len(calls) == 1 && calls[0].found[k] != ""
	switch {
	case err == nil && loaded && got == calls[0].found[k]:
		switch {
		case s.closed:
			rt.Fatalf("GetOrLoad(%s) loaded after Close; want ErrClosed", k)
		case required != nil:
			rt.Fatalf("GetOrLoad(%s) loaded; want the value %q served stale (expired %v ago, grace %v)", k, required.v, now.Sub(required.deadline), s.times.grace)
		case missValid:
			rt.Fatalf("GetOrLoad(%s) loaded a miss remembered until %v (now %v)", k, s.misses[k], now)
		}
		if mm := s.memo(k); len(mm.cands) > 0 && mm.cands[0].tainted {
			s.stats.add("loaded, not served stale: changed by the other Map")
		} else {
			s.stats.add("loaded")
		}
		s.applyLoad(rt, k, calls[0], now)
	case err == nil && slices.Contains(allowed, got):
		// Served stale, with one reload inside the call (none after Close).
		switch {
		case len(calls) == 0 && !s.closed:
			rt.Fatalf("GetOrLoad(%s) served %q stale without reloading it", k, got)
		case len(calls) == 1 && s.closed:
			rt.Fatalf("GetOrLoad(%s) reloaded after Close", k)
		}
		s.stats.add(map[bool]string{true: "served stale (required)", false: "served stale (allowed)"}[required != nil])
		if len(calls) == 1 {
			s.applyLoad(rt, k, calls[0], now)
		}
	case err == nil:
		for _, c := range s.memo(k).cands {
			if c.v == got {
				rt.Fatalf("GetOrLoad(%s) served %q stale; the key was deleted, written or given a new expiry before its deadline (%v) by %s: want a load",
					k, got, c.deadline.Format("15:04:05.000"), map[bool]string{true: "the other Map", false: "this Map"}[c.tainted])
			}
		}
		rt.Fatalf("GetOrLoad(%s) of a missing key = %q; want a load (values it may serve stale: %q; loads %v)", k, got, allowed, calls)
	case errors.Is(err, kv.ErrNotFound):
		switch {
		case required != nil:
			rt.Fatalf("GetOrLoad(%s) = %v; want the value %q served stale", k, err, required.v)
		case len(calls) == 0 && !missValid:
			rt.Fatalf("GetOrLoad(%s) = %v without calling load; no miss is remembered", k, err)
		case len(calls) == 1 && missValid:
			rt.Fatalf("GetOrLoad(%s) called load for a miss remembered until %v", k, s.misses[k])
		case len(calls) == 1 && s.closed:
			rt.Fatalf("GetOrLoad(%s) called load after Close", k)
		}
		if len(calls) == 1 {
			s.applyLoad(rt, k, calls[0], now)
			s.stats.add("not found")
		} else {
			s.stats.add("remembered miss")
		}
		s.dropOutOfWindow(k, allowed)
	case errors.Is(err, kv.ErrClosed) && s.closed && len(calls) == 0:
		s.stats.add("ErrClosed")
		s.dropOutOfWindow(k, allowed)
	default:
		rt.Fatalf("GetOrLoad(%s) = %q, %v (closed %v, loads %v)", k, got, err, s.closed, calls)
	}
}

// dropOutOfWindow: a miss of k served nothing stale; the Map drops a value
// it remembers outside its grace window (a loose modelMemo keeps every
// candidate: the Map may have kept it).
func (s *modelMachine) dropOutOfWindow(k string, allowed []string) {
	if mm := s.memo(k); s.v.stale && !mm.loose && len(allowed) == 0 {
		mm.cands = nil
	}
}

// afterHit applies a GetOrLoad hit on k, value cur: a refresh ahead of
// expiry when the key is in the last part of its TTL (exactly then when the
// Map knows the key exactly; perhaps otherwise), and what the Map records.
func (s *modelMachine) afterHit(rt *rapid.T, k string, cur modelVal, now time.Time, calls []modelLoad) {
	due := s.refresh > 0 && !s.closed && !cur.deadline.IsZero() && cur.deadline.Sub(now) < s.refresh
	must := due && !s.memo(k).loose
	switch {
	case len(calls) == 1 && !due:
		rt.Fatalf("GetOrLoad(%s) hit %v before its deadline refreshed it (refresh window %v, closed %v)", k, cur.deadline.Sub(now), s.refresh, s.closed)
	case len(calls) == 0 && must:
		rt.Fatalf("GetOrLoad(%s) hit %v before its deadline did not refresh it (refresh window %v)", k, cur.deadline.Sub(now), s.refresh)
	}
	if len(calls) == 1 {
		s.stats.add("refreshed")
		s.applyLoad(rt, k, calls[0], now)
		if _, ok := calls[0].found[k]; ok {
			return // refreshed: stored and remembered anew
		}
	}
	s.recordHit(k, cur)
}

// getManyOrLoad is GetManyOrLoad of the Map under test: one read, one
// loadMany of the keys that missed and are not remembered missing, one
// batched write.
func (s *modelMachine) getManyOrLoad(rt *rapid.T) {
	keys := modelDrawKeys(rt, "keys")
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	want := map[string]string{}
	var missing []string
	for _, k := range keys {
		if e, ok := s.live(k, now); ok {
			want[k] = e.v
		} else if !s.missValid(k, now) && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	n0 := s.ncalls()
	got, err := s.m.GetManyOrLoad(ctx, keys, s.loadMany)
	calls := s.callsSince(n0)
	if s.closed && len(missing) > 0 {
		if !errors.Is(err, kv.ErrClosed) || len(calls) > 0 {
			rt.Fatalf("GetManyOrLoad(%v) after Close = %v, %v with %d loads; want ErrClosed, no load", keys, got, err, len(calls))
		}
		for k, v := range got {
			if want[k] != v {
				rt.Fatalf("GetManyOrLoad(%v) after Close returned %s=%q; want only stored values %v", keys, k, v, want)
			}
		}
		return
	}
	if err != nil {
		rt.Fatalf("GetManyOrLoad(%v): %v", keys, err)
	}
	var asked []string
	found := map[string]string{}
	for _, c := range calls {
		asked = append(asked, c.keys...)
		for k, v := range c.found {
			found[k] = v
		}
	}
	switch {
	case len(missing) == 0 && len(calls) > 0:
		rt.Fatalf("GetManyOrLoad(%v) called loadMany(%v); want no call", keys, calls[0].keys)
	case len(missing) > 0 && len(calls) != 1:
		rt.Fatalf("GetManyOrLoad(%v) made %d loadMany calls; want 1 with %v", keys, len(calls), missing)
	case !modelSameSet(asked, missing):
		rt.Fatalf("GetManyOrLoad(%v) called loadMany with %v; want %v, each once", keys, asked, missing)
	}
	if len(calls) > 0 {
		for _, k := range missing {
			v, ok := found[k]
			if !ok {
				if s.v.miss {
					s.misses[k] = now.Add(s.times.missTTL)
				}
				continue
			}
			want[k] = v
			delete(s.misses, k)
			s.forget(k)
			d := s.writeDeadline(rt, k, now, s.times.ttl, true)
			s.store[k] = modelVal{v: v, deadline: d}
			if s.hasSeen {
				// It may be served stale; GetOrLoad's values must be.
				s.memo(k).cands = []modelCand{{v: v, deadline: d}}
			}
		}
	}
	if !modelEqual(got, want) {
		rt.Fatalf("GetManyOrLoad(%v) = %v; want %v", keys, got, want)
	}
}

func modelSameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

// emptyKey makes one call with an empty key: refused with ErrEmptyKey,
// nothing written, nothing loaded.
func (s *modelMachine) emptyKey(rt *rapid.T) {
	op := rapid.SampledFrom([]string{"Get", "Has", "Set", "SetWithTTL", "Delete", "Expire", "TTL", "GetOrLoad",
		"GetMany", "SetMany", "DeleteMany", "GetManyOrLoad"}).Draw(rt, "op")
	k := modelDrawKey(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	n0 := s.ncalls()
	var err error
	switch op {
	case "Get":
		_, _, err = s.m.Get(ctx, "")
	case "Has":
		_, err = s.m.Has(ctx, "")
	case "Set":
		err = s.m.Set(ctx, "", "x")
	case "SetWithTTL":
		err = s.m.SetWithTTL(ctx, "", "x", time.Hour)
	case "Delete":
		err = s.m.Delete(ctx, "")
	case "Expire":
		_, err = s.m.Expire(ctx, "", time.Hour)
	case "TTL":
		_, _, err = s.m.TTL(ctx, "")
	case "GetOrLoad":
		_, err = s.m.GetOrLoad(ctx, "", s.loader(""))
	case "GetMany":
		_, err = s.m.GetMany(ctx, []string{k, ""})
	case "SetMany":
		err = s.m.SetMany(ctx, []kv.Entry[string]{{Key: k, Value: "x"}, {Key: "", Value: "y"}})
	case "DeleteMany":
		err = s.m.DeleteMany(ctx, []string{k, ""})
	case "GetManyOrLoad":
		_, err = s.m.GetManyOrLoad(ctx, []string{k, ""}, s.loadMany)
	}
	if !errors.Is(err, kv.ErrEmptyKey) {
		rt.Fatalf("%s with an empty key = %v; want ErrEmptyKey", op, err)
	}
	if n := s.ncalls() - n0; n > 0 {
		rt.Fatalf("%s with an empty key called load %d times", op, n)
	}
	if strings.HasSuffix(op, "Many") || op == "GetManyOrLoad" {
		s.perhapsForgot(k) // the call named k too
	}
}

// closeMap closes the Map under test (rarely): its plain calls keep
// working, a call that would load returns ErrClosed.
func (s *modelMachine) closeMap(rt *rapid.T) {
	if s.closed || rapid.IntRange(0, 19).Draw(rt, "closeDice") != 19 {
		rt.Skip("Close is rare")
	}
	if err := s.m.Close(); err != nil {
		rt.Fatalf("Close: %v", err)
	}
	s.closed = true
}

func (s *modelMachine) otherSet(rt *rapid.T) {
	k, v := modelDrawKey(rt), s.value("o")
	d := rapid.SampledFrom(append([]time.Duration{-2}, s.times.ttls[1:]...)).Draw(rt, "ttl") // -2: the Map's TTL
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	var err error
	if d == -2 {
		err, d = s.o.Set(ctx, k, v), s.times.ttl
	} else {
		err = s.o.SetWithTTL(ctx, k, v, d)
	}
	if err != nil {
		rt.Fatalf("other Map: Set(%s): %v", k, err)
	}
	s.otherChanged(k, now)
	s.store[k] = modelVal{v: v, deadline: s.writeDeadline(rt, k, now, d, false)}
}

func (s *modelMachine) otherDelete(rt *rapid.T) {
	keys := rapid.SliceOfN(rapid.SampledFrom(modelKeys), 1, 3).Draw(rt, "keys")
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	var err error
	if len(keys) == 1 {
		err = s.o.Delete(ctx, keys[0])
	} else {
		err = s.o.DeleteMany(ctx, keys)
	}
	if err != nil {
		rt.Fatalf("other Map: delete %v: %v", keys, err)
	}
	for _, k := range keys {
		s.otherChanged(k, now)
		delete(s.store, k)
	}
}

func (s *modelMachine) otherExpire(rt *rapid.T) {
	k, d := modelDrawKey(rt), s.drawTTL(rt)
	if d == 0 {
		d = kv.NoTTL
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	cur, live := s.live(k, now)
	ok, err := s.o.Expire(ctx, k, d)
	if err != nil || ok != live {
		rt.Fatalf("other Map: Expire(%s, %v) = %v, %v; want %v", k, d, ok, err, live)
	}
	s.otherChanged(k, now)
	if live {
		cur.deadline = s.writeDeadline(rt, k, now, d, false)
		s.store[k] = cur
	}
}

func (s *modelMachine) otherClear(rt *rapid.T) {
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	if err := s.o.Clear(ctx); err != nil {
		rt.Fatalf("other Map: Clear: %v", err)
	}
	for _, k := range modelKeys {
		s.otherChanged(k, now)
	}
	s.store = map[string]modelVal{}
}

func (s *modelMachine) otherSetMany(rt *rapid.T) {
	keys := modelDrawDistinct(rt, "keys")
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	entries := make([]kv.Entry[string], len(keys))
	for i, k := range keys {
		entries[i] = kv.Entry[string]{Key: k, Value: s.value("o")}
	}
	if err := s.o.SetMany(ctx, entries); err != nil {
		rt.Fatalf("other Map: SetMany(%v): %v", keys, err)
	}
	for _, e := range entries {
		s.otherChanged(e.Key, now)
		s.store[e.Key] = modelVal{v: e.Value, deadline: now.Add(s.times.ttl)}
	}
}

// otherLoad is GetOrLoad of the other Map, from the same source.
func (s *modelMachine) otherLoad(rt *rapid.T) {
	k := modelDrawKey(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	cur, live := s.live(k, now)
	gen, inSource := s.source[k]
	s.ocalls++
	want := fmt.Sprintf("src-%s-%d#o%d", k, gen, s.ocalls)
	calls := 0
	got, err := s.o.GetOrLoad(ctx, k, func(context.Context) (string, error) {
		calls++
		if !inSource {
			return "", kv.ErrNotFound
		}
		return want, nil
	})
	switch {
	case live && (err != nil || got != cur.v || calls != 0):
		rt.Fatalf("other Map: GetOrLoad(%s) of a stored key = %q, %v with %d loads; want %q", k, got, err, calls, cur.v)
	case live:
	case !inSource && (!errors.Is(err, kv.ErrNotFound) || calls != 1):
		rt.Fatalf("other Map: GetOrLoad(%s) = %q, %v with %d loads; want ErrNotFound", k, got, err, calls)
	case !inSource:
	case err != nil || got != want || calls != 1:
		rt.Fatalf("other Map: GetOrLoad(%s) = %q, %v with %d loads; want %q", k, got, err, calls, want)
	default:
		s.otherChanged(k, now)
		s.store[k] = modelVal{v: want, deadline: now.Add(s.times.ttl)}
	}
}

// otherGet reads through the other Map: on the memory store, reading an
// expired key removes it, and reports that.
func (s *modelMachine) otherGet(rt *rapid.T) {
	k := modelDrawKey(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	want, wantOK := s.live(k, s.now())
	got, ok, err := s.o.Get(ctx, k)
	if err != nil || ok != wantOK || got != want.v {
		rt.Fatalf("other Map: Get(%s) = %q, %v, %v; want %q, %v", k, got, ok, err, want.v, wantOK)
	}
}

func (s *modelMachine) sourceSet(rt *rapid.T) {
	k := modelDrawKey(rt)
	s.source[k]++
}

func (s *modelMachine) sourceDelete(rt *rapid.T) {
	delete(s.source, modelDrawKey(rt))
}

func (s *modelMachine) clockAdvance(rt *rapid.T) {
	ms := rapid.OneOf(
		rapid.SampledFrom([]int{0, 1, 999, 1000, 2000, 5000, 10_000, 15_000}),
		rapid.IntRange(0, 20_000),
	).Draw(rt, "advanceMs")
	s.clk.Advance(time.Duration(ms) * time.Millisecond)
}

// clockToEdge moves the clock to the edge of a rule: a deadline, the start
// of a refresh window, the end of a grace period or of a remembered miss,
// or a millisecond either side of one.
func (s *modelMachine) clockToEdge(rt *rapid.T) {
	now := s.now()
	var edges []time.Time
	add := func(t time.Time) {
		for _, e := range []time.Time{t.Add(-time.Millisecond), t, t.Add(time.Millisecond)} {
			if e.After(now) {
				edges = append(edges, e)
			}
		}
	}
	for _, k := range modelKeys {
		if e, ok := s.store[k]; ok && !e.deadline.IsZero() {
			add(e.deadline)
			if s.refresh > 0 {
				add(e.deadline.Add(-s.refresh))
			}
		}
		for _, c := range s.memo(k).cands {
			if !c.deadline.IsZero() {
				add(c.deadline.Add(s.times.grace))
			}
		}
		if until, ok := s.misses[k]; ok {
			add(until)
		}
	}
	if len(edges) == 0 {
		rt.Skip("no edge ahead")
	}
	slices.SortFunc(edges, func(a, b time.Time) int { return a.Compare(b) })
	edges = slices.Compact(edges)
	to := rapid.SampledFrom(edges).Draw(rt, "edge")
	rt.Logf("clock to %v (+%v)", to.Format("15:04:05.000"), to.Sub(now))
	s.clk.Set(to)
}

// clockIntoWindow moves the clock into the window of a policy: the last
// part of a stored key's TTL (WithRefreshAhead), or the grace period of a
// value the Map under test remembers (WithStaleWhileRevalidate).
func (s *modelMachine) clockIntoWindow(rt *rapid.T) {
	now := s.now()
	type window struct{ from, to time.Time }
	var ws []window
	for _, k := range modelKeys {
		if e, ok := s.live(k, now); ok && s.refresh > 0 && !e.deadline.IsZero() {
			ws = append(ws, window{e.deadline.Add(-s.refresh), e.deadline})
		}
		if s.v.stale {
			for _, c := range s.memo(k).cands {
				if !c.deadline.IsZero() {
					ws = append(ws, window{c.deadline, c.deadline.Add(s.times.grace)})
				}
			}
		}
	}
	ws = slices.DeleteFunc(ws, func(w window) bool { return !w.to.After(now) })
	if len(ws) == 0 {
		rt.Skip("no policy window ahead")
	}
	w := ws[rapid.IntRange(0, len(ws)-1).Draw(rt, "window")]
	span := int(w.to.Sub(w.from) / time.Millisecond)
	to := w.from.Add(time.Duration(rapid.IntRange(0, span-1).Draw(rt, "intoMs")) * time.Millisecond)
	if !to.After(now) {
		rt.Skip("already past it")
	}
	rt.Logf("clock to %v (+%v)", to.Format("15:04:05.000"), to.Sub(now))
	s.clk.Set(to)
}

// concurrentLoad: the Map under test loads a key while the other Map
// misses it; with leases, the other waits for that load instead of loading
// again, and both return its value.
func (s *modelMachine) concurrentLoad(rt *rapid.T) {
	k := modelDrawKey(rt)
	now := s.now()
	_, live := s.live(k, now)
	allowed, _ := s.staleAllowed(k, now)
	if s.closed || live || s.missValid(k, now) || len(allowed) > 0 || s.source[k] == 0 {
		rt.Skip("needs a key that both Maps load")
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	entered, gate, waiting := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once, onceWait sync.Once
	load := s.loader(k)
	gated := func(ctx context.Context) (string, error) {
		once.Do(func() { close(entered) })
		<-gate
		return load(ctx)
	}
	n0 := s.ncalls()
	var wg sync.WaitGroup
	var mv, ov string
	var merr, oerr error
	wg.Go(func() { mv, merr = s.m.GetOrLoad(ctx, k, gated) })
	select {
	case <-entered:
	case <-ctx.Done():
		close(gate)
		wg.Wait()
		rt.Fatalf("ConcurrentLoad(%s): the Map under test never called load", k)
	}
	hook := func(held []bool) {
		if len(held) == 1 && !held[0] {
			onceWait.Do(func() { close(waiting) })
		}
	}
	s.hooked.onAcquire.Store(&hook)
	defer s.hooked.onAcquire.Store(nil)
	wg.Go(func() { ov, oerr = s.o.GetOrLoad(ctx, k, gated) })
	select {
	case <-waiting: // the other Map found the lease taken
	case <-ctx.Done():
	}
	close(gate)
	wg.Wait()
	calls := s.callsSince(n0)
	if len(calls) == 1 && merr == nil && mv != calls[0].found[k] {
		rt.Fatalf("ConcurrentLoad(%s): the Map under test returned %q, not the value it loaded (%q): served stale?", k, mv, calls[0].found[k])
	}
	if merr != nil || oerr != nil || len(calls) != 1 || mv != ov || mv != calls[0].found[k] {
		rt.Fatalf("ConcurrentLoad(%s) = %q, %v and %q, %v with loads %v; want one load, its value twice", k, mv, merr, ov, oerr, calls)
	}
	s.stats.add("concurrent load shared")
	s.applyLoad(rt, k, calls[0], now)
}

// setIfAbsent: the Map under test writes k only if the model holds no live
// value of it; either way the Map forgets k (before and after the store's
// step, as every write).
func (s *modelMachine) setIfAbsent(rt *rapid.T) {
	k, v := modelDrawKey(rt), s.value("n")
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	_, live := s.live(k, now)
	ok, err := s.m.SetIfAbsent(ctx, k, v)
	if err != nil || ok == live {
		rt.Fatalf("SetIfAbsent(%s) = %v, %v; want %v (the model holds a live value: %v)", k, ok, err, !live, live)
	}
	s.forget(k)
	if ok {
		s.store[k] = modelVal{v: v, deadline: s.writeDeadline(rt, k, now, s.times.ttl, true)}
	}
}

// compareAndSwap swaps k from the model's value, or from one it never held,
// with a TTL of its own.
func (s *modelMachine) compareAndSwap(rt *rapid.T) {
	k, v, d := modelDrawKey(rt), s.value("c"), s.drawTTL(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	cur, live := s.live(k, now)
	old := cur.v
	if !live || rapid.Bool().Draw(rt, "stale") {
		old = s.value("never")
	}
	ok, err := s.m.CompareAndSwapWithTTL(ctx, k, old, v, d)
	if d == 0 {
		if !errors.Is(err, kv.ErrInvalidTTL) || ok {
			rt.Fatalf("CompareAndSwapWithTTL(%s, 0) = %v, %v; want ErrInvalidTTL", k, ok, err)
		}
		s.perhapsForgot(k)
		return
	}
	if want := live && old == cur.v; err != nil || ok != want {
		rt.Fatalf("CompareAndSwapWithTTL(%s, %q, %q, %v) = %v, %v; want %v (the model holds %q, live %v)", k, old, v, d, ok, err, want, cur.v, live)
	}
	s.forget(k)
	if ok {
		s.store[k] = modelVal{v: v, deadline: s.writeDeadline(rt, k, now, d, false)}
	}
}

// update replaces k's value (or absence) with a new one, with the Map's
// TTL; fn must be given the model's value.
func (s *modelMachine) update(rt *rapid.T) {
	k, v := modelDrawKey(rt), s.value("u")
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	cur, live := s.live(k, now)
	got, wrote, err := s.m.Update(ctx, k, func(old string, found bool) (string, bool, error) {
		if found != live || old != cur.v {
			return "", false, fmt.Errorf("fn got %q, %v; the model holds %q, %v", old, found, cur.v, live)
		}
		return v, true, nil
	})
	if err != nil || !wrote || got != v {
		rt.Fatalf("Update(%s) = %q, %v, %v; want %q, true", k, got, wrote, err, v)
	}
	s.forget(k)
	s.store[k] = modelVal{v: v, deadline: s.writeDeadline(rt, k, now, s.times.ttl, true)}
}

// getWithTTL reads k's value and TTL together; both must be the model's.
func (s *modelMachine) getWithTTL(rt *rapid.T) {
	k := modelDrawKey(rt)
	ctx, cancel := s.callCtx()
	defer cancel()
	now := s.now()
	cur, live := s.live(k, now)
	got, d, ok, err := s.m.GetWithTTL(ctx, k)
	if err != nil || ok != live || got != cur.v {
		rt.Fatalf("GetWithTTL(%s) = %q, %v, %v, %v; want %q, found %v", k, got, d, ok, err, cur.v, live)
	}
	if !live {
		if d != 0 {
			rt.Fatalf("GetWithTTL(%s) of a missing key: TTL %v; want 0", k, d)
		}
		return
	}
	want := kv.NoTTL
	if !cur.deadline.IsZero() {
		want = cur.deadline.Sub(now)
	}
	slack := time.Millisecond // a near-cached copy counts from a deadline a millisecond early
	if !s.st.manual && want != kv.NoTTL {
		slack = 2 * time.Second
	}
	if d > want+slack || d < want-slack || (want == kv.NoTTL) != (d == kv.NoTTL) {
		rt.Fatalf("GetWithTTL(%s) TTL = %v; want %v", k, d, want)
	}
}
