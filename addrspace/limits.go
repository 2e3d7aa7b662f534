package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// Limits are the resource limits of an address space, the memory rlimits
// of a Linux process (setrlimit(2)), in bytes. 0 means unlimited
// (RLIM_INFINITY). As on Linux, AS, Data and Memlock count whole pages: a
// limit is rounded down to a page (so a Memlock below the page size allows
// no locked page at all). Clone gives the new space the same limits, as
// fork does.
//
// Cost: the usage a limit is checked against (Linux's total_vm, data_vm,
// locked_vm) is added up from the mappings when a call needs it, so a call
// that a set limit applies to walks the mappings (about 4 µs for 1,000 on
// the development machine); with no limit set, nothing is counted.
type Limits struct {
	// AS is RLIMIT_AS: the most bytes of mappings the space may hold.
	// Mmap, Mremap growth, Brk and stack growth (MmapOpts.GrowsDown) that
	// would exceed it fail with ENOMEM (a stack access faults).
	AS uint64

	// Data is RLIMIT_DATA, counted as Linux 4.7 and later count it: the
	// private writable mappings that do not grow down (is_data_mapping),
	// the heap that Brk manages among them. Mmap, Mremap growth, Brk and
	// Mprotect making private memory writable fail with ENOMEM where they
	// would exceed it; Brk also fails where the heap alone would.
	Data uint64

	// Stack is RLIMIT_STACK: the most bytes a MmapOpts.GrowsDown mapping
	// may grow to, counted as Linux's acct_stack_growth counts them: the
	// size of the part that grows (the lowest run of pages with the same
	// permissions and attributes, one VMA to Linux). An access that would
	// grow it further faults.
	Stack uint64

	// Memlock is RLIMIT_MEMLOCK: the most bytes that may be locked (Mlock,
	// Mlockall, MmapOpts.Locked, mappings made under MCL_FUTURE). Mlock and
	// Mlockall(MCL_CURRENT) fail with ENOMEM beyond it; Mmap, Brk and
	// Mremap growth of a locked mapping fail with EAGAIN, as Linux's
	// mlock_future_ok makes them; a locked stack stops growing (the access
	// faults). Linux refuses every lock with EPERM when
	// RLIMIT_MEMLOCK is 0 (without CAP_IPC_LOCK); here 0 is unlimited, so
	// no call returns EPERM: a Memlock below the page size refuses every
	// lock with the errors above instead.
	Memlock uint64
}

// Limits returns the address space's resource limits (the zero Limits
// after Close).
func (as *AddressSpace) Limits() Limits {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return Limits{}
	}
	return as.limits
}

// SetLimits replaces the address space's resource limits, as setrlimit(2)
// does for RLIMIT_AS, RLIMIT_DATA, RLIMIT_STACK and RLIMIT_MEMLOCK. As on
// Linux, a limit may be set below what the space uses already: nothing is
// unmapped or unlocked, and only later calls that would use more fail.
//
// Errors: ErrClosed after Close.
func (as *AddressSpace) SetLimits(l Limits) error {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	as.limits = l
	return nil
}

// isData reports whether v counts against RLIMIT_DATA: Linux's
// is_data_mapping (VM_WRITE without VM_SHARED or VM_STACK).
func (v *vma) isData() bool {
	return v.private && v.perms.Write && v.flags&vmGrowsDown == 0
}

// pagesOver reports whether used+add bytes, in whole pages, exceed limit
// (0: unlimited), as Linux compares page counts against rlimit >>
// PAGE_SHIFT.
func pagesOver(used, add, limit uint64) bool {
	if limit == 0 {
		return false
	}
	return (used+add)>>hostarch.PageShift > limit>>hostarch.PageShift
}

// usage is what the address space's mappings count against its limits, in
// bytes: Linux's total_vm, data_vm and locked_vm.
type usage struct {
	total, data, locked uint64
}

// usageLocked adds up the mappings. It walks every VMA, so callers skip it
// where no limit applies.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) usageLocked() usage {
	var u usage
	as.vmas.Ascend(func(v *vma) bool {
		n := v.length()
		u.total += n
		if v.isData() {
			u.data += n
		}
		if v.flags&vmLocked != 0 {
			u.locked += n
		}
		return true
	})
	return u
}

// mayExpandLocked is Linux's may_expand_vm: it returns an error wrapping
// ENOMEM if add more bytes of mappings, counting against Data if data, would
// exceed AS or Data.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) mayExpandLocked(op string, data bool, add uint64) error {
	l := as.limits
	if l.AS == 0 && (l.Data == 0 || !data) {
		return nil
	}
	u := as.usageLocked()
	if pagesOver(u.total, add, l.AS) {
		return fmt.Errorf("addrspace: %s: %#x more bytes of mappings would exceed the address-space limit %#x (RLIMIT_AS): %w", op, add, l.AS, unix.ENOMEM)
	}
	if data && pagesOver(u.data, add, l.Data) {
		return fmt.Errorf("addrspace: %s: %#x more bytes of data would exceed the data limit %#x (RLIMIT_DATA): %w", op, add, l.Data, unix.ENOMEM)
	}
	return nil
}

// mlockFutureOK is Linux's mlock_future_ok: whether add more locked bytes
// (if locked) stay within Memlock.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) mlockFutureOK(locked bool, add uint64) bool {
	if !locked || as.limits.Memlock == 0 {
		return true
	}
	return !pagesOver(as.usageLocked().locked, add, as.limits.Memlock)
}

// mappedIn returns the number of mapped bytes in ar.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) mappedIn(ar hostarch.AddrRange) uint64 {
	var n uint64
	as.visit(ar, func(v *vma) bool {
		n += uint64(v.ar().Intersect(ar).Length())
		return true
	})
	return n
}

// checkExpandLocked applies AS and Data to a new mapping v (not yet in the
// tree), which replaces whatever is mapped in its range if fixed: ENOMEM
// beyond them for the pages v adds over those it replaces, as Linux's
// mmap_region counts them.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) checkExpandLocked(op string, v *vma, fixed bool) error {
	if as.limits.AS == 0 && as.limits.Data == 0 {
		return nil
	}
	add := v.length()
	if fixed {
		add -= as.mappedIn(v.ar())
	}
	return as.mayExpandLocked(op, v.isData(), add)
}

// mprotectDataLocked is the check of Linux's mprotect_fixup: making n bytes
// of v writable that were not data fails with ENOMEM where they would
// exceed Data (AS fails or passes alike before and after, so Linux's
// comparison leaves only Data).
//
// Preconditions: as.mu is held.
func (as *AddressSpace) mprotectDataLocked(v *vma, perms hostarch.AccessType, n uint64) error {
	if !perms.Write || as.limits.Data == 0 {
		return nil
	}
	nv := *v
	nv.perms = perms
	if !nv.isData() || v.isData() {
		return nil
	}
	if pagesOver(as.usageLocked().data, n, as.limits.Data) {
		return fmt.Errorf("addrspace: mprotect: %#x more bytes of data would exceed the data limit %#x (RLIMIT_DATA): %w", n, as.limits.Data, unix.ENOMEM)
	}
	return nil
}
