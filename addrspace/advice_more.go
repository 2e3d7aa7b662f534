package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// This file holds the advice Madvise gained with the kernel-extras issue:
// MADV_FREE and MADV_REMOVE, which discard pages, and the advice that Linux
// records in a VMA's vm_flags (MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK,
// MADV_KEEPONFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE).

// flagAdvice returns the vma.flags bits advice sets and clears, and whether
// advice is one that only changes them.
func flagAdvice(advice int) (set, clear vmFlags, ok bool) {
	switch advice {
	case unix.MADV_DONTFORK:
		return vmDontCopy, 0, true
	case unix.MADV_DOFORK:
		return 0, vmDontCopy, true
	case unix.MADV_WIPEONFORK:
		return vmWipeOnFork, 0, true
	case unix.MADV_KEEPONFORK:
		return 0, vmWipeOnFork, true
	case unix.MADV_HUGEPAGE:
		return vmHugePage, vmNoHugePage, true
	case unix.MADV_NOHUGEPAGE:
		return vmNoHugePage, vmHugePage, true
	}
	return 0, 0, false
}

// moreAdvice reports whether advice is handled in this file.
func moreAdvice(advice int) bool {
	_, _, ok := flagAdvice(advice)
	return ok || advice == unix.MADV_FREE || advice == unix.MADV_REMOVE
}

// adviseMore applies advice (one moreAdvice accepts) to the mapped parts of
// ar in address order, as Linux's madvise_walk_vmas does: it stops at the
// first mapping that refuses the advice (the mappings before it keep the
// advice), and returns ENOMEM for a hole only once every mapped part is
// advised.
//
// Preconditions: as.mu is held; ar lies inside the space.
func (as *AddressSpace) adviseMore(ar hostarch.AddrRange, advice int) error {
	switch advice {
	case unix.MADV_FREE:
		return as.forEachMapped("madvise", ar, func(v *vma, r hostarch.AddrRange) error {
			// Linux: madvise_dontneed_free_valid_vma (VM_LOCKED), then
			// madvise_free_single_vma (anonymous memory only).
			if v.flags&vmLocked != 0 {
				return fmt.Errorf("addrspace: madvise(MADV_FREE) of locked pages at %#x: %w", r.Start, unix.EINVAL)
			}
			if v.file != nil || !v.private {
				return fmt.Errorf("addrspace: madvise(MADV_FREE) at %#x: not private anonymous memory: %w", r.Start, unix.EINVAL)
			}
			return as.dontNeed(v, r)
		})
	case unix.MADV_REMOVE:
		return as.forEachMapped("madvise", ar, func(v *vma, r hostarch.AddrRange) error {
			// Linux's madvise_remove, in its order.
			if v.flags&vmLocked != 0 {
				return fmt.Errorf("addrspace: madvise(MADV_REMOVE) of locked pages at %#x: %w", r.Start, unix.EINVAL)
			}
			if v.file == nil {
				return fmt.Errorf("addrspace: madvise(MADV_REMOVE) at %#x: private anonymous memory has no backing to punch: %w", r.Start, unix.EINVAL)
			}
			// vma_is_shared_maywrite: VM_SHARED and VM_MAYWRITE, whatever
			// the mapping's current protection.
			if v.private || !v.maxPerms.Write {
				return fmt.Errorf("addrspace: madvise(MADV_REMOVE) at %#x needs a shared mapping that may be made writable: %w", r.Start, unix.EACCES)
			}
			const mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
			if err := unix.Fallocate(v.file.fd(), mode, int64(v.offAt(r.Start)), int64(r.Length())); err != nil {
				return fmt.Errorf("addrspace: madvise(MADV_REMOVE) of %v: punching the backing: %w", r, err)
			}
			return nil
		})
	}
	set, clear, _ := flagAdvice(advice)
	newFlags := func(v *vma) vmFlags { return v.flags&^clear | set }
	// The flags split mappings as Linux's vm_flags do. Linux turns a
	// failed split (max_map_count) into EAGAIN.
	if err := as.admit(as.splits(ar, func(v *vma) bool { return newFlags(v) != v.flags })); err != nil {
		return fmt.Errorf("addrspace: madvise: %v: %w", err, unix.EAGAIN)
	}
	defer as.settle()
	defer as.mergeAround(ar)
	return as.forEachMapped("madvise", ar, func(v *vma, r hostarch.AddrRange) error {
		if advice == unix.MADV_WIPEONFORK && (v.file != nil || !v.private) {
			return fmt.Errorf("addrspace: madvise(MADV_WIPEONFORK) at %#x: not private anonymous memory: %w", r.Start, unix.EINVAL)
		}
		if nf := newFlags(v); nf != v.flags {
			as.splitAt(r.Start)
			as.splitAt(r.End)
			as.find(r.Start).flags = nf
		}
		return nil
	})
}
