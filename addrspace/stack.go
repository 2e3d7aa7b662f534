package addrspace

import (
	"github.com/mmsim/mmsim/hostarch"
)

// stackGuardGap is Linux's stack_guard_gap (256 pages): a mapping that
// grows down (MmapOpts.GrowsDown) never grows to within this many bytes
// of the accessible mapping below it, and Mmap without a fixed address
// leaves this much room below such a mapping.
const stackGuardGap = 256 * hostarch.PageSize

// startGap is Linux's vm_start_gap: the lowest address a new mapping placed
// below v may end at.
func (v *vma) startGap() hostarch.Addr {
	if v.flags&vmGrowsDown == 0 {
		return v.start
	}
	if v.start < stackGuardGap {
		return 0
	}
	return v.start - stackGuardGap
}

// growStackLocked grows the mapping above addr down to addr's page, as
// Linux's fault handler does with expand_stack when an access falls below
// a mapping that grows down (MAP_GROWSDOWN), and reports whether it did.
// It is the one place stack growth happens: the copy paths' fault handler
// (resolveLocked) calls it for any address no mapping contains, and so may
// any other fault handler.
//
// As Linux's expand_downwards and acct_stack_growth decide, it does not
// grow the mapping (and the access faults) if the next mapping above addr
// does not grow down; if addr lies below MinAddr (Linux's mmap_min_addr);
// if the mapping below addr is accessible, does not grow down, and ends
// less than stackGuardGap below addr's page; if the growth would take the
// mapping below address 0 of its pgoff; or if it would exceed Limits.AS,
// Limits.Stack (the size of the VMA that grows) or, for a locked mapping,
// Limits.Memlock. Growth of a locked mapping does not fault the new pages
// in (nor does Linux's).
//
// It returns false, changing nothing, if a mapping contains addr already.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) growStackLocked(addr hostarch.Addr) bool {
	if uint64(addr) >= as.size || as.find(addr) != nil {
		return false
	}
	var v *vma
	as.vmas.AscendGreaterOrEqual(&vma{start: addr}, func(n *vma) bool {
		v = n
		return false
	})
	if v == nil || v.flags&vmGrowsDown == 0 || v.start <= addr {
		return false
	}
	start := addr.RoundDown()
	if start < MinAddr {
		return false // EPERM in Linux
	}
	var prev *vma
	as.vmas.DescendLessOrEqual(&vma{start: addr}, func(p *vma) bool {
		prev = p
		return false
	})
	if prev != nil && prev.flags&vmGrowsDown == 0 && prev.perms.Any() && uint64(start-prev.end) < stackGuardGap {
		return false
	}
	grow := uint64(v.start - start)
	if grow > v.pgoff {
		return false
	}
	_, end := as.mappingAt(v.start)
	if as.mayExpandLocked("stack growth", false, grow) != nil {
		return false
	}
	if l := as.limits.Stack; l != 0 && uint64(end-start) > l {
		return false
	}
	if !as.mlockFutureOK(v.flags&vmLocked != 0, grow) {
		return false
	}
	as.delete(v)
	v.start = start
	v.pgoff -= grow
	as.insert(v)
	as.anonFault(v)
	return true
}

// clearOfStackGap reports whether a new mapping ending at end stays clear
// of the guard gap of the mapping above it (Linux's get_unmapped_area
// checks a hint against vm_start_gap of the next mapping).
//
// Preconditions: as.mu is held.
func (as *AddressSpace) clearOfStackGap(end hostarch.Addr) bool {
	var next *vma
	as.vmas.AscendGreaterOrEqual(&vma{start: end}, func(v *vma) bool {
		next = v
		return false
	})
	return next == nil || end <= next.startGap()
}
