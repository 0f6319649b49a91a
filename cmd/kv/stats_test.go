package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/namespace"
)

// statsT0 is the simulated time the stats files are written at.
var statsT0 = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)

// statsEntry is a key of a stats file: its value size and TTL.
type statsEntry struct {
	key  string
	size int
	ttl  time.Duration
}

// statsFile writes entries into a new bolt file under a simulated clock at
// statsT0, so that TTLs read --at statsT0 are exact: a key "ns:k" into
// namespace ns, a key without ":" as is. It returns the file's path.
func statsFile(t *testing.T, entries []statsEntry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stats.db")
	b, err := bolt.Open(path, bolt.WithSimulatedClock(clock.NewManual(statsT0)), bolt.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	byNS := map[string][]backend.Entry{}
	for _, e := range entries {
		ns, k, ok := strings.Cut(e.key, ":")
		if !ok {
			ns, k = "", e.key
		}
		byNS[ns] = append(byNS[ns], backend.Entry{Key: k, Value: bytes.Repeat([]byte("v"), e.size), TTL: e.ttl})
	}
	ctx := context.Background()
	for ns, es := range byNS {
		var target backend.Backend = b
		if ns != "" {
			if target, err = namespace.New(b, ns); err != nil {
				t.Fatal(err)
			}
		}
		for chunk := range slices.Chunk(es, 1000) {
			if err := target.MSet(ctx, chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// statsOut is the JSON of stats, as a test reads it.
type statsOut struct {
	Namespace   string `json:"namespace"`
	SampleLimit int64  `json:"sample_limit"`
	statsNumbers
	SizePct    *map[string]uint64 `json:"size_percentiles_bytes"`
	TTLPct     *map[string]uint64 `json:"ttl_percentiles_ms"`
	Namespaces []struct {
		Namespace   *string `json:"namespace"`
		NoNamespace bool    `json:"no_namespace"`
		statsNumbers
	} `json:"namespaces"`
}

type statsNumbers struct {
	Keys       int64  `json:"keys"`
	Sampled    int64  `json:"sampled"`
	Exact      bool   `json:"exact"`
	ValueBytes *int64 `json:"value_bytes"`
	NoTTL      *int64 `json:"no_ttl"`
	Largest    *struct {
		Key   string `json:"key"`
		Bytes int64  `json:"bytes"`
	} `json:"largest"`
	TTLHist []struct {
		Bucket  string `json:"bucket"`
		AboveMS *int64 `json:"above_ms"`
		UptoMS  *int64 `json:"upto_ms"`
		Keys    int64  `json:"keys"`
	} `json:"ttl_histogram"`
	SizeHist []struct {
		Bucket     string  `json:"bucket"`
		FromBytes  uint64  `json:"from_bytes"`
		BelowBytes *uint64 `json:"below_bytes"`
		Keys       int64   `json:"keys"`
	} `json:"size_histogram"`
}

// ttls returns the TTL histogram as bucket → keys.
func (n statsNumbers) ttls() map[string]int64 {
	out := map[string]int64{}
	for _, b := range n.TTLHist {
		out[b.Bucket] = b.Keys
	}
	return out
}

// sizes returns the non-empty size buckets as bucket → keys.
func (n statsNumbers) sizes() map[string]int64 {
	out := map[string]int64{}
	for _, b := range n.SizeHist {
		if b.Keys > 0 {
			out[b.Bucket] = b.Keys
		}
	}
	return out
}

// statsJSONOf runs stats --json with args and decodes its one line.
func statsJSONOf(t *testing.T, args ...string) statsOut {
	t.Helper()
	r := runKV(t, "", append(args, "stats", "--json")...)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("kv %q stats --json: exit %d, stdout %q, stderr %q; want one JSON line", args, r.code, r.stdout, r.stderr)
	}
	var out statsOut
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("stats --json %q: %v", r.stdout, err)
	}
	return out
}

func ptr(p *int64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// statsKnown are keys of known sizes and TTLs, on the edges of the
// buckets: namespace a, namespace b, and two keys without ":".
var statsKnown = []statsEntry{
	{"a:empty", 0, 30 * time.Second},
	{"a:one", 1, time.Minute},                      // <=1m: the bound is in its bucket
	{"a:three", 3, time.Minute + time.Millisecond}, // 1m-5m
	{"a:four", 4, 5 * time.Minute},                 // 1m-5m
	{"a:k1000", 1000, 15 * time.Minute},            // 5m-15m
	{"a:k1024", 1024, time.Hour},                   // 15m-1h
	{"a:big", 5000, 6 * time.Hour},                 // 1h-6h
	{"a:day", 10, 24 * time.Hour},                  // 6h-1d
	{"a:week", 10, 7 * 24 * time.Hour},             // 1d-7d
	{"a:long", 10, 7*24*time.Hour + time.Second},   // >7d
	{"a:none", 127, backend.NoTTL},                 // none
	{"b:x", 2, backend.NoTTL},                      // none
	{"b:y", 64, 2 * time.Minute},                   // 1m-5m
	{"plain", 5, backend.NoTTL},                    // no namespace
	{"other", 6, 10 * time.Minute},                 // no namespace
}

// TestStatsExactNumbers: on a bolt file read --at the time its keys were
// written, stats of a namespace and of every namespace gives the exact key
// count, value bytes, largest value, keys without TTL, TTL and size buckets
// (their edges included) and percentiles, in --json and in the text, with
// --sample 0 (every value read) the same as the default sample.
func TestStatsExactNumbers(t *testing.T) {
	url := "bolt://" + statsFile(t, statsKnown)
	at := statsT0.Format(time.RFC3339)
	a := statsJSONOf(t, "--url", url, "--ns", "a", "--at", at)
	if a.Namespace != "a" || a.Keys != 11 || a.Sampled != 11 || !a.Exact || ptr(a.ValueBytes) != "7189" || ptr(a.NoTTL) != "1" ||
		a.Largest == nil || a.Largest.Key != "big" || a.Largest.Bytes != 5000 || a.SampleLimit != defaultSample {
		t.Errorf("stats of a: %+v; want 11 keys, exact, 7189 value bytes, 1 without TTL, largest big of 5000", a)
	}
	wantTTL := map[string]int64{"<=1m": 2, "1m-5m": 2, "5m-15m": 1, "15m-1h": 1, "1h-6h": 1, "6h-1d": 1, "1d-7d": 1, ">7d": 1, "none": 1}
	if got := a.ttls(); len(a.TTLHist) != 9 || !mapsEqual(got, wantTTL) {
		t.Errorf("TTL histogram of a = %v; want %v (every bucket listed)", got, wantTTL)
	}
	wantSize := map[string]int64{"0B": 1, "1B": 1, "2B-4B": 1, "4B-8B": 1, "8B-16B": 3, "64B-128B": 1, "512B-1KiB": 1, "1KiB-2KiB": 1, "4KiB-8KiB": 1}
	if got := a.sizes(); !mapsEqual(got, wantSize) {
		t.Errorf("size histogram of a = %v; want %v", got, wantSize)
	}
	if first, last := a.SizeHist[0], a.SizeHist[len(a.SizeHist)-1]; first.Bucket != "0B" || last.Bucket != "4KiB-8KiB" ||
		last.FromBytes != 4096 || last.BelowBytes == nil || *last.BelowBytes != 8192 {
		t.Errorf("size histogram runs from %+v to %+v; want 0B to 4KiB-8KiB [4096, 8192)", first, last)
	}
	// Sorted sizes: 0 1 3 4 10 10 10 127 1000 1024 5000: nearest rank p50 =
	// 6th = 10, p90 = 10th = 1024 (exact: 1024's bucket is 1024-1039, and
	// 1000 is below it), p99 = 11th = 5000.
	if a.SizePct == nil || (*a.SizePct)["p50"] != 10 || (*a.SizePct)["p90"] < 1024 || (*a.SizePct)["p90"] > 1024*65/64 || (*a.SizePct)["p99"] != 5000 {
		t.Errorf("size percentiles = %v; want p50 10, p90 1024 (to 1/64), p99 5000", a.SizePct)
	}
	if a.TTLPct == nil || (*a.TTLPct)["p99"] != uint64((7*24*time.Hour+time.Second).Milliseconds()) {
		t.Errorf("TTL percentiles = %v; want p99 the longest TTL, 604801000 ms", a.TTLPct)
	}
	if full := statsJSONOf(t, "--url", url, "--ns", "a", "--at", at, "--sample", "0"); !jsonEqualExcept(t, full, a) {
		t.Errorf("--sample 0 gave %+v; want the numbers of the default sample, %+v", full, a)
	}

	all := statsJSONOf(t, "--url", url, "--at", at)
	if all.Keys != 15 || ptr(all.ValueBytes) != "7266" || ptr(all.NoTTL) != "3" || all.Largest == nil || all.Largest.Key != "a:big" || all.Namespace != "" {
		t.Errorf("stats of every namespace: %+v; want 15 keys, 7266 bytes, 3 without TTL, largest a:big", all.statsNumbers)
	}
	var names []string
	for _, g := range all.Namespaces {
		name := "<nil>"
		if g.Namespace != nil {
			name = *g.Namespace
		}
		names = append(names, fmt.Sprintf("%s/%v/%d/%s", name, g.NoNamespace, g.Keys, ptr(g.ValueBytes)))
	}
	if want := []string{"a/false/11/7189", "b/false/2/66", "<nil>/true/2/11"}; !slices.Equal(names, want) {
		t.Errorf("namespaces (name/no_namespace/keys/bytes) = %v; want %v", names, want)
	}

	r := runKV(t, "", "--url", url, "--at", at, "stats")
	for _, want := range []string{
		"every namespace of " + url + ": 2 namespaces, 15 keys\n",
		"\na                 11         7189     5000       1\n",
		"\n(no namespace)     2           11        6       1\n",
		"\ntotal             15         7266     5000       3\n",
		"largest      5000 (4.9KiB): a:big\n",
		"\n  <=1m   |###########################             | 2  13.3%\n",
		"\n  1m-5m  |########################################| 3  20.0%\n",
		"\n  none   |########################################| 3  20.0%\n",
		"\n  4KiB-8KiB |#############                           | 1   6.7%\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stats text lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "sampled") {
		t.Errorf("exact stats say they were sampled:\n%s", r.stdout)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// jsonEqualExcept reports whether a and b are the same but for their
// sample_limit.
func jsonEqualExcept(t *testing.T, a, b statsOut) bool {
	t.Helper()
	a.SampleLimit, b.SampleLimit = 0, 0
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestStatsAt: --at moves the clock expiry is judged by: keys whose TTL
// has run out at --at are not counted, and the TTLs are measured from it.
func TestStatsAt(t *testing.T) {
	url := "bolt://" + statsFile(t, statsKnown)
	// Two minutes on, the 30s, 1m and 1m0.001s keys of a are gone; the 5m
	// one has 3m left (1m-5m), the 7d1s one 7d less 1m59s (1d-7d).
	got := statsJSONOf(t, "--url", url, "--ns", "a", "--at", statsT0.Add(2*time.Minute).Format(time.RFC3339))
	wantTTL := map[string]int64{"<=1m": 0, "1m-5m": 1, "5m-15m": 1, "15m-1h": 1, "1h-6h": 1, "6h-1d": 1, "1d-7d": 2, ">7d": 0, "none": 1}
	if got.Keys != 8 || !got.Exact || !mapsEqual(got.ttls(), wantTTL) {
		t.Errorf("stats of a at +2m: %d keys, TTLs %v; want 8 keys, TTLs %v", got.Keys, got.ttls(), wantTTL)
	}
	if got.TTLPct == nil || (*got.TTLPct)["p99"] != uint64((7*24*time.Hour+time.Second-2*time.Minute).Milliseconds()) {
		t.Errorf("TTL p99 at +2m = %v; want the longest TTL less 2 minutes", got.TTLPct)
	}
	b := statsJSONOf(t, "--url", url, "--ns", "b", "--at", statsT0.Add(2*time.Minute).Format(time.RFC3339))
	if b.Keys != 1 || ptr(b.NoTTL) != "1" { // b:y's deadline is --at: expired
		t.Errorf("stats of b at +2m: %d keys, %s without TTL; want 1 and 1 (b:y expired at its deadline)", b.Keys, ptr(b.NoTTL))
	}
	late := statsJSONOf(t, "--url", url, "--at", "2100-01-01T00:00:00Z")
	if late.Keys != 3 || ptr(late.NoTTL) != "3" {
		t.Errorf("stats in 2100: %d keys, %s without TTL; want the 3 keys without TTL", late.Keys, ptr(late.NoTTL))
	}
	// Without --at, a simulated-clock file is read as of its latest time,
	// and stats says so.
	r := runKV(t, "", "--url", url, "--ns", "a", "stats")
	if r.code != 0 || !strings.Contains(r.stdout, ": 11 keys\n") || !strings.Contains(r.stderr, "simulated clock") {
		t.Errorf("stats without --at: exit %d, stdout %q, stderr %q; want 11 keys as of the file's time, said", r.code, r.stdout, r.stderr)
	}
	runKV(t, "", "--url", "mem://", "stats", "--at", "file").want(t, 2, "")
}

// TestStatsSampled: beyond --sample, the key count stays exact, the
// histograms hold exactly the sample, the totals are estimated, the output
// says "sampled N of M keys", and the sample is uniform over the scan (not
// its first keys, which in a bolt file are one namespace's) and the same
// at every run.
func TestStatsSampled(t *testing.T) {
	var entries []statsEntry
	for i := range 3000 {
		ns, size := "a", 10
		if i >= 1500 {
			ns, size = "b", 30
		}
		entries = append(entries, statsEntry{fmt.Sprintf("%s:k%05d", ns, i), size, backend.NoTTL})
	}
	url := "bolt://" + statsFile(t, entries)
	args := []string{"--url", url, "--sample", "200"}
	all := statsJSONOf(t, args...)
	if all.Keys != 3000 || all.Sampled != 200 || all.Exact || all.SampleLimit != 200 {
		t.Fatalf("sampled stats: keys %d, sampled %d, exact %v, sample_limit %d; want 3000, 200, false, 200", all.Keys, all.Sampled, all.Exact, all.SampleLimit)
	}
	var inTTL, inSize int64
	for _, b := range all.TTLHist {
		inTTL += b.Keys
	}
	for _, b := range all.SizeHist {
		inSize += b.Keys
	}
	if inTTL != 200 || inSize != 200 || ptr(all.NoTTL) != "3000" {
		t.Errorf("histograms hold %d and %d keys, no_ttl %s; want 200, 200 and 3000 (estimated)", inTTL, inSize, ptr(all.NoTTL))
	}
	if len(all.Namespaces) != 2 {
		t.Fatalf("namespaces: %+v", all.Namespaces)
	}
	na, nb := all.Namespaces[0], all.Namespaces[1]
	if na.Keys != 1500 || nb.Keys != 1500 || na.Sampled+nb.Sampled != 200 || na.Sampled < 60 || nb.Sampled < 60 {
		t.Errorf("per namespace: a %d keys %d sampled, b %d keys %d sampled; want 1500 each, the 200 sampled shared (not the first 200 keys, all a's)",
			na.Keys, na.Sampled, nb.Keys, nb.Sampled)
	}
	// Every value of a namespace has one size: the estimate is exact.
	if ptr(na.ValueBytes) != "15000" || ptr(nb.ValueBytes) != "45000" {
		t.Errorf("estimated value bytes: a %s, b %s; want 15000 and 45000", ptr(na.ValueBytes), ptr(nb.ValueBytes))
	}
	if again := statsJSONOf(t, args...); !jsonEqualExcept(t, again, all) {
		t.Errorf("a second run sampled differently: %+v, then %+v", all.statsNumbers, again.statsNumbers)
	}
	one := statsJSONOf(t, "--url", url, "--ns", "b", "--sample", "1499")
	if one.Keys != 1500 || one.Sampled != 1499 || one.Exact || ptr(one.ValueBytes) != "45000" || one.Largest == nil || one.Largest.Bytes != 30 {
		t.Errorf("stats of b --sample 1499: %+v; want 1500 keys, 1499 sampled, 45000 bytes estimated", one.statsNumbers)
	}
	if exact := statsJSONOf(t, "--url", url, "--ns", "b", "--sample", "1500"); !exact.Exact || exact.Sampled != 1500 {
		t.Errorf("stats of b --sample 1500 (its key count): exact %v, sampled %d; want exact", exact.Exact, exact.Sampled)
	}

	r := runKV(t, "", append(args, "stats")...)
	for _, want := range []string{"sampled 200 of 3000 keys (--sample 200)", "value bytes  ~60000 (58.6KiB)", "no TTL       ~3000 keys",
		"NAMESPACE  KEYS  SAMPLED  VALUE BYTES  LARGEST  NO TTL\n", "(the largest value read)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sampled stats text lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestStatsReadOnly: stats opens a bolt file read-only: the file's bytes
// and modification time are unchanged, whatever form ran; a missing file is
// an error that names it, and nothing is created.
func TestStatsReadOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kv.db")
	url := "bolt://" + path
	runKV(t, "", "--url", url, "--ns", "a", "--ttl", "1h", "set", "k", "v").want(t, 0, "")
	runKV(t, "", "--url", url, "--ns", "a", "--ttl", "1ms", "set", "gone", "v").want(t, 0, "") // expired: a write would sweep it
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"stats"}, {"--ns", "a", "stats"}, {"stats", "--json", "--sample", "0"},
		{"stats", "--at", time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}} {
		r := runKV(t, "", append([]string{"--url", url}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "1 key") && !strings.Contains(r.stdout, `"keys":1`) {
			t.Errorf("kv %q: exit %d, stdout %q, stderr %q; want the one live key", args, r.code, r.stdout, r.stderr)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) || !st.ModTime().Equal(old) {
		t.Errorf("stats changed the file: same bytes %v, modified %v (was %v)", bytes.Equal(before, after), st.ModTime(), old)
	}
	if entries := b22Entries(t, dir); !slices.Equal(entries, []string{"kv.db"}) {
		t.Errorf("stats left %v beside the file", entries)
	}

	empty := t.TempDir()
	for _, args := range [][]string{{"--url", "bolt://./typo.db", "stats"}, {"--url", "bolt://./typo.db", "--ns", "a", "stats"}, {"stats"}} {
		r := a22Run(t, empty, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "no such file") {
			t.Errorf("kv %q in an empty directory: exit %d, stderr %q; want 1 and the missing file named", args, r.code, r.stderr)
		}
	}
	if entries := b22Entries(t, empty); len(entries) != 0 {
		t.Errorf("stats of a missing file created %v", entries)
	}
}

// TestStatsBadInput: a bad --sample, an invalid namespace, an argument, or
// another command's flag is a usage error (exit 2) before anything is
// opened; a namespace without keys is 0 keys, not an error.
func TestStatsBadInput(t *testing.T) {
	dir := t.TempDir()
	url := "bolt://" + filepath.Join(dir, "kv.db")
	runKV(t, "", "--url", url, "--ns", "a", "set", "k", "v").want(t, 0, "")
	for _, tt := range []struct {
		args []string
		says string
	}{
		{[]string{"stats", "--sample", "-1"}, "--sample -1"},
		{[]string{"stats", "--sample", "10000001"}, "--sample 10000001"},
		{[]string{"stats", "--sample", "many"}, "invalid argument"},
		{[]string{"--ns", "a:b", "stats"}, "invalid namespace"},
		{[]string{"stats", "extra"}, "usage: kv stats"},
		{[]string{"stats", "--n", "5"}, "not a flag of stats"},
		{[]string{"stats", "--at", "yesterday"}, "RFC 3339"},
	} {
		r := runKV(t, "", append([]string{"--url", url}, tt.args...)...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tt.says) {
			t.Errorf("kv %q: exit %d, stdout %q, stderr %q; want 2 and %q", tt.args, r.code, r.stdout, r.stderr, tt.says)
		}
	}
	runKV(t, "", "--url", url, "--ns", "nothing", "stats").want(t, 0, "namespace nothing of "+url+": 0 keys\n")
	if r := runKV(t, "", "--url", url, "--ns", "nothing", "stats", "--json"); !strings.Contains(r.stdout, `"ttl_histogram":[{"bucket":"<=1m","above_ms":0,"upto_ms":60000,"keys":0},`) ||
		!strings.Contains(r.stdout, `{"bucket":">7d","above_ms":604800000,"keys":0},{"bucket":"none","keys":0}],"size_histogram":[]`) {
		t.Errorf("stats --json of an empty namespace = %s; want every TTL bucket, its bounds, and no size bucket", r.stdout)
	}
	got := statsJSONOf(t, "--url", url, "--ns", "nothing")
	if got.Keys != 0 || got.Sampled != 0 || !got.Exact || ptr(got.ValueBytes) != "0" || got.Largest != nil || got.SizePct != nil ||
		got.TTLPct != nil || len(got.TTLHist) != 9 || len(got.SizeHist) != 0 {
		t.Errorf("stats of an empty namespace: %+v; want zeros, no largest, no percentiles", got)
	}
	if r := runKV(t, "", "help", "stats"); r.code != 0 || !strings.Contains(r.stdout, "size_histogram") || !strings.Contains(r.stdout, "--sample") {
		t.Errorf("kv help stats: exit %d; want the JSON fields and --sample named:\n%s", r.code, r.stdout)
	}
}

// TestStatsRedis: on the Redis of KV_REDIS_ADDR (skipped without it),
// stats of a namespace of its own counts its keys, bytes and TTL buckets.
func TestStatsRedis(t *testing.T) {
	url, ok := urls(t)["redis"]
	if !ok {
		t.Skip("KV_REDIS_ADDR is not set")
	}
	ns := uniqueNS(t)
	g := []string{"--url", url, "--ns", ns}
	t.Cleanup(func() { runKV(t, "", append(g, "clear", "--yes")...) })
	runKV(t, "", append(g, "--ttl=-1", "set", "forever", "abc")...).want(t, 0, "")
	runKV(t, "", append(g, "--ttl", "1h", "set", "hour", "0123456789")...).want(t, 0, "")
	runKV(t, "", append(g, "--ttl", "10m", "set", "ten", "")...).want(t, 0, "")
	got := statsJSONOf(t, g...)
	want := map[string]int64{"<=1m": 0, "1m-5m": 0, "5m-15m": 1, "15m-1h": 1, "1h-6h": 0, "6h-1d": 0, "1d-7d": 0, ">7d": 0, "none": 1}
	if got.Keys != 3 || !got.Exact || ptr(got.ValueBytes) != "13" || ptr(got.NoTTL) != "1" || got.Largest == nil || got.Largest.Key != "hour" || !mapsEqual(got.ttls(), want) {
		t.Errorf("stats on Redis: %+v; want 3 keys, 13 bytes, largest hour, TTLs %v", got.statsNumbers, want)
	}
}

// TestStatsBuckets: the bucket of each TTL and size on and beside its
// edges, and the labels.
func TestStatsBuckets(t *testing.T) {
	for _, tt := range []struct {
		ttl  time.Duration
		want string
	}{
		{time.Millisecond, "<=1m"}, {time.Minute, "<=1m"}, {time.Minute + 1, "1m-5m"}, {5 * time.Minute, "1m-5m"},
		{15 * time.Minute, "5m-15m"}, {time.Hour, "15m-1h"}, {6 * time.Hour, "1h-6h"}, {24 * time.Hour, "6h-1d"},
		{7 * 24 * time.Hour, "1d-7d"}, {7*24*time.Hour + 1, ">7d"}, {backend.NoTTL, "none"},
	} {
		if got := ttlLabels[ttlBucket(tt.ttl)]; got != tt.want {
			t.Errorf("ttlBucket(%v) = %s; want %s", tt.ttl, got, tt.want)
		}
	}
	for _, tt := range []struct {
		size int64
		want string
	}{
		{0, "0B"}, {1, "1B"}, {2, "2B-4B"}, {3, "2B-4B"}, {4, "4B-8B"}, {1023, "512B-1KiB"}, {1024, "1KiB-2KiB"},
		{1 << 20, "1MiB-2MiB"}, {1<<30 + 5, "1GiB-2GiB"}, {1 << 62, "4EiB-8EiB"}, {1<<63 - 1, "4EiB-8EiB"},
	} {
		if got := sizeLabel(sizeBucket(tt.size)); got != tt.want {
			t.Errorf("size %d is in %s; want %s", tt.size, got, tt.want)
		}
	}
}

// TestStatsPercentiles: the percentiles of the fine histogram are the
// nearest-rank ones, exact below 128 and at most 1/64 above the true value
// beyond, never above the largest value.
func TestStatsPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 100, 1000, 50000} {
		for _, spread := range []uint64{100, 1 << 20, 1 << 62} {
			var f fine
			vals := make([]uint64, n)
			for i := range vals {
				vals[i] = rng.Uint64N(spread)
				f.add(vals[i])
			}
			slices.Sort(vals)
			for _, p := range []int{1, 50, 90, 99, 100} {
				rank := (p*n + 99) / 100
				want, got := vals[rank-1], f.percentile(p)
				if got < want || got > vals[n-1] || (want < 128 && got != want) || float64(got-want) > float64(want)/64 {
					t.Errorf("n %d, spread %d: p%d = %d; want %d (to 1/64, exact below 128, at most the largest %d)", n, spread, p, got, want, vals[n-1])
				}
			}
		}
	}
	for i := range fineN {
		if lo := fineUpper(i-1) + 1; i > 0 && (fineIndex(lo) != i || fineIndex(fineUpper(i)) != i) {
			t.Fatalf("fine bucket %d runs from %d to %d, but fineIndex puts them in %d and %d", i, lo, fineUpper(i), fineIndex(lo), fineIndex(fineUpper(i)))
		}
	}
	if fineIndex(^uint64(0)) != fineN-1 {
		t.Errorf("fineIndex(2^64-1) = %d; want the last bucket %d", fineIndex(^uint64(0)), fineN-1)
	}
}

// TestStatsBars: bars are scaled to the largest count, a count above 0 is
// never an empty bar, and on a UTF-8 terminal they are drawn to an eighth
// of a column.
func TestStatsBars(t *testing.T) {
	for _, tt := range []struct {
		n, most int64
		blocks  bool
		want    string
	}{
		{10, 10, false, strings.Repeat("#", 40)},
		{5, 10, false, strings.Repeat("#", 20)},
		{1, 1000, false, "#"},
		{0, 10, false, ""},
		{10, 10, true, strings.Repeat("█", 40)},
		{1, 1000, true, "▏"},
		{3, 16, true, strings.Repeat("█", 7) + "▌"},
	} {
		if got := drawBar(tt.n, tt.most, 40, tt.blocks); got != tt.want {
			t.Errorf("drawBar(%d, %d, 40, %v) = %q; want %q", tt.n, tt.most, tt.blocks, got, tt.want)
		}
	}
	for env, want := range map[string]bool{"LANG=en_US.UTF-8": true, "LC_ALL=C.utf8": true, "LANG=C": false, "": false, "LC_ALL=C LANG=en_US.UTF-8": false} {
		vars := map[string]string{}
		for _, kv := range strings.Fields(env) {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		if got := utf8Locale(func(k string) string { return vars[k] }); got != want {
			t.Errorf("utf8Locale(%q) = %v; want %v", env, got, want)
		}
	}
	out := onTerminal(t, "--url", "bolt://"+statsFile(t, statsKnown[:3]), "--ns", "a", "--at", statsT0.Format(time.RFC3339), "stats")
	if !strings.Contains(out, "<=1m   |####") { // the test's terminal has no locale: ASCII
		t.Errorf("stats on a terminal without a UTF-8 locale:\n%s", out)
	}
}

// vanishing is a store whose MGet finds no key named "vanish": a key that
// expired or was deleted between the scan and the read.
type vanishing struct{ backend.Wrapper }

func (v vanishing) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	vals, err := v.Wrapper.MGet(ctx, keys, withTTL)
	for i, k := range keys {
		if k == "vanish" && err == nil {
			vals[i] = backend.Value{}
		}
	}
	return vals, err
}

// TestStatsVanishedKeys: a key the scan returned but the read did not find
// is not counted, whether every value is read or a sample.
func TestStatsVanishedKeys(t *testing.T) {
	ctx := context.Background()
	mem := memory.New()
	defer mem.Close()
	keys := []string{"a", "vanish", "b"}
	if err := mem.MSet(ctx, []backend.Entry{{Key: "a", Value: []byte("1"), TTL: backend.NoTTL}, {Key: "vanish", Value: []byte("22"), TTL: backend.NoTTL},
		{Key: "b", Value: []byte("333"), TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{0, 3, 10} {
		s := newStatsRun(false, limit)
		if err := s.page(ctx, vanishing{backend.Wrapper{Backend: mem}}, keys); err != nil {
			t.Fatal(err)
		}
		s.finish()
		if s.total.keys != 2 || s.total.sampled != 2 || s.total.bytes != 4 || !s.total.exact() {
			t.Errorf("--sample %d: keys %d, sampled %d, bytes %d; want 2 keys, both sampled, 4 bytes", limit, s.total.keys, s.total.sampled, s.total.bytes)
		}
	}
}

// TestStatsGroupsBounded: beyond maxGroups namespaces, the keys of new
// namespaces are counted together, whole, and those of the namespaces
// already seen still in their own.
func TestStatsGroupsBounded(t *testing.T) {
	s := newStatsRun(true, 0)
	for i := range maxGroups + 5 {
		s.group(fmt.Sprintf("ns%d:k", i))
	}
	g, shown := s.group("new:k")
	if g != s.other || shown != "new:k" || len(s.groups) != maxGroups+1 {
		t.Errorf("a key of namespace %d: group %d (other %d), shown %q, %d groups; want the other group, the whole key, %d groups",
			maxGroups+6, g, s.other, shown, len(s.groups), maxGroups+1)
	}
	if g, shown := s.group("ns7:x"); g == s.other || s.names[g] != "ns7" || shown != "x" {
		t.Errorf("a key of namespace ns7: group %d named %q, shown %q; want ns7's group and x", g, s.names[g], shown)
	}
	for _, k := range []string{"plain", ":x"} {
		if g, shown := s.group(k); g != s.noNS || shown != k {
			t.Errorf("key %q: group %d (no namespace %d), shown %q; want the no-namespace group, the whole key", k, g, s.noNS, shown)
		}
	}
	if o := s.order(); len(o) != maxGroups+2 || o[len(o)-2] != s.noNS || o[len(o)-1] != s.other {
		t.Errorf("order ends %v; want the no-namespace group %d, then the other %d", o[len(o)-2:], s.noNS, s.other)
	}
}

// TestStatsJSONKeepsNames: a namespace or key that is not UTF-8 is given in
// a _b64 field, as everywhere in kv's JSON, and shown escaped on a
// terminal.
func TestStatsJSONKeepsNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.db")
	b22Store(t, path, "n\xff", map[string]string{"k\xfe": "vvvv"})
	url := "bolt://" + path
	for _, args := range [][]string{{"--url", url, "stats", "--json"}, {"--url", url, "--ns", "n\xff", "stats", "--json"}} {
		r := runKV(t, "", args...)
		var m map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || r.code != 0 {
			t.Fatalf("kv %q: exit %d, %q: %v", args, r.code, r.stdout, err)
		}
		obj := m
		if len(args) == 4 {
			groups, _ := m["namespaces"].([]any)
			if len(groups) != 1 {
				t.Fatalf("namespaces = %v", m["namespaces"])
			}
			obj, _ = groups[0].(map[string]any)
			if v, ok := obj["namespace"]; !ok || v != nil {
				t.Errorf("namespace = %v (present %v); want null beside namespace_b64", v, ok)
			}
		}
		largest, _ := obj["largest"].(map[string]any)
		if obj["namespace_b64"] != "bv8=" || largest["key_b64"] != "a/4=" || largest["bytes"] != 4.0 {
			t.Errorf("kv %q: namespace_b64 %v, largest %v; want bv8= and key_b64 a/4= of 4 bytes", args, obj["namespace_b64"], largest)
		}
	}
	if out := onTerminal(t, "--url", url, "stats"); !strings.Contains(out, `n\xff `) || !strings.Contains(out, `n\xff:k\xfe`) {
		t.Errorf("stats on a terminal does not escape the name and key:\n%s", out)
	}
}
