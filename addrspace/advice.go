package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/pma"
	"golang.org/x/sys/unix"
)

// forMapped calls f for each part of ar covered by a VMA, in address order,
// splitting VMAs at ar's edges first if split is set. It returns ENOMEM
// (wrapped) if part of ar is not mapped, after calling f for the mapped
// parts before the first hole — as Linux's madvise and msync do.
func (as *AddressSpace) forMapped(op string, ar hostarch.AddrRange, split bool, f func(v *vma, r hostarch.AddrRange) error) error {
	if split {
		as.splitAt(ar.Start)
		as.splitAt(ar.End)
	}
	cur := ar.Start
	for _, v := range as.overlapping(ar) {
		if v.start > cur {
			return fmt.Errorf("addrspace: %s: %#x is not mapped: %w", op, cur, unix.ENOMEM)
		}
		r := v.ar().Intersect(ar)
		if err := f(v, r); err != nil {
			return err
		}
		cur = r.End
	}
	if cur < ar.End {
		return fmt.Errorf("addrspace: %s: %#x is not mapped: %w", op, cur, unix.ENOMEM)
	}
	return nil
}

// Madvise gives advice about the use of [addr, addr+length), as madvise(2)
// does. Supported advice:
//
//   - unix.MADV_NORMAL, MADV_RANDOM and MADV_SEQUENTIAL: recorded in the
//     mapping, as Linux records them in the VMA's flags: a mapping splits
//     where its advice changes, and mappings with different advice do not
//     merge.
//   - MADV_WILLNEED: the host reads ahead.
//   - MADV_DONTNEED: pages of private anonymous mappings read back as zero
//     afterwards, pages of private file mappings read back the file's
//     contents (their private copies are dropped), and shared mappings keep
//     their contents, as on Linux.
//   - MADV_FREE (private anonymous memory only): Linux may drop the pages'
//     contents at any time until each is written again. mmsim drops every
//     page of the range when Madvise is called, as MADV_DONTNEED does: each
//     reads back as zero until it is written, and a write after Madvise is
//     kept. (A clone's copy of a page it shares is not affected.)
//   - MADV_REMOVE (shared mappings whose MaxPerms has write, whatever
//     their Perms: of files open for writing, and shared anonymous
//     memory): punches a hole in the backing (fallocate(2) with
//     FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE), so that the range, and
//     every other mapping of those pages that has not copied them, reads
//     zero.
//   - MADV_DONTFORK and MADV_DOFORK: Clone leaves the pages out of the clone
//     (and, with DOFORK, copies them again).
//   - MADV_WIPEONFORK (private anonymous memory only) and MADV_KEEPONFORK:
//     the clone gets the mapping with zero-filled pages.
//   - MADV_HUGEPAGE and MADV_NOHUGEPAGE: recorded only (shown by WriteSmaps
//     as "hg" and "nh"; mmsim backs every page with a base page).
//
// The advice from MADV_DONTFORK on is kept in the mapping as the access
// pattern is: mappings split and merge where it changes. length is rounded
// up to whole pages; 0 succeeds (once advice and addr are valid).
//
// Errors (wrapping a unix.Errno): EINVAL for other advice, an unaligned
// addr, or a range that overflows; ENOMEM if part of the range is not mapped
// or lies beyond the address space, after every mapped part was advised,
// as on Linux; EAGAIN if advice that is kept in the mapping would split one
// beyond MaxMapCount or the host budget (Linux's EAGAIN for a failed
// split). Advice that a mapping refuses fails at the first such mapping,
// the mappings before it advised, as on Linux: EINVAL for MADV_FREE or
// MADV_WIPEONFORK on anything but private anonymous memory, for MADV_DONTNEED,
// MADV_FREE or MADV_REMOVE on locked pages (Mlock, MAP_LOCKED), and for MADV_REMOVE on
// private anonymous memory; EACCES for MADV_REMOVE on a private file
// mapping or a shared one that may not be made writable (MaxPerms); the host's error if the backing
// cannot be punched (EOPNOTSUPP on a file system without hole punching,
// EPERM for a write-sealed memfd). ErrClosed after Close.
func (as *AddressSpace) Madvise(addr hostarch.Addr, length uint64, advice int) error {
	switch advice {
	case unix.MADV_NORMAL, unix.MADV_RANDOM, unix.MADV_SEQUENTIAL, unix.MADV_WILLNEED, unix.MADV_DONTNEED:
	default:
		if moreAdvice(advice) {
			break
		}
		return fmt.Errorf("addrspace: madvise advice %d is not supported: %w", advice, unix.EINVAL)
	}
	if !addr.IsPageAligned() {
		return fmt.Errorf("addrspace: madvise at unaligned address %#x: %w", addr, unix.EINVAL)
	}
	rounded, ok := hostarch.PageRoundUp(length)
	if !ok || uint64(addr)+rounded < uint64(addr) {
		return fmt.Errorf("addrspace: madvise range [%#x, +%#x) overflows: %w", addr, length, unix.EINVAL)
	}
	if rounded == 0 {
		if as.closed.Load() {
			return errClosedMgmt
		}
		return nil
	}
	// The end of the space is a hole: advise what lies inside it.
	ar := hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(rounded)}
	beyond := false
	if uint64(ar.End) > as.size {
		beyond = true
		ar.End = hostarch.Addr(max(as.size, uint64(addr)))
		if uint64(ar.Start) > as.size {
			ar.Start = ar.End
		}
	}
	as.activeMu.Lock()
	defer as.activeMu.Unlock()
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	var err error
	switch advice {
	case unix.MADV_FREE, unix.MADV_REMOVE, unix.MADV_DONTFORK, unix.MADV_DOFORK, unix.MADV_WIPEONFORK,
		unix.MADV_KEEPONFORK, unix.MADV_HUGEPAGE, unix.MADV_NOHUGEPAGE:
		err = as.adviseMore(ar, advice)
	case unix.MADV_WILLNEED:
		err = as.forEachMapped("madvise", ar, func(v *vma, r hostarch.AddrRange) error {
			if v.file != nil {
				// Read ahead in the file, as Linux does for file mappings.
				unix.Fadvise(v.file.fd(), int64(v.offAt(r.Start)), int64(r.Length()), unix.FADV_WILLNEED)
			}
			return nil
		})
	case unix.MADV_DONTNEED:
		err = as.forEachMapped("madvise", ar, func(v *vma, r hostarch.AddrRange) error {
			if v.flags&vmLocked != 0 {
				return fmt.Errorf("addrspace: madvise(MADV_DONTNEED) of locked pages at %#x: %w", r.Start, unix.EINVAL)
			}
			if v.private {
				return as.dontNeed(v, r)
			}
			return nil
		})
	default:
		pattern := advice
		if advice == unix.MADV_NORMAL {
			pattern = 0
		}
		// Advice splits mappings as Linux's VM_RAND_READ and VM_SEQ_READ do.
		if err := as.admit(as.splits(ar, func(v *vma) bool { return v.advice != pattern })); err != nil {
			return fmt.Errorf("addrspace: madvise: %v: %w", err, unix.EAGAIN)
		}
		defer as.settle()
		err = as.forEachMapped("madvise", ar, func(v *vma, r hostarch.AddrRange) error {
			if v.advice != pattern {
				as.splitAt(r.Start)
				as.splitAt(r.End)
				as.find(r.Start).advice = pattern
			}
			return nil
		})
		as.mergeAround(ar)
	}
	if err == nil && beyond {
		err = fmt.Errorf("addrspace: madvise: [%#x, +%#x) runs past the end of the address space: %w", addr, rounded, unix.ENOMEM)
	}
	return err
}

// forEachMapped calls f for each part of ar covered by a VMA, in address
// order, and returns ENOMEM (wrapped) if part of ar is not mapped — after
// calling f for every mapped part, as Linux's madvise does. f may split the
// VMA it is given at the part's edges.
func (as *AddressSpace) forEachMapped(op string, ar hostarch.AddrRange, f func(v *vma, r hostarch.AddrRange) error) error {
	var hole error
	cur := ar.Start
	for _, v := range as.overlapping(ar) {
		if v.start > cur && hole == nil {
			hole = fmt.Errorf("addrspace: %s: %#x is not mapped: %w", op, cur, unix.ENOMEM)
		}
		r := v.ar().Intersect(ar)
		if err := f(v, r); err != nil {
			return err
		}
		cur = r.End
	}
	if cur < ar.End && hole == nil {
		hole = fmt.Errorf("addrspace: %s: %#x is not mapped: %w", op, cur, unix.ENOMEM)
	}
	return hole
}

// dontNeed discards the private contents of v's pages in r: the page
// table drops them, so that anonymous pages read back as zero and file
// pages as the file's contents.
//
// Preconditions: as.mu is held; v.private; r inside v.
func (as *AddressSpace) dontNeed(v *vma, r hostarch.AddrRange) error {
	if err := as.pt.Unmap(uint64(r.Start), uint64(r.End)); err != nil {
		return fmt.Errorf("addrspace: madvise: %w", err)
	}
	return nil
}

// Msync flushes changes made through shared file mappings in [addr,
// addr+length) to their files, as msync(2) does. flags is unix.MS_ASYNC or
// unix.MS_SYNC, optionally with unix.MS_INVALIDATE. Other mappings in the
// range are skipped. length is rounded up to whole pages; 0 succeeds.
//
// Errors (wrapping a unix.Errno): EINVAL for an unaligned addr, unknown
// flags, or both MS_ASYNC and MS_SYNC; ENOMEM if part of the range is not
// mapped or lies beyond the address space (the mapped parts before it are
// synced); the host's error if writing back fails (EIO); ErrClosed after
// Close.
func (as *AddressSpace) Msync(addr hostarch.Addr, length uint64, flags int) error {
	if flags&^(unix.MS_ASYNC|unix.MS_SYNC|unix.MS_INVALIDATE) != 0 ||
		flags&(unix.MS_ASYNC|unix.MS_SYNC) == unix.MS_ASYNC|unix.MS_SYNC {
		return fmt.Errorf("addrspace: msync flags %#x: %w", flags, unix.EINVAL)
	}
	ar, err := as.mgmtRange("msync", addr, length, unix.ENOMEM)
	if err != nil {
		return err
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	if ar.Length() == 0 {
		return nil
	}
	return as.forMapped("msync", ar, false, func(v *vma, r hostarch.AddrRange) error {
		if v.file == nil || v.private {
			return nil
		}
		if flags&unix.MS_SYNC == 0 {
			return nil // MS_ASYNC: the page cache already has the data (Linux's no-op)
		}
		const wait = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
		if err := unix.SyncFileRange(v.file.fd(), int64(v.offAt(r.Start)), int64(r.Length()), wait); err != nil {
			return fmt.Errorf("addrspace: msync of %v: %w", r, err)
		}
		return nil
	})
}

// Stats describes an address space's use of memory.
type Stats struct {
	// Mappings is the number of mappings, as Mappings lists them.
	Mappings int

	// MappedBytes is the total length of the mappings.
	MappedBytes uint64

	// ResidentBytes is the number of mapped bytes whose pages are resident
	// in host memory (for file mappings: in the host's page cache).
	ResidentBytes uint64

	// MemoryFileBytes is the number of bytes of the memory file allocated to
	// pages, and MemoryFileResidentBytes the number backed by host memory;
	// both count the whole family of clones that share the memory file.
	MemoryFileBytes, MemoryFileResidentBytes uint64

	// SharedPages is the number of this address space's memory-file pages
	// that another address space (a clone) also references: private pages
	// not yet copied on write. (Shared anonymous memory lives in
	// shared-memory objects of its own, not in the memory file.)
	SharedPages uint64

	// PrivateCopies is the number of pages of private mappings that have a
	// memory-file page of their own that no other address space shares:
	// anonymous pages once touched, private file pages once written, and
	// pages copied on write after a clone.
	PrivateCopies int

	// HostMappings is the number of host mappings (kernel VMAs) the
	// address space's views consist of now, and HostReservedBytes the host
	// address space they reserve. See also HostStats.
	HostMappings      int
	HostReservedBytes uint64
}

// Stats returns the address space's memory statistics, or ErrClosed after
// Close.
func (as *AddressSpace) Stats() (Stats, error) {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return Stats{}, errClosedMgmt
	}
	var st Stats
	st.Mappings = len(as.mappingsLocked())
	as.vmas.Ascend(func(v *vma) bool {
		st.MappedBytes += v.length()
		st.ResidentBytes += as.pt.ResidentPages(uint64(v.start), uint64(v.end)) * hostarch.PageSize
		count := func(off, length uint64) {
			shared := as.mem.SharedBytes(off, length)
			st.SharedPages += shared / hostarch.PageSize
			if v.private {
				st.PrivateCopies += int((length - shared) / hostarch.PageSize)
			}
		}
		as.pt.Owned(uint64(v.start), uint64(v.end), count)
		return true
	})
	st.MemoryFileBytes = as.mem.InUse()
	st.MemoryFileResidentBytes, _ = as.mem.Resident()
	st.HostMappings = as.pt.HostMappings()
	st.HostReservedBytes = as.pt.Reserved()
	return st, nil
}

// HostStats returns the process-wide account of the host resources that
// address spaces use: the host mappings their views consist of and have
// committed (against vm.max_map_count less a headroom left to the rest of
// the process; a call that would exceed it fails with ENOMEM), and the
// host address space they reserve. See pma.HostStats for the fields. (The
// result's type lives in package pma: a Go package cannot name both a
// function and a type HostStats.)
func HostStats() pma.HostStats {
	return pma.ReadHostStats()
}
