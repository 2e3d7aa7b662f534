package addrspace

import (
	"errors"
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// lockMask is Linux's VM_LOCKED_MASK.
const lockMask = vmLocked | vmLockOnFault

// lockPageRange is how mlock(2) and munlock(2) take their range: addr
// rounded down to a page, and length plus addr's offset in it rounded up,
// wrapping as Linux's PAGE_ALIGN does in unsigned arithmetic.
func lockPageRange(addr hostarch.Addr, length uint64) (hostarch.Addr, uint64) {
	length = (length + addr.PageOffset() + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
	return addr.RoundDown(), length
}

// Mlock locks the pages of [addr, addr+length) in memory, as mlock(2)
// does, or mlock2(2) with MLOCK_ONFAULT if onFault: the mappings are marked
// locked (splitting them at the range's edges; a locked mapping does not
// merge with an unlocked one) and, unless onFault, every page is faulted in
// and allocated on the host before Mlock returns (for writing where the
// mapping is private and writable, breaking copy-on-write), as Linux
// populates them. With onFault,
// pages are locked as they are first touched. Locked pages stay resident:
// Madvise(MADV_DONTNEED) on them fails. Pages already locked stay locked
// (onFault replaces the mode). Locks are not inherited by Clone.
//
// As Linux does, addr need not be aligned: the range is widened to whole
// pages. A zero length succeeds.
//
// Errors (wrapping a unix.Errno): ENOMEM if the locked pages would exceed
// Limits.Memlock (pages of the range already locked are not counted
// again), if addr is not mapped (nothing changes), if part of the range is
// not mapped or lies beyond the address space (the mapped parts before the
// hole stay locked, unpopulated, as on Linux), or if the splits would
// exceed MaxMapCount or the host budget (nothing changes); ENOMEM too if a
// page cannot be faulted in: a PROT_NONE mapping, or a file page past the
// file's end (the range stays locked, populated up to that mapping, as
// Linux's mlock reports its populate's EFAULT); EAGAIN if the host could not
// back a page (Linux's ENOMEM from populating); EINVAL if the range wraps
// around the end of the address space's type; ErrClosed after Close. Never
// EPERM (see Limits.Memlock).
func (as *AddressSpace) Mlock(addr hostarch.Addr, length uint64, onFault bool) error {
	flags := vmLocked
	if onFault {
		flags |= vmLockOnFault
	}
	start, length := lockPageRange(addr, length)
	as.mu.Lock()
	if as.closed.Load() {
		as.mu.Unlock()
		return errClosedMgmt
	}
	if lim := as.limits.Memlock; lim != 0 {
		limPages := lim >> hostarch.PageShift
		locked := as.usageLocked().locked>>hostarch.PageShift + length>>hostarch.PageShift
		if locked > limPages {
			// Linux then discounts the pages of the range locked already.
			locked -= as.lockedIn(start, length) >> hostarch.PageShift
		}
		if locked > limPages {
			as.mu.Unlock()
			return fmt.Errorf("addrspace: mlock of [%#x, +%#x) would exceed the lock limit %#x (RLIMIT_MEMLOCK): %w", start, length, lim, unix.ENOMEM)
		}
	}
	err := as.applyLockLocked("mlock", start, length, flags)
	as.mu.Unlock()
	if err != nil || length == 0 {
		return err
	}
	return as.lockPopulate(hostarch.AddrRange{Start: start, End: start + hostarch.Addr(length)}, true)
}

// Munlock unlocks the pages of [addr, addr+length), as munlock(2) does:
// the mappings lose their lock (splitting at the range's edges, merging
// with unlocked neighbours). addr need not be aligned, as for Mlock; a
// zero length succeeds.
//
// Errors (wrapping a unix.Errno): ENOMEM if addr is not mapped (nothing
// changes), if part of the range is not mapped or lies beyond the address
// space (the mapped parts before the hole are unlocked, as on Linux), or if
// the splits would exceed MaxMapCount or the host budget (nothing changes);
// EINVAL if the range wraps; ErrClosed after Close.
func (as *AddressSpace) Munlock(addr hostarch.Addr, length uint64) error {
	start, length := lockPageRange(addr, length)
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	return as.applyLockLocked("munlock", start, length, 0)
}

// Mlockall locks the address space's mappings, as mlockall(2) does. flags
// is a combination of unix.MCL_CURRENT (lock every mapping now, faulting
// its pages in as Mlock does), unix.MCL_FUTURE (lock every mapping made
// later by Mmap or Brk, whose pages are then faulted in as they are made;
// stack growth and Mremap growth of a locked mapping stay locked) and
// unix.MCL_ONFAULT (with either: lock pages as they are first touched,
// rather than faulting them in). Each call replaces the MCL_FUTURE setting:
// without MCL_FUTURE, later mappings are not locked. Clone does not
// inherit the locks or MCL_FUTURE.
//
// Errors (wrapping a unix.Errno): EINVAL for flags of 0, unknown bits, or
// MCL_ONFAULT alone; ENOMEM with MCL_CURRENT if the space's mappings add up
// to more than Limits.Memlock (Linux compares them all, locked or not, with
// the limit); ErrClosed after Close. Never EPERM (see Limits.Memlock).
func (as *AddressSpace) Mlockall(flags int) error {
	if flags == 0 || flags&^(unix.MCL_CURRENT|unix.MCL_FUTURE|unix.MCL_ONFAULT) != 0 || flags == unix.MCL_ONFAULT {
		return fmt.Errorf("addrspace: mlockall flags %#x: %w", flags, unix.EINVAL)
	}
	as.mu.Lock()
	if as.closed.Load() {
		as.mu.Unlock()
		return errClosedMgmt
	}
	if lim := as.limits.Memlock; flags&unix.MCL_CURRENT != 0 && lim != 0 && pagesOver(as.usageLocked().total, 0, lim) {
		as.mu.Unlock()
		return fmt.Errorf("addrspace: mlockall: the mappings exceed the lock limit %#x (RLIMIT_MEMLOCK): %w", lim, unix.ENOMEM)
	}
	as.lockAllLocked(flags)
	as.mu.Unlock()
	if flags&unix.MCL_CURRENT != 0 {
		as.lockPopulate(hostarch.AddrRange{Start: 0, End: hostarch.Addr(as.size)}, false)
	}
	return nil
}

// Munlockall unlocks every mapping and clears MCL_FUTURE, as munlockall(2)
// does. Errors: ErrClosed after Close.
func (as *AddressSpace) Munlockall() error {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	as.lockAllLocked(0)
	return nil
}

// lockAllLocked is Linux's apply_mlockall_flags.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) lockAllLocked(flags int) {
	as.defFlags &^= lockMask
	var add vmFlags
	if flags&unix.MCL_FUTURE != 0 {
		as.defFlags |= vmLocked
		if flags&unix.MCL_ONFAULT != 0 {
			as.defFlags |= vmLockOnFault
		}
		if flags&unix.MCL_CURRENT == 0 {
			return
		}
	}
	if flags&unix.MCL_CURRENT != 0 {
		add = vmLocked
		if flags&unix.MCL_ONFAULT != 0 {
			add |= vmLockOnFault
		}
	}
	changed := false
	as.vmas.Ascend(func(v *vma) bool {
		if nf := v.flags&^lockMask | add; nf != v.flags {
			v.flags = nf
			changed = true
		}
		return true
	})
	if changed {
		// Whole mappings change: nothing splits, neighbours may merge.
		as.mergeAround(hostarch.AddrRange{Start: 0, End: hostarch.Addr(as.size)})
		as.settle()
	}
}

// lockedIn is Linux's count_mm_mlocked_page_nr, in bytes: the locked bytes
// of [start, start+length) (to the end of the space if that wraps).
//
// Preconditions: as.mu is held.
func (as *AddressSpace) lockedIn(start hostarch.Addr, length uint64) uint64 {
	end := uint64(start) + length
	if end < uint64(start) || end > as.size {
		end = as.size
	}
	if uint64(start) >= end {
		return 0
	}
	ar := hostarch.AddrRange{Start: start, End: hostarch.Addr(end)}
	var n uint64
	as.visit(ar, func(v *vma) bool {
		if v.flags&vmLocked != 0 {
			n += uint64(v.ar().Intersect(ar).Length())
		}
		return true
	})
	return n
}

// applyLockLocked is Linux's apply_vma_lock_flags: it sets the lock bits of
// every mapping in [start, start+length) to flags, splitting at the edges.
//
// Preconditions: as.mu is held; start and length are page-aligned.
func (as *AddressSpace) applyLockLocked(op string, start hostarch.Addr, length uint64, flags vmFlags) error {
	end := uint64(start) + length
	if end < uint64(start) {
		return fmt.Errorf("addrspace: %s of [%#x, +%#x) wraps: %w", op, start, length, unix.EINVAL)
	}
	if length == 0 {
		return nil
	}
	if uint64(start) >= as.size || as.find(start) == nil {
		return fmt.Errorf("addrspace: %s: %#x is not mapped: %w", op, start, unix.ENOMEM)
	}
	// The end of the address space is a hole.
	ar := hostarch.AddrRange{Start: start, End: hostarch.Addr(min(end, as.size))}
	if err := as.admit(as.splits(ar, func(v *vma) bool { return v.flags&lockMask != flags })); err != nil {
		return err
	}
	defer as.settle()
	defer as.mergeAround(ar)
	cur := start
	for _, v := range as.overlapping(ar) {
		if v.start > cur {
			return fmt.Errorf("addrspace: %s: %#x is not mapped: %w", op, cur, unix.ENOMEM)
		}
		r := v.ar().Intersect(ar)
		if v.flags&lockMask != flags {
			as.splitAt(r.Start)
			as.splitAt(r.End)
			p := as.find(r.Start)
			p.flags = p.flags&^lockMask | flags
		}
		cur = r.End
	}
	if uint64(cur) < end {
		return fmt.Errorf("addrspace: %s: %#x is not mapped: %w", op, cur, unix.ENOMEM)
	}
	return nil
}

// lockPopulate faults in and has the host allocate the pages of the
// mappings in ar that are locked (not on fault), as Linux's __mm_populate
// does after mlock, taking the lock for a few MiB at a time. A page that
// cannot be faulted in (a PROT_NONE mapping, a file page past its file's
// end) ends the mapping's population; then, if strict (mlock), the error
// is returned as mlock returns it (ENOMEM, or EAGAIN where the host could
// not back the page), and otherwise (mmap, mlockall, brk, mremap) the next
// mapping continues, as Linux's mm_populate ignores such errors.
func (as *AddressSpace) lockPopulate(ar hostarch.AddrRange, strict bool) error {
	const chunk = 4 << 20
	for cur := ar.Start; cur < ar.End; {
		as.mu.Lock()
		as.populateHolds++
		if as.closed.Load() {
			as.mu.Unlock()
			return errClosedMgmt
		}
		v := as.find(cur)
		if v == nil {
			// Skip the hole (the space may be huge and sparse).
			next, ok := as.nextStart(cur)
			if !ok || next >= ar.End {
				as.mu.Unlock()
				return nil
			}
			cur = next
			v = as.find(cur)
		}
		end := min(cur+chunk, ar.End)
		var err error
		if v.flags&lockMask != vmLocked || (!strict && !v.perms.Any()) {
			// Nothing to populate in this mapping (not locked, locked on
			// fault, or PROT_NONE where that is no error): skip it whole,
			// however large it is.
			end = min(v.end, ar.End)
		} else {
			err = as.lockPopulateLocked(hostarch.AddrRange{Start: cur, End: end}, strict)
		}
		as.mu.Unlock()
		if err != nil {
			return err
		}
		cur = end
	}
	return nil
}

// lockPopulateLocked is lockPopulate under the lock.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) lockPopulateLocked(ar hostarch.AddrRange, strict bool) error {
	// Holes (unmapped by another goroutine since Mlock marked the range)
	// are skipped, as Linux's __mm_populate skips them.
	for _, v := range as.overlapping(ar) {
		r := v.ar().Intersect(ar)
		if v.flags&lockMask != vmLocked {
			continue
		}
		if !v.perms.Any() {
			// Linux's populate cannot touch a PROT_NONE mapping (no
			// FOLL_FORCE without access): EFAULT, which mlock turns into
			// ENOMEM.
			if strict {
				return fmt.Errorf("addrspace: mlock: %#x is PROT_NONE and cannot be faulted in: %w", r.Start, unix.ENOMEM)
			}
			continue
		}
		// Linux populates for writing only where the first write would
		// copy (private and writable), and reads the rest.
		if err := as.faultInLocked(r, v.private && v.perms.Write); err != nil && strict {
			return err
		}
	}
	return nil
}

// faultInLocked faults the pages of r, which lies in one VMA, in for an
// access (a write if write) up to the first that fails, has the host
// allocate them, and returns the error mlock returns for the page that
// failed: ENOMEM, or EAGAIN where the host could not back it.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) faultInLocked(r hostarch.AddrRange, write bool) error {
	at := hostarch.Read
	if write {
		at = hostarch.Write
	}
	var err error
	end := uint64(r.End)
	for cur := uint64(r.Start); cur < end; {
		ok := as.pt.AccessibleUpTo(cur, end, write, false)
		if ok >= end {
			break
		}
		if ferr := as.resolveLocked(hostarch.Addr(ok), unix.SIGSEGV, at, false); ferr != nil {
			err = populateError(ferr)
			end = ok
			break
		}
		next := as.pt.AccessibleUpTo(ok, end, write, false)
		if next <= ok {
			err = fmt.Errorf("addrspace: mlock: the host could not back %#x: %w", ok, unix.EAGAIN)
			end = ok
			break
		}
		cur = next
	}
	as.pt.Commit(uint64(r.Start), end, write)
	return err
}

// populateError is Linux's __mlock_posix_error_return applied to a fault
// while populating: EAGAIN where the host could not back the page (the
// kernel's ENOMEM), ENOMEM for the rest (the kernel's EFAULT).
func populateError(ferr error) error {
	var fe *FaultError
	if errors.As(ferr, &fe) && fe.Reason == FaultHostMemory {
		return fmt.Errorf("addrspace: mlock: %v: %w", ferr, unix.EAGAIN)
	}
	return fmt.Errorf("addrspace: mlock: cannot fault in: %v: %w", ferr, unix.ENOMEM)
}

// mprotectPopulateLocked is the populate of Linux's mprotect_fixup: a
// locked private mapping that becomes writable is faulted in for writing
// at once (copy-on-write broken: private file pages copied), so that its
// pages stay resident as they will be written.
//
// Preconditions: as.mu is held; v is in the tree with its new permissions.
func (as *AddressSpace) mprotectPopulateLocked(v *vma, old hostarch.AccessType) {
	if v.private && !old.Write && v.perms.Write && v.flags&lockMask == vmLocked {
		as.faultInLocked(v.ar(), true)
	}
}
