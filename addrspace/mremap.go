package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// Mremap grows, shrinks or moves the mapping at [old, old+oldLen) to
// newLen bytes and returns its address, as mremap(2) does (Linux 6.17 and
// later). flags is a combination of unix.MREMAP_MAYMOVE, unix.MREMAP_FIXED
// and unix.MREMAP_DONTUNMAP; newAddr is used only with MREMAP_FIXED (the
// target) and MREMAP_DONTUNMAP (a hint, as Mmap's Addr). Lengths are
// rounded up to whole pages (a length within a page of 2^64 rounds to 0, as
// Linux's PAGE_ALIGN wraps). A mapping here is what Mappings lists: the
// unit Linux keeps as one VMA.
//
//   - The same length without MREMAP_FIXED returns old (only old must be
//     mapped).
//   - Shrinking unmaps the tail [old+newLen, old+oldLen) and keeps the
//     address (unless FIXED).
//   - Growing extends the mapping in place if [old, old+oldLen) ends it and
//     the pages after it are free; otherwise, with MREMAP_MAYMOVE, it moves
//     the range to a free range (top-down, as Mmap places mappings), and
//     with MREMAP_FIXED to newAddr, which is unmapped first.
//   - A move copies no bytes: the same backing pages (memory-file pages or
//     the file's pages) are mapped at the new address and unmapped at the
//     old. New pages past the old length are zero (private anonymous
//     memory) or the next pages of the file or shared-memory object (past
//     its end they fault, as on Linux).
//   - MREMAP_FIXED with newLen == oldLen moves every mapping in [old,
//     old+oldLen), keeping the gaps between them, to the same offsets from
//     newAddr.
//   - oldLen 0 with MREMAP_MAYMOVE maps the pages of a shared mapping a
//     second time, from old, for newLen bytes (anywhere inside its file or
//     shared-memory object).
//   - MREMAP_DONTUNMAP (Linux 5.13 and later semantics; it needs
//     MREMAP_MAYMOVE and newLen == oldLen) moves the pages as a move does,
//     to newAddr with MREMAP_FIXED or else to a free range (newAddr if it is
//     free), but leaves [old, old+oldLen) mapped, with no pages: it reads
//     zero again for private anonymous memory, and the file's or the
//     shared-memory object's pages for file and shared mappings (a private
//     file mapping's private copies move). Any mapping may be moved so.
//     The old mapping is unlocked (Linux clears VM_LOCKED on it), and keeps
//     its other attributes.
//
// Errors (wrapping a unix.Errno), in Linux's order: EINVAL for unknown
// flags, an unaligned old, a zero newLen or one beyond the address space,
// and with MREMAP_FIXED or MREMAP_DONTUNMAP for either without MAYMOVE, a
// newAddr that is unaligned or leaves no room for newLen, DONTUNMAP with
// newLen != oldLen, or a newAddr range overlapping [old, old+oldLen); EFAULT if old is not
// mapped, or, to grow or move, [old, old+oldLen) is not inside one mapping;
// EINVAL for oldLen 0 on a private mapping; EPERM for a FIXED target at
// page 0 (below MinAddr); EAGAIN if growing a locked mapping would exceed
// Limits.Memlock, and ENOMEM if growing would exceed Limits.AS or (a
// private writable mapping) Limits.Data, both checked before anything
// changes; ENOMEM if the mapping cannot grow in place and
// may not move, or no free range is large enough; ErrClosed after Close. As on Linux, a FIXED move unmaps the target before
// anything that can fail after the checks above; otherwise a failed Mremap
// changes nothing.
func (as *AddressSpace) Mremap(old hostarch.Addr, oldLen, newLen uint64, flags int, newAddr hostarch.Addr) (hostarch.Addr, error) {
	if flags&^(unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED|unix.MREMAP_DONTUNMAP) != 0 {
		return 0, fmt.Errorf("addrspace: mremap flags %#x: %w", flags, unix.EINVAL)
	}
	mayMove, fixed := flags&unix.MREMAP_MAYMOVE != 0, flags&unix.MREMAP_FIXED != 0
	dontUnmap := flags&unix.MREMAP_DONTUNMAP != 0
	if !old.IsPageAligned() {
		return 0, fmt.Errorf("addrspace: mremap of unaligned address %#x: %w", old, unix.EINVAL)
	}
	// PAGE_ALIGN, wrapping as Linux's does.
	oldLen = (oldLen + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
	newLen = (newLen + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
	size := as.size
	if newLen == 0 || newLen > size {
		return 0, fmt.Errorf("addrspace: mremap to length %#x: %w", newLen, unix.EINVAL)
	}
	if fixed || dontUnmap {
		// Linux's check_mremap_params: with MREMAP_DONTUNMAP alone newAddr
		// is a hint, checked all the same.
		if uint64(newAddr) > size-newLen || !newAddr.IsPageAligned() || !mayMove {
			return 0, fmt.Errorf("addrspace: mremap to [%#x, +%#x) (flags %#x): %w", newAddr, newLen, flags, unix.EINVAL)
		}
		if dontUnmap && oldLen != newLen {
			return 0, fmt.Errorf("addrspace: mremap with MREMAP_DONTUNMAP from %#x to %#x bytes: %w", oldLen, newLen, unix.EINVAL)
		}
		// Linux's vrm_overlaps, in its unsigned arithmetic.
		if uint64(old)+oldLen > uint64(newAddr) && uint64(newAddr)+newLen > uint64(old) {
			return 0, fmt.Errorf("addrspace: mremap to a range overlapping the old one: %w", unix.EINVAL)
		}
	}
	// Growth of a locked mapping is populated after the lock is released
	// (the deferred calls run in reverse order), a chunk per lock hold, as
	// Linux's mremap calls mm_populate after mmap_write_unlock: the guest
	// chooses its size.
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
	if fixed && oldLen == newLen {
		return as.remapMove(old, oldLen, newAddr, dontUnmap)
	}
	if dontUnmap {
		return as.remapDontUnmap(old, oldLen, newAddr)
	}
	if as.find(old) == nil {
		return 0, fmt.Errorf("addrspace: mremap: %#x is not mapped: %w", old, unix.EFAULT)
	}
	if !fixed && oldLen == newLen {
		return old, nil
	}
	if !fixed && newLen < oldLen {
		// Shrinking in place only unmaps the tail, whatever it spans.
		tail := hostarch.AddrRange{Start: old + hostarch.Addr(newLen), End: old + hostarch.Addr(oldLen)}
		if uint64(old)+oldLen < uint64(old) || uint64(old)+oldLen > size {
			return 0, fmt.Errorf("addrspace: mremap: tail [%#x, +%#x) is beyond the address space: %w", tail.Start, oldLen-newLen, unix.EINVAL)
		}
		if err := as.unmapLocked(tail); err != nil {
			return 0, err
		}
		return old, nil
	}

	// A move or growth: the range must lie in one mapping. A FIXED shrink
	// first drops the tail, so only its head must.
	ms, me := as.mappingAt(old)
	v := as.find(old)
	if oldLen == 0 && v.private {
		return 0, fmt.Errorf("addrspace: mremap of length 0 needs a shared mapping: %w", unix.EINVAL)
	}
	keep := min(oldLen, newLen)
	if keep > uint64(me-old) {
		return 0, fmt.Errorf("addrspace: mremap: [%#x, +%#x) is not inside one mapping [%#x, %#x): %w", old, keep, ms, me, unix.EFAULT)
	}
	if err := as.checkGrowthLocked(v, oldLen, newLen); err != nil {
		return 0, err
	}

	var dst hostarch.Addr
	if fixed {
		dst = newAddr
		if err := as.unmapLocked(hostarch.AddrRange{Start: dst, End: dst + hostarch.Addr(newLen)}); err != nil {
			return 0, err
		}
		// The target may have held old itself (a duplicate, oldLen 0, to
		// newAddr == old): Linux looks old up again.
		if v = as.find(old); v == nil {
			return 0, fmt.Errorf("addrspace: mremap: %#x is not mapped once the target is unmapped: %w", old, unix.EFAULT)
		}
		if oldLen > newLen {
			tail := hostarch.AddrRange{Start: old + hostarch.Addr(newLen), End: old + hostarch.Addr(oldLen)}
			if uint64(tail.End) < uint64(tail.Start) || uint64(tail.End) > size {
				return 0, fmt.Errorf("addrspace: mremap: tail [%#x, +%#x) is beyond the address space: %w", tail.Start, oldLen-newLen, unix.EINVAL)
			}
			if err := as.unmapLocked(tail); err != nil {
				return 0, err
			}
			oldLen = newLen
		}
		if dst < MinAddr {
			return 0, errPageZero(dst)
		}
	} else {
		// Grow in place when the range ends the mapping and the pages after
		// it are free and inside the space.
		oldEnd := old + hostarch.Addr(oldLen)
		extra := newLen - oldLen
		if oldLen > 0 && oldEnd == me && uint64(oldEnd) <= size && extra <= size-uint64(oldEnd) &&
			as.isFree(hostarch.AddrRange{Start: oldEnd, End: oldEnd + hostarch.Addr(extra)}) {
			if err := as.grow(as.find(oldEnd-1), extra); err != nil {
				return 0, err
			}
			pop = hostarch.AddrRange{Start: oldEnd, End: oldEnd + hostarch.Addr(extra)}
			return old, nil
		}
		if !mayMove {
			return 0, fmt.Errorf("addrspace: mremap cannot grow [%#x, +%#x) in place: %w", old, oldLen, unix.ENOMEM)
		}
		var ok bool
		if dst, ok = as.findGap(0, newLen); !ok {
			return 0, fmt.Errorf("addrspace: mremap: no free gap of %#x bytes: %w", newLen, unix.ENOMEM)
		}
	}
	if oldLen == 0 {
		return as.duplicate(v, old, newLen, dst)
	}
	if err := as.moveRange(hostarch.AddrRange{Start: old, End: old + hostarch.Addr(oldLen)}, dst); err != nil {
		return 0, err
	}
	if newLen > oldLen {
		if err := as.grow(as.find(dst+hostarch.Addr(oldLen)-1), newLen-oldLen); err != nil {
			return 0, err
		}
	}
	as.mergeAround(hostarch.AddrRange{Start: dst, End: dst + hostarch.Addr(newLen)})
	if newLen > oldLen {
		pop = hostarch.AddrRange{Start: dst + hostarch.Addr(oldLen), End: dst + hostarch.Addr(newLen)}
	}
	return dst, nil
}

// remapMove is Mremap with MREMAP_FIXED and an unchanged length: every
// mapping in [old, old+length) moves to the same offset from newAddr (Linux
// 6.17's remap_move). The range must start in a mapping.
//
// Preconditions: as.mu is held; the arguments passed Mremap's checks.
func (as *AddressSpace) remapMove(old hostarch.Addr, length uint64, newAddr hostarch.Addr, keep bool) (hostarch.Addr, error) {
	if uint64(old) >= as.size || as.find(old) == nil {
		return 0, fmt.Errorf("addrspace: mremap: %#x is not mapped: %w", old, unix.EFAULT)
	}
	end := hostarch.Addr(min(uint64(old)+length, as.size))
	if uint64(old)+length < uint64(old) {
		end = hostarch.Addr(as.size)
	}
	// The mappings to move, as Linux sees its VMAs: one range per mapping.
	var pieces []hostarch.AddrRange
	for cur := old; cur < end; {
		v := as.find(cur)
		if v == nil {
			next, ok := as.nextStart(cur)
			if !ok || next >= end {
				break
			}
			cur = next
			continue
		}
		_, me := as.mappingAt(cur)
		r := hostarch.AddrRange{Start: cur, End: min(me, end)}
		pieces = append(pieces, r)
		cur = r.End
	}
	for _, r := range pieces {
		dst := newAddr + (r.Start - old)
		if err := as.unmapLocked(hostarch.AddrRange{Start: dst, End: dst + r.Length()}); err != nil {
			return 0, err
		}
		if dst < MinAddr {
			return 0, errPageZero(dst)
		}
		if keep {
			if err := as.moveKeep(r, dst); err != nil {
				return 0, err
			}
			continue
		}
		if err := as.moveRange(r, dst); err != nil {
			return 0, err
		}
		as.mergeAround(hostarch.AddrRange{Start: dst, End: dst + r.Length()})
	}
	return newAddr, nil
}

// errPageZero is the error for a FIXED target below MinAddr: Linux's
// get_unmapped_area refuses it (mmap_min_addr) after mremap_to has unmapped
// the target.
func errPageZero(dst hostarch.Addr) error {
	return fmt.Errorf("addrspace: mremap to %#x, below the first mappable address %#x: %w", dst, MinAddr, unix.EPERM)
}

// nextStart returns the start of the first VMA above addr.
func (as *AddressSpace) nextStart(addr hostarch.Addr) (hostarch.Addr, bool) {
	var next hostarch.Addr
	ok := false
	as.vmas.AscendGreaterOrEqual(&vma{start: addr + 1}, func(v *vma) bool {
		next, ok = v.start, true
		return false
	})
	return next, ok
}

// mappingAt returns the range of the mapping (the run of compatible VMAs,
// one VMA to Linux) containing addr.
//
// Preconditions: as.mu is held; a VMA contains addr.
func (as *AddressSpace) mappingAt(addr hostarch.Addr) (start, end hostarch.Addr) {
	v := as.find(addr)
	for cur := v; ; {
		prev := as.find(cur.start - 1)
		if cur.start == 0 || prev == nil || !prev.compatible(cur) {
			start = cur.start
			break
		}
		cur = prev
	}
	for cur := v; ; {
		next := as.find(cur.end)
		if next == nil || !cur.compatible(next) {
			end = cur.end
			break
		}
		cur = next
	}
	return start, end
}

// moveRange moves the pages of ar, which lie inside one mapping (one or more
// VMAs), to dst, replacing whatever is mapped at the target.
//
// Preconditions: as.mu is held; ar and the target do not overlap.
func (as *AddressSpace) moveRange(ar hostarch.AddrRange, dst hostarch.Addr) error {
	as.splitAt(ar.Start)
	as.splitAt(ar.End)
	for _, v := range as.overlapping(ar) {
		r := v.ar()
		if err := as.move(r, dst+(r.Start-ar.Start)); err != nil {
			return err
		}
	}
	return nil
}

// move moves the pages of ar, which lie inside one VMA, to dst, replacing
// whatever is mapped at [dst, dst+len(ar)). The backing pages and their
// references move with them (the page table moves private pages; the rest
// is the file's); no byte is copied.
//
// Preconditions: as.mu is held; ar and the target do not overlap.
func (as *AddressSpace) move(ar hostarch.AddrRange, dst hostarch.Addr) error {
	target := hostarch.AddrRange{Start: dst, End: dst + ar.Length()}
	if err := as.admit(as.splits(ar, nil) + 1 + as.splits(target, nil)); err != nil {
		return err
	}
	defer as.settle()
	as.pt.Unmap(uint64(target.Start), uint64(target.End))
	as.removeRange(target)
	as.splitAt(ar.Start)
	as.splitAt(ar.End)
	v := as.find(ar.Start)
	nv := *v
	nv.start, nv.end = target.Start, target.End
	if nv.file == nil && nv.private && !nv.hasAnonVMA() {
		nv.pgoff = uint64(nv.start) // Linux's copy_vma, for no anon_vma yet
	}
	if err := as.pt.Move(uint64(ar.Start), uint64(ar.End), uint64(dst)); err != nil {
		return fmt.Errorf("addrspace: mremap: %w", err)
	}
	as.delete(v)
	as.insert(&nv)
	as.mergeAround(ar)
	return nil
}

// grow extends v by extra bytes at its end: the file's following pages for
// a file mapping (for a shared anonymous one, its shared-memory object's,
// which fault past the object's end); for private anonymous memory, pages
// the page table backs on first touch.
//
// Preconditions: as.mu is held; the extra range is free and inside the
// address space.
func (as *AddressSpace) grow(v *vma, extra uint64) error {
	nv := *v
	nv.start = v.end
	nv.end = v.end + hostarch.Addr(extra)
	nv.off = v.offAt(v.end)
	nv.pgoff = v.pgoffAt(v.end)
	if v.file != nil && nv.off+extra < nv.off {
		return fmt.Errorf("addrspace: mremap: file offset overflows: %w", unix.EOVERFLOW)
	}
	if err := as.admit(1); err != nil {
		return err
	}
	defer as.settle()
	if v.file != nil {
		v.file.refs++
	}
	as.insert(&nv)
	as.mergeAround(hostarch.AddrRange{Start: v.start, End: nv.end})
	return nil
}

// duplicate maps the pages of shared mapping v from old a second time, at
// dst for newLen bytes (mremap with old length 0). The range may run past
// v, anywhere in its file or shared-memory object.
//
// Preconditions: as.mu is held; v is shared and file-backed (shared
// anonymous memory is a shared-memory object); [dst, dst+newLen) is free.
func (as *AddressSpace) duplicate(v *vma, old hostarch.Addr, newLen uint64, dst hostarch.Addr) (hostarch.Addr, error) {
	nv := *v
	nv.start, nv.end = dst, dst+hostarch.Addr(newLen)
	nv.off, nv.pgoff = v.offAt(old), v.pgoffAt(old)
	if nv.off+newLen < nv.off {
		return 0, fmt.Errorf("addrspace: mremap: file offset overflows: %w", unix.EOVERFLOW)
	}
	if err := as.admit(1 + as.splits(nv.ar(), nil)); err != nil {
		return 0, err
	}
	defer as.settle()
	// Take the new reference before dropping those of whatever is mapped
	// at the target, which may be the same file.
	if nv.file != nil {
		nv.file.refs++
	}
	as.pt.Unmap(uint64(nv.start), uint64(nv.end))
	as.removeRange(nv.ar())
	as.insert(&nv)
	as.mergeAround(nv.ar())
	return dst, nil
}

// checkGrowthLocked applies the limits to Mremap growing v's mapping from
// oldLen to newLen bytes, as Linux's mremap checks them (mlock_future_ok,
// then may_expand_vm): EAGAIN beyond Memlock for a locked mapping, ENOMEM
// beyond AS or Data.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) checkGrowthLocked(v *vma, oldLen, newLen uint64) error {
	if newLen <= oldLen {
		return nil
	}
	delta := newLen - oldLen
	if !as.mlockFutureOK(v.flags&vmLocked != 0, delta) {
		return fmt.Errorf("addrspace: mremap: %#x more locked bytes would exceed the lock limit %#x (RLIMIT_MEMLOCK): %w", delta, as.limits.Memlock, unix.EAGAIN)
	}
	return as.mayExpandLocked("mremap", v.isData(), delta)
}
