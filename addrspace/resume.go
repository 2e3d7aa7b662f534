package addrspace

import (
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/internal/safecopy"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// A rawOp is one side of a fault-safe copy or zeroing of n bytes through a
// view, for finishRaw: raw transfers bytes [from, n) and returns the
// routine's raw results (safecopy.Memcpy's); exact makes such results of a
// transfer from from exact (safecopy.FinishCopy, FinishZero), returning
// the bytes done from from and the first inaccessible byte; op transfers
// [from, n) exactly, for finish. view is the host address of byte 0 of the
// transfer in the view.
type rawOp struct {
	view unsafe.Pointer
	// src is, for a copy out of Go memory (CopyOut), the n bytes copied,
	// and zero is set for a zeroing (ZeroOut), so that a write fault on a
	// page the rest overwrites whole can write it through (resolveFor).
	src   []byte
	zero  bool
	raw   func(from uintptr) (lb, fault uintptr, sig int32)
	exact func(from, lb, fault uintptr, sig int32) (uintptr, safecopy.Fault)
	op    func(from uintptr) (uintptr, safecopy.Fault)
}

// finishRaw completes a transfer of n bytes through the view at base
// whose attempt from done stopped with the raw results lb (bytes certainly
// done from done), fault and sig. The view is the only side that can
// fault (the other is Go memory).
//
// A fault costs one host signal where the page of its reported address is
// certainly the first page the transfer could not access
// (safecopy.FaultPageExact): that page is resolved at once and, if it could
// be, the transfer resumes from done+lb. Only a fault that cannot be
// resolved (or whose page is uncertain) pays for the exact count, which
// touches the first inaccessible byte alone and so costs a second signal:
// the count and the error's address stay exact, as finish makes them.
func (as *AddressSpace) finishRaw(base unsafe.Pointer, n, done, lb, fault uintptr, sig int32, at hostarch.AccessType, opts usermem.IOOpts, r rawOp) (uintptr, error) {
	var prev uintptr // the fault last resolved, and no progress since
	side := uintptr(r.view)
	for safecopy.FaultPageExact(fault, side+done, side+n) && fault != prev {
		f := safecopy.Fault{Addr: fault, Sig: unix.Signal(sig)}
		from, wrote, err := as.resolveFor(base, f, at, opts, &r, n, done+lb)
		if err != nil {
			d, ef := r.exact(done, lb, fault, sig)
			done += d
			if ef.Sig == 0 { // accessible meanwhile
				return n, nil
			}
			if ef == f {
				return done, err
			}
			return as.finish(base, n, done, ef, at, opts, r.op, &r)
		}
		prev = 0
		if lb == 0 && wrote == 0 {
			prev = fault
		}
		done += lb
		if wrote > 0 {
			// [from, from+wrote) is written. Bytes below from that the
			// copy has not certainly written (at most one access's
			// worth: FaultPageExact) go through the view first.
			if gap := from - done; gap > 0 {
				if r.zero {
					lb, fault, sig = safecopy.MemclrRaw(unsafe.Add(r.view, done), gap)
				} else {
					lb, fault, sig = safecopy.Memcpy(unsafe.Add(r.view, done), unsafe.Pointer(&r.src[done]), gap)
				}
				if sig != 0 {
					continue // (the run is written again: harmless)
				}
			}
			if done = from + wrote; done == n {
				return n, nil
			}
		}
		if lb, fault, sig = r.raw(done); sig == 0 {
			return n, nil
		}
	}
	// The page is uncertain, or resolving it did not help: make the count
	// exact first, as before.
	d, f := r.exact(done, lb, fault, sig)
	done += d
	if f.Sig == 0 {
		return n, nil
	}
	return as.finish(base, n, done, f, at, opts, r.op, &r)
}

// through returns, for a write fault f on the page at offset from of a
// copy out of r.src (or a zeroing) whose first first bytes are certainly
// written, the part of the write that overwrites whole pages from there
// on, for resolveThrough; through{} if the transfer is neither, the fault is
// not one that a write-through resolves, or less than a page of the write
// is left from the page. side is the view's address of byte 0 and n the
// transfer's length.
func (r *rawOp) through(side, n, first uintptr, f safecopy.Fault) (from uintptr, w through) {
	if (r.src == nil && !r.zero) || f.Sig != unix.SIGSEGV {
		return 0, through{}
	}
	page := f.Addr &^ (hostarch.PageSize - 1)
	if page < side+first || side+n-page < hostarch.PageSize {
		return 0, through{}
	}
	from = page - side
	w.n = uint64((n - from) &^ (hostarch.PageSize - 1))
	if r.src != nil {
		w.src = r.src[from : from+uintptr(w.n)]
	}
	return from, w
}
