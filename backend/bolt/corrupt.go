package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime"
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
// of a fatal error), into an error wrapping ErrCorrupt that names what is
// damaged in the file at path. bbolt checks little of what it reads: a
// damaged page makes it index out of range, fault, or panic on an
// assertion. bbolt rolls the transaction back on the way out, so the file
// stays usable for the calls that do not touch the damage.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer corruptOnPanic(&err, path)
	return fn()
}

// corruptOnPanic, deferred, turns a panic into an error wrapping ErrCorrupt
// in *err, naming the damage of the file at path.
func corruptOnPanic(err *error, path string) {
	if r := recover(); r != nil {
		*err = damageError(path, r)
	}
}

// damageError returns the error of a panic r on the file at path: an error
// wrapping ErrCorrupt that names what is damaged, found by walking the
// file's structure with reads of its own. Go's runtime text ("invalid memory
// address", "index out of range") says nothing of the file, and is left out.
func damageError(path string, r any) error {
	problems, more := diagnose(path)
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		if more > 0 {
			msg += fmt.Sprintf("; and %d more", more)
		}
		return corruptf("%s", msg)
	}
	if _, isRuntime := r.(runtime.Error); isRuntime {
		return corruptf("a damaged page of the file (its page structure checks out: the damage is inside a key, a value or a bucket record)")
	}
	return corruptf("a damaged page of the file (bbolt: %v)", r)
}

// diagnoseProblems is how many problems a damage error names.
const diagnoseProblems = 3

// diagnose returns the first problems that walking the file at path finds
// (the walk stops at diagnoseProblems), and how many more it met on the
// page where it stopped.
func diagnose(path string) ([]string, int) {
	f, err := os.Open(path)
	if err != nil {
		return []string{fmt.Sprintf("the file cannot be read again to find the damage: %v", err)}, 0
	}
	defer f.Close()
	if err := checkFile(f, true); err != nil {
		return []string{bare(err)}, 0
	}
	m, err := chooseMeta(f)
	if err != nil {
		return []string{bare(err)}, 0
	}
	w := newWalker(nil, f, m, diagnoseProblems) // the panicked call's context is gone: the walk is bounded by its problems
	w.run()
	return w.problems, w.more
}

// bare returns the message of an error without the words of ErrCorrupt.
func bare(err error) string {
	return strings.TrimPrefix(err.Error(), ErrCorrupt.Error()+": ")
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
// that is not a regular file fails with ErrNotRegularFile. An empty file is
// left to bbolt when writable (it initialises it); read-only, it is an
// error wrapping ErrCorrupt, which says so.
func checkFile(f *os.File, readOnly bool) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return notRegular(f.Name(), st.Mode())
	}
	size := st.Size()
	if size == 0 {
		if readOnly {
			return corruptf("the file is empty (0 bytes): it holds no bbolt database")
		}
		return nil
	}
	if size < 2*minPageSize {
		return corruptf("the file is %d bytes, too short for the two meta pages of a bbolt database (truncated, or not a bbolt file)", size)
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
	m0, m1, err0, err1 := readMetas(f)
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

// readMetas reads the meta pages 0 and 1 (page 1 at the page size page 0
// gives, else the system's).
func readMetas(f io.ReaderAt) (m0, m1 meta, err0, err1 error) {
	m0, err0 = readMeta(f, 0)
	ps := int64(os.Getpagesize())
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 = readMeta(f, ps)
	return m0, m1, err0, err1
}

// pageHeader reads the header of page id.
func pageHeader(f io.ReaderAt, m meta, id uint64) (flags uint16, count uint16, overflow uint32, err error) {
	var h [pageHeaderSize]byte
	if _, err := f.ReadAt(h[:], int64(id)*int64(m.pageSize)); err != nil {
		return 0, 0, 0, readError(id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(h[0:]); got != id {
		return 0, 0, 0, corruptf("page %d carries id %d", id, got)
	}
	return le.Uint16(h[8:]), le.Uint16(h[10:]), le.Uint32(h[12:]), nil
}

// readError is the error of a failed read of page id: past the end of the
// file, it says the file is truncated (it was long enough when opened or
// checked at first: it shrank since).
func readError(id uint64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: page %d is past the end of the file: %w", ErrCorrupt, id, errTruncated)
	}
	return corruptf("read page %d: %v", id, err)
}

// errTruncated ends a walk that reads past the end of the file.
var errTruncated = errors.New("the file is shorter than its meta page says (truncated, perhaps while it was read)")

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

// notRegular returns the error of a path that is not a regular file.
func notRegular(path string, mode fs.FileMode) error {
	what := "not a regular file"
	switch {
	case mode.IsDir():
		what = "a directory"
	case mode&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		what = "a socket"
	case mode&fs.ModeCharDevice != 0:
		what = "a character device"
	case mode&fs.ModeDevice != 0:
		what = "a device"
	}
	return fmt.Errorf("%w: %s is %s; a bbolt database is a regular file", ErrNotRegularFile, path, what)
}

// maxProblems is how many problems Check reports at most.
const maxProblems = 100

// checkTries is how many read transactions Check takes at most to find the
// meta page of its own transaction on disk (a writer of this process may
// overwrite it twice meanwhile).
const checkTries = 3

// Check checks the whole file and returns nil, or an error wrapping
// ErrCorrupt that lists up to 100 problems, one per line. Its cost grows
// with the file's size; ctx ends it early.
//
// It checks what bbolt's Tx.Check does (every page reachable once, inside
// the file, of the right type, and not free; every page either reachable or
// free; no page freed twice; keys in order in every page and within the
// range their parent gives them) and that every element lies inside its
// page, all with reads of its own through a descriptor of its own, in the
// calling goroutine: never through bbolt's memory mapping, where a file
// shrunk by another process meanwhile would kill the process with SIGBUS
// (Tx.Check runs in a goroutine of its own, where that fault cannot be
// turned into an error). A read transaction stays open meanwhile, so that
// the pages it reads are not reused by this process's writers.
func (b *Backend) Check(ctx context.Context) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	var problems []string
	more := 0
	for try := 0; ; try++ {
		found := false
		err := b.view(func(tx *bbolt.Tx) error {
			f, err := os.Open(b.db.Path())
			if err != nil {
				return err
			}
			defer f.Close()
			if err := checkFile(f, true); err != nil {
				return err
			}
			m, ok, err := metaOfTx(f, uint64(tx.ID()))
			if err != nil || !ok {
				return err
			}
			found = true
			w := newWalker(ctx.Err, f, m, maxProblems)
			w.run()
			problems, more = w.problems, w.more
			return w.err
		})
		if err != nil {
			return err
		}
		if found {
			break
		}
		if try == checkTries-1 {
			return errors.New("bolt: check: the file changed under every read transaction (writes of this process); check it again when they pause")
		}
	}
	if len(problems) == 0 {
		return nil
	}
	total := len(problems) + more
	if more > 0 {
		problems = append(problems, fmt.Sprintf("... and %d more", more))
	}
	return corruptf("%d problems:\n%s", total, strings.Join(problems, "\n"))
}

// metaOfTx returns the meta page of the transaction txid, read from disk
// (the valid one with that id), and whether there is one.
func metaOfTx(f io.ReaderAt, txid uint64) (meta, bool, error) {
	m0, m1, err0, err1 := readMetas(f)
	switch {
	case err0 == nil && m0.txid == txid:
		return m0, true, nil
	case err1 == nil && m1.txid == txid:
		return m1, true, nil
	case err0 != nil && err1 != nil:
		return meta{}, false, corruptf("no valid meta page (%v; %v)", err0, err1)
	}
	return meta{}, false, nil
}

// Page elements, as the walker reads them: after the page header, count
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
)

// walker checks the structure of a file with reads of its own (never the
// mapping bbolt faults on).
type walker struct {
	stop     func() error // nil, or the error that ends the walk early (a context's Err)
	f        io.ReaderAt
	m        meta
	limit    int
	seen     map[uint64]bool // pages in use: metas, freelist, reachable
	freed    map[uint64]bool // pages the freelist names
	problems []string
	more     int   // problems beyond limit
	err      error // stop's error, when it ended the walk
	short    bool  // the file ended before a page: the walk stopped
}

func newWalker(stop func() error, f io.ReaderAt, m meta, limit int) *walker {
	return &walker{stop: stop, f: f, m: m, limit: limit, seen: map[uint64]bool{0: true, 1: true}, freed: map[uint64]bool{}}
}

func (w *walker) problem(format string, args ...any) {
	if len(w.problems) < w.limit {
		w.problems = append(w.problems, fmt.Sprintf(format, args...))
	} else {
		w.more++
	}
}

// readFailed notes a failed read of page id.
func (w *walker) readFailed(id uint64, err error) { w.failed(id, readError(id, err)) }

// failed notes err, the error (wrapping ErrCorrupt) of a read of page id.
func (w *walker) failed(id uint64, err error) {
	if errors.Is(err, errTruncated) {
		w.truncated(id)
	} else {
		w.problem("%s", bare(err))
	}
}

// truncated notes that the file ends before page id, and ends the walk:
// every page after it would be a problem of its own.
func (w *walker) truncated(id uint64) {
	w.problem("the file ends before page %d: %v", id, errTruncated)
	w.short = true
}

// full reports whether the walk should stop: enough problems for a
// diagnosis, or ctx done.
func (w *walker) full() bool {
	if w.err != nil || w.short {
		return true
	}
	if w.stop != nil {
		if w.err = w.stop(); w.err != nil {
			return true
		}
	}
	return w.limit < maxProblems && len(w.problems) >= w.limit
}

// run walks the freelist, then the tree from the root, then the pages
// neither reached nor free.
func (w *walker) run() {
	if w.m.freelist != noFreelist {
		w.freelist()
	}
	w.page(w.m.root, nil, nil, 0)
	if w.m.freelist == noFreelist || w.full() {
		return // without a freelist on disk, bbolt counts the pages not reached as free
	}
	for id := uint64(2); id < w.m.pgid; id++ {
		if !w.seen[id] && !w.freed[id] {
			w.problem("page %d is neither in use nor free (lost)", id)
		}
	}
}

// freelist reads the freelist (checkFile checked its page and ids).
func (w *walker) freelist() {
	id := w.m.freelist
	_, count16, overflow, err := pageHeader(w.f, w.m, id)
	if err != nil {
		w.problem("freelist: %s", bare(err))
		return
	}
	for o := uint64(0); o <= uint64(overflow); o++ {
		w.seen[id+o] = true
	}
	buf := make([]byte, (int64(overflow)+1)*int64(w.m.pageSize)-pageHeaderSize)
	if _, err := w.f.ReadAt(buf, int64(id)*int64(w.m.pageSize)+pageHeaderSize); err != nil {
		w.readFailed(id, err)
		return
	}
	le := binary.LittleEndian
	count, ids := uint64(count16), buf
	if count16 == 0xFFFF {
		count, ids = le.Uint64(buf), buf[8:]
	}
	count = min(count, uint64(len(ids)/8))
	for i := range count {
		p := le.Uint64(ids[i*8:])
		if w.freed[p] {
			w.problem("page %d is listed twice in the freelist", p)
		}
		w.freed[p] = true
	}
}

// page checks page id and what it reaches, with every key of its subtree at
// or after lo and before hi (nil: no bound). It returns the largest key of
// the subtree.
func (w *walker) page(id uint64, lo, hi []byte, depth int) []byte {
	switch {
	case w.full():
		return nil
	case depth > maxDepth:
		w.problem("page %d: the tree is deeper than %d levels (a cycle?)", id, maxDepth)
		return nil
	case id < 2 || id >= w.m.pgid:
		w.problem("page id %d outside the file's %d pages", id, w.m.pgid)
		return nil
	case w.seen[id]:
		w.problem("page %d reached twice (a cycle, or a page used twice)", id)
		return nil
	}
	ps := int64(w.m.pageSize)
	_, _, of, err := pageHeader(w.f, w.m, id)
	if err != nil {
		w.seen[id] = true
		w.failed(id, err)
		return nil
	}
	overflow := uint64(of)
	if id+overflow >= w.m.pgid {
		w.seen[id] = true
		w.problem("page %d runs past the file's %d pages", id, w.m.pgid)
		return nil
	}
	for o := uint64(0); o <= overflow; o++ {
		switch {
		case o > 0 && w.seen[id+o]:
			w.problem("page %d (part of page %d) reached twice", id+o, id)
		case w.freed[id+o]:
			w.problem("page %d is in use and also listed as free", id+o)
		}
		w.seen[id+o] = true
	}
	buf := make([]byte, int64(overflow+1)*ps)
	if _, err := w.f.ReadAt(buf, int64(id)*ps); err != nil {
		w.readFailed(id, err)
		return nil
	}
	return w.elements(buf, fmt.Sprintf("page %d", id), lo, hi, depth)
}

// elements checks the elements of the page in buf (a page of the file, or
// an inline bucket's page): inside the page, keys in order and within lo
// and hi, and walks what they point to. It returns the largest key.
func (w *walker) elements(buf []byte, where string, lo, hi []byte, depth int) []byte {
	le := binary.LittleEndian
	if len(buf) < pageHeaderSize {
		w.problem("%s: shorter than a page header", where)
		return nil
	}
	flags, count := le.Uint16(buf[8:]), int(le.Uint16(buf[10:]))
	if flags != branchPageFlag && flags != leafPageFlag {
		w.problem("%s: flags %#x (want a branch or a leaf)", where, flags)
		return nil
	}
	if pageHeaderSize+count*elementSize > len(buf) {
		w.problem("%s: %d elements do not fit in %d bytes", where, count, len(buf))
		return nil
	}
	branch := flags == branchPageFlag
	keyAt := func(i int) []byte { // nil when out of the page
		off := pageHeaderSize + i*elementSize
		e := buf[off : off+elementSize]
		pos, ksize := uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:]))
		if branch {
			pos, ksize = uint64(le.Uint32(e[0:])), uint64(le.Uint32(e[4:]))
		}
		if uint64(off)+pos+ksize > uint64(len(buf)) {
			return nil
		}
		return buf[uint64(off)+pos : uint64(off)+pos+ksize]
	}
	prev := lo // the key every key from here on must follow (the first may equal lo)
	var last []byte
	for i := range count {
		if w.full() {
			return last
		}
		off := pageHeaderSize + i*elementSize
		e := buf[off : off+elementSize]
		key := keyAt(i)
		if key == nil {
			w.problem("%s: element %d's key runs past the page", where, i)
			continue
		}
		switch c := bytes.Compare(key, prev); {
		case prev == nil:
		case i == 0 && c < 0:
			w.problem("%s: its first key %.40q sorts before the key %.40q its parent gives it", where, key, prev)
		case i > 0 && c <= 0:
			w.problem("%s: key %d (%.40q) does not sort after the key before it (%.40q)", where, i, key, prev)
		}
		if hi != nil && bytes.Compare(key, hi) >= 0 {
			w.problem("%s: key %d (%.40q) does not sort before the next key of its parent (%.40q)", where, i, key, hi)
		}
		if branch {
			next := hi
			if i+1 < count {
				if k := keyAt(i + 1); k != nil {
					next = k
				}
			}
			top := w.page(le.Uint64(e[8:]), key, next, depth+1)
			if top == nil {
				top = key
			}
			prev, last = top, top
			continue
		}
		prev, last = key, key
		eflags, pos, ksize, vsize := le.Uint32(e[0:]), uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		end := uint64(off) + pos + ksize + vsize
		if end > uint64(len(buf)) {
			w.problem("%s: element %d's value runs past the page", where, i)
			continue
		}
		if eflags&bucketLeafFlag == 0 {
			continue
		}
		v := buf[uint64(off)+pos+ksize : end]
		if len(v) < bucketHeader {
			w.problem("%s: element %d: a bucket header of %d bytes", where, i, len(v))
			continue
		}
		if root := le.Uint64(v); root != 0 {
			w.page(root, nil, nil, 0)
		} else {
			w.elements(v[bucketHeader:], fmt.Sprintf("%s, inline bucket of element %d", where, i), nil, nil, depth+1)
		}
	}
	return last
}
