package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// mincoreChunk is the most pages one step of a residency query handles
// while holding the address space's lock (a 64 KiB vector, 256 MiB of
// addresses): the lock is never held for work proportional to a length the
// guest chose. Linux's mincore likewise takes mmap_lock per chunk.
const mincoreChunk = 1 << 16

// MincoreInto reports which pages of [addr, addr+length) are resident in
// host memory, as mincore(2) does: vec[i] is 1 if page i of the range is
// resident and 0 if not. For file and shared mappings this is the
// residency of the backing page in the host's page cache. length is
// rounded up to whole pages; 0 succeeds without effect. MincoreInto
// allocates no memory per page; its time grows with the number of pages
// reported, and a range that is not wholly mapped fails after work
// proportional to the number of mappings before the hole, not to its
// length.
//
// The range is handled in chunks, each under the address space's lock, so
// as on Linux a concurrent Munmap may make a later chunk fail; then vec
// holds the results of the chunks before it. Bytes of vec past the range's
// pages are not touched.
//
// Errors (wrapping a unix.Errno): EINVAL for an unaligned addr; ENOMEM if
// part of the range lies beyond the address space or is not mapped; EFAULT
// if vec is shorter than the range's page count (nothing is written);
// ErrClosed after Close.
func (as *AddressSpace) MincoreInto(addr hostarch.Addr, length uint64, vec []byte) error {
	ar, err := as.mgmtRange("mincore", addr, length, unix.ENOMEM)
	if err != nil {
		return err
	}
	pages := uint64(ar.Length()) / hostarch.PageSize
	if uint64(len(vec)) < pages {
		return fmt.Errorf("addrspace: mincore of %d pages into a vector of %d: %w", pages, len(vec), unix.EFAULT)
	}
	if err := as.checkMapped(ar); err != nil {
		return err
	}
	for cur := ar.Start; cur < ar.End; {
		r, i := chunkAt(ar, cur)
		if err := as.mincoreStep(r, vec[i:i+uint64(r.Length())/hostarch.PageSize]); err != nil {
			return err
		}
		cur = r.End
	}
	return nil
}

// Mincore is MincoreInto returning one bool per page. It allocates a byte
// per page of the range (once the range is known to be mapped, so an
// unmapped range costs nothing); callers passing guest-chosen lengths should
// use MincoreInto with a vector of their own.
//
// Errors as for MincoreInto, except EFAULT.
func (as *AddressSpace) Mincore(addr hostarch.Addr, length uint64) ([]bool, error) {
	ar, err := as.mgmtRange("mincore", addr, length, unix.ENOMEM)
	if err != nil {
		return nil, err
	}
	if err := as.checkMapped(ar); err != nil {
		return nil, err
	}
	res := make([]bool, uint64(ar.Length())/hostarch.PageSize)
	scratch := make([]byte, min(len(res), mincoreChunk))
	for cur := ar.Start; cur < ar.End; {
		r, i := chunkAt(ar, cur)
		vec := scratch[:uint64(r.Length())/hostarch.PageSize]
		if err := as.mincoreStep(r, vec); err != nil {
			return nil, err
		}
		for j, b := range vec {
			res[i+uint64(j)] = b != 0
		}
		cur = r.End
	}
	return res, nil
}

// checkMapped returns ENOMEM (wrapped) unless every page of ar is mapped,
// or ErrClosed after Close. It visits the mappings over ar, not its pages.
func (as *AddressSpace) checkMapped(ar hostarch.AddrRange) error {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	return as.coveredLocked("mincore", ar)
}

// coveredLocked returns ENOMEM (wrapped) naming the first page of ar that
// no VMA covers, or nil.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) coveredLocked(op string, ar hostarch.AddrRange) error {
	cur := ar.Start
	as.visit(ar, func(v *vma) bool {
		if v.start > cur {
			return false
		}
		cur = v.end
		return cur < ar.End
	})
	if cur < ar.End {
		return fmt.Errorf("addrspace: %s: %#x is not mapped: %w", op, cur, unix.ENOMEM)
	}
	return nil
}

// chunkAt returns the chunk of ar that starts at cur: at most mincoreChunk
// pages, and the index in ar of its first page.
func chunkAt(ar hostarch.AddrRange, cur hostarch.Addr) (hostarch.AddrRange, uint64) {
	end := ar.End
	if uint64(end-cur) > mincoreChunk*hostarch.PageSize {
		end = cur + mincoreChunk*hostarch.PageSize
	}
	return hostarch.AddrRange{Start: cur, End: end}, uint64(cur-ar.Start) / hostarch.PageSize
}

// mincoreStep fills vec with the residency of r's pages (1 resident, 0
// not), under as.mu, if r is still wholly mapped.
func (as *AddressSpace) mincoreStep(r hostarch.AddrRange, vec []byte) error {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	if err := as.coveredLocked("mincore", r); err != nil {
		return err
	}
	clear(vec)
	var err error
	as.visit(r, func(v *vma) bool {
		p := v.ar().Intersect(r)
		if v.file != nil {
			// File and shared pages are resident as their backing is: map
			// them so that the host can say.
			if err = as.pt.Fill(as.mapping(v), uint64(p.Start), uint64(p.End)); err != nil {
				return false
			}
		}
		as.pt.Resident(uint64(p.Start), uint64(p.End), vec[(p.Start-r.Start)/hostarch.PageSize:(p.End-r.Start)/hostarch.PageSize])
		return true
	})
	if err != nil {
		return fmt.Errorf("addrspace: mincore of %v: %w", r, err)
	}
	return nil
}
