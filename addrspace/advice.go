package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
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
// does. Supported advice: unix.MADV_NORMAL, MADV_RANDOM and MADV_SEQUENTIAL
// (accepted, no effect), MADV_WILLNEED (the host reads ahead), and
// MADV_DONTNEED: pages of private anonymous mappings read back as zero
// afterwards, pages of private file mappings read back the file's contents
// (their private copies are dropped), and shared mappings keep their
// contents, as on Linux. length is rounded up to whole pages; 0 succeeds.
//
// Errors (wrapping a unix.Errno): EINVAL for an unaligned addr or other
// advice; ENOMEM if part of the range is not mapped or lies beyond the
// address space (the mapped parts before it are advised, as on Linux);
// ErrClosed after Close.
func (as *AddressSpace) Madvise(addr hostarch.Addr, length uint64, advice int) error {
	switch advice {
	case unix.MADV_NORMAL, unix.MADV_RANDOM, unix.MADV_SEQUENTIAL, unix.MADV_WILLNEED, unix.MADV_DONTNEED:
	default:
		return fmt.Errorf("addrspace: madvise advice %d is not supported: %w", advice, unix.EINVAL)
	}
	ar, err := as.mgmtRange("madvise", addr, length, unix.ENOMEM)
	if err != nil {
		return err
	}
	as.activeMu.Lock()
	defer as.activeMu.Unlock()
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	if ar.Length() == 0 {
		return nil
	}
	switch advice {
	case unix.MADV_WILLNEED:
		return as.forMapped("madvise", ar, false, func(v *vma, r hostarch.AddrRange) error {
			hostMadvise(as.app.Base()+uintptr(r.Start), uint64(r.Length()), unix.MADV_WILLNEED)
			return nil
		})
	case unix.MADV_DONTNEED:
		return as.forMapped("madvise", ar, false, func(v *vma, r hostarch.AddrRange) error {
			if v.private {
				return as.dontNeed(v, r)
			}
			return nil
		})
	}
	return as.forMapped("madvise", ar, false, func(*vma, hostarch.AddrRange) error { return nil })
}

// dontNeed discards the private contents of v's pages in r.
//
// Preconditions: as.mu is held; v.private; r inside v.
func (as *AddressSpace) dontNeed(v *vma, r hostarch.AddrRange) error {
	// A private file page drops its private copy and shows the file again.
	if v.file != nil {
		for _, a := range as.overridesIn(r.Start, r.End) {
			as.mem.DecRef(as.override[a], hostarch.PageSize)
			delete(as.override, a)
			if err := as.mapBase(v, a, a+hostarch.PageSize); err != nil {
				return fmt.Errorf("addrspace: madvise: %w", err)
			}
		}
		return nil
	}
	// Anonymous: a page this space holds alone is punched (it reads as zero
	// and stays mapped); a page shared with a clone is replaced by a fresh
	// zero page of this space's own.
	app, max := viewProts(v, true)
	for page := r.Start; page < r.End; page += hostarch.PageSize {
		cur, ok := as.override[page]
		if !ok {
			cur = v.memAt(page)
		}
		if as.mem.Refs(cur) == 1 {
			if err := as.mem.Decommit(cur, hostarch.PageSize); err != nil {
				return fmt.Errorf("addrspace: madvise: %w", err)
			}
			continue
		}
		off, err := as.mem.Allocate(hostarch.PageSize, 0)
		if err != nil {
			return fmt.Errorf("addrspace: madvise: %w", err)
		}
		if err := as.mapPage(v, page, off, app, max); err != nil {
			as.mem.DecRef(off, hostarch.PageSize)
			as.remapHost(hostarch.AddrRange{Start: page, End: page + hostarch.PageSize})
			return fmt.Errorf("addrspace: madvise: %w", err)
		}
		as.override[page] = off
		as.mem.DecRef(cur, hostarch.PageSize)
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
		if _, _, e := unix.Syscall(unix.SYS_MSYNC, as.app.Base()+uintptr(r.Start), uintptr(r.Length()), uintptr(flags)); e != 0 {
			return fmt.Errorf("addrspace: msync of %v: %w", r, e)
		}
		return nil
	})
}

func hostMadvise(addr uintptr, length uint64, advice int) {
	unix.Syscall(unix.SYS_MADVISE, addr, uintptr(length), uintptr(advice))
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
	// that another address space (a clone) also references: shared
	// anonymous memory and private pages not yet copied on write.
	SharedPages uint64

	// PrivateCopies is the number of private pages that have their own
	// memory-file page: private file pages written, and pages copied on
	// write after a clone.
	PrivateCopies int
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
	var vec []byte
	st.Mappings = len(as.mappingsLocked())
	as.vmas.Ascend(func(v *vma) bool {
		st.MappedBytes += v.length()
		st.ResidentBytes += as.residentLocked(v.ar(), &vec)
		as.forEachPage(v, v.start, v.end, func(off, length uint64) {
			st.SharedPages += as.mem.SharedBytes(off, length) / hostarch.PageSize
		})
		return true
	})
	st.PrivateCopies = len(as.override)
	st.MemoryFileBytes = as.mem.InUse()
	st.MemoryFileResidentBytes, _ = as.mem.Resident()
	return st, nil
}
