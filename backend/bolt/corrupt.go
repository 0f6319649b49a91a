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
	m, err := chooseMeta(f)
	if err != nil {
		return err
	}
	ps := int64(m.pageSize)
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

// chooseMeta returns the meta page bbolt uses: the valid one with the
// highest transaction id.
func chooseMeta(f io.ReaderAt) (meta, error) {
	m0, err0 := readMeta(f, 0)
	ps := int64(os.Getpagesize())
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 := readMeta(f, ps)
	switch {
	case err0 != nil && err1 != nil:
		return meta{}, corruptf("no valid meta page (%v; %v)", err0, err1)
	case err0 != nil:
		return m1, nil
	case err1 != nil || m0.txid >= m1.txid:
		return m0, nil
	}
	return m1, nil
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

// Check checks the whole file (its cost grows with the file's size) and
// returns nil, or an error wrapping ErrCorrupt that lists up to 100
// problems, one per line. It first walks the file's B+tree with reads of its
// own, never bbolt's mapping: every page reachable once, inside the file,
// every element inside its page. Only a file whose structure holds goes on
// to bbolt's consistency check (Tx.Check, which also finds pages neither
// reachable nor free, and keys out of order): that check runs in a goroutine
// of bbolt's, where a memory fault on a damaged page could not be turned
// into an error.
func (b *Backend) Check(ctx context.Context) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if problems, err := b.walk(); err != nil || len(problems) > 0 {
		if err != nil {
			return err
		}
		return corruptf("%d problems in the file's structure:\n%s", len(problems), strings.Join(problems, "\n"))
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

// Page elements, as walkFile reads them: after the page header, count
// elements of 16 bytes each. A branch element is pos, ksize (uint32) and the
// child's page id (uint64); a leaf element is flags, pos, ksize, vsize
// (uint32). pos counts from the element itself. A leaf element with
// bucketLeafFlag holds a bucket: its root page id and sequence (uint64 each),
// and when the root is 0 an inline leaf page follows them.
const (
	elementSize    = 16
	bucketLeafFlag = 0x01
	bucketHeader   = 16
	maxDepth       = 64
	walkProblems   = 100
)

// walker checks the structure of a file with reads of its own (never the
// mapping bbolt faults on): every page reachable from the root, once each,
// inside the file, with a sane header, and every element inside its page.
type walker struct {
	f        io.ReaderAt
	m        meta
	seen     map[uint64]bool
	problems []string
}

func (w *walker) problem(format string, args ...any) {
	if len(w.problems) < walkProblems {
		w.problems = append(w.problems, fmt.Sprintf(format, args...))
	}
}

// walkFile returns the structural problems of the file f whose meta is m.
func walkFile(f io.ReaderAt, m meta) []string {
	w := &walker{f: f, m: m, seen: map[uint64]bool{}}
	w.page(m.root, 0)
	return w.problems
}

// page checks page id and what it reaches.
func (w *walker) page(id uint64, depth int) {
	switch {
	case len(w.problems) >= walkProblems:
		return
	case depth > maxDepth:
		w.problem("page %d: the tree is deeper than %d levels (a cycle?)", id, maxDepth)
		return
	case id < 2 || id >= w.m.pgid:
		w.problem("page id %d outside the file's %d pages", id, w.m.pgid)
		return
	case w.seen[id]:
		w.problem("page %d reached twice (a cycle, or a page used twice)", id)
		return
	}
	w.seen[id] = true
	ps := int64(w.m.pageSize)
	_, _, of, err := pageHeader(w.f, w.m, id)
	if err != nil {
		w.problem("%s", strings.TrimPrefix(err.Error(), ErrCorrupt.Error()+": "))
		return
	}
	overflow := uint64(of)
	if id+overflow >= w.m.pgid {
		w.problem("page %d runs past the file's %d pages", id, w.m.pgid)
		return
	}
	for o := uint64(1); o <= overflow; o++ {
		w.seen[id+o] = true
	}
	buf := make([]byte, int64(overflow+1)*ps)
	if _, err := w.f.ReadAt(buf, int64(id)*ps); err != nil {
		w.problem("page %d: %v", id, err)
		return
	}
	w.elements(buf, fmt.Sprintf("page %d", id), depth)
}

// elements checks the elements of the page in buf (a page of the file, or
// an inline bucket's page) and walks what they point to.
func (w *walker) elements(buf []byte, where string, depth int) {
	le := binary.LittleEndian
	if len(buf) < pageHeaderSize {
		w.problem("%s: shorter than a page header", where)
		return
	}
	flags, count := le.Uint16(buf[8:]), int(le.Uint16(buf[10:]))
	if flags != branchPageFlag && flags != leafPageFlag {
		w.problem("%s: flags %#x (want a branch or a leaf)", where, flags)
		return
	}
	if pageHeaderSize+count*elementSize > len(buf) {
		w.problem("%s: %d elements do not fit in %d bytes", where, count, len(buf))
		return
	}
	for i := range count {
		off := pageHeaderSize + i*elementSize
		e := buf[off : off+elementSize]
		if flags == branchPageFlag {
			pos, ksize := int(le.Uint32(e[0:])), int(le.Uint32(e[4:]))
			if off+pos+ksize > len(buf) || pos < 0 || ksize < 0 {
				w.problem("%s: element %d's key runs past the page", where, i)
				continue
			}
			w.page(le.Uint64(e[8:]), depth+1)
			continue
		}
		eflags, pos, ksize, vsize := le.Uint32(e[0:]), int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
		end := off + pos + ksize + vsize
		if pos < 0 || ksize < 0 || vsize < 0 || end > len(buf) || end < off {
			w.problem("%s: element %d's key or value runs past the page", where, i)
			continue
		}
		if eflags&bucketLeafFlag == 0 {
			continue
		}
		v := buf[off+pos+ksize : end]
		if len(v) < bucketHeader {
			w.problem("%s: element %d: a bucket header of %d bytes", where, i, len(v))
			continue
		}
		if root := le.Uint64(v); root != 0 {
			w.page(root, 0)
		} else {
			w.elements(v[bucketHeader:], fmt.Sprintf("%s, inline bucket of element %d", where, i), depth+1)
		}
	}
}

// walk runs walkFile over the file of b, read through a descriptor of its
// own, with the meta page bbolt uses.
func (b *Backend) walk() ([]string, error) {
	f, err := os.Open(b.db.Path())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkFile(f); err != nil {
		return nil, err
	}
	m, err := chooseMeta(f)
	if err != nil {
		return nil, err
	}
	return walkFile(f, m), nil
}
