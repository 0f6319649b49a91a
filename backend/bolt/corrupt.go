package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/kvmap/kv/backend"
)

// ErrCorrupt is returned when a file is damaged (truncated, or overwritten in
// places): by Open when a check before mapping the file fails, and by any
// call whose read of the file hits damage. It is backend.ErrCorrupt, which
// package kv re-exports as kv.ErrCorrupt.
var ErrCorrupt = backend.ErrCorrupt

// corruptf returns an error wrapping ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// guard runs fn and turns a panic in it, or a memory fault on the mapped
// file (which debug.SetPanicOnFault makes a panic of this goroutine instead
// of a fatal error), into an error wrapping ErrCorrupt. bbolt checks little
// of what it reads: a damaged page makes it index out of range, fault, or
// panic on an assertion. bbolt rolls the transaction back on the way out, so
// the file stays usable for the calls that do not touch the damage.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer corruptOnPanic(&err)
	return fn()
}

// corruptOnPanic, deferred, turns a panic into an error wrapping ErrCorrupt
// in *err.
func corruptOnPanic(err *error) {
	if r := recover(); r != nil {
		*err = corruptf("%v", r)
	}
}

// The bbolt file format (version 2) as far as checkFile reads it: every page
// starts with a 16-byte header (id uint64, flags uint16, count uint16,
// overflow uint32), in the machine's byte order (little endian on every
// platform Go's bbolt runs on here). Pages 0 and 1 hold a meta record after
// the header.
const (
	pageHeaderSize   = 16
	metaSize         = 64 // magic, version, pageSize, flags, root (pgid, seq), freelist, pgid, txid, checksum
	metaChecksumEnd  = 56
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
	minPageSize      = 512
	maxPageSize      = 1 << 16
)

// meta is what checkFile reads of a meta page.
type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages in use are below it
	txid     uint64
}

// readMeta reads and validates the meta record of the page at off.
func readMeta(f io.ReaderAt, off int64) (meta, error) {
	var buf [pageHeaderSize + metaSize]byte
	if _, err := f.ReadAt(buf[:], off); err != nil {
		return meta{}, fmt.Errorf("read meta page at %d: %w", off, err)
	}
	m := buf[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return meta{}, errors.New("meta page: not a bbolt file (bad magic)")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return meta{}, fmt.Errorf("meta page: version %d (want %d)", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksumEnd])
	if h.Sum64() != le.Uint64(m[metaChecksumEnd:]) {
		return meta{}, errors.New("meta page: checksum mismatch")
	}
	return meta{
		pageSize: le.Uint32(m[8:]),
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		pgid:     le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}, nil
}

// checkFile checks what can be checked cheaply before bbolt maps a file:
// one valid meta page (the one bbolt will use: the valid one with the
// highest transaction id), a file as long as that meta's high-water mark,
// and the root and freelist pages' headers and contents within it. A file
// of size 0 is left to bbolt (it initialises it when writable).
func checkFile(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	m0, err0 := readMeta(f, 0)
	ps := int64(os.Getpagesize())
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 := readMeta(f, ps)
	var m meta
	switch {
	case err0 != nil && err1 != nil:
		return corruptf("no valid meta page (%v; %v)", err0, err1)
	case err0 != nil:
		m = m1
	case err1 != nil || m0.txid >= m1.txid:
		m = m0
	default:
		m = m1
	}
	ps = int64(m.pageSize)
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return corruptf("page size %d", ps)
	}
	if m.pgid < 4 || m.pgid > uint64(size/ps) {
		return corruptf("file is %d bytes; its meta page says %d pages of %d bytes (truncated?)", size, m.pgid, ps)
	}
	if m.root < 2 || m.root >= m.pgid {
		return corruptf("root page %d outside the file's %d pages", m.root, m.pgid)
	}
	if err := checkPageHeader(f, m, m.root, branchPageFlag|leafPageFlag); err != nil {
		return err
	}
	if m.freelist == noFreelist {
		return nil
	}
	if m.freelist < 2 || m.freelist >= m.pgid {
		return corruptf("freelist page %d outside the file's %d pages", m.freelist, m.pgid)
	}
	return checkFreelist(f, m)
}

// pageHeader reads the header of page id.
func pageHeader(f io.ReaderAt, m meta, id uint64) (flags uint16, count uint16, overflow uint32, err error) {
	var h [pageHeaderSize]byte
	if _, err := f.ReadAt(h[:], int64(id)*int64(m.pageSize)); err != nil {
		return 0, 0, 0, corruptf("read page %d: %v", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(h[0:]); got != id {
		return 0, 0, 0, corruptf("page %d carries id %d", id, got)
	}
	return le.Uint16(h[8:]), le.Uint16(h[10:]), le.Uint32(h[12:]), nil
}

// checkPageHeader checks that page id has one of the flags and ends inside
// the high-water mark.
func checkPageHeader(f io.ReaderAt, m meta, id uint64, flags uint16) error {
	fl, _, overflow, err := pageHeader(f, m, id)
	if err != nil {
		return err
	}
	if fl&flags == 0 || fl&^flags != 0 {
		return corruptf("page %d has flags %#x", id, fl)
	}
	if id+uint64(overflow) >= m.pgid {
		return corruptf("page %d runs past the file's %d pages", id, m.pgid)
	}
	return nil
}

// checkFreelist checks the freelist page: its header, a count that fits in
// its pages (a damaged count must not make bbolt allocate without bound),
// and every free page id inside the file.
func checkFreelist(f io.ReaderAt, m meta) error {
	id := m.freelist
	if err := checkPageHeader(f, m, id, freelistPageFlag); err != nil {
		return err
	}
	_, count16, overflow, err := pageHeader(f, m, id)
	if err != nil {
		return err
	}
	capacity := (int64(overflow) + 1) * int64(m.pageSize)
	buf := make([]byte, capacity-pageHeaderSize)
	if _, err := f.ReadAt(buf, int64(id)*int64(m.pageSize)+pageHeaderSize); err != nil {
		return corruptf("read freelist: %v", err)
	}
	le := binary.LittleEndian
	count, ids := uint64(count16), buf
	if count16 == 0xFFFF { // the real count is the first element
		count, ids = le.Uint64(buf), buf[8:]
	}
	if count > uint64(len(ids)/8) {
		return corruptf("freelist holds %d ids in %d bytes", count, len(ids))
	}
	for i := range count {
		if p := le.Uint64(ids[i*8:]); p < 2 || p >= m.pgid {
			return corruptf("freelist names page %d outside the file's %d pages", p, m.pgid)
		}
	}
	return nil
}

// maxProblems is how many problems Check reports at most.
const maxProblems = 100

// Check runs bbolt's full consistency check over the file (its cost grows
// with the file's size) and returns nil, or an error wrapping ErrCorrupt that
// lists up to 100 problems, one per line.
func (b *Backend) Check(ctx context.Context) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	var problems []string
	more := 0
	err := b.view(func(tx *bbolt.Tx) error {
		for err := range tx.Check() { // drained to the end: the check's goroutine ends with it
			if len(problems) < maxProblems {
				problems = append(problems, err.Error())
			} else {
				more++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		return nil
	}
	if more > 0 {
		problems = append(problems, fmt.Sprintf("... and %d more", more))
	}
	return corruptf("%d problems:\n%s", len(problems)+more, strings.Join(problems, "\n"))
}
