package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// heapName labels the heap's mapping, as in Linux's /proc/PID/maps.
const heapName = "[heap]"

// Brk sets the end of the heap (the program break) to addr and returns the
// new break, as brk(2) does: the heap is a private anonymous read-write
// mapping from BrkStart to addr rounded up to a page, grown or shrunk to
// match. Brk(0) returns the current break without changing anything.
//
// As on Linux, a break that cannot be set leaves the heap as it was and
// returns the current break; the error says why: ENOMEM if addr is below
// BrkStart or beyond the address space, growing would overlap another
// mapping (or come within 256 pages of one that grows down), the heap
// would exceed Limits.Data (checked when shrinking too, as Linux's
// check_data_rlimit is), or the new pages would exceed Limits.AS or
// Limits.Data; EAGAIN if after Mlockall(MCL_FUTURE) they would exceed
// Limits.Memlock (then they are faulted in as Mlock does). ErrClosed after
// Close.
func (as *AddressSpace) Brk(addr hostarch.Addr) (hostarch.Addr, error) {
	// Under MCL_FUTURE the new pages are populated after the lock is
	// released (the deferred calls run in reverse order), a chunk per lock
	// hold, as Linux's brk calls mm_populate after mmap_write_unlock.
	var pop hostarch.AddrRange
	defer func() {
		if pop.Length() > 0 {
			as.lockPopulate(pop, false)
		}
	}()
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return 0, errClosedMgmt
	}
	cur := as.brk
	if addr == 0 {
		return cur, nil
	}
	if addr < as.brkStart || uint64(addr) > as.size {
		return cur, fmt.Errorf("addrspace: brk %#x outside [%#x, %#x]: %w", addr, as.brkStart, as.size, unix.ENOMEM)
	}
	// Linux's check_data_rlimit, before shrinking too.
	if l := as.limits.Data; l != 0 && uint64(addr-as.brkStart) > l {
		return cur, fmt.Errorf("addrspace: brk %#x: a heap of %#x bytes exceeds the data limit %#x (RLIMIT_DATA): %w", addr, addr-as.brkStart, l, unix.ENOMEM)
	}
	oldEnd, newEnd := cur.MustRoundUp(), addr.MustRoundUp()
	switch {
	case newEnd < oldEnd:
		ar := hostarch.AddrRange{Start: newEnd, End: oldEnd}
		if err := as.unmapLocked(ar); err != nil {
			return cur, err
		}
	case newEnd > oldEnd:
		// Linux also keeps a guard page free above the new break.
		guard := min(uint64(newEnd)+hostarch.PageSize, as.size)
		if !as.isFree(hostarch.AddrRange{Start: oldEnd, End: hostarch.Addr(guard)}) || !as.clearOfStackGap(hostarch.Addr(guard)) {
			return cur, fmt.Errorf("addrspace: brk %#x would overlap a mapping: %w", addr, unix.ENOMEM)
		}
		_, err := as.mmapLocked(MmapOpts{
			Addr:    oldEnd,
			Length:  uint64(newEnd - oldEnd),
			Fixed:   true,
			Perms:   hostarch.ReadWrite,
			Private: true,
			Name:    heapName,
		}, uint64(newEnd-oldEnd))
		if err != nil {
			return cur, err
		}
		if as.defFlags&vmLocked != 0 {
			// Mlockall(MCL_FUTURE): Linux's brk populates the new pages.
			pop = hostarch.AddrRange{Start: oldEnd, End: newEnd}
		}
	}
	as.brk = addr
	return addr, nil
}

// SetBrkStart moves the start of the heap to addr, as exec does when it
// places the heap after a program's bss. It fails with EINVAL if addr is not
// page-aligned or not inside the address space, and with EBUSY if the heap
// is not empty (Brk has grown it).
func (as *AddressSpace) SetBrkStart(addr hostarch.Addr) error {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	if !addr.IsPageAligned() || addr < MinAddr || uint64(addr) >= as.size {
		return fmt.Errorf("addrspace: brk start %#x is not a page-aligned address inside the address space: %w", addr, unix.EINVAL)
	}
	if as.brk != as.brkStart {
		return fmt.Errorf("addrspace: the heap is not empty: %w", unix.EBUSY)
	}
	as.brkStart, as.brk = addr, addr
	return nil
}
