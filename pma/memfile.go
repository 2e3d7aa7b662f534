package pma

import (
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// A MemoryFile is a sparse anonymous file (memfd_create(2)) whose pages back
// anonymous memory. Host memory is committed by the kernel when a page is
// first touched through a mapping and returned to the host by Free
// (fallocate(2) FALLOC_FL_PUNCH_HOLE).
//
// Offsets handed out by Allocate are page-aligned and never overlap an
// allocation that has not been freed.
//
// Concurrency: all methods are safe for concurrent use.
type MemoryFile struct {
	f *os.File

	mu sync.Mutex
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
		free:  []extent{{0, maxFileSize}},
		limit: maxFileSize,
	}, nil
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
		newSize := max(end, min(2*m.size, maxFileSize))
		if err := m.f.Truncate(int64(newSize)); err != nil {
			return 0, fmt.Errorf("pma: growing memory file to %#x bytes: %w", newSize, unix.ENOMEM)
		}
		m.size = newSize
	}
	m.take(i, off, off+length)
	m.inUse += length
	return off, nil
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

// Free returns [off, off+length) to the allocator and its memory to the host
// (the range reads as zeroes if it is allocated again).
//
// Preconditions: the range was allocated and not yet freed, and is
// page-aligned.
func (m *MemoryFile) Free(off, length uint64) error {
	if length == 0 {
		return nil
	}
	err := m.Decommit(off, length)
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.Search(len(m.free), func(i int) bool { return m.free[i].start >= off })
	if (i < len(m.free) && m.free[i].start < off+length) || (i > 0 && m.free[i-1].end > off) {
		panic(fmt.Sprintf("pma: Free(%#x, %#x) of a range that is partly free", off, length))
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
	return err
}

// Decommit returns the memory of [off, off+length) to the host without
// freeing the offsets: the range reads as zeroes afterwards.
func (m *MemoryFile) Decommit(off, length uint64) error {
	if length == 0 {
		return nil
	}
	if off >= m.sizeNow() {
		return nil
	}
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

// Close closes the memory file. Memory still mapped stays valid until it is
// unmapped; the rest is returned to the host at once.
func (m *MemoryFile) Close() error {
	return m.f.Close()
}
