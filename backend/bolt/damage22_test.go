package bolt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
)

// runtimeWords are Go runtime words that a damage message must not carry:
// they say nothing of the file.
var runtimeWords = []string{"runtime error", "invalid memory address", "nil pointer", "index out of range",
	"slice bounds", "unexpected fault address", "goroutine", "makeslice"}

// damagedFiles returns damaged copies of a file of 2,000 keys in two
// namespaces: cut at every 4 KiB boundary (every 16th unless full), with
// bytes flipped, with every 4th page zeroed (16th), and crafted
// (craftedDamage).
func damagedFiles(t *testing.T, full bool) map[string][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	b := open(t, path, bolt.WithNoSync())
	ctx := context.Background()
	for _, ns := range []string{"a", "b"} {
		m := mustMap(t, b, ns)
		entries := make([]kv.Entry[string], 1000)
		for i := range entries {
			entries[i] = kv.Entry[string]{Key: fmt.Sprintf("key-%05d", i), Value: strings.Repeat("v", 100+i%300)}
		}
		if err := m.SetMany(ctx, entries); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, b)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	step, zeroStep, flips := 16, 16, 10
	if full {
		step, zeroStep, flips = 1, 4, 50
	}
	out := map[string][]byte{}
	for size := 4096; size < len(data); size += step * 4096 {
		out[fmt.Sprintf("cut%d", size)] = data[:size]
	}
	rnd := rand.New(rand.NewPCG(22, 1))
	for i := range flips {
		c := append([]byte(nil), data...)
		for range 8 {
			c[rnd.IntN(len(c))] ^= byte(1 + rnd.IntN(255))
		}
		out[fmt.Sprintf("flip%d", i)] = c
	}
	for page := 0; page < len(data)/4096; page += zeroStep {
		c := append([]byte(nil), data...)
		clear(c[page*4096 : (page+1)*4096])
		out[fmt.Sprintf("zero%d", page)] = c
	}
	maps.Copy(out, craftedDamage(t, data))
	return out
}

// craftedDamage returns copies of a bbolt file with one field of a page's
// element set far out of its page: the damage that made bbolt slice out of
// range ("runtime error: slice bounds out of range [::3909092042]").
func craftedDamage(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	le := binary.LittleEndian
	ps := int(le.Uint32(data[16+8:]))
	find := func(flags uint16) int {
		for off := 2 * ps; off+ps <= len(data); off += ps {
			if int(le.Uint64(data[off:])) == off/ps && le.Uint16(data[off+8:]) == flags && le.Uint16(data[off+10:]) >= 2 &&
				(flags != 0x02 || le.Uint32(data[off+16+16:])&1 == 0) {
				return off
			}
		}
		t.Fatalf("no page with flags %#x", flags)
		return 0
	}
	leaf, branch := find(0x02), find(0x01)
	out := map[string][]byte{}
	set := func(name string, off int, v uint32) {
		c := append([]byte(nil), data...)
		le.PutUint32(c[off:], v)
		out[name] = c
	}
	e1 := leaf + 16 + 16 // leaf element 1: flags, pos, ksize, vsize
	set("crafted-vsize", e1+12, 0xE9000000)
	set("crafted-ksize", e1+8, 0xE9000000)
	set("crafted-pos", e1+4, 0x7FFFFFF0)
	set("crafted-child", branch+16+8, 0x00FFFFFF) // branch element 0's child page id
	c := append([]byte(nil), data...)
	le.PutUint16(c[leaf+10:], 0xFFF0) // element count
	out["crafted-count"] = c
	return out
}

// TestDamageMessagesNameTheDamage (issue 22, "Done when"): on damaged files
// (cut, flipped, zeroed pages, an element's field set past its page), every
// read ends with data or an error wrapping ErrCorrupt whose message names
// what is damaged (a page, the meta, the file's length), never Go's runtime
// text ("store is corrupt: runtime error: slice bounds out of range
// [::3909092042]"). More copies under KV_DAMAGE_FULL=1.
func TestDamageMessagesNameTheDamage(t *testing.T) {
	ctx := context.Background()
	bad := 0
	report := func(name, call string, err error) {
		t.Helper()
		if err == nil {
			return
		}
		msg := err.Error()
		// A flipped byte in a value's deadline is data (no checksum): a TTL
		// too long for a time.Duration is ErrTimeRange, which says so.
		clean := errors.Is(err, backend.ErrCorrupt) || errors.Is(err, bolt.ErrTimeRange)
		for _, w := range runtimeWords {
			clean = clean && !strings.Contains(msg, w)
		}
		if !clean {
			bad++
			if bad <= 10 {
				t.Errorf("%s: %s: %v; want ErrCorrupt naming the damage", name, call, err)
			}
		}
	}
	for name, data := range damagedFiles(t, os.Getenv("KV_DAMAGE_FULL") == "1") {
		path := filepath.Join(t.TempDir(), name+".db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := bolt.Open(path, bolt.WithReadOnly())
		if err != nil {
			report(name, "Open", err)
			continue
		}
		for _, ns := range []string{"a", "b"} {
			m := mustMap(t, b, ns)
			_, err := m.Size(ctx)
			report(name, "Size", err)
			for _, err := range m.Iterate(ctx) {
				if err != nil {
					report(name, "Iterate", err)
					break
				}
			}
			_, _, err = m.Get(ctx, "key-00500")
			report(name, "Get", err)
			_, _, err = m.TTL(ctx, "key-00999")
			report(name, "TTL", err)
			_, err = m.GetMany(ctx, []string{"key-00001", "key-00777"})
			report(name, "GetMany", err)
		}
		report(name, "Check", b.Check(ctx))
		mustClose(t, b)
	}
	if bad > 0 {
		t.Errorf("%d reads of damaged files failed without naming the damage", bad)
	}
}
