package pma

import (
	"bytes"
	"fmt"
	"sync"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// A memWindow maps a memory file whole (MAP_SHARED, read-write, no view's
// protections), so that Reset can compare and copy pages of the file with
// memory operations instead of a system call per page. Nothing simulated
// reaches it. It is made on first use, grows by remapping, and costs one
// host mapping (committed to the process-wide account) until the file is
// closed.
type memWindow struct {
	mu   sync.RWMutex
	base uintptr
	size uint64
}

// minWindowBytes is the smallest window: host address space only.
const minWindowBytes = 64 << 20

// withWindow calls f with the window's base, where the file's offsets
// [0, end) are mapped. f must touch only pages that are allocated (the
// file's size covers them).
//
// Errors are the host's refusal to map the window.
func (m *MemoryFile) withWindow(end uint64, f func(base uintptr)) error {
	w := &m.win
	w.mu.RLock()
	if w.base != 0 && end <= w.size {
		f(w.base)
		w.mu.RUnlock()
		return nil
	}
	w.mu.RUnlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.base == 0 || end > w.size {
		n := (max(2*end, minWindowBytes) + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
		addr, err := mmap(0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE, m.FD(), 0)
		if err != nil {
			return fmt.Errorf("pma: mapping the memory file: %w", err)
		}
		if w.base != 0 {
			unix.Syscall(unix.SYS_MUNMAP, w.base, uintptr(w.size), 0)
		} else {
			acct.adjust(1, true)
		}
		w.base, w.size = addr, n
	}
	f(w.base)
	return nil
}

// release unmaps the window.
func (w *memWindow) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.base != 0 {
		unix.Syscall(unix.SYS_MUNMAP, w.base, uintptr(w.size), 0)
		acct.adjust(-1, true)
		w.base, w.size = 0, 0
	}
}

// windowPage returns the page at offset off of the window at base.
func windowPage(base uintptr, off uint64) []byte {
	// The window is outside the Go heap and never moves while in use.
	addr := base + uintptr(off)
	return unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))), hostarch.PageSize)
}

var zeroPage [hostarch.PageSize]byte

// restorePage makes the page at dst equal to the page at src (zeroes if
// src is negative), both offsets in the window at base, and reports
// whether it differed.
func restorePage(base uintptr, dst uint64, src int64) bool {
	d := windowPage(base, dst)
	s := zeroPage[:]
	if src >= 0 {
		s = windowPage(base, uint64(src))
	}
	if bytes.Equal(d, s) {
		return false
	}
	copy(d, s)
	return true
}
