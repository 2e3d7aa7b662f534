package pma

import (
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/google/btree"
	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// A MemoryFile is a sparse anonymous file (memfd_create(2)) whose pages back
// anonymous memory. Host memory is committed by the kernel when a page is
// first touched through a mapping and returned to the host when the page is
// freed (fallocate(2) FALLOC_FL_PUNCH_HOLE).
//
// Pages are reference-counted, so that address spaces cloned from one
// another can share them (copy-on-write): Allocate returns pages with one
// reference, IncRef adds references, and DecRef drops them and frees the
// pages whose count reaches zero. Counts are kept per range, not per page,
// so sharing a large range costs the same as sharing a small one.
//
// Offsets handed out by Allocate are page-aligned and never overlap pages
// that have not been freed.
//
// Concurrency: all methods are safe for concurrent use.
type MemoryFile struct {
	f *os.File

	mu sync.Mutex
	// users is the number of holders (address spaces) of the file; the
	// file is closed when the last one calls Close.
	users int
	// refs holds the ranges of allocated pages with two or more
	// references, disjoint; allocated pages outside them have one.
	refs *btree.BTreeG[refSeg]
	// free holds the free extents of [0, limit), sorted by start, disjoint
	// and not adjacent (adjacent extents are joined).
	free []extent
	// size is the current length of the file. Offsets in [size, limit) are
	// free; the file grows (ftruncate) when an allocation reaches past size.
	size uint64
	// inUse is the number of allocated bytes.
	inUse uint64
	// limit is the largest offset ever handed out, plus one.
	limit uint64

	// win is a host mapping of the whole file, for copies between its
	// pages (see withWindow).
	win memWindow

	// runs serves copyFrom's scans for data (decommit punches the holes).
	runs runCache
}

type extent struct{ start, end uint64 }

// maxFileSize bounds the memory file: far beyond any host's memory, while
// keeping offsets well inside int64.
const maxFileSize = 1 << 52

// NewMemoryFile creates an empty memory file. name appears in
// /proc/PID/maps and /proc/PID/fd of the host process.
//
// Errors are those of memfd_create(2), wrapped.
func NewMemoryFile(name string) (*MemoryFile, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("pma: memfd_create: %w", err)
	}
	return &MemoryFile{
		f:     os.NewFile(uintptr(fd), "memfd:"+name),
		users: 1,
		refs:  btree.NewG(8, func(a, b refSeg) bool { return a.start < b.start }),
		free:  []extent{{0, maxFileSize}},
		limit: maxFileSize,
	}, nil
}

// refSeg is a range of pages sharing one reference count (>= 2).
type refSeg struct {
	start, end uint64
	refs       int32
}

// Share adds a holder of the file: each holder calls Close once.
func (m *MemoryFile) Share() *MemoryFile {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users++
	return m
}

// FD returns the host file descriptor of the memory file. It stays valid
// until Close.
func (m *MemoryFile) FD() int {
	return int(m.f.Fd())
}

// File returns the memory file as an *os.File, valid until Close. The caller
// must not close it.
func (m *MemoryFile) File() *os.File {
	return m.f
}

// Allocate reserves length bytes of the file and returns their offset. If
// the length bytes at hint are free, they are chosen (so that callers can
// keep related allocations contiguous); otherwise the lowest free extent
// large enough is.
//
// Preconditions: length and hint are page-aligned; length > 0.
//
// It returns ENOMEM if no extent is large enough, or an error from growing
// the file.
func (m *MemoryFile) Allocate(length, hint uint64) (uint64, error) {
	if length == 0 || length%hostarch.PageSize != 0 || hint%hostarch.PageSize != 0 {
		panic(fmt.Sprintf("pma: Allocate(%#x, %#x): not page-aligned", length, hint))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.extentAt(hint)
	off := hint
	if i < 0 || m.free[i].end-hint < length {
		i, off = -1, 0
		for j, e := range m.free {
			if e.end-e.start >= length {
				i, off = j, e.start
				break
			}
		}
		if i < 0 {
			return 0, fmt.Errorf("pma: memory file has no free extent of %#x bytes: %w", length, unix.ENOMEM)
		}
	}
	if end := off + length; end > m.size {
		// Grow with some slack, so that a run of allocations does not
		// truncate each time; without it if the host refuses (a file size
		// limit, RLIMIT_FSIZE, applies to the memory file too).
		newSize := min(max(end, m.size+min(max(m.size/4, growSlack), 256<<20)), maxFileSize)
		if err := m.f.Truncate(int64(newSize)); err != nil {
			newSize = end
			if err := m.f.Truncate(int64(newSize)); err != nil {
				// The file cannot grow: pages freed inside it still serve.
				j, o, ok := m.fitWithin(length)
				if !ok {
					return 0, fmt.Errorf("pma: growing memory file to %#x bytes: %v: %w", newSize, err, unix.ENOMEM)
				}
				i, off, newSize = j, o, m.size
			}
		}
		m.size = newSize
	}
	m.take(i, off, off+length)
	m.inUse += length
	return off, nil
}

// fitWithin returns the lowest free extent with length bytes free below
// the file's size, and their offset.
func (m *MemoryFile) fitWithin(length uint64) (int, uint64, bool) {
	for j, e := range m.free {
		if e.start < m.size && min(e.end, m.size)-e.start >= length {
			return j, e.start, true
		}
	}
	return -1, 0, false
}

// extentAt returns the index of the free extent containing off, or -1.
func (m *MemoryFile) extentAt(off uint64) int {
	i := sort.Search(len(m.free), func(i int) bool { return m.free[i].end > off })
	if i < len(m.free) && m.free[i].start <= off {
		return i
	}
	return -1
}

// take removes [start, end) from free extent i, which contains it.
func (m *MemoryFile) take(i int, start, end uint64) {
	e := m.free[i]
	switch {
	case e.start == start && e.end == end:
		m.free = append(m.free[:i], m.free[i+1:]...)
	case e.start == start:
		m.free[i].start = end
	case e.end == end:
		m.free[i].end = start
	default:
		m.free = append(m.free, extent{})
		copy(m.free[i+2:], m.free[i+1:])
		m.free[i] = extent{e.start, start}
		m.free[i+1] = extent{end, e.end}
	}
}

// IncRef adds a reference to each page of [off, off+length).
//
// Preconditions: the pages are allocated; off and length are page-aligned.
func (m *MemoryFile) IncRef(off, length uint64) {
	if length == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	end := off + length
	m.splitSegAt(off)
	m.splitSegAt(end)
	cur := off
	for _, s := range m.segsIn(off, end) {
		if s.start > cur {
			m.refs.ReplaceOrInsert(refSeg{cur, s.start, 2})
		}
		s.refs++
		m.refs.ReplaceOrInsert(s)
		cur = s.end
	}
	if cur < end {
		m.refs.ReplaceOrInsert(refSeg{cur, end, 2})
	}
	m.joinSegs(off, end)
}

// DecRef drops a reference to each page of [off, off+length) and frees the
// pages left with none: their memory goes back to the host and their
// offsets to the allocator. It returns the first error from returning
// memory to the host (the offsets are freed regardless).
//
// Preconditions: the pages are allocated; off and length are page-aligned.
func (m *MemoryFile) DecRef(off, length uint64) error {
	if length == 0 {
		return nil
	}
	m.mu.Lock()
	end := off + length
	m.splitSegAt(off)
	m.splitSegAt(end)
	var dead []extent
	cur := off
	for _, s := range m.segsIn(off, end) {
		if s.start > cur {
			dead = append(dead, extent{cur, s.start})
		}
		if s.refs--; s.refs == 1 {
			m.refs.Delete(s)
		} else {
			m.refs.ReplaceOrInsert(s)
		}
		cur = s.end
	}
	if cur < end {
		dead = append(dead, extent{cur, end})
	}
	m.joinSegs(off, end)
	size := m.size
	m.mu.Unlock()
	// Punch the dead pages before their offsets can be handed out again.
	var first error
	for _, e := range dead {
		if e.start >= size {
			continue
		}
		if err := m.decommit(e.start, e.end-e.start); err != nil && first == nil {
			first = err
		}
	}
	m.mu.Lock()
	for _, e := range dead {
		m.freeLocked(e.start, e.end-e.start)
	}
	m.shrinkLocked()
	m.mu.Unlock()
	return first
}

// growSlack is the least the memory file grows by, and shrinkSlack how much
// free space at its end it keeps before it shrinks.
const (
	growSlack   = 2 << 20
	shrinkSlack = 8 << 20
)

// shrinkLocked truncates the free tail of the file, so that the file's size
// follows the memory in use rather than the highest offset ever used.
//
// Preconditions: m.mu is held.
func (m *MemoryFile) shrinkLocked() {
	if len(m.free) == 0 {
		return
	}
	tail := m.free[len(m.free)-1]
	if tail.end != m.limit || tail.start >= m.size || m.size-tail.start < shrinkSlack {
		return
	}
	newSize := (tail.start + growSlack - 1) &^ (growSlack - 1)
	if newSize >= m.size {
		return
	}
	if m.f.Truncate(int64(newSize)) == nil {
		m.size = newSize
	}
}

// Size returns the current length of the file in bytes.
func (m *MemoryFile) Size() uint64 {
	return m.sizeNow()
}

// Refs returns the number of references to the page at off (1 for an
// allocated page that was never shared).
//
// Preconditions: the page is allocated.
func (m *MemoryFile) Refs(off uint64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	refs := 1
	m.refs.DescendLessOrEqual(refSeg{start: off}, func(s refSeg) bool {
		if s.end > off {
			refs = int(s.refs)
		}
		return false
	})
	return refs
}

// SharedBytes returns the number of bytes of [off, off+length) whose pages
// have more than one reference.
func (m *MemoryFile) SharedBytes(off, length uint64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	end := off + length
	var n uint64
	visit := func(s refSeg) bool {
		if s.start < end && s.end > off {
			n += min(s.end, end) - max(s.start, off)
		}
		return s.start < end
	}
	m.refs.DescendLessOrEqual(refSeg{start: off}, func(s refSeg) bool { visit(s); return false })
	m.refs.AscendRange(refSeg{start: off + 1}, refSeg{start: end}, visit)
	return n
}

// splitSegAt splits the segment spanning x, if any, so that one starts at x.
func (m *MemoryFile) splitSegAt(x uint64) {
	var hit refSeg
	found := false
	m.refs.DescendLessOrEqual(refSeg{start: x}, func(s refSeg) bool {
		hit, found = s, s.start < x && s.end > x
		return false
	})
	if found {
		m.refs.ReplaceOrInsert(refSeg{hit.start, x, hit.refs})
		m.refs.ReplaceOrInsert(refSeg{x, hit.end, hit.refs})
	}
}

// segsIn returns the segments starting in [off, end).
func (m *MemoryFile) segsIn(off, end uint64) []refSeg {
	var segs []refSeg
	m.refs.AscendRange(refSeg{start: off}, refSeg{start: end}, func(s refSeg) bool {
		segs = append(segs, s)
		return true
	})
	return segs
}

// joinSegs joins adjacent segments with equal counts from the one before
// off to the one after end, keeping the tree small.
func (m *MemoryFile) joinSegs(off, end uint64) {
	lo := off
	m.refs.DescendLessOrEqual(refSeg{start: off}, func(s refSeg) bool {
		if s.end >= off {
			lo = s.start
		}
		return false
	})
	var prev refSeg
	have := false
	var segs []refSeg
	m.refs.AscendRange(refSeg{start: lo}, refSeg{start: end + 1}, func(s refSeg) bool {
		segs = append(segs, s)
		return true
	})
	for _, s := range segs {
		if have && prev.end == s.start && prev.refs == s.refs {
			m.refs.Delete(s)
			prev.end = s.end
			m.refs.ReplaceOrInsert(prev)
			continue
		}
		prev, have = s, true
	}
}

// freeLocked returns [off, off+length) to the allocator.
//
// Preconditions: m.mu is held; the range is allocated.
func (m *MemoryFile) freeLocked(off, length uint64) {
	i := sort.Search(len(m.free), func(i int) bool { return m.free[i].start >= off })
	if (i < len(m.free) && m.free[i].start < off+length) || (i > 0 && m.free[i-1].end > off) {
		panic(fmt.Sprintf("pma: freeing [%#x, +%#x), which is partly free", off, length))
	}
	joinPrev := i > 0 && m.free[i-1].end == off
	joinNext := i < len(m.free) && m.free[i].start == off+length
	switch {
	case joinPrev && joinNext:
		m.free[i-1].end = m.free[i].end
		m.free = append(m.free[:i], m.free[i+1:]...)
	case joinPrev:
		m.free[i-1].end = off + length
	case joinNext:
		m.free[i].start = off
	default:
		m.free = append(m.free, extent{})
		copy(m.free[i+1:], m.free[i:])
		m.free[i] = extent{off, off + length}
	}
	m.inUse -= length
}

// Decommit returns the memory of [off, off+length) to the host without
// freeing the offsets: the range reads as zeroes afterwards.
func (m *MemoryFile) Decommit(off, length uint64) error {
	if length == 0 || off >= m.sizeNow() {
		return nil
	}
	return m.decommit(off, length)
}

func (m *MemoryFile) decommit(off, length uint64) error {
	m.runs.punched.Add(1)
	if err := unix.Fallocate(m.FD(), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(length)); err != nil {
		return fmt.Errorf("pma: punching a hole in the memory file: %w", err)
	}
	return nil
}

func (m *MemoryFile) sizeNow() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

// InUse returns the number of bytes currently allocated.
func (m *MemoryFile) InUse() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inUse
}

// Resident returns the number of bytes of the file that hold host memory
// (its st_blocks).
func (m *MemoryFile) Resident() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(m.FD(), &st); err != nil {
		return 0, fmt.Errorf("pma: fstat of the memory file: %w", err)
	}
	return uint64(st.Blocks) * 512, nil
}

// Shared reports whether more than one holder (see Share) holds the file.
func (m *MemoryFile) Shared() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.users > 1
}

// Close drops one holder of the file (see Share); the last closes it.
// Memory still mapped stays valid until it is unmapped; the rest is returned
// to the host at once.
//
// A Close beyond the holders returns EBADF.
func (m *MemoryFile) Close() error {
	m.mu.Lock()
	if m.users <= 0 {
		m.mu.Unlock()
		return fmt.Errorf("pma: memory file closed more often than shared: %w", unix.EBADF)
	}
	m.users--
	last := m.users == 0
	m.mu.Unlock()
	if !last {
		return nil
	}
	m.win.release()
	return m.f.Close()
}

// copyFrom copies n bytes of the file fd at srcOff to the memory file at
// dstOff, whose pages must be freshly allocated (zero). If srcIsMem, fd is
// this memory file and its holes are skipped: they read as zero, and
// copying them would commit memory for nothing. (Its runs of data are
// found through m.runs, so that copies of a few pages each out of one long
// run scan it once, not once each.)
func (m *MemoryFile) copyFrom(dstOff uint64, fd int, srcOff, n uint64, srcIsMem bool) error {
	if !srcIsMem {
		return copyRange(m.FD(), dstOff, fd, srcOff, n)
	}
	var err error
	dataRunsCached(fd, srcOff, n, &m.runs, func(off, length uint64) {
		if err == nil {
			err = copyRange(m.FD(), dstOff+(off-srcOff), fd, off, length)
		}
	})
	return err
}

// writeAt writes b to the memory file at off, whose pages must be
// allocated to the caller.
func (m *MemoryFile) writeAt(off uint64, b []byte) error {
	for len(b) > 0 {
		k, err := unix.Pwrite(m.FD(), b, int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("pma: writing to the memory file: %w", err)
		}
		if k == 0 {
			return fmt.Errorf("pma: writing to the memory file: no progress: %w", unix.EIO)
		}
		off, b = off+uint64(k), b[k:]
	}
	return nil
}

// copyRange copies n bytes from (srcFD, srcOff) to (dstFD, dstOff) in the
// kernel, falling back to pread and pwrite where copy_file_range(2) cannot
// serve (across file systems, say). Bytes past the end of the source read
// as zero (they are left as they are in the destination).
func copyRange(dstFD int, dstOff uint64, srcFD int, srcOff, n uint64) error {
	for n > 0 {
		so, do := int64(srcOff), int64(dstOff)
		k, err := unix.CopyFileRange(srcFD, &so, dstFD, &do, int(min(n, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return copyRangeSlow(dstFD, dstOff, srcFD, srcOff, n)
		}
		if k == 0 {
			return nil // end of the source
		}
		srcOff, dstOff, n = srcOff+uint64(k), dstOff+uint64(k), n-uint64(k)
	}
	return nil
}

func copyRangeSlow(dstFD int, dstOff uint64, srcFD int, srcOff, n uint64) error {
	buf := make([]byte, min(n, 256<<10))
	for n > 0 {
		k, err := unix.Pread(srcFD, buf[:min(n, uint64(len(buf)))], int64(srcOff))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("pma: reading a page to copy: %w", err)
		}
		if k == 0 {
			return nil
		}
		for w := 0; w < k; {
			j, err := unix.Pwrite(dstFD, buf[w:k], int64(dstOff)+int64(w))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("pma: writing a copied page: %w", err)
			}
			w += j
		}
		srcOff, dstOff, n = srcOff+uint64(k), dstOff+uint64(k), n-uint64(k)
	}
	return nil
}
