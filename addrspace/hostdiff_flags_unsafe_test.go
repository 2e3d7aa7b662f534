package addrspace

import (
	"time"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// The host system calls of hostdiff_flags_test.go that take pointers.

// hostMincore is mincore(2) of [addr, addr+length) on the host into vec.
//
// Preconditions: len(vec) covers the range's pages and is not 0.
func hostMincore(addr, length uintptr, vec []byte) unix.Errno {
	_, _, e := unix.Syscall(unix.SYS_MINCORE, addr, length, uintptr(unsafe.Pointer(&vec[0])))
	return e
}

// futexTimespec returns the absolute CLOCK_MONOTONIC time d from now, as
// FUTEX_WAIT_BITSET takes its timeout.
func futexTimespec(d time.Duration) unix.Timespec {
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		panic(err)
	}
	return unix.NsecToTimespec(now.Nano() + d.Nanoseconds())
}

// futexWait is futex(FUTEX_WAIT_BITSET) on the host mirror of addr, for at
// most d.
func (h *hostRange) futexWait(addr hostarch.Addr, val, bitset uint32, d time.Duration) unix.Errno {
	ts := futexTimespec(d)
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, h.base+uintptr(addr), futexWaitBitsetOp, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, uintptr(bitset))
	return e
}
