package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// Mremap grows, shrinks or moves the mapping at [old, old+oldLen) to
// newLen bytes and returns its address, as mremap(2) does. flags is a
// combination of unix.MREMAP_MAYMOVE and unix.MREMAP_FIXED; newAddr is used
// only with MREMAP_FIXED. Lengths are rounded up to whole pages.
//
//   - Shrinking unmaps the tail and keeps the address (unless FIXED).
//   - Growing extends the mapping in place if the pages after it are free;
//     otherwise, with MREMAP_MAYMOVE, it moves the mapping to a free range
//     (top-down, as Mmap places mappings), and with MREMAP_FIXED to newAddr,
//     replacing whatever was mapped there.
//   - A move copies no bytes: the same backing pages (memory-file pages or
//     the file's pages) are mapped at the new address and unmapped at the old.
//     New pages past the old length are zero (anonymous) or the file's next
//     pages.
//   - oldLen 0 with MREMAP_MAYMOVE maps the pages of a shared mapping a
//     second time, as Linux does.
//
// Errors (wrapping a unix.Errno; on error nothing changed): EINVAL for
// unknown flags (MREMAP_DONTUNMAP is not supported), FIXED without MAYMOVE,
// an unaligned old or newAddr, a zero newLen, overlapping old and new
// ranges, or oldLen 0 on a private mapping; EFAULT if old is not mapped
// or, to grow or move, [old, old+oldLen) is not inside one mapping; ENOMEM if the mapping cannot grow in place and may
// not move, or no free range is large enough; ErrClosed after Close.
func (as *AddressSpace) Mremap(old hostarch.Addr, oldLen, newLen uint64, flags int, newAddr hostarch.Addr) (hostarch.Addr, error) {
	if flags&^(unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED) != 0 {
		return 0, fmt.Errorf("addrspace: mremap flags %#x: %w", flags, unix.EINVAL)
	}
	mayMove, fixed := flags&unix.MREMAP_MAYMOVE != 0, flags&unix.MREMAP_FIXED != 0
	if fixed && !mayMove {
		return 0, fmt.Errorf("addrspace: MREMAP_FIXED without MREMAP_MAYMOVE: %w", unix.EINVAL)
	}
	if !old.IsPageAligned() {
		return 0, fmt.Errorf("addrspace: mremap of unaligned address %#x: %w", old, unix.EINVAL)
	}
	oldLen, ok1 := hostarch.PageRoundUp(oldLen)
	newLen, ok2 := hostarch.PageRoundUp(newLen)
	if !ok1 || !ok2 || newLen == 0 {
		return 0, fmt.Errorf("addrspace: mremap lengths %#x -> %#x: %w", oldLen, newLen, unix.EINVAL)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return 0, errClosedMgmt
	}
	size := as.size
	// As Linux does, the old address must be mapped, even to shrink.
	if uint64(old) >= size || as.find(old) == nil {
		return 0, fmt.Errorf("addrspace: mremap: %#x is not mapped: %w", old, unix.EFAULT)
	}
	if fixed {
		if !newAddr.IsPageAligned() || newAddr < MinAddr || uint64(newAddr) > size || newLen > size-uint64(newAddr) {
			return 0, fmt.Errorf("addrspace: mremap to [%#x, +%#x): %w", newAddr, newLen, unix.EINVAL)
		}
		target := hostarch.AddrRange{Start: newAddr, End: newAddr + hostarch.Addr(newLen)}
		if target.Overlaps(hostarch.AddrRange{Start: old, End: old + hostarch.Addr(max(oldLen, 1))}) {
			return 0, fmt.Errorf("addrspace: mremap to a range overlapping the old one: %w", unix.EINVAL)
		}
	}
	if uint64(old) > size || oldLen > size-uint64(old) {
		return 0, fmt.Errorf("addrspace: mremap of [%#x, +%#x): %w", old, oldLen, unix.EFAULT)
	}

	// Shrinking in place, as Linux does, only unmaps the tail.
	if !fixed && oldLen >= newLen {
		if err := as.unmapLocked(hostarch.AddrRange{Start: old + hostarch.Addr(newLen), End: old + hostarch.Addr(oldLen)}); err != nil {
			return 0, err
		}
		return old, nil
	}

	v := as.find(old)
	if v == nil || (oldLen > 0 && uint64(v.end-old) < oldLen) {
		return 0, fmt.Errorf("addrspace: mremap: [%#x, +%#x) is not inside one mapping: %w", old, oldLen, unix.EFAULT)
	}
	if oldLen == 0 {
		if v.private || !mayMove {
			return 0, fmt.Errorf("addrspace: mremap of length 0 needs a shared mapping and MREMAP_MAYMOVE: %w", unix.EINVAL)
		}
		return as.duplicate(v, old, newLen, fixed, newAddr)
	}
	oldEnd := old + hostarch.Addr(oldLen)

	// Grow in place when the range ends the mapping and the pages after it
	// are free.
	if !fixed && oldEnd == v.end && uint64(oldEnd)+(newLen-oldLen) <= size &&
		as.isFree(hostarch.AddrRange{Start: oldEnd, End: oldEnd + hostarch.Addr(newLen-oldLen)}) {
		if err := as.grow(v, newLen-oldLen); err != nil {
			return 0, err
		}
		return old, nil
	}
	if !mayMove {
		return 0, fmt.Errorf("addrspace: mremap cannot grow [%#x, +%#x) in place: %w", old, oldLen, unix.ENOMEM)
	}

	// Move: choose the target, then map the same backing there.
	var dst hostarch.Addr
	if fixed {
		dst = newAddr
		if err := as.unmapLocked(hostarch.AddrRange{Start: dst, End: dst + hostarch.Addr(newLen)}); err != nil {
			return 0, err
		}
		if oldLen > newLen {
			if err := as.unmapLocked(hostarch.AddrRange{Start: old + hostarch.Addr(newLen), End: oldEnd}); err != nil {
				return 0, err
			}
			oldLen, oldEnd = newLen, old+hostarch.Addr(newLen)
		}
	} else {
		var ok bool
		if dst, ok = as.findGap(0, newLen); !ok {
			return 0, fmt.Errorf("addrspace: mremap: no free gap of %#x bytes: %w", newLen, unix.ENOMEM)
		}
	}
	if err := as.move(hostarch.AddrRange{Start: old, End: oldEnd}, dst); err != nil {
		return 0, err
	}
	if newLen > oldLen {
		if err := as.grow(as.find(dst+hostarch.Addr(oldLen)-1), newLen-oldLen); err != nil {
			return 0, err
		}
	}
	as.mergeAround(hostarch.AddrRange{Start: dst, End: dst + hostarch.Addr(newLen)})
	return dst, nil
}

// move moves the pages of ar, which lie inside one VMA, to dst, replacing
// whatever is mapped at [dst, dst+len(ar)). The backing pages and their
// references move with them; no byte is copied.
//
// Preconditions: as.mu is held; ar and the target do not overlap.
func (as *AddressSpace) move(ar hostarch.AddrRange, dst hostarch.Addr) error {
	target := hostarch.AddrRange{Start: dst, End: dst + ar.Length()}
	if err := as.admit(3); err != nil {
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
	if err := as.pt.Move(uint64(ar.Start), uint64(ar.End), uint64(dst)); err != nil {
		return fmt.Errorf("addrspace: mremap: %w", err)
	}
	as.delete(v)
	as.insert(&nv)
	as.mergeAround(ar)
	return nil
}

// grow extends v by extra bytes at its end, with new backing: zero pages for
// anonymous memory, the file's following pages for a file mapping.
//
// Preconditions: as.mu is held; the extra range is free and inside the
// address space.
func (as *AddressSpace) grow(v *vma, extra uint64) error {
	nv := *v
	nv.start = v.end
	nv.end = v.end + hostarch.Addr(extra)
	nv.off = v.offAt(v.end)
	if v.file != nil {
		if nv.off+extra < nv.off {
			return fmt.Errorf("addrspace: mremap: file offset overflows: %w", unix.EOVERFLOW)
		}
		v.file.refs++
	}
	if err := as.admit(1); err != nil {
		if v.file != nil {
			as.dropFile(v.file)
		}
		return err
	}
	defer as.settle()
	if v.usesMem() {
		// Prefer the pages right after v's, so that the two merge.
		mem, err := as.mem.Allocate(extra, v.memAt(v.end))
		if err != nil {
			if v.file != nil {
				as.dropFile(v.file)
			}
			return err
		}
		nv.mem = mem
	}
	as.insert(&nv)
	as.mergeAround(hostarch.AddrRange{Start: v.start, End: nv.end})
	return nil
}

// duplicate maps the pages of shared mapping v from old a second time, for
// newLen bytes (mremap with old length 0).
func (as *AddressSpace) duplicate(v *vma, old hostarch.Addr, newLen uint64, fixed bool, newAddr hostarch.Addr) (hostarch.Addr, error) {
	if uint64(v.end-old) < newLen && v.file == nil {
		return 0, fmt.Errorf("addrspace: mremap: duplicate beyond the shared mapping: %w", unix.EFAULT)
	}
	dst := newAddr
	if !fixed {
		var ok bool
		if dst, ok = as.findGap(0, newLen); !ok {
			return 0, fmt.Errorf("addrspace: mremap: no free gap of %#x bytes: %w", newLen, unix.ENOMEM)
		}
	}
	nv := *v
	nv.start, nv.end = dst, dst+hostarch.Addr(newLen)
	nv.off, nv.mem = v.offAt(old), v.memAt(old)
	if err := as.admit(3); err != nil {
		return 0, err
	}
	defer as.settle()
	// Take the new references before dropping those of whatever was mapped
	// at the target: the two may be the same pages (a target overlapping
	// the source), which must not be freed in between.
	if nv.file != nil {
		nv.file.refs++
	}
	if nv.usesMem() {
		as.mem.IncRef(nv.mem, newLen)
	}
	as.pt.Unmap(uint64(nv.start), uint64(nv.end))
	as.removeRange(nv.ar())
	as.insert(&nv)
	as.mergeAround(nv.ar())
	return dst, nil
}
