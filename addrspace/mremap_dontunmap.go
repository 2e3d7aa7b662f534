package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// remapDontUnmap is Mremap with MREMAP_DONTUNMAP and without MREMAP_FIXED:
// the pages of [old, old+length), which must lie inside one mapping, move
// to a free range (at hint if it is free, as mmap's hint), and the old range
// stays mapped with no pages.
//
// Preconditions: as.mu is held; the arguments passed Mremap's checks (so
// length is the old and the new length, non-zero).
func (as *AddressSpace) remapDontUnmap(old hostarch.Addr, length uint64, hint hostarch.Addr) (hostarch.Addr, error) {
	if as.find(old) == nil {
		return 0, fmt.Errorf("addrspace: mremap: %#x is not mapped: %w", old, unix.EFAULT)
	}
	ms, me := as.mappingAt(old)
	if length > uint64(me-old) {
		return 0, fmt.Errorf("addrspace: mremap: [%#x, +%#x) is not inside one mapping [%#x, %#x): %w", old, length, ms, me, unix.EFAULT)
	}
	dst, ok := as.findGap(hint, length)
	if !ok {
		return 0, fmt.Errorf("addrspace: mremap: no free gap of %#x bytes: %w", length, unix.ENOMEM)
	}
	if err := as.moveKeep(hostarch.AddrRange{Start: old, End: old + hostarch.Addr(length)}, dst); err != nil {
		return 0, err
	}
	return dst, nil
}

// moveKeep moves the pages of ar, which lies inside one mapping, to dst as
// Linux's move_vma does with MREMAP_DONTUNMAP: the target gets mappings
// like ar's with ar's pages (private pages and their references move; a
// file's pages are the file's), and ar stays mapped with none, so that it
// reads zero (private anonymous memory) or the file or shared-memory
// object again. As Linux's dontunmap_complete, it clears the locking of the
// whole old mapping and, if all of it moved, forgets its anon_vma.
//
// Preconditions: as.mu is held; nothing is mapped at [dst, dst+len(ar));
// the ranges do not overlap.
func (as *AddressSpace) moveKeep(ar hostarch.AddrRange, dst hostarch.Addr) error {
	target := hostarch.AddrRange{Start: dst, End: dst + hostarch.Addr(ar.Length())}
	ms, me := as.mappingAt(ar.Start)
	whole := ms == ar.Start && me == ar.End
	if err := as.admit(as.splits(ar, nil) + 1 + as.splits(target, nil)); err != nil {
		return err
	}
	defer as.settle()
	as.pt.Unmap(uint64(target.Start), uint64(target.End))
	as.removeRange(target)
	as.splitAt(ar.Start)
	as.splitAt(ar.End)
	if err := as.pt.Move(uint64(ar.Start), uint64(ar.End), uint64(dst)); err != nil {
		return fmt.Errorf("addrspace: mremap: %w", err)
	}
	for _, v := range as.overlapping(ar) {
		nv := *v
		nv.start, nv.end = dst+(v.start-ar.Start), dst+(v.end-ar.Start)
		if nv.file == nil && nv.private && !nv.hasAnonVMA() {
			// Linux's copy_vma: anonymous memory without an anon_vma
			// takes the pgoff of its new address.
			nv.pgoff = uint64(nv.start)
		}
		if nv.file != nil {
			nv.file.refs++
		}
		as.insert(&nv)
		if whole {
			v.anonID = detachedAnonID(v.anonID)
		}
	}
	for _, v := range as.overlapping(hostarch.AddrRange{Start: ms, End: me}) {
		v.flags &^= vmLocked | vmLockOnFault
	}
	as.mergeAround(target)
	// Linux neither split the old VMA nor tries to merge it: join the
	// pieces of the old mapping again, and nothing else.
	as.mergeWithin(hostarch.AddrRange{Start: ms, End: me})
	return nil
}

// mergeWithin joins the compatible neighbouring VMAs that lie inside ar.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) mergeWithin(ar hostarch.AddrRange) {
	vs := as.overlapping(ar)
	if n := len(vs); n > 0 && vs[n-1].end > ar.End {
		vs = vs[:n-1] // it reaches past ar: not joined
	}
	as.joinRun(vs)
}

// anonDetached marks an anonID that stands for no anon_vma, where Linux
// leaves a VMA without one and does not merge it with its neighbours until
// an operation on it tries (MREMAP_DONTUNMAP's old VMA, a clone's
// MADV_WIPEONFORK VMA): for merging it is an identity of its own, so that
// the VMA stays apart as Linux's does; a write fault gives it an anon_vma,
// and mergeAround (the merge Linux tries after a change) lets it join a
// neighbour, as Linux merges a VMA without anon_vma.
const anonDetached = 1 << 63

// detachedAnonID returns the detached anonID for a VMA whose anon_vma (id)
// Linux dropped; VMAs that shared id share it, and stay one mapping.
func detachedAnonID(id uint64) uint64 {
	if id == 0 {
		return 0
	}
	return id | anonDetached
}

// hasAnonVMA reports whether v has an anon_vma (a non-zero anonID that is
// not detached).
func (v *vma) hasAnonVMA() bool { return v.anonID != 0 && v.anonID&anonDetached == 0 }

// joinDetached gives each VMA of vs (neighbours in address order) that has
// a detached anonID, and the rest of its mapping, the anonID of a neighbour
// it is otherwise compatible with, as Linux merges a VMA without anon_vma
// with any: the one before first.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) joinDetached(vs []*vma) {
	compatibleAnyAnon := func(p, v *vma) bool {
		a, b := *p, *v
		a.anonID, b.anonID = 0, 0
		return a.compatible(&b)
	}
	for i := 1; i < len(vs); i++ {
		p, v := vs[i-1], vs[i]
		if p.anonID == v.anonID || !compatibleAnyAnon(p, v) {
			continue
		}
		switch {
		case v.anonID&anonDetached != 0:
			as.renameAnon(v.anonID, p.anonID)
		case p.anonID&anonDetached != 0:
			as.renameAnon(p.anonID, v.anonID)
		}
	}
}

// renameAnon gives every VMA whose anonID is from the anonID to.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) renameAnon(from, to uint64) {
	as.vmas.Ascend(func(v *vma) bool {
		if v.anonID == from {
			v.anonID = to
		}
		return true
	})
}
