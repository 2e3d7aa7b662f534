package addrspace

import (
	"context"
	"slices"
	"sync"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// A PageFiller supplies the contents of a lazily filled mapping
// (MmapOpts.Fill), as a userfaultfd handler does for a Linux process: the
// first access to a page that the mapping does not hold yet, through any
// path (copies, atomics, CopyOutFrom and CopyInTo, Populate), calls
// FillPages for a run of pages around it, installs the bytes, then
// proceeds.
//
// FillPages must fill all of dst (whole pages, at most LazyFillRun of
// them) with the contents of the mapping's pages at off, the offset of
// dst's first byte from the start of the mapping as it was created (the
// offset follows the pages when Mremap moves them, and continues past the
// original end when Mremap grows the mapping). It must not retain dst. It
// runs without the address space's mapping lock held, so it may use the
// address space (copies, Mmap, Munmap), except the calls that wait for
// zero-copy transfers in progress (Clone, Mprotect, Madvise), which a
// transfer waiting for this fill would deadlock, and it must not access
// the pages it is filling (which wait for it). ctx is
// context.Background(): the access paths carry no context to the fault.
//
// An error fails the access: if dst was more than one page, FillPages is
// called again for the faulting page alone, and an error then makes the
// access fail at that page with a *FaultError (errors.Is EFAULT, Reason
// FaultFill, Cause the error), after transferring every byte before it.
// Pages whose fill succeeded are never filled again in that address space
// unless Madvise(MADV_DONTNEED) (or Munmap and a new mapping) discards
// them.
//
// FillPages may be called concurrently, from the goroutines accessing the
// space and from those of its clones.
type PageFiller interface {
	FillPages(ctx context.Context, off uint64, dst []byte) error
}

// LazyFillRun is the most pages one FillPages call fills: the faulting
// page and the pages after it in the mapping that are not filled yet. It
// bounds the memory a fill holds and keeps filled pages in runs that
// share one host mapping.
const LazyFillRun = 16

// lazySource is the filler of a lazily filled mapping; the VMAs split from
// or moved with it share it, and only VMAs with the same one merge.
type lazySource struct {
	filler PageFiller
	// origin is the pgoff of the mapping's first page when it was created:
	// the page at pgoff p has offset p-origin.
	origin uint64
}

// fillInFlight is a run of a lazySource's pages being filled.
type fillInFlight struct {
	src        *lazySource
	start, end uint64 // offsets
	done       chan struct{}
}

var fillBufs = sync.Pool{New: func() any { b := make([]byte, LazyFillRun*hostarch.PageSize); return &b }}

// fillLazy fills the page at addr of v, a lazily filled mapping, if the
// page table does not back it yet, and reports whether it did anything
// (then the fault must be resolved again from the start: the lock was
// released). It returns the access's error if the fill failed.
//
// Preconditions: as.mu is held; v is the VMA at addr and allows the
// access. as.mu is released while the filler runs (or while another
// goroutine's fill of the same page completes) and held again on return.
func (as *AddressSpace) fillLazy(v *vma, addr hostarch.Addr, at hostarch.AccessType) (bool, error) {
	page := addr.RoundDown()
	if as.pt.MissingUpTo(uint64(page), uint64(page)+hostarch.PageSize) == uint64(page) {
		return false, nil
	}
	src := v.lazy
	off := v.pgoffAt(page) - src.origin
	for _, f := range as.filling {
		if f.src == src && f.start <= off && off < f.end {
			// Another goroutine fills this page: wait for it.
			as.mu.Unlock()
			<-f.done
			as.mu.Lock()
			return true, nil
		}
	}
	// The run: the missing pages from page on, within v, not in flight.
	end := hostarch.Addr(as.pt.MissingUpTo(uint64(page), uint64(min(v.end, page+LazyFillRun*hostarch.PageSize))))
	for _, f := range as.filling {
		if f.src == src && f.start > off && f.start < off+uint64(end-page) {
			end = page + hostarch.Addr(f.start-off)
		}
	}
	n := uint64(end - page)
	fl := &fillInFlight{src: src, start: off, end: off + n, done: make(chan struct{})}
	as.filling = append(as.filling, fl)
	// Runs last, with as.mu held again, even if the filler panics.
	defer func() {
		as.filling = slices.DeleteFunc(as.filling, func(f *fillInFlight) bool { return f == fl })
		close(fl.done)
	}()
	bp := fillBufs.Get().(*[]byte)
	defer fillBufs.Put(bp)
	buf := (*bp)[:n]
	err := as.runFiller(src.filler, off, buf)
	if err != nil && n > hostarch.PageSize {
		n = hostarch.PageSize
		buf = buf[:n]
		err = as.runFiller(src.filler, off, buf)
	}
	if as.closed.Load() {
		return true, errClosedIO
	}
	if err != nil {
		return true, &FaultError{Addr: addr, Access: at, Reason: FaultFill, Cause: err}
	}
	// Install what is still missing where the same pages still are (the
	// mapping may have been unmapped, moved or discarded meanwhile).
	for cur := uint64(0); cur < n; {
		w := as.lazyAddr(src, off+cur)
		if w == nil {
			cur += hostarch.PageSize
			continue
		}
		a := w.start + hostarch.Addr(off+cur-(w.pgoff-src.origin))
		stop := min(uint64(w.end-a), n-cur)
		miss := as.pt.MissingUpTo(uint64(a), uint64(a)+stop) - uint64(a)
		if miss == 0 {
			cur += hostarch.PageSize
			continue
		}
		if err := as.pt.Install(as.mapping(w), uint64(a), buf[cur:cur+miss]); err != nil {
			return true, &FaultError{Addr: addr, Access: at, Reason: FaultHostMemory}
		}
		cur += miss
	}
	return true, nil
}

// runFiller calls f for buf without as.mu, which it takes again before it
// returns or f's panic goes on.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) runFiller(f PageFiller, off uint64, buf []byte) error {
	as.mu.Unlock()
	defer as.mu.Lock()
	return f.FillPages(context.Background(), off, buf)
}

// lazyAddr returns the VMA that holds the page at offset off of src, or
// nil. It looks where the faulting mapping's pages usually still are: the
// VMAs sharing src.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) lazyAddr(src *lazySource, off uint64) *vma {
	var found *vma
	if v := as.find(hostarch.Addr(src.origin + off)); v != nil && v.lazy == src && v.pgoffAt(hostarch.Addr(src.origin+off)) == src.origin+off {
		return v // not moved
	}
	as.vmas.Ascend(func(v *vma) bool {
		if v.lazy == src {
			first := v.pgoff - src.origin
			if off >= first && off-first < v.length() {
				found = v
				return false
			}
		}
		return true
	})
	return found
}

// lazyOpts checks and records MmapOpts.Fill for the new VMA v.
func lazyOpts(opts MmapOpts, v *vma) error {
	if opts.Fill == nil {
		return nil
	}
	if opts.File != nil || !opts.Private {
		return errLazyKind
	}
	v.lazy = &lazySource{filler: opts.Fill, origin: v.pgoff}
	return nil
}

var errLazyKind = &lazyKindError{}

type lazyKindError struct{}

func (*lazyKindError) Error() string {
	return "addrspace: MmapOpts.Fill needs a private anonymous mapping: " + unix.EINVAL.Error()
}
func (*lazyKindError) Unwrap() error { return unix.EINVAL }
