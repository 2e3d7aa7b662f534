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
	view  unsafe.Pointer
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
		if err := as.resolve(base, f, at, opts.IgnorePermissions); err != nil {
			d, ef := r.exact(done, lb, fault, sig)
			done += d
			if ef.Sig == 0 { // accessible meanwhile
				return n, nil
			}
			if ef == f {
				return done, err
			}
			return as.finish(base, n, done, ef, at, opts, r.op)
		}
		prev = 0
		if lb == 0 {
			prev = fault
		}
		done += lb
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
	return as.finish(base, n, done, f, at, opts, r.op)
}
