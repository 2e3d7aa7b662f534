package addrspace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Clone returns a new address space with the same mappings and contents, as
// fork(2) gives a child process:
//
//   - shared mappings stay shared: a write in either address space is seen
//     by both;
//   - private mappings become copy-on-write in both: their pages are
//     write-protected in both views of both address spaces, the first write
//     to a page in either copies it, and a page that is no longer shared
//     with anyone is made writable again without a copy;
//   - mappings advised MADV_DONTFORK are left out of the clone, and those
//     advised MADV_WIPEONFORK are in it with zero-filled pages (see
//     Madvise).
//
// No page is copied by Clone itself: its cost grows with the number of
// mappings (and of pages already copied on write), not with the memory they
// hold. The clone shares the memory file; pages are reference-counted and
// returned to the host when the last address space drops them. The clone
// is independent otherwise: mapping changes in one do not affect the other,
// and either may be closed first.
//
// Clone waits for CopyOutFrom calls in progress to finish (see there).
//
// Errors: ENOMEM (wrapped) if the host cannot reserve the clone's views or
// refuses mappings; ErrClosed after Close.
func (as *AddressSpace) Clone() (*AddressSpace, error) {
	as.activeMu.Lock()
	defer as.activeMu.Unlock()
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return nil, errClosedMgmt
	}
	child, err := newWithMemory(as.size, as.mem.Share(), hostFloor(as.vmas.Len()))
	if err != nil {
		return nil, fmt.Errorf("addrspace: clone: %w", err)
	}
	child.maxMapCount = as.maxMapCount
	child.brkStart, child.brk = as.brkStart, as.brk
	// The child inherits the limits but not the locks, nor MCL_FUTURE
	// (Linux's dup_mmap clears VM_LOCKED_MASK, mm_init def_flags).
	child.limits = as.limits

	var vmas []*vma
	as.vmas.Ascend(func(v *vma) bool { vmas = append(vmas, v); return true })
	for _, v := range vmas {
		if v.flags&vmDontCopy != 0 {
			continue // MADV_DONTFORK: Linux's dup_mmap leaves the VMA out
		}
		cv := *v
		if v.file != nil {
			r, err := child.adoptFile(v.file)
			if err != nil {
				child.Close()
				return nil, fmt.Errorf("addrspace: clone: %w", err)
			}
			cv.file = r
		}
		if v.flags&vmWipeOnFork != 0 {
			// MADV_WIPEONFORK: the child's mapping starts with no pages
			// (they read zero) and, as Linux's, no anon_vma.
			cv.anonID = detachedAnonID(v.anonID)
		} else if v.private {
			// The parent's pages become copy-on-write in both (a write
			// racing with Clone lands before, and is inherited, or faults
			// and waits for as.mu).
			as.pt.Share(child.pt, uint64(v.start), uint64(v.end))
		}
		child.insert(&cv)
	}
	// Linux's fork gives each of the child's VMAs an anon_vma of its own.
	child.nextAnonID = as.nextAnonID
	child.freshAnonIDs()
	// Only then drop the locks (dup_mmap's VM_LOCKED_MASK): a VMA that
	// was apart for its lock keeps an anon_vma of its own, as in Linux's
	// child, where it stays a VMA of its own.
	child.vmas.Ascend(func(v *vma) bool { v.flags &^= lockMask; return true })
	return child, nil
}

// adoptFile returns as's own reference to the file of r (another address
// space's), duplicating its descriptor if as has none yet.
func (as *AddressSpace) adoptFile(r *fileRef) (*fileRef, error) {
	key := fileKey{r.dev, r.ino, r.writable}
	if mine := as.files[key]; mine != nil {
		mine.refs++
		return mine, nil
	}
	fd, err := unix.FcntlInt(uintptr(r.fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, dupError(r.name, err)
	}
	mine := &fileRef{f: newFile(fd, r.name), name: r.name, dev: r.dev, ino: r.ino, writable: r.writable, refs: 1, shm: r.shm}
	as.files[key] = mine
	return mine, nil
}
