package bolt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
)

// checkFixture writes a file of a few hundred pages with free pages (keys
// written, then half of them deleted) and returns its bytes and page size.
func checkFixture(t *testing.T) ([]byte, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	b := open(t, path, bolt.WithNoSync())
	m := mustMap(t, b, "ns", kv.WithTTL(kv.NoTTL))
	ctx := context.Background()
	entries := make([]kv.Entry[string], 3000)
	for i := range entries {
		entries[i] = kv.Entry[string]{Key: fmt.Sprintf("key-%05d", i), Value: strings.Repeat("v", 200)}
	}
	if err := m.SetMany(ctx, entries); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(entries); i += 200 { // in many transactions: many free pages
		var keys []string
		for j := i; j < i+200; j += 2 {
			keys = append(keys, entries[j].Key)
		}
		if err := m.DeleteMany(ctx, keys); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, b)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data, int(binary.LittleEndian.Uint32(data[16+8:]))
}

// metaOf returns the fields of the newest meta page of data: its offset,
// the freelist page and the high-water mark.
func metaOf(data []byte, ps int) (off int, freelist, pgid uint64) {
	le := binary.LittleEndian
	best := uint64(0)
	for _, o := range []int{0, ps} {
		m := data[o+16:]
		if txid := le.Uint64(m[48:]); txid >= best {
			best, off, freelist, pgid = txid, o, le.Uint64(m[32:]), le.Uint64(m[40:])
		}
	}
	return off, freelist, pgid
}

// freelistIDs returns the offset of the freelist's ids in data and their
// count (a count of 0xFFFF in the header is not handled: the fixture is
// small).
func freelistIDs(t *testing.T, data []byte, ps int) (int, int) {
	t.Helper()
	_, fl, _ := metaOf(data, ps)
	off := int(fl) * ps
	count := int(binary.LittleEndian.Uint16(data[off+10:]))
	if count == 0 || count == 0xFFFF {
		t.Fatalf("the fixture's freelist holds %d ids; want a few", count)
	}
	return off + 16, count
}

// leafPage returns the offset of a leaf page of plain keys with at least
// two elements.
func leafPage(t *testing.T, data []byte, ps int) int {
	t.Helper()
	le := binary.LittleEndian
	_, _, pgid := metaOf(data, ps)
	for id := 2; id < int(pgid); id++ {
		off := id * ps
		if le.Uint64(data[off:]) == uint64(id) && le.Uint16(data[off+8:]) == 0x02 && le.Uint16(data[off+10:]) >= 2 &&
			le.Uint32(data[off+16:])&1 == 0 && le.Uint32(data[off+32:])&1 == 0 {
			return off
		}
	}
	t.Fatal("no leaf page of plain keys")
	return 0
}

// TestCheckFindsWhatBboltFinds: Check, which reads the file itself instead
// of running bbolt's Tx.Check, finds the problems Tx.Check finds: keys out
// of order, a page neither in use nor free, a page freed twice, a page in
// use and free. (Tx.Check runs here only on files whose pages all lie
// inside the file, where it cannot fault.)
func TestCheckFindsWhatBboltFinds(t *testing.T) {
	data, ps := checkFixture(t)
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		damage func(d []byte)
		want   string
	}{
		{"clean", func([]byte) {}, ""},
		{"keys out of order", func(d []byte) {
			off := leafPage(t, d, ps)
			pos := int(le.Uint32(d[off+16+4:]))
			d[off+16+pos] = 0xFF // the first key now sorts after the second
		}, "does not sort after the key before it"},
		{"a page lost", func(d []byte) {
			ids, count := freelistIDs(t, d, ps)
			le.PutUint16(d[ids-16+10:], uint16(count-1)) // the last free page is forgotten
		}, "neither in use nor free"},
		{"a page freed twice", func(d []byte) {
			ids, _ := freelistIDs(t, d, ps)
			copy(d[ids+8:ids+16], d[ids:ids+8])
		}, "listed twice in the freelist"},
		{"a page in use and free", func(d []byte) {
			ids, _ := freelistIDs(t, d, ps)
			le.PutUint64(d[ids:], uint64(leafPage(t, d, ps)/ps))
		}, "in use and also listed as free"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := append([]byte(nil), data...)
			tc.damage(d)
			path := filepath.Join(t.TempDir(), "kv.db")
			if err := os.WriteFile(path, d, 0o600); err != nil {
				t.Fatal(err)
			}
			b := open(t, path, bolt.WithReadOnly())
			err := b.Check(context.Background())
			mustClose(t, b)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check of a sound file = %v; want nil", err)
			case tc.want != "" && (!errors.Is(err, backend.ErrCorrupt) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check = %v; want ErrCorrupt naming %q", err, tc.want)
			}
			// bbolt's own check agrees.
			db, err := bbolt.Open(path, 0o400, &bbolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			if err := db.View(func(tx *bbolt.Tx) error {
				for err := range tx.Check() {
					found = append(found, err.Error())
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if (len(found) > 0) != (tc.want != "") {
				t.Errorf("bbolt's Tx.Check found %q; Check's verdict differs", found)
			}
		})
	}
}

// TestCheckOfAShrunkFile: a file cut short by another process after Open
// is reported as damaged by Check, from its own reads; the process lives.
// (That Tx.Check, in a goroutine of bbolt's, died of SIGBUS on such a file
// is shown through the command, cmd/kv TestCheckWhileTheFileShrinks.)
func TestCheckOfAShrunkFile(t *testing.T) {
	data, _ := checkFixture(t)
	path := filepath.Join(t.TempDir(), "kv.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b := open(t, path, bolt.WithReadOnly())
	defer mustClose(t, b)
	if err := os.Truncate(path, int64(len(data)/3)); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(context.Background()); !errors.Is(err, backend.ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Check of a file cut to a third = %v; want ErrCorrupt saying it is truncated", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Check(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a cancelled context = %v; want context.Canceled", err)
	}
}
