package conformance

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kvmap/kv"
)

// linState is the state of one key in the model, with the store's clock.
//
// A store may read its clock before it waits for a lock (bbolt does), and
// the clock may move meanwhile: so a write's TTL runs from a moment
// between its call and its effect, and a remaining TTL is read against
// the clock of a moment between the call and the read. The model knows a
// deadline as a range, [Earliest, Latest], narrowed by what reads see: a
// key is live before Earliest, gone at Latest, and either in between.
type linState struct {
	Clock    int64 // ns the store's clock moved since the run began
	Present  bool
	Value    string
	Earliest int64 // on Clock's scale; 0 (with Latest): no expiry
	Latest   int64
}

// expire removes the value if its deadline has certainly come (a
// deadline at or before the clock, as every store of this module reads
// it).
func (s linState) expire() linState {
	if s.Present && s.Latest != 0 && s.Latest <= s.Clock {
		return linState{Clock: s.Clock}
	}
	return s
}

// withTTL returns s with the deadline a TTL given by a call that began
// when the clock had moved at least from sets.
func (s linState) withTTL(ttl time.Duration, from int64) linState {
	if ttl == kv.NoTTL {
		s.Earliest, s.Latest = 0, 0
		return s
	}
	s.Earliest, s.Latest = min(from, s.Clock)+int64(ttl), s.Clock+int64(ttl)
	return s
}

// observe returns whether a read can find the key present (or not, as
// present says) on s, and the state narrowed by what it found.
func (s linState) observe(present bool) (bool, linState) {
	switch {
	case !s.Present:
		return !present, s
	case s.Latest == 0 || s.Clock < s.Earliest:
		return present, s
	case present: // live past Earliest: the deadline is later
		s.Earliest = s.Clock + 1
		return true, s
	}
	return true, linState{Clock: s.Clock} // gone before Latest
}

// linModel returns the sequential model of a namespace: per key, its value
// and deadline. With exactTTL (a store on a manual clock) TTL must return a
// deadline in range minus the clock of a moment during the call; otherwise
// any positive TTL passes for a key with a deadline.
func linModel(exactTTL bool) porcupine.Model {
	return porcupine.Model{
		Partition: linPartition,
		Init:      func() any { return linState{} },
		Step: func(state, input, output any) (bool, any) {
			return linStep(state.(linState), input.(linInput), output.(linOutput), exactTTL)
		},
		Equal: func(a, b any) bool { return a.(linState) == b.(linState) },
		Hash: func(state any) uint64 {
			s := state.(linState)
			h := fnv.New64a()
			fmt.Fprintf(h, "%d\x00%v\x00%s\x00%d\x00%d", s.Clock, s.Present, s.Value, s.Earliest, s.Latest)
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			return describeLin(input.(linInput), output.(linOutput))
		},
		DescribeState: func(state any) string {
			s := state.(linState)
			switch {
			case !s.Present:
				return fmt.Sprintf("absent (clock +%v)", time.Duration(s.Clock))
			case s.Latest == 0:
				return fmt.Sprintf("%q, no expiry", s.Value)
			case s.Earliest == s.Latest:
				return fmt.Sprintf("%q, expires in %v", s.Value, time.Duration(s.Latest-s.Clock))
			}
			return fmt.Sprintf("%q, expires in %v to %v", s.Value, time.Duration(s.Earliest-s.Clock), time.Duration(s.Latest-s.Clock))
		},
	}
}

// linStep is the model's step: whether the operation can take effect on s
// with that output, and the state after it.
func linStep(s linState, in linInput, out linOutput, exactTTL bool) (bool, linState) {
	switch in.Kind {
	case linAdvance:
		s.Clock += int64(in.TTL)
		return true, s.expire()
	case linSet:
		return true, linState{Clock: s.Clock, Present: true, Value: in.Value}.withTTL(in.TTL, in.ClockLo)
	case linDelete:
		return true, linState{Clock: s.Clock}
	case linSetNX, linCAS:
		return condStep(s, in, out, exactTTL)
	case linExpire:
		if out.Unknown {
			if ok, live := s.observe(true); ok && s.Present {
				// It took effect on a live key; or it found the key gone.
				return true, live.withTTL(in.TTL, in.ClockLo)
			}
			return true, s
		}
		ok, s := s.observe(out.Found)
		if ok && out.Found {
			s = s.withTTL(in.TTL, in.ClockLo)
		}
		return ok, s
	case linGet:
		ok, s := s.observe(out.Found)
		return ok && (!out.Found || out.Value == s.Value), s
	case linHas:
		return s.observe(out.Found)
	case linTTL:
		ok, s := s.observe(out.Found)
		switch {
		case !ok || !out.Found:
			return ok, s
		case s.Latest == 0:
			return out.TTL == kv.NoTTL, s
		case out.TTL == kv.NoTTL || out.TTL <= 0:
			return false, s
		case exactTTL:
			// Read against the clock of a moment during the call.
			lo, hi := max(s.Earliest, min(in.ClockLo, s.Clock)+int64(out.TTL)), min(s.Latest, s.Clock+int64(out.TTL))
			if lo > hi {
				return false, s
			}
			s.Earliest, s.Latest = lo, hi
		}
		return true, s
	}
	return false, s
}

// condStep is linStep of a conditional write (linSetNX, linCAS). One of
// unknown outcome takes effect wherever it can: a linearization that needs
// it not to has it last (it returns after every other operation), where its
// effect changes nothing seen.
func condStep(s linState, in linInput, out linOutput, exactTTL bool) (bool, linState) {
	written := linState{Clock: s.Clock, Present: true, Value: in.Value}.withTTL(in.TTL, in.ClockLo)
	if in.Kind == linSetNX {
		if out.Unknown {
			if ok, _ := s.observe(false); ok {
				return true, written
			}
			return true, s
		}
		ok, after := s.observe(!out.Found)
		if ok && out.Found {
			return true, written
		}
		return ok, after
	}
	// CompareAndSwap matches a live key holding Old.
	matches := s.Present && s.Value == in.Old
	switch {
	case out.Unknown && matches:
		if ok, _ := s.observe(true); ok {
			return true, written
		}
		return true, s
	case out.Unknown:
		return true, s
	case out.Found:
		ok, _ := s.observe(true)
		return ok && matches, written
	case matches: // not written: the key must have expired
		return s.observe(false)
	}
	return true, s // absent, or another value, live or expired
}

// linPartition splits a history per key; a move of the clock belongs to
// every key.
func linPartition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var clock []porcupine.Operation
	for _, op := range history {
		in := op.Input.(linInput)
		if in.Kind == linAdvance {
			clock = append(clock, op)
			continue
		}
		byKey[in.Key] = append(byKey[in.Key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out [][]porcupine.Operation
	for _, k := range keys {
		out = append(out, append(byKey[k], clock...))
	}
	if len(out) == 0 && len(clock) > 0 {
		out = append(out, clock)
	}
	return out
}

func describeLin(in linInput, out linOutput) string {
	var call string
	switch in.Kind {
	case linAdvance:
		return fmt.Sprintf("Advance(%v)", in.TTL)
	case linSet:
		call = fmt.Sprintf("%s(%s, %s, ttl %s)", in.Call, in.Key, in.Value, ttlString(in.TTL))
	case linDelete:
		call = fmt.Sprintf("%s(%s)", in.Call, in.Key)
	case linExpire, linSetNX, linCAS:
		switch in.Kind {
		case linExpire:
			call = fmt.Sprintf("Expire(%s, %s)", in.Key, ttlString(in.TTL))
		case linSetNX:
			call = fmt.Sprintf("SetIfAbsent(%s, %s, ttl %s)", in.Key, in.Value, ttlString(in.TTL))
		default:
			call = fmt.Sprintf("CompareAndSwap(%s, %s, %s, ttl %s)", in.Key, in.Old, in.Value, ttlString(in.TTL))
		}
		if !out.Unknown {
			return fmt.Sprintf("%s -> %v", call, out.Found)
		}
	case linGet:
		if !out.Found {
			return fmt.Sprintf("%s(%s) -> absent", in.Call, in.Key)
		}
		return fmt.Sprintf("%s(%s) -> %s", in.Call, in.Key, out.Value)
	case linHas:
		return fmt.Sprintf("Has(%s) -> %v", in.Key, out.Found)
	case linTTL:
		if !out.Found {
			return fmt.Sprintf("TTL(%s) -> absent", in.Key)
		}
		return fmt.Sprintf("TTL(%s) -> %s", in.Key, ttlString(out.TTL))
	}
	if out.Unknown {
		return call + " -> error (outcome unknown)"
	}
	return call + " -> ok"
}

func ttlString(d time.Duration) string {
	if d == kv.NoTTL {
		return "none"
	}
	return d.String()
}

// Results of a check.
const (
	linOK = iota
	linIllegal
	linUndecided
)

// linCheckTimeout bounds the porcupine check of one key's history. A
// linearizable history is found at once; proving that one is not takes a
// search through the orders in which its writes of unknown outcome may have
// taken effect, which grows fast with their number.
const linCheckTimeout = time.Minute

// linChecker checks a recorded history, with a δ of its choice.
type linChecker struct {
	records  []linRecord
	exactTTL bool
	faults   []linFault
	timeout  time.Duration         // of check, per key; linCheckTimeout when 0
	bad      []porcupine.Operation // the key's history that check found failing
}

// ops returns the history for δ: the read a near cache may serve is moved
// back by δ, but not before its client's previous call returned; a write
// whose outcome is unknown returns after every other operation.
func (c *linChecker) ops(delta time.Duration) []porcupine.Operation {
	end := int64(0)
	for _, r := range c.records {
		end = max(end, r.ret)
	}
	// A write of a value that some Get returned took effect before that
	// Get returned: its return is the earliest such, which is sound and
	// spares porcupine the orders in which it took effect later.
	readBy := map[string]int64{}
	for _, r := range c.records {
		if r.in.Kind == linGet && r.out.Found {
			k := r.in.Key + "\x00" + r.out.Value
			if at, ok := readBy[k]; !ok || r.ret < at {
				readBy[k] = r.ret
			}
		}
	}
	out := make([]porcupine.Operation, len(c.records))
	for i, r := range c.records {
		call, ret := r.call, r.ret
		if (r.in.Kind == linGet || r.in.Kind == linHas) && delta > 0 {
			call = min(call, max(call-int64(delta), r.floor+1)) // intervals are closed
		}
		if r.out.Unknown {
			ret = end + 1
			if at, ok := readBy[r.in.Key+"\x00"+r.in.Value]; ok && (r.in.Kind == linSet || r.in.Kind == linSetNX || r.in.Kind == linCAS) {
				ret = max(at, call)
			}
		}
		out[i] = porcupine.Operation{ClientId: r.client, Input: r.in, Output: r.out, Call: call, Return: ret}
	}
	return out
}

func (c *linChecker) run(ops []porcupine.Operation, timeout time.Duration) int {
	switch porcupine.CheckOperationsTimeout(linModel(c.exactTTL), ops, timeout) {
	case porcupine.Ok:
		return linOK
	case porcupine.Illegal:
		return linIllegal
	}
	return linUndecided
}

// check checks the history for δ.
// It checks one key at a time, and keeps the history of the first key that
// fails for report.
func (c *linChecker) check(delta time.Duration) int {
	c.bad = nil
	for _, p := range linPartition(c.ops(delta)) {
		timeout := c.timeout
		if timeout == 0 {
			timeout = linCheckTimeout
		}
		if res := c.run(p, timeout); res != linOK {
			c.bad = p
			return res
		}
	}
	return linOK
}

// minStaleness returns the smallest δ, to 50 µs, for which the history is
// δ-linearizable, or -1 when 10 s is not enough: doubling from 50 µs, then
// halving the last step. A check that porcupine cannot decide within
// linShrinkTimeout counts as a failure.
func (c *linChecker) minStaleness() time.Duration {
	ok := func(d time.Duration) bool { return c.run(c.ops(d), linShrinkTimeout) == linOK }
	if ok(0) {
		return 0
	}
	const step, most = 50 * time.Microsecond, 10 * time.Second
	lo, hi := time.Duration(0), step
	for !ok(hi) {
		if hi >= most {
			return -1
		}
		lo, hi = hi, min(2*hi, most)
	}
	for hi-lo > step {
		mid := lo + (hi-lo)/2
		if ok(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// report explains a history that is not δ-linearizable (result, from
// check(delta), called last): it fails t (unless measureOnly) with the
// shortest failing part it finds, writes porcupine visualizations of the
// whole history and of that part into a directory that is kept, and
// returns the directory.
func (c *linChecker) report(t T, delta time.Duration, result int, measureOnly bool) string {
	t.Helper()
	fail := t.Errorf
	if measureOnly {
		fail = t.Logf
	}
	ops := c.ops(delta)
	if result == linUndecided {
		fail("porcupine could not decide in time whether the history of %d operations is linearizable; shorten it", len(ops))
		return ""
	}
	model := linModel(c.exactTTL)
	// Explaining the failure is given a budget: under Test (a recorder,
	// which nobody reads line by line) a short one.
	budget := linReportBudget
	if _, ok := t.(*recorder); ok {
		budget = linReportBudget / 8
	}
	until := time.Now().Add(budget)
	small := c.shrink(c.bad, until.Add(-budget/4))
	slices.SortFunc(small, func(a, b porcupine.Operation) int { return cmpInt64(a.Call, b.Call) })
	var b strings.Builder
	t0 := int64(0)
	if len(small) > 0 {
		t0 = small[0].Call
	}
	end := int64(0)
	for _, r := range c.records {
		end = max(end, r.ret)
	}
	const maxLines = 60
	if len(small) > maxLines {
		fmt.Fprintf(&b, "\n  ... %d operations before these (in the visualization)", len(small)-maxLines)
	}
	for i, op := range small {
		if i < len(small)-maxLines {
			continue
		}
		ret := fmt.Sprintf("+%v", time.Duration(op.Return-t0))
		if op.Return > end {
			ret = "never (outcome unknown)"
		}
		fmt.Fprintf(&b, "\n  client %d  [+%v, %s]  %s", op.ClientId, time.Duration(op.Call-t0), ret,
			describeLin(op.Input.(linInput), op.Output.(linOutput)))
	}
	dir, err := os.MkdirTemp(os.Getenv("KV_LINEAR_DIR"), "kv-linear-")
	if err == nil {
		err = writeJSONLines(filepath.Join(dir, "history.jsonl"), ops)
	}
	if err == nil {
		for name, h := range map[string][]porcupine.Operation{"history.html": ops, "shortest.html": small} {
			_, info := porcupine.CheckOperationsVerbose(model, h, max(time.Until(until)/3, 100*time.Millisecond))
			if name == "history.html" {
				info.AddAnnotations(c.annotations())
			}
			if verr := porcupine.VisualizePath(model, info, filepath.Join(dir, name)); verr != nil && err == nil {
				err = verr
			}
		}
	}
	where := "visualization: " + filepath.Join(dir, "history.html") + " (whole history; history.jsonl beside it) and " + filepath.Join(dir, "shortest.html")
	if err != nil {
		where = fmt.Sprintf("no visualization: %v", err)
	}
	fail("history of %d operations is not linearizable (δ = %v)%s\nthe shortest failing part found, %d operations, times from its first call:%s\n%s",
		len(ops), delta, c.stuck(small, t0, max(time.Until(until)/3, 100*time.Millisecond)), len(small), b.String(), where)
	return dir
}

// stuck describes where the search for an order of h stopped: the longest
// order found, the state it leads to, and the first operation to return
// that no order could place next.
func (c *linChecker) stuck(h []porcupine.Operation, t0 int64, timeout time.Duration) string {
	model := linModel(c.exactTTL)
	res, info := porcupine.CheckOperationsVerbose(model, h, timeout)
	if res != porcupine.Illegal {
		return ""
	}
	var longest []porcupine.Operation
	for _, part := range info.PartialLinearizationsOperations() {
		for _, l := range part {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	type id struct {
		client    int
		call, ret int64
		in        linInput
	}
	placed := map[id]bool{}
	state := model.Init()
	for _, op := range longest {
		placed[id{op.ClientId, op.Call, op.Return, op.Input.(linInput)}] = true
		_, state = model.Step(state, op.Input, op.Output)
	}
	var next *porcupine.Operation
	for i, op := range h {
		if !placed[id{op.ClientId, op.Call, op.Return, op.Input.(linInput)}] && (next == nil || op.Return < next.Return) {
			next = &h[i]
		}
	}
	if next == nil {
		return ""
	}
	return fmt.Sprintf(":\nafter the longest order found, of %d operations, the key is %s; nothing can come next, and client %d's %s [+%v, +%v] must",
		len(longest), model.DescribeState(state), next.ClientId,
		describeLin(next.Input.(linInput), next.Output.(linOutput)), time.Duration(next.Call-t0), time.Duration(next.Return-t0))
}

// writeJSONLines writes ops to path, one JSON object a line.
func writeJSONLines(path string, ops []porcupine.Operation) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, op := range ops {
		if err := enc.Encode(struct {
			Client       int
			Call, Return int64
			Input        linInput
			Output       linOutput
		}{op.ClientId, op.Call, op.Return, op.Input.(linInput), op.Output.(linOutput)}); err != nil {
			return err
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// annotations returns the injected faults, for the visualization.
func (c *linChecker) annotations() []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, f := range c.faults {
		out = append(out, porcupine.Annotation{Tag: "faults", Start: f.from, End: f.to, Description: f.what})
	}
	return out
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Bounds of the explanation of a failure: the checks the search for a
// short failing part may make, the time each may take (one that porcupine
// cannot decide in time counts as linearizable), and the time the search,
// the description of where it got stuck and the visualizations may take
// together.
const (
	linShrinkChecks  = 4000
	linShrinkTimeout = 3 * time.Second
	linReportBudget  = 24 * time.Second
)

// shrink returns a short part of ops (one key's history, not
// linearizable) that is still not linearizable, and whose failure implies
// that of ops: a part of a linearizable history is linearizable when it is
// a closed prefix (closedPrefix) with some reads left out. It is the
// shortest closed prefix, then without every read whose removal keeps it
// failing. Writes and moves of the clock are never left out: a history
// without one of them may fail where the whole did not.
func (c *linChecker) shrink(ops []porcupine.Operation, until time.Time) []porcupine.Operation {
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmpInt64(a.Call, b.Call) })
	checks := 0
	spent := func() bool { return checks >= linShrinkChecks || time.Now().After(until) }
	illegal := func(h []porcupine.Operation) bool {
		checks++
		return c.run(h, max(min(linShrinkTimeout, time.Until(until)), time.Millisecond)) == linIllegal
	}
	// The shortest failing closed prefix, by bisection: a prefix of a
	// longer one is closed in it, so failures are monotonic.
	lo, hi := 0, len(ops)
	for lo+1 < hi && !spent() {
		mid := (lo + hi) / 2
		if illegal(closedPrefix(ops, mid)) {
			hi = mid
		} else {
			lo = mid
		}
	}
	if p := closedPrefix(ops, hi); len(p) < len(ops) && illegal(p) {
		ops = p
	}
	// Then leave out the reads it does not need, last first.
	for dropped := true; dropped && !spent(); {
		dropped = false
		for i := len(ops) - 1; i >= 0 && !spent(); i-- {
			if !isRead(ops[i]) {
				continue
			}
			without := slices.Delete(slices.Clone(ops), i, i+1)
			if illegal(without) {
				ops, dropped = without, true
			}
		}
	}
	return ops
}

// isRead reports whether op changes nothing in the model.
func isRead(op porcupine.Operation) bool {
	switch op.Input.(linInput).Kind {
	case linGet, linHas, linTTL:
		return true
	}
	return false
}

// closedPrefix returns the first n operations of ops (sorted by call),
// and every later one called before one of those returned, until no more
// is: every operation that a linearization of ops can put before one of
// the prefix is in it, so the prefix of a linearizable history is
// linearizable. Writes of unknown outcome, which return after everything,
// do not extend it.
func closedPrefix(ops []porcupine.Operation, n int) []porcupine.Operation {
	if n >= len(ops) {
		return ops
	}
	bound := int64(-1 << 63)
	end := int64(-1 << 63)
	for _, op := range ops {
		end = max(end, op.Return)
	}
	for i := 0; i < n || (i < len(ops) && ops[i].Call <= bound); i++ {
		if !ops[i].Output.(linOutput).Unknown || ops[i].Return < end {
			bound = max(bound, ops[i].Return)
		}
		n = max(n, i+1)
	}
	return ops[:n]
}
