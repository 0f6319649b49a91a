package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/namespace"
)

const (
	// defaultSample is the --sample of stats: the values and TTLs of this
	// many keys are read, whatever the number of keys.
	defaultSample = 100_000
	// maxSample bounds --sample: the sample is held in memory, 24 bytes a
	// key.
	maxSample = 10_000_000
	// maxGroups is how many namespaces stats counts one by one in its
	// every-namespace form; the keys of any other namespace are counted
	// together, so that a store whose keys start with an identifier
	// ("<uuid>:...") takes bounded memory.
	maxGroups = 10_000
	// statsBarWidth is the longest bar of a histogram, in columns (less
	// on a narrower terminal).
	statsBarWidth = 40
	// sampleSeed seeds the sampling: the same keys scanned in the same order
	// give the same sample.
	sampleSeed = 0x6b762073746174 // "kv stat"
)

// long is the full help of the commands that have more to say than their
// short line.
var long = map[string]string{"stats": statsLong}

const statsLong = `stats: key count, value sizes and TTLs of --ns (or of every namespace), with histograms.

With --ns (or $KV_NS), stats describes that namespace; without either, every
namespace of the store (the text before the first ":" of each key; keys
without ":", or starting with it, are counted under "(no namespace)"), one
row each, then all of them together. A namespace with no key has 0 keys: it
is not an error.

Every key is counted (exactly: the scan reads keys only). Values and TTLs are
read page by page for a sample of --sample keys (default 100000): a uniform
reservoir sample of the keys scanned, seeded so that the same store gives the
same sample. While the keys are no more than --sample, or with --sample 0,
every value is read and every number is exact; beyond it stats says "sampled
N of M keys", the histograms and percentiles are of the sample, and the value
bytes and keys without TTL are estimated (the sample's figure scaled to the
key count, marked ~), and the largest value is the largest of the values
read. A bolt file is opened read-only, as of --at when given: keys expired
at --at are not counted, and TTLs are measured from it.

Remaining TTLs are counted in the buckets <=1m, 1m-5m, 5m-15m, 15m-1h, 1h-6h,
6h-1d, 1d-7d, >7d and none; each holds the TTLs above its lower bound up to
and including its upper one (a key written with a 5m TTL is in 1m-5m). Value
sizes are counted in powers of two: 0B, 1B, 2B-4B, ..., 1KiB-2KiB, ...; each
holds the sizes from its lower bound up to, not including, its upper one.
Percentiles (p50, p90, p99) are of the sample, the TTL ones of its keys with a
TTL; each is at most 1/64 above the true one (exact below 128 bytes or ms).

--json prints one JSON object:
  namespace (or namespace_b64)   with --ns only
  namespaces                     without --ns: one object per namespace, with
                                 the fields below and namespace (namespace_b64
                                 for a name that is not UTF-8); namespace is
                                 null, and no_namespace or other_namespaces
                                 true, for the keys without ":" and for those
                                 of the namespaces beyond the first 10000
  sample_limit                   --sample (0: none)
  keys                           the key count, exact
  sampled                        keys whose value and TTL were read into the numbers below
  exact                          sampled == keys: every number below is exact
  value_bytes, no_ttl            exact, or estimated when not exact; null when nothing was sampled
  largest                        {"key" (or "key_b64"), "bytes"} of the largest value read, or null
  size_percentiles_bytes         {"p50","p90","p99"}, or null (not per namespace)
  ttl_percentiles_ms             {"p50","p90","p99"}, or null when no sampled key has a TTL (not per namespace)
  ttl_histogram                  every bucket: {"bucket","above_ms","upto_ms","keys"};
                                 >7d has no upto_ms, none neither bound
  size_histogram                 {"bucket","from_bytes","below_bytes","keys"}, from the
                                 smallest to the largest bucket that holds a key`

// TTL buckets: ttlBounds are the upper bounds (inclusive) of all but the
// last two, >7d and none.
var (
	ttlBounds = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour,
		6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}
	ttlLabels = []string{"<=1m", "1m-5m", "5m-15m", "15m-1h", "1h-6h", "6h-1d", "1d-7d", ">7d", "none"}
)

const (
	nTTL     = 9       // len(ttlLabels)
	ttlNone  = 8       // the bucket of keys without TTL
	nSize    = 65      // size buckets: 0, then [2^(i-1), 2^i) for i in 1..64
	fineBits = 6       // 64 sub-buckets an octave in percentile histograms
	fineN    = 59 << 6 // fine buckets of a uint64: fineIndex(2^64-1)+1
)

// ttlBucket returns the bucket of a remaining TTL.
func ttlBucket(d time.Duration) int {
	if d == backend.NoTTL {
		return ttlNone
	}
	for i, b := range ttlBounds {
		if d <= b {
			return i
		}
	}
	return len(ttlBounds)
}

// sizeBucket returns the bucket of a value size: 0 for empty, else i for
// sizes in [2^(i-1), 2^i).
func sizeBucket(n int64) int { return bits.Len64(uint64(n)) }

// sizeBounds returns the bounds of size bucket i: from, and below (0 for
// 2^64).
func sizeBounds(i int) (from, below uint64) {
	if i == 0 {
		return 0, 1
	}
	return 1 << (i - 1), 1 << i // 1<<64 is 0: the last bucket has no upper bound a uint64 holds
}

// sizeLabel names size bucket i: "0B", "1B", "2B-4B", "1KiB-2KiB".
func sizeLabel(i int) string {
	if i <= 1 {
		return strconv.Itoa(i) + "B"
	}
	from, below := sizeBounds(i)
	if below == 0 {
		return iec(from) + "-16EiB"
	}
	return iec(from) + "-" + iec(below)
}

// iec writes a power of two in bytes with its binary unit: 512B, 1KiB.
func iec(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := 0
	for n >= 1024 && n%1024 == 0 && u < len(units)-1 {
		n /= 1024
		u++
	}
	return strconv.FormatUint(n, 10) + units[u]
}

// humanBytes writes n bytes for people: 512B, 1.5KiB, 12.0MiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= 1024
		if f < 1024 {
			return strconv.FormatFloat(f, 'f', 1, 64) + u
		}
	}
	return strconv.FormatFloat(f/1024, 'f', 1, 64) + "EiB"
}

// humanTTL writes a TTL for people, to the second (to the millisecond
// below one second): 850ms, 42s, 4m12s, 3h5m0s, 2d3h0m0s.
func humanTTL(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	d = d.Round(time.Second)
	if days := d / (24 * time.Hour); days > 0 {
		return strconv.FormatInt(int64(days), 10) + "d" + (d % (24 * time.Hour)).String()
	}
	return d.String()
}

// fine is a histogram of non-negative integers for percentiles: exact
// below 128, then 64 buckets an octave, each at most 1/64 of its values
// wide. Its 3776 counters are allocated at the first Add.
type fine struct {
	counts []int64
	n      int64
	max    uint64
}

func fineIndex(v uint64) int {
	if v < 1<<(fineBits+1) {
		return int(v)
	}
	e := bits.Len64(v) - fineBits - 1
	return (e+1)<<fineBits + int(v>>e) - 1<<fineBits
}

// fineUpper returns the largest value of fine bucket i.
func fineUpper(i int) uint64 {
	if i < 1<<(fineBits+1) {
		return uint64(i)
	}
	e := i>>fineBits - 1
	m := uint64(i&(1<<fineBits-1) + 1<<fineBits)
	return (m+1)<<e - 1
}

func (f *fine) add(v uint64) {
	if f.counts == nil {
		f.counts = make([]int64, fineN)
	}
	f.counts[fineIndex(v)]++
	f.n++
	f.max = max(f.max, v)
}

// percentile returns the nearest-rank p-th percentile (the smallest value
// that p percent of the values are at most), as the upper bound of its
// bucket, never above the largest value.
func (f *fine) percentile(p int) uint64 {
	rank := (int64(p)*f.n + 99) / 100
	var cum int64
	for i, c := range f.counts {
		cum += c
		if cum >= rank && c > 0 {
			return min(fineUpper(i), f.max)
		}
	}
	return f.max
}

// agg is what stats counts of one namespace, or of all.
type agg struct {
	keys    int64 // every key scanned, less those found gone when read
	sampled int64 // keys in the numbers below
	bytes   int64
	noTTL   int64
	ttl     [nTTL]int64
	size    [nSize]int64

	read       bool // a value was read: largest and largestKey are set
	largest    int64
	largestKey string

	sizes, ttls *fine // percentiles: the total only

	// For every key (set by finish): the sample's bytes and keys without
	// TTL, scaled to the key count when not exact; estOK is false when
	// nothing was sampled of keys there are.
	estBytes, estNoTTL int64
	estOK              bool
}

// add counts one sampled key.
func (a *agg) add(size int64, ttl time.Duration) {
	a.sampled++
	a.bytes += size
	a.size[sizeBucket(size)]++
	a.ttl[ttlBucket(ttl)]++
	if ttl == backend.NoTTL {
		a.noTTL++
	}
	if a.sizes != nil {
		a.sizes.add(uint64(size))
		if ttl != backend.NoTTL {
			a.ttls.add(uint64(ttlMS(max(ttl, 0))))
		}
	}
}

// saw notes a value read.
func (a *agg) saw(key string, size int64) {
	if !a.read || size > a.largest {
		a.read, a.largest, a.largestKey = true, size, key
	}
}

// exact reports whether every key is in the sampled numbers.
func (a *agg) exact() bool { return a.sampled == a.keys }

// estimate sets the estimates of a: its sampled figures, scaled to its key
// count when not exact.
func (a *agg) estimate() {
	a.estBytes, a.estNoTTL, a.estOK = a.bytes, a.noTTL, a.exact() || a.sampled > 0
	if !a.exact() && a.sampled > 0 {
		a.estBytes, a.estNoTTL = scale(a.bytes, a.keys, a.sampled), scale(a.noTTL, a.keys, a.sampled)
	}
}

// scale returns x of sampled keys as many of keys.
func scale(x, keys, sampled int64) int64 {
	return int64(math.Round(float64(x) * float64(keys) / float64(sampled)))
}

// Kinds of pick: what is done with a key's value once read.
const (
	pickOnline = -1 // counted at once (--sample 0)
	pickAppend = -2 // added to the sample, which is not full
)

// pick is a key of a page whose value is read.
type pick struct {
	key   string // as shown: without the namespace, or whole for the keys of no namespace
	group int32
	slot  int // a slot of the sample it replaces, or pickOnline or pickAppend
}

// sampled is a key of the sample.
type sampled struct {
	size  int64
	ttl   time.Duration
	group int32
}

// statsRun is a run of stats: the groups (namespaces) and the sample.
type statsRun struct {
	every  bool  // every namespace, not one
	limit  int64 // --sample; 0: none
	groups []*agg
	names  []string // of groups: "" for the two buckets
	index  map[string]int32
	noNS   int32 // the group of keys without ":", or -1
	other  int32 // the group of the namespaces beyond maxGroups, or -1
	total  *agg  // the whole: groups[0] for one namespace

	seen   int64 // keys scanned: the sampling's index
	sample []sampled
	rng    *rand.Rand
	picks  []pick
	want   []string
}

func newStatsRun(every bool, limit int) *statsRun {
	s := &statsRun{every: every, limit: int64(limit), noNS: -1, other: -1, index: map[string]int32{},
		rng: rand.New(rand.NewPCG(sampleSeed, sampleSeed))}
	s.total = &agg{sizes: &fine{}, ttls: &fine{}}
	if !every {
		s.groups, s.names = []*agg{s.total}, []string{""}
	}
	return s
}

// group returns the group of a scanned key and the key as shown.
func (s *statsRun) group(key string) (int32, string) {
	if !s.every {
		return 0, key
	}
	ns, rest, ok := strings.Cut(key, ":")
	if !ok || ns == "" { // ":k" is in no namespace either: a namespace is never empty
		if s.noNS < 0 {
			s.noNS = s.newGroup("")
		}
		return s.noNS, key
	}
	if g, ok := s.index[ns]; ok {
		return g, rest
	}
	if len(s.index) >= maxGroups {
		if s.other < 0 {
			s.other = s.newGroup("")
		}
		return s.other, key
	}
	g := s.newGroup(ns)
	s.index[ns] = g
	return g, rest
}

func (s *statsRun) newGroup(name string) int32 {
	s.groups = append(s.groups, &agg{})
	s.names = append(s.names, name)
	return int32(len(s.groups) - 1)
}

// page counts the keys of one page of the scan of scope, and reads the
// values and TTLs of those the sample takes, in one MGet.
func (s *statsRun) page(ctx context.Context, scope backend.Backend, keys []string) error {
	s.picks, s.want = s.picks[:0], s.want[:0]
	for _, k := range keys {
		g, shown := s.group(k)
		s.groups[g].keys++
		t := s.seen
		s.seen++
		p := pick{key: shown, group: g}
		switch {
		case s.limit == 0:
			p.slot = pickOnline
		case t < s.limit:
			p.slot = pickAppend
		default: // reservoir sampling (Vitter's algorithm R)
			j := s.rng.Int64N(t + 1)
			if j >= s.limit {
				continue
			}
			p.slot = int(j)
		}
		s.picks = append(s.picks, p)
		s.want = append(s.want, k)
	}
	if len(s.want) == 0 {
		return nil
	}
	vals, err := scope.MGet(ctx, s.want, true)
	if err != nil {
		return err
	}
	if len(vals) != len(s.want) {
		return fmt.Errorf("the store answered %d values for %d keys", len(vals), len(s.want))
	}
	for i, p := range s.picks {
		v := vals[i]
		g := s.groups[p.group]
		if !v.Found { // expired or deleted since the scan
			g.keys--
			continue
		}
		size := int64(len(v.Bytes))
		g.saw(p.key, size)
		if s.every {
			s.total.saw(s.want[i], size)
		}
		e := sampled{size: size, ttl: v.TTL, group: p.group}
		switch {
		case p.slot == pickOnline:
			s.count(e)
		case p.slot == pickAppend || p.slot >= len(s.sample):
			s.sample = append(s.sample, e)
		default:
			s.sample[p.slot] = e
		}
	}
	return nil
}

// count adds a sampled key to its group and the total.
func (s *statsRun) count(e sampled) {
	s.groups[e.group].add(e.size, e.ttl)
	if s.every {
		s.total.add(e.size, e.ttl)
	}
}

// finish counts the sample and the total's keys.
func (s *statsRun) finish() {
	for _, e := range s.sample {
		s.count(e)
	}
	s.sample = nil
	if !s.every {
		s.total.estimate()
		return
	}
	s.total.keys = 0
	for _, g := range s.groups {
		s.total.keys += g.keys
		g.estimate()
	}
	t := s.total
	t.estimate()
	if t.exact() || t.sampled == 0 {
		return
	}
	// Stratified: the sum of the namespaces' estimates, each scaled to its
	// own exact key count; a namespace with no key sampled is taken at the
	// whole sample's rate.
	t.estBytes, t.estNoTTL = 0, 0
	for _, g := range s.groups {
		if g.sampled == 0 {
			t.estBytes += scale(t.bytes, g.keys, t.sampled)
			t.estNoTTL += scale(t.noTTL, g.keys, t.sampled)
			continue
		}
		t.estBytes += g.estBytes
		t.estNoTTL += g.estNoTTL
	}
}

// order returns the groups in the order they are shown: the namespaces by
// name, then the keys of no namespace, then the other namespaces.
func (s *statsRun) order() []int32 {
	var out []int32
	for i, name := range s.names {
		if name != "" {
			out = append(out, int32(i))
		}
	}
	slices.SortFunc(out, func(a, b int32) int { return strings.Compare(s.names[a], s.names[b]) })
	for _, g := range []int32{s.noNS, s.other} {
		if g >= 0 {
			out = append(out, g)
		}
	}
	return out
}

// stats prints the key count, value sizes and TTLs of --ns, or of every
// namespace without it.
func (c *cmdCtx) stats(ctx context.Context) (err error) {
	if c.f.sample < 0 || c.f.sample > maxSample {
		return usagef("--sample %d: want 0 (every key) to %d keys", c.f.sample, maxSample)
	}
	every := c.f.ns == ""
	if !every {
		if err := namespace.Validate(c.f.ns); err != nil {
			return err
		}
	}
	b, err := c.open(false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	scope := b
	var total int64
	if !every {
		nb, err := namespace.New(b, c.f.ns)
		if err != nil {
			return err
		}
		scope, total = nb, c.sizeForProgress(ctx, b, c.f.ns)
	}
	s := newStatsRun(every, c.f.sample)
	p := newProgress(c.stderr, c.terminal, "stats", total)
	c.done = func() string { return plural(int(p.Count()), "key") + " scanned" }
	for page, err := range backend.Pages(ctx, scope, "", pageSize) {
		if err == nil {
			err = s.page(ctx, scope, page.Keys)
		}
		if err != nil {
			p.Done()
			return err
		}
		p.Add(len(page.Keys))
	}
	p.Done()
	s.finish()
	if c.f.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetEscapeHTML(false) // "<=1m", not "\u003c=1m"
		return enc.Encode(s.json(c.f.ns))
	}
	w := bufio.NewWriter(c.stdout)
	c.printStats(w, s)
	return w.Flush()
}

// JSON.

type statsJSON struct {
	Namespace    string `json:"namespace,omitempty"`
	NamespaceB64 string `json:"namespace_b64,omitempty"`
	SampleLimit  int64  `json:"sample_limit"`
	numbersJSON
	SizePercentiles *percentilesJSON `json:"size_percentiles_bytes"`
	TTLPercentiles  *percentilesJSON `json:"ttl_percentiles_ms"`
	Namespaces      *[]groupJSON     `json:"namespaces,omitempty"`
}

type groupJSON struct {
	Namespace       *string `json:"namespace"`
	NamespaceB64    string  `json:"namespace_b64,omitempty"`
	NoNamespace     bool    `json:"no_namespace,omitempty"`
	OtherNamespaces bool    `json:"other_namespaces,omitempty"`
	numbersJSON
}

type numbersJSON struct {
	Keys       int64            `json:"keys"`
	Sampled    int64            `json:"sampled"`
	Exact      bool             `json:"exact"`
	ValueBytes *int64           `json:"value_bytes"`
	NoTTL      *int64           `json:"no_ttl"`
	Largest    *largestJSON     `json:"largest"`
	TTLHist    []ttlBucketJSON  `json:"ttl_histogram"`
	SizeHist   []sizeBucketJSON `json:"size_histogram"`
}

type largestJSON struct {
	Key    *string `json:"key,omitempty"` // a key of another program may be "" ("ns:")
	KeyB64 string  `json:"key_b64,omitempty"`
	Bytes  int64   `json:"bytes"`
}

type percentilesJSON struct {
	P50 uint64 `json:"p50"`
	P90 uint64 `json:"p90"`
	P99 uint64 `json:"p99"`
}

type ttlBucketJSON struct {
	Bucket  string `json:"bucket"`
	AboveMS *int64 `json:"above_ms,omitempty"`
	UptoMS  *int64 `json:"upto_ms,omitempty"`
	Keys    int64  `json:"keys"`
}

type sizeBucketJSON struct {
	Bucket     string  `json:"bucket"`
	FromBytes  uint64  `json:"from_bytes"`
	BelowBytes *uint64 `json:"below_bytes,omitempty"`
	Keys       int64   `json:"keys"`
}

func (s *statsRun) json(ns string) statsJSON {
	out := statsJSON{SampleLimit: s.limit, numbersJSON: numbers(s.total)}
	if f := s.total.sizes; f.n > 0 {
		out.SizePercentiles = &percentilesJSON{f.percentile(50), f.percentile(90), f.percentile(99)}
	}
	if f := s.total.ttls; f.n > 0 {
		out.TTLPercentiles = &percentilesJSON{f.percentile(50), f.percentile(90), f.percentile(99)}
	}
	if !s.every {
		if utf8.ValidString(ns) {
			out.Namespace = ns
		} else {
			out.NamespaceB64 = b64(ns)
		}
		return out
	}
	groups := []groupJSON{}
	for _, g := range s.order() {
		gj := groupJSON{numbersJSON: numbers(s.groups[g]), NoNamespace: g == s.noNS, OtherNamespaces: g == s.other}
		if name := s.names[g]; name != "" {
			if utf8.ValidString(name) {
				gj.Namespace = &name
			} else {
				gj.NamespaceB64 = b64(name)
			}
		}
		groups = append(groups, gj)
	}
	out.Namespaces = &groups
	return out
}

// b64 is text that is not UTF-8 in a _b64 field (see setText).
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func numbers(a *agg) numbersJSON {
	n := numbersJSON{Keys: a.keys, Sampled: a.sampled, Exact: a.exact(),
		TTLHist: []ttlBucketJSON{}, SizeHist: []sizeBucketJSON{}}
	if a.estOK {
		n.ValueBytes, n.NoTTL = &a.estBytes, &a.estNoTTL
	}
	if a.read {
		n.Largest = &largestJSON{Bytes: a.largest}
		if utf8.ValidString(a.largestKey) {
			n.Largest.Key = &a.largestKey
		} else {
			n.Largest.KeyB64 = b64(a.largestKey)
		}
	}
	for i, label := range ttlLabels {
		bj := ttlBucketJSON{Bucket: label, Keys: a.ttl[i]}
		if i < ttlNone {
			above := int64(0)
			if i > 0 {
				above = ttlBounds[i-1].Milliseconds()
			}
			bj.AboveMS = &above
		}
		if i < len(ttlBounds) {
			upto := ttlBounds[i].Milliseconds()
			bj.UptoMS = &upto
		}
		n.TTLHist = append(n.TTLHist, bj)
	}
	if lo, hi, ok := sizeRange(a); ok {
		for i := lo; i <= hi; i++ {
			from, below := sizeBounds(i)
			bj := sizeBucketJSON{Bucket: sizeLabel(i), FromBytes: from, Keys: a.size[i]}
			if below != 0 {
				bj.BelowBytes = &below
			}
			n.SizeHist = append(n.SizeHist, bj)
		}
	}
	return n
}

// sizeRange returns the first and last size buckets that hold a key.
func sizeRange(a *agg) (lo, hi int, ok bool) {
	lo, hi = -1, -1
	for i, n := range a.size {
		if n > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	return lo, hi, lo >= 0
}

// Text.

// groupName names a group in text: its namespace, or the bucket's words.
func (c *cmdCtx) groupName(s *statsRun, g int32) string {
	switch g {
	case s.noNS:
		return "(no namespace)"
	case s.other:
		return fmt.Sprintf("(other namespaces, beyond the first %d)", maxGroups)
	}
	return c.show(s.names[g])
}

func (c *cmdCtx) printStats(w io.Writer, s *statsRun) {
	t := s.total
	if s.every {
		named := 0
		for _, name := range s.names {
			if name != "" {
				named++
			}
		}
		fmt.Fprintf(w, "every namespace of %s: %s, %s\n", redact(c.f.url), plural(named, "namespace"), plural(int(t.keys), "key"))
	} else {
		fmt.Fprintf(w, "namespace %s of %s: %s\n", c.show(c.f.ns), redact(c.f.url), plural(int(t.keys), "key"))
	}
	if t.keys == 0 {
		return
	}
	if !t.exact() {
		factor := float64(t.keys) / float64(max(t.sampled, 1))
		fmt.Fprintf(w, "sampled %d of %d keys (--sample %d): sizes, TTLs, histograms and percentiles are of a uniform sample; "+
			"value bytes and keys without TTL (~) are estimated, the sample's x%.2f\n", t.sampled, t.keys, s.limit, factor)
	}
	if s.every {
		fmt.Fprintln(w)
		c.printTable(w, s)
	}
	fmt.Fprintln(w)
	approx := ""
	if !t.exact() {
		approx = "~"
	}
	if t.estOK {
		fmt.Fprintf(w, "value bytes  %s%d (%s)\n", approx, t.estBytes, humanBytes(t.estBytes))
	}
	if t.read {
		note := ""
		if !t.exact() {
			note = " (the largest value read)"
		}
		fmt.Fprintf(w, "largest      %d (%s): %s%s\n", t.largest, humanBytes(t.largest), c.show(t.largestKey), note)
	}
	if t.estOK {
		fmt.Fprintf(w, "no TTL       %s%s (%.1f%%)\n", approx, plural(int(t.estNoTTL), "key"), percentOf(t.noTTL, t.sampled))
	}
	if f := t.sizes; f.n > 0 {
		fmt.Fprintf(w, "size         p50 %s  p90 %s  p99 %s\n", humanBytes(int64(f.percentile(50))),
			humanBytes(int64(f.percentile(90))), humanBytes(int64(f.percentile(99))))
	}
	if f := t.ttls; f.n > 0 {
		ms := func(p int) string { return humanTTL(time.Duration(f.percentile(p)) * time.Millisecond) }
		fmt.Fprintf(w, "TTL          p50 %s  p90 %s  p99 %s  (of %s with a TTL)\n", ms(50), ms(90), ms(99), plural(int(f.n), "key"))
	}
	if t.sampled == 0 {
		return
	}
	fmt.Fprintf(w, "\nremaining TTL (%s)\n", plural(int(t.sampled), "key"))
	c.histogram(w, ttlLabels, t.ttl[:], t.sampled)
	lo, hi, _ := sizeRange(t)
	labels := make([]string, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		labels = append(labels, sizeLabel(i))
	}
	fmt.Fprintf(w, "\nvalue size (%s)\n", plural(int(t.sampled), "key"))
	c.histogram(w, labels, t.size[lo:hi+1], t.sampled)
}

// printTable prints one row per namespace: keys, value bytes, largest
// value, keys without TTL; sampled keys when not every key was.
func (c *cmdCtx) printTable(w io.Writer, s *statsRun) {
	withSampled := !s.total.exact()
	head := []string{"NAMESPACE", "KEYS"}
	if withSampled {
		head = append(head, "SAMPLED")
	}
	head = append(head, "VALUE BYTES", "LARGEST", "NO TTL")
	rows := [][]string{head}
	row := func(name string, a *agg) {
		est := func(v int64) string {
			switch {
			case !a.estOK:
				return "?"
			case !a.exact():
				return "~" + strconv.FormatInt(v, 10)
			}
			return strconv.FormatInt(v, 10)
		}
		r := []string{name, strconv.FormatInt(a.keys, 10)}
		if withSampled {
			r = append(r, strconv.FormatInt(a.sampled, 10))
		}
		largest := "-"
		if a.read {
			largest = strconv.FormatInt(a.largest, 10)
		}
		rows = append(rows, append(r, est(a.estBytes), largest, est(a.estNoTTL)))
	}
	for _, g := range s.order() {
		row(c.groupName(s, g), s.groups[g])
	}
	row("total", s.total)
	widths := make([]int, len(head))
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		for i, cell := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i == 0 {
				line.WriteString(cell + pad)
			} else {
				line.WriteString("  " + pad + cell)
			}
		}
		fmt.Fprintln(w, line.String())
	}
}

// percentOf returns n as a percentage of of (0 when of is 0).
func percentOf(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// histogram prints one bar a bucket: label, bar, count and percentage of
// total. On a UTF-8 terminal the bars are drawn in blocks, to an eighth of
// a column; elsewhere (a pipe, a file, another locale) in '#'.
func (c *cmdCtx) histogram(w io.Writer, labels []string, counts []int64, total int64) {
	lw, cw := 0, 1
	var most int64
	for i, l := range labels {
		lw = max(lw, len(l))
		cw = max(cw, len(strconv.FormatInt(counts[i], 10)))
		most = max(most, counts[i])
	}
	width := c.barWidth(2 + lw + 2 + 2 + cw + 8)
	blocks := c.ttyOut && utf8Locale(c.getenv)
	for i, l := range labels {
		bar := drawBar(counts[i], most, width, blocks)
		fmt.Fprintf(w, "  %-*s |%s%s| %*d %5.1f%%\n", lw, l, bar, strings.Repeat(" ", width-utf8.RuneCountInString(bar)),
			cw, counts[i], percentOf(counts[i], total))
	}
}

// barWidth returns the width of the longest bar: statsBarWidth, less on a
// terminal too narrow for it beside the rest of a line.
func (c *cmdCtx) barWidth(rest int) int {
	if !c.ttyOut || c.outFile == nil {
		return statsBarWidth
	}
	cols, _, err := term.GetSize(int(c.outFile.Fd()))
	if err != nil || cols <= 0 {
		return statsBarWidth
	}
	return max(10, min(statsBarWidth, cols-rest))
}

// drawBar draws n of most in width columns: in eighths of a block, or in
// '#' rounded to the nearest column; a count above 0 is never an empty bar.
func drawBar(n, most int64, width int, blocks bool) string {
	if n <= 0 || most <= 0 {
		return ""
	}
	if !blocks {
		cols := int((2*n*int64(width) + most) / (2 * most))
		return strings.Repeat("#", max(cols, 1))
	}
	eighths := max(int(n*int64(width)*8/most), 1)
	bar := strings.Repeat("█", eighths/8)
	if r := eighths % 8; r > 0 {
		bar += string([]rune("▏▎▍▌▋▊▉")[r-1])
	}
	return bar
}

// utf8Locale reports whether the locale of the environment (LC_ALL, else
// LC_CTYPE, else LANG) is UTF-8.
func utf8Locale(getenv func(string) string) bool {
	for _, v := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if l := getenv(v); l != "" {
			l = strings.ToLower(l)
			return strings.Contains(l, "utf-8") || strings.Contains(l, "utf8")
		}
	}
	return false
}
