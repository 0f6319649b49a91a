package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/nearcache"
)

// LinearOptions shape a linearizability run: [RunLinearizable], and with
// their zero value the suite's Linearizable and LinearizableFaults cases.
//
// A run is one or more rounds, each on a namespace of its own that starts
// empty, with Maps of its own; each round's history is checked alone (a
// write of a round whose outcome is unknown can only land on that round's
// keys). Without Duration or KV_LINEAR_SECONDS a run is one round.
type LinearOptions struct {
	// Clients is the number of concurrent clients, each a Map of its own
	// over a handle of its own (Store.Open) or over the shared Backend; 8
	// when 0.
	Clients int
	// Keys is the number of keys they share, few so that operations
	// collide; 4 when 0.
	Keys int
	// Ops is the number of calls each client makes in a round without
	// faults; 100 when 0.
	Ops int
	// Duration, when positive, makes the run last that long, in rounds.
	// KV_LINEAR_SECONDS, when set, overrides it for every run.
	Duration time.Duration
	// Faults runs the history on a store from Harness.Faults while faults
	// come and go below it. A round is FaultPeriods periods of
	// KillEveryCalls calls (all clients together); each period begins by
	// dropping every connection (Faults.Fail, then Heal at once), with the
	// commands in flight; in the first period and then one in four, replies
	// are lost at random (Faults.Flaky) for half the period; one period in
	// six begins with every call stalled for StallFor (Faults.Stall).
	Faults bool
	// KillEveryCalls is the length of a fault period, in calls; 100 when 0.
	KillEveryCalls int
	// FaultPeriods is the number of periods of a round with faults; 10
	// when 0.
	FaultPeriods int
	// StallFor is how long a stall lasts; 30 ms when 0.
	StallFor time.Duration
	// Staleness is δ: each read that a near cache may serve (Get, Has,
	// GetMany) may be linearized up to δ before its call, but never before
	// the return of its client's last write of the same key (a Map reads
	// its own writes). 0 means 0 for Maps without a near cache and
	// [NearCacheStaleness] for Maps with one.
	Staleness time.Duration
	// MeasureOnly records and checks the history, and measures
	// LinearResult.MinStaleness, without failing t when the history is not
	// δ-linearizable: for measuring δ.
	MeasureOnly bool
	// Options are added to the options of every client's Map, after
	// Harness.Options.
	Options []kv.Option
	// Seed seeds the clients' choices; runs with the same seed make the
	// same choices (not the same history: the interleaving is the
	// scheduler's). 0 picks one from the time.
	Seed uint64
}

// NearCacheStaleness is the δ that the linearizability cases allow a Map
// with a near cache (kv.WithNearCache) when LinearOptions.Staleness is 0:
// each read it serves may be linearized up to this long before its call.
// It is the near cache's own bound with its default options
// (nearcache.DefaultMaxLag): a Harness whose Options set another
// nearcache.Options.MaxLag runs RunLinearizable with that Staleness.
var NearCacheStaleness = nearcache.DefaultMaxLag

// LinearResult describes a linearizability run.
type LinearResult struct {
	// Rounds is the number of rounds, each checked alone.
	Rounds int
	// Calls is the number of Map calls the clients made.
	Calls int
	// Ops is the number of single-key operations in the histories (a
	// SetMany or GetMany of n keys is n of them), failed reads excluded.
	Ops int
	// Unknown counts the writes whose outcome is unknown: they returned an
	// error, so they may or may not have taken effect.
	Unknown int
	// FailedReads counts the reads that returned an error; they are left
	// out of the history.
	FailedReads int
	// Faults counts the faults injected (kills, lossy periods, stalls).
	Faults int
	// NearCache reports that the Maps had a near cache, and NearHits how
	// many reads their near caches served from memory.
	NearCache bool
	NearHits  int64
	// Staleness is the δ the histories were checked with.
	Staleness time.Duration
	// Linearizable reports that every round's history is δ-linearizable
	// for Staleness.
	Linearizable bool
	// MinStaleness is the smallest δ (to 50 µs) for which every round's
	// history is δ-linearizable, measured when the Maps had a near cache,
	// with faults only when MeasureOnly or KV_LINEAR_SECONDS is set (else
	// 0: proving that a history with writes of unknown outcome fails for
	// a small δ takes long); -1 when not even 10 s makes one so.
	MinStaleness time.Duration
	// Visualization is the directory of the porcupine visualizations
	// written for the first round that failed, or "": a new directory in
	// KV_LINEAR_DIR, or else in the system's temporary directory, kept
	// after the test.
	Visualization string
}

// RunLinearizable runs concurrent clients on a store from h (h.Faults when
// o.Faults is set, else h.New) and checks their history with porcupine, as
// the Linearizable case does, with o's settings. It fails t when a history
// is not δ-linearizable (unless o.MeasureOnly), printing the shortest
// failing part it found and the path of a visualization, and returns what
// it saw.
func RunLinearizable(t T, h Harness, o LinearOptions) LinearResult {
	t.Helper()
	if h.New == nil {
		t.Fatalf("conformance: Harness.New is nil")
	}
	if o.Faults && h.Faults == nil {
		t.Fatalf("conformance: LinearOptions.Faults needs Harness.Faults")
	}
	e := newEnv(t, h, o.Faults)
	return runLinear(t, e, o)
}

var linearCases = []testCase{
	{
		name: "Linearizable",
		rule: "concurrent clients (separate Maps, separate handles where the store has them) doing random Set, SetWithTTL, SetMany, Get, GetMany, Has, TTL, Delete, DeleteMany and Expire on four keys make a history that is linearizable per key (δ-linearizable through a near cache)",
		run: func(t T, e *env) {
			runLinear(t, e, LinearOptions{})
		},
	},
	{
		name:   "LinearizableFaults",
		rule:   "the same while connections are dropped with commands in flight, replies lost and calls stalled: a write that returned nil took effect once, within its call; one that returned an error took effect once or not at all; none is re-applied later",
		faults: true,
		run: func(t T, e *env) {
			r := runLinear(t, e, LinearOptions{Faults: true})
			if r.Faults == 0 {
				t.Errorf("no fault was injected")
			}
		},
	},
}

// linearSeconds returns KV_LINEAR_SECONDS, or 0.
func linearSeconds(t T) time.Duration {
	s := os.Getenv("KV_LINEAR_SECONDS")
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		t.Fatalf("KV_LINEAR_SECONDS=%q: want a positive number of seconds", s)
	}
	return time.Duration(f * float64(time.Second))
}

// Op kinds of the model.
const (
	linSet     = iota // a write: Set, SetWithTTL, one key of SetMany
	linDelete         // Delete, one key of DeleteMany
	linExpire         // Expire
	linGet            // Get, one key of GetMany
	linHas            // Has
	linTTL            // TTL
	linAdvance        // the store's clock moved (Store.Advance)
	linSetNX          // SetIfAbsent: Found reports that it wrote
	linCAS            // CompareAndSwap from Old: Found reports that it wrote
)

// linInput is the input of one single-key operation of the history.
type linInput struct {
	Kind  int
	Key   string        // "" for linAdvance
	Value string        // linSet, linSetNX, linCAS
	Old   string        // linCAS
	TTL   time.Duration // linSet, linSetNX, linCAS, linExpire: positive or NoTTL; linAdvance: the step
	// ClockLo is how far the store's clock had certainly moved when the
	// call began (linSet, linExpire): its TTL runs from then at the
	// earliest.
	ClockLo int64
	Call    string // the Map call, for the reports
}

// linOutput is its output.
type linOutput struct {
	Unknown bool // a write that returned an error: any effect, or none
	Found   bool // linGet, linHas, linTTL; linExpire, linSetNX, linCAS: the call's result
	Value   string
	TTL     time.Duration // linTTL
}

// linRecord is one operation as a client recorded it.
type linRecord struct {
	client    int // -1: a read that failed, counted and dropped
	in        linInput
	out       linOutput
	call, ret int64 // ns since the run began
	floor     int64 // the return of the client's last write of the key before this call
}

// linFault is a fault the schedule injected, for the visualization.
type linFault struct {
	what     string
	from, to int64
}

// linRun is the state of one run.
type linRun struct {
	t        T
	e        *env
	o        LinearOptions
	start    time.Time
	keys     []string
	manual   bool          // the store's clock is Store.Advance's
	mapTTL   time.Duration // the Maps' TTL
	timeout  time.Duration // of one call
	nearHits int64         // reads served by the near caches, all rounds
	clock    atomic.Int64  // how far Store.Advance moved the clock, in calls that returned

	// Of the current round.
	calls    atomic.Int64  // calls ended
	progress chan struct{} // a call ended (may drop when full)
	faultLog []linFault    // written by the injector only

	mu      sync.Mutex
	stop    bool
	claimed int64         // calls begun
	budget  int64         // calls the fault schedule lets begin; -1: no limit
	opened  chan struct{} // closed when budget or stop changes
}

// claim reserves the next call of the round for a client; with faults it
// waits until the schedule lets it begin. It returns false when the round
// is over.
func (r *linRun) claim() bool {
	for {
		r.mu.Lock()
		if r.stop {
			r.mu.Unlock()
			return false
		}
		if r.budget < 0 || r.claimed < r.budget {
			r.claimed++
			r.mu.Unlock()
			return true
		}
		opened := r.opened
		r.mu.Unlock()
		select {
		case <-opened:
		case <-r.t.Context().Done():
			return false
		}
	}
}

// open lets the clients begin calls until n have begun, or ends the round
// (n < 0 with stop).
func (r *linRun) open(n int64, stop bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.budget, r.stop = n, stop
	close(r.opened)
	r.opened = make(chan struct{})
}

func (r *linRun) now() int64 { return int64(time.Since(r.start)) }

// ttls returns the TTLs the clients write. On a store with a manual clock
// they are short and the clock moves, so that keys expire during the run;
// the 50 ms past the second keeps deadlines off the 100 ms steps of the
// clock. Elsewhere they outlast any run.
func (r *linRun) ttls() []time.Duration {
	if r.manual {
		return []time.Duration{1050 * time.Millisecond, 2050 * time.Millisecond, 3050 * time.Millisecond, kv.NoTTL}
	}
	return []time.Duration{2 * time.Hour, 3 * time.Hour, kv.NoTTL}
}

func runLinear(t T, e *env, o LinearOptions) LinearResult {
	t.Helper()
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.Keys <= 0 {
		o.Keys = 4
	}
	if o.Ops <= 0 {
		o.Ops = 100
	}
	if o.KillEveryCalls <= 0 {
		o.KillEveryCalls = 100
	}
	if o.FaultPeriods <= 0 {
		o.FaultPeriods = 10
	}
	if o.StallFor <= 0 {
		o.StallFor = 30 * time.Millisecond
	}
	if s := linearSeconds(t); s > 0 {
		o.Duration = s
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	r := &linRun{t: t, e: e, o: o, manual: e.advance != nil, timeout: 30 * time.Second, mapTTL: time.Hour}
	if r.manual {
		r.mapTTL = 3050 * time.Millisecond
	}
	for i := range o.Keys {
		r.keys = append(r.keys, fmt.Sprintf("k%d", i))
	}
	handles := make([]backend.Backend, o.Clients)
	for i := range handles {
		handles[i] = e.b
		if e.open == nil {
			continue
		}
		b := e.open(t)
		if b == nil {
			t.Fatalf("Store.Open returned a nil Backend")
		}
		t.Cleanup(func() {
			if err := b.Close(); err != nil && !errors.Is(err, backend.ErrClosed) {
				t.Errorf("Close of a handle from Store.Open: %v", err)
			}
		})
		handles[i] = b
	}

	res := LinearResult{Linearizable: true}
	var recording, checking time.Duration
	r.start = time.Now()
	for round := 0; round == 0 || time.Since(r.start) < o.Duration; round++ {
		if t.Context().Err() != nil {
			break
		}
		began := time.Now()
		c, near, delta := r.round(handles, o.Seed+uint64(round)*1000)
		ran := time.Since(began)
		res.Rounds++
		res.NearCache, res.Staleness = near, delta
		res.Calls += int(r.calls.Load())
		res.Faults += len(c.faults)
		for _, rec := range c.records {
			switch {
			case rec.client < 0:
				res.FailedReads++
			case rec.out.Unknown:
				res.Unknown++
			}
		}
		c.records = slices.DeleteFunc(c.records, func(rec linRecord) bool { return rec.client < 0 })
		res.Ops += len(c.records)
		if _, ok := t.(*recorder); ok {
			// Under Test: a history that takes long to prove illegal is
			// reported as undecided, a failure too.
			c.timeout = linCheckTimeout / 6
		}
		result := c.check(delta)
		checked := time.Since(began) - ran
		if near && (!o.Faults || o.MeasureOnly || linearSeconds(t) > 0) {
			m := c.minStaleness()
			if m < 0 || res.MinStaleness < 0 {
				res.MinStaleness = -1
			} else {
				res.MinStaleness = max(res.MinStaleness, m)
			}
		}
		recording += ran
		checking += checked
		if result != linOK && res.Linearizable {
			res.Linearizable = false
			t.Logf("round %d (seed %d) is not linearizable", round, o.Seed+uint64(round)*1000)
			res.Visualization = c.report(t, delta, result, o.MeasureOnly)
		}
	}
	smallest := "not measured"
	switch {
	case res.MinStaleness < 0:
		smallest = "over 10s"
	case res.NearCache && (!o.Faults || o.MeasureOnly || linearSeconds(t) > 0):
		smallest = res.MinStaleness.String()
	}
	res.NearHits = r.nearHits
	t.Logf("linearizability: %d rounds, %d calls, %d operations, %d unknown writes, %d failed reads, %d faults, near cache %v (%d hits), δ %v: linearizable %v; smallest δ %s (%v recording, %v checking)",
		res.Rounds, res.Calls, res.Ops, res.Unknown, res.FailedReads, res.Faults, res.NearCache, res.NearHits, res.Staleness, res.Linearizable, smallest,
		recording.Round(time.Millisecond), checking.Round(time.Millisecond))
	return res
}

// round runs one round on a fresh namespace and returns its history, and
// whether the Maps had a near cache and the δ that applies.
func (r *linRun) round(handles []backend.Backend, seed uint64) (*linChecker, bool, time.Duration) {
	t, e, o := r.t, r.e, r.o
	ns := e.ns("lin")
	maps := make([]*kv.Map[string], len(handles))
	for i, b := range handles {
		m, err := kv.New[string](b, ns, e.opts(slices.Concat([]kv.Option{kv.WithTTL(r.mapTTL)}, o.Options)...)...)
		if err != nil {
			t.Fatalf("kv.New(%q): %v", ns, err)
		}
		maps[i] = m
	}
	defer func() {
		for _, m := range maps {
			if st, ok := m.NearCacheStats(); ok {
				r.nearHits += st.Hits
			}
		}
		// The context of the case may have ended.
		if err := maps[0].Clear(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("Clear(%q) after the round: %v", ns, err)
		}
		for _, m := range maps {
			if err := m.Close(); err != nil {
				t.Errorf("Close(%q): %v", ns, err)
			}
		}
	}()
	_, near := maps[0].NearCacheStats()
	delta := o.Staleness
	if delta == 0 && near {
		delta = NearCacheStaleness
	}

	r.calls.Store(0)
	r.clock.Store(0) // the model's clock starts at 0 in every round
	r.progress = make(chan struct{}, 1)
	r.faultLog = nil
	r.stop, r.claimed, r.budget, r.opened = false, 0, -1, make(chan struct{})
	if o.Faults {
		r.budget = int64(o.KillEveryCalls)
	}
	records := make([][]linRecord, len(maps))
	var wg sync.WaitGroup
	for i, m := range maps {
		wg.Go(func() {
			records[i] = r.client(i, m, rand.New(rand.NewPCG(seed, uint64(i))))
		})
	}
	if o.Faults {
		r.injectFaults()
		r.open(0, true)
	}
	wg.Wait()
	if o.Faults {
		e.faults.Heal()
	}
	var all []linRecord
	for _, rs := range records {
		all = append(all, rs...)
	}
	return &linChecker{records: all, exactTTL: r.manual, faults: r.faultLog}, near, delta
}

// waitCalls waits until the clients have made n calls in the round, or the
// case ends; it reports whether they have.
func (r *linRun) waitCalls(n int64) bool {
	for r.calls.Load() < n {
		select {
		case <-r.progress:
		case <-r.t.Context().Done():
			return false
		}
	}
	return true
}

// injectFaults runs the fault schedule of a round. Its periods are counted
// in calls, whatever the speed of the store: the clients may begin the
// calls of the period after the current one, so that a kill finds commands
// in flight. The only wait by the clock is a stall's length.
func (r *linRun) injectFaults() {
	f, o := r.e.faults, r.o
	k, total := int64(o.KillEveryCalls), int64(o.FaultPeriods*o.KillEveryCalls)
	log := func(what string, from int64) {
		r.faultLog = append(r.faultLog, linFault{what: what, from: from, to: r.now()})
	}
	for p := range int64(o.FaultPeriods) {
		if !r.waitCalls(p * k) {
			break
		}
		from := r.now()
		f.Fail() // every connection dropped, with the commands in flight
		f.Heal()
		log("kill", from)
		switch {
		case p%4 == 0: // replies lost for half the period
			from := r.now()
			f.Flaky()
			r.waitCalls(p*k + k/2)
			f.Heal()
			log("lossy", from)
		case p%6 == 3:
			from := r.now()
			f.Stall()
			select {
			case <-time.After(o.StallFor):
			case <-r.t.Context().Done():
			}
			f.Heal()
			log("stall", from)
		}
		r.open(min((p+2)*k, total), false)
	}
	r.waitCalls(total)
	f.Heal()
}

// client runs the calls of one client in a round and returns its records.
func (r *linRun) client(id int, m *kv.Map[string], rnd *rand.Rand) []linRecord {
	o := r.o
	var out []linRecord
	floors := map[string]int64{} // key -> return of the client's last write of it
	seen := map[string]string{}  // key -> the value the client last read, for CompareAndSwap
	ttls := r.ttls()
	cond := backend.CapabilitiesOf(r.e.b).SetIf != nil
	for i := 0; ; i++ {
		if (!o.Faults && i >= o.Ops) || r.t.Context().Err() != nil || !r.claim() {
			return out
		}
		timeout := r.timeout
		if o.Faults && rnd.IntN(10) == 0 {
			timeout = time.Duration(5+rnd.IntN(50)) * time.Millisecond // some calls give up early
		}
		ctx, cancel := context.WithTimeout(r.t.Context(), timeout)
		lo := r.clock.Load()
		recs := r.call(ctx, id, i, m, rnd, ttls, cond, seen)
		cancel()
		r.calls.Add(1)
		select {
		case r.progress <- struct{}{}:
		default:
		}
		for j := range recs {
			recs[j].floor = floors[recs[j].in.Key]
			recs[j].in.ClockLo = lo
		}
		for _, rec := range recs {
			switch rec.in.Kind {
			case linSet, linDelete, linExpire, linSetNX, linCAS:
				floors[rec.in.Key] = max(floors[rec.in.Key], rec.ret)
			case linGet:
				if rec.out.Found {
					seen[rec.in.Key] = rec.out.Value
				}
			}
		}
		out = append(out, recs...)
	}
}

// key returns a random key of the run.
func (r *linRun) key(rnd *rand.Rand) string { return r.keys[rnd.IntN(len(r.keys))] }

// someKeys returns 2 or 3 distinct keys of the run (or all of them, if fewer).
func (r *linRun) someKeys(rnd *rand.Rand) []string {
	ks := slices.Clone(r.keys)
	rnd.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
	return ks[:min(len(ks), 2+rnd.IntN(2))]
}

// call makes one random call and returns its records.
// With cond (the store has conditional writes) some writes are
// SetIfAbsent and CompareAndSwap, from a value seen (the client's last read
// of the key).
func (r *linRun) call(ctx context.Context, client, seq int, m *kv.Map[string], rnd *rand.Rand, ttls []time.Duration, cond bool, seen map[string]string) []linRecord {
	val := func(suffix string) string { return fmt.Sprintf("c%d.%d%s", client, seq, suffix) }
	rec := func(in linInput, out linOutput, call, ret int64) linRecord {
		return linRecord{client: client, in: in, out: out, call: call, ret: ret}
	}
	failedRead := func(in linInput, call, ret int64) []linRecord {
		return []linRecord{{client: -1, in: linInput{Kind: linGet, Key: in.Key, Call: in.Call}, call: call, ret: ret}}
	}
	advance := r.manual && r.e.advance != nil
	w := rnd.IntN(100)
	if !advance && w < 3 {
		w = 3 + rnd.IntN(97)
	}
	switch {
	case w < 3: // the store's clock moves, by 100 ms to 1.5 s
		d := time.Duration(1+rnd.IntN(15)) * 100 * time.Millisecond
		call := r.now()
		r.e.advance(d)
		ret := r.now()
		r.clock.Add(int64(d))
		return []linRecord{rec(linInput{Kind: linAdvance, TTL: d, Call: "Advance"}, linOutput{}, call, ret)}
	case w < 23:
		k, v := r.key(rnd), val("")
		call := r.now()
		err := m.Set(ctx, k, v)
		return []linRecord{rec(linInput{Kind: linSet, Key: k, Value: v, TTL: r.mapTTL, Call: "Set"}, linOutput{Unknown: err != nil}, call, r.now())}
	case w < 28:
		k, v, d := r.key(rnd), val(""), ttls[rnd.IntN(len(ttls))]
		call := r.now()
		err := m.SetWithTTL(ctx, k, v, d)
		return []linRecord{rec(linInput{Kind: linSet, Key: k, Value: v, TTL: d, Call: "SetWithTTL"}, linOutput{Unknown: err != nil}, call, r.now())}
	case w < 36:
		ks := r.someKeys(rnd)
		entries := make([]kv.Entry[string], len(ks))
		for i, k := range ks {
			entries[i] = kv.Entry[string]{Key: k, Value: val(string(rune('a' + i)))}
		}
		call := r.now()
		err := m.SetMany(ctx, entries)
		ret := r.now()
		known := batchOutcome(err, ks)
		var out []linRecord
		for _, en := range entries {
			unknown, done := known(en.Key)
			if !done && !unknown {
				continue // certainly not written
			}
			out = append(out, rec(linInput{Kind: linSet, Key: en.Key, Value: en.Value, TTL: r.mapTTL, Call: "SetMany"}, linOutput{Unknown: unknown}, call, ret))
		}
		return out
	case w < 44:
		k := r.key(rnd)
		call := r.now()
		err := m.Delete(ctx, k)
		return []linRecord{rec(linInput{Kind: linDelete, Key: k, Call: "Delete"}, linOutput{Unknown: err != nil}, call, r.now())}
	case w < 48:
		ks := r.someKeys(rnd)
		call := r.now()
		err := m.DeleteMany(ctx, ks)
		ret := r.now()
		known := batchOutcome(err, ks)
		var out []linRecord
		for _, k := range ks {
			unknown, done := known(k)
			if !done && !unknown {
				continue
			}
			out = append(out, rec(linInput{Kind: linDelete, Key: k, Call: "DeleteMany"}, linOutput{Unknown: unknown}, call, ret))
		}
		return out
	case w < 56:
		k, d := r.key(rnd), ttls[rnd.IntN(len(ttls))]
		if r.manual && d == kv.NoTTL && rnd.IntN(2) == 0 {
			d = 1050 * time.Millisecond
		}
		call := r.now()
		ok, err := m.Expire(ctx, k, d)
		return []linRecord{rec(linInput{Kind: linExpire, Key: k, TTL: d, Call: "Expire"}, linOutput{Unknown: err != nil, Found: ok}, call, r.now())}
	case cond && w < 60:
		k, v := r.key(rnd), val("")
		call := r.now()
		ok, err := m.SetIfAbsent(ctx, k, v)
		return []linRecord{rec(linInput{Kind: linSetNX, Key: k, Value: v, TTL: r.mapTTL, Call: "SetIfAbsent"}, linOutput{Unknown: err != nil, Found: ok}, call, r.now())}
	case cond && w < 66:
		k, v, d := r.key(rnd), val(""), ttls[rnd.IntN(len(ttls))]
		old, ok := seen[k]
		if !ok || rnd.IntN(4) == 0 {
			old = fmt.Sprintf("c%d.%d", rnd.IntN(max(r.o.Clients, 1)), rnd.IntN(seq+1)) // likely stale
		}
		call := r.now()
		ok, err := m.CompareAndSwapWithTTL(ctx, k, old, v, d)
		return []linRecord{rec(linInput{Kind: linCAS, Key: k, Old: old, Value: v, TTL: d, Call: "CompareAndSwap"}, linOutput{Unknown: err != nil, Found: ok}, call, r.now())}
	case w < 81:
		k := r.key(rnd)
		in := linInput{Kind: linGet, Key: k, Call: "Get"}
		call := r.now()
		v, ok, err := m.Get(ctx, k)
		ret := r.now()
		if err != nil {
			return failedRead(in, call, ret)
		}
		return []linRecord{rec(in, linOutput{Found: ok, Value: v}, call, ret)}
	case w < 91:
		ks := r.someKeys(rnd)
		call := r.now()
		got, err := m.GetMany(ctx, ks)
		ret := r.now()
		if err != nil {
			return failedRead(linInput{Key: ks[0], Call: "GetMany"}, call, ret)
		}
		var out []linRecord
		for _, k := range ks {
			v, ok := got[k]
			out = append(out, rec(linInput{Kind: linGet, Key: k, Call: "GetMany"}, linOutput{Found: ok, Value: v}, call, ret))
		}
		return out
	case w < 95:
		k := r.key(rnd)
		in := linInput{Kind: linHas, Key: k, Call: "Has"}
		call := r.now()
		ok, err := m.Has(ctx, k)
		ret := r.now()
		if err != nil {
			return failedRead(in, call, ret)
		}
		return []linRecord{rec(in, linOutput{Found: ok}, call, ret)}
	default:
		k := r.key(rnd)
		in := linInput{Kind: linTTL, Key: k, Call: "TTL"}
		call := r.now()
		d, ok, err := m.TTL(ctx, k)
		ret := r.now()
		if err != nil {
			return failedRead(in, call, ret)
		}
		return []linRecord{rec(in, linOutput{Found: ok, TTL: d}, call, ret)}
	}
}

// batchOutcome returns, for a key of a batch write that returned err,
// whether its outcome is unknown and whether it certainly took effect. A
// *BatchError says per key; any other error leaves every key unknown (a
// store that writes a batch in one transaction wrote all or nothing, and
// cannot always tell which).
func batchOutcome(err error, keys []string) func(key string) (unknown, done bool) {
	if err == nil {
		return func(string) (bool, bool) { return false, true }
	}
	var be *kv.BatchError
	if !errors.As(err, &be) {
		return func(string) (bool, bool) { return true, false }
	}
	written, failed := map[string]bool{}, map[string]bool{}
	for _, k := range be.Written {
		written[k] = true
	}
	for _, k := range be.Failed {
		failed[k] = true
	}
	return func(k string) (bool, bool) {
		switch {
		case written[k]:
			return false, true
		case failed[k]:
			return false, false
		}
		return true, false
	}
}
