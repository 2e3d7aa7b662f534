package addrspace

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/internal/safecopy"
	"github.com/mmsim/mmsim/pma"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

var _ usermem.IO = (*AddressSpace)(nil)

// maxNoProgress bounds how often a copy is retried at the same address after
// fault resolution found nothing to do (another goroutine resolved the same
// fault meanwhile). Beyond it the host and the tree disagree, which is a
// bug; the copy then fails with EFAULT rather than spin.
const maxNoProgress = 8

// view returns the base of the view that opts select, or nil if the max
// view is needed and cannot be reserved.
func (as *AddressSpace) view(opts usermem.IOOpts) unsafe.Pointer {
	if opts.IgnorePermissions {
		return as.maxView()
	}
	return as.appBase
}

// maxView returns the base of the max view, which only IgnorePermissions
// accesses use, reserving it on first use. It returns nil if the host
// refuses (or the space is closed). It is kept out of line so that view,
// on every copy's fast path, inlines.
//
//go:noinline
func (as *AddressSpace) maxView() unsafe.Pointer {
	if p := as.maxBase.Load(); p != nil {
		return unsafe.Pointer(p)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return nil
	}
	base, err := as.pt.EnsureMax()
	if err != nil {
		return nil
	}
	p := hostPointer(base)
	as.maxBase.Store((*byte)(p))
	return p
}

// errNoView is the error of an IgnorePermissions access when the max view
// could not be reserved.
func (as *AddressSpace) errNoView(addr hostarch.Addr, at hostarch.AccessType) error {
	if as.closed.Load() {
		return errClosedIO
	}
	return &FaultError{Addr: addr, Access: at, Reason: FaultHostMemory}
}

// ioRange reports whether [addr, addr+n) lies inside the address space
// (Linux's access_ok) and the address space is open. It is small enough to be
// inlined into the copy fast paths.
func (as *AddressSpace) ioRange(addr hostarch.Addr, n uint64) bool {
	end := uint64(addr) + n
	return end >= uint64(addr) && end <= as.limit.Load()
}

// ioRangeErr returns the error for an access that ioRange refused.
//
//go:noinline
func (as *AddressSpace) ioRangeErr(addr hostarch.Addr, at hostarch.AccessType) error {
	if as.closed.Load() {
		return errClosedIO
	}
	return errOutOfRange(addr, at)
}

// resolve handles a fault at host address hostFault, raised by an access at
// through the view at base. It returns nil if the access should be retried
// (the page table backed and mapped the page, or broke copy-on-write), and
// otherwise the error to return.
//
// A fault outside the view is not the address space's: it panics, as the
// fault would have crashed the process without fault-safe copying.
func (as *AddressSpace) resolve(base unsafe.Pointer, f safecopy.Fault, at hostarch.AccessType, ignorePerms bool) error {
	_, err := as.resolveThrough(base, f, at, ignorePerms, through{})
	return err
}

// resolveThrough is resolve, and for a write w from the faulting page on
// (through{} for none) resolveWriteLocked's write-through: it returns how
// many bytes of w that wrote (0: the page was only made accessible).
func (as *AddressSpace) resolveThrough(base unsafe.Pointer, f safecopy.Fault, at hostarch.AccessType, ignorePerms bool, w through) (uintptr, error) {
	hostFault, sig := f.Addr, f.Sig
	b := uintptr(base)
	if hostFault < b || hostFault-b >= uintptr(as.size) {
		panic(fmt.Sprintf("addrspace: fault (signal %d) at host address %#x, outside the address space's view [%#x, %#x)", sig, hostFault, b, b+uintptr(as.size)))
	}
	addr := hostarch.Addr(hostFault - b)
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return 0, errClosedIO
	}
	n, err := as.resolveWriteLocked(addr, sig, at, ignorePerms, w)
	return uintptr(n), err
}

// resolveFor resolves fault f of transfer r (nil for none) of n bytes, whose
// first first bytes are certainly done: where the rest of a CopyOut or
// ZeroOut overwrites the fault's page whole, with a write-through that
// returns the page's offset from and the bytes wrote from there (see
// rawOp.through); otherwise as resolve (wrote 0).
func (as *AddressSpace) resolveFor(base unsafe.Pointer, f safecopy.Fault, at hostarch.AccessType, opts usermem.IOOpts, r *rawOp, n, first uintptr) (from, wrote uintptr, err error) {
	var w through
	if r != nil {
		from, w = r.through(uintptr(r.view), n, first, f)
	}
	wrote, err = as.resolveThrough(base, f, at, opts.IgnorePermissions, w)
	return from, wrote, err
}

// resolveLocked handles a fault at simulated address addr: an error if no
// mapping allows the access, otherwise the page table backs the page. An
// address below a mapping that grows down grows it first (growStackLocked),
// with ignorePerms too (Linux's __access_remote_vm, behind /proc/PID/mem
// and ptrace, expands the stack where get_user_pages would not).
//
// Preconditions: as.mu is held. For a page of a lazily filled mapping
// (MmapOpts.Fill) that is not filled yet, as.mu is released while the
// filler runs and held again on return: the caller must not rely on what
// it read under the lock before the call.
func (as *AddressSpace) resolveLocked(addr hostarch.Addr, sig unix.Signal, at hostarch.AccessType, ignorePerms bool) error {
	_, err := as.resolveWriteLocked(addr, sig, at, ignorePerms, through{})
	return err
}

// A through is the rest of a write from a faulting page on, for
// resolveThrough: n bytes, those of src, or zeros if src is nil (ZeroOut).
// The zero through (n == 0) is no write at all. Where the page needs a new
// page before the write (a copy-on-write or untouched private page), the
// page table backs a run of such pages with the bytes at once
// (pma.Table.WriteThrough, ZeroThrough).
type through struct {
	src []byte
	n   uint64
}

// resolveWriteLocked is resolveLocked, and for a write w from addr on
// (through{} if unknown) its write-through: it returns how many bytes of w
// it wrote.
func (as *AddressSpace) resolveWriteLocked(addr hostarch.Addr, sig unix.Signal, at hostarch.AccessType, ignorePerms bool, w through) (uint64, error) {
	v := as.find(addr)
	if v == nil && as.growStackLocked(addr) {
		v = as.find(addr)
	}
	if v == nil {
		return 0, &FaultError{Addr: addr, Access: at, Reason: FaultUnmapped}
	}
	perms := v.perms
	if ignorePerms {
		perms = v.maxPerms
	}
	if !perms.Effective().SupersetOf(at) {
		return 0, &FaultError{Addr: addr, Access: at, Reason: FaultProtection}
	}
	if sig == unix.SIGBUS {
		return 0, &FaultError{Addr: addr, Access: at, Reason: FaultBus}
	}
	if v.lazy != nil {
		if filled, err := as.fillLazy(v, addr, at); err != nil {
			return 0, err
		} else if filled {
			// The lock was released: resolve again.
			if as.closed.Load() {
				return 0, errClosedIO
			}
			return as.resolveWriteLocked(addr, sig, at, ignorePerms, w)
		}
	}
	if at.Write && v.private {
		// Linux's first write fault gives the VMA its anon_vma, before it
		// reads the page (so even one that ends in SIGBUS does).
		as.anonFault(v)
	}
	m := as.mapping(v)
	if w.n != 0 && at.Write && v.private {
		start := uint64(addr)
		k := min(w.n, m.End-start) &^ (hostarch.PageSize - 1)
		var end uint64
		var err error
		if w.src != nil {
			end, err = as.pt.WriteThrough(m, start, w.src[:k], ignorePerms)
		} else {
			end, err = as.pt.ZeroThrough(m, start, k, ignorePerms)
		}
		if err != nil {
			return 0, &FaultError{Addr: addr, Access: at, Reason: FaultHostMemory}
		}
		if end > start {
			return end - start, nil
		}
	}
	switch err := as.pt.Fault(m, uint64(addr), at.Write, ignorePerms); {
	case err == nil:
		return 0, nil
	case errors.Is(err, pma.ErrBeyondEOF):
		return 0, &FaultError{Addr: addr, Access: at, Reason: FaultBus}
	default:
		return 0, &FaultError{Addr: addr, Access: at, Reason: FaultHostMemory}
	}
}

// finish completes a transfer of n bytes touching the view at base whose
// first attempt stopped after done bytes with a fault at host address fault:
// it resolves the fault and resumes with op, which transfers bytes [from, n)
// and reports how far it got, until the transfer completes or fails.
//
// With r (finishRaw's transfer, nil for none), a fault on a page that the
// rest of a CopyOut or ZeroOut overwrites whole is resolved by writing it
// through, as finishRaw does where the fault's page is certain (here the
// count is exact, so it always is).
func (as *AddressSpace) finish(base unsafe.Pointer, n, done uintptr, f safecopy.Fault, at hostarch.AccessType, opts usermem.IOOpts, op func(from uintptr) (uintptr, safecopy.Fault), r *rawOp) (uintptr, error) {
	stuck := 0
	for {
		from, wrote, err := as.resolveFor(base, f, at, opts, r, n, done)
		if err != nil {
			return done, err
		}
		// The count is exact, so a run written through starts at done
		// (were it further on, op would write it again: harmless).
		if wrote > 0 && from == done {
			if done += wrote; done == n {
				return n, nil
			}
		}
		last := f
		var d uintptr
		d, f = op(done)
		done += d
		if f.Sig == 0 {
			return n, nil
		}
		if d != 0 || f != last {
			stuck = 0
		} else if stuck++; stuck > maxNoProgress {
			return done, &FaultError{Addr: hostarch.Addr(f.Addr - uintptr(base)), Access: at, Reason: FaultProtection}
		}
	}
}

// CopyOut implements usermem.IO.CopyOut: it copies src to the simulated
// memory at addr and returns the number of bytes copied. If that is less
// than len(src), the error says why: a *FaultError (errors.Is EFAULT) for
// the first page that could not be written, or for a range that overflows
// or ends beyond Size (then nothing is copied). CopyOut does not retain src.
//
// (nosplit: the fast path's frame is small and its only callee, the copy
// routine, has none; the linker checks that the chain fits the guard.)
//
//go:nosplit
func (as *AddressSpace) CopyOut(ctx context.Context, addr hostarch.Addr, src []byte, opts usermem.IOOpts) (int, error) {
	// The fast path keeps four values live across the copy (as, addr, the
	// slice's data and length): every other case, and every fault, goes
	// out of line, so that an 8-byte copy costs no more than a raw one.
	n := uintptr(len(src))
	end := uintptr(addr) + n
	if n == 0 || opts.IgnorePermissions || end < uintptr(addr) || uint64(end) > as.limit.Load() {
		return as.copyOutOther(addr, src, opts)
	}
	p := unsafe.SliceData(src)
	done, fault, sig := safecopy.Memcpy(unsafe.Add(as.appBase, addr), unsafe.Pointer(p), n)
	if sig == 0 {
		return int(n), nil
	}
	return as.copyOutSlow(as.appBase, unsafe.Add(as.appBase, addr), unsafe.Slice(p, n), done, fault, sig, usermem.IOOpts{})
}

// copyOutOther is CopyOut for an empty or out-of-range src, or through the
// max view.
//
// (nosplit, as CopyOut: the max view's accesses, IgnorePermissions, come
// here on every call.)
//
//go:nosplit
//go:noinline
func (as *AddressSpace) copyOutOther(addr hostarch.Addr, src []byte, opts usermem.IOOpts) (int, error) {
	if len(src) == 0 {
		return 0, as.closedErr()
	}
	if !as.ioRange(addr, uint64(len(src))) {
		return 0, as.ioRangeErr(addr, hostarch.Write)
	}
	base := as.appBase
	if opts.IgnorePermissions {
		if base = unsafe.Pointer(as.maxBase.Load()); base == nil {
			if base = as.maxView(); base == nil {
				return 0, as.errNoView(addr, hostarch.Write)
			}
		}
	}
	dst := unsafe.Add(base, addr)
	done, fault, sig := safecopy.Memcpy(dst, unsafe.Pointer(unsafe.SliceData(src)), uintptr(len(src)))
	if sig == 0 {
		return len(src), nil
	}
	return as.copyOutSlow(base, dst, src, done, fault, sig, opts)
}

//go:noinline
func (as *AddressSpace) copyOutSlow(base, dst unsafe.Pointer, src []byte, rawDone, rawFault uintptr, rawSig int32, opts usermem.IOOpts) (int, error) {
	n := uintptr(len(src))
	done, err := as.finishRaw(base, n, 0, rawDone, rawFault, rawSig, hostarch.Write, opts, rawOp{
		view: dst,
		src:  src,
		raw: func(from uintptr) (uintptr, uintptr, int32) {
			return safecopy.Memcpy(unsafe.Add(dst, from), unsafe.Pointer(unsafe.SliceData(src[from:])), n-from)
		},
		exact: func(from, lb, fault uintptr, sig int32) (uintptr, safecopy.Fault) {
			return safecopy.FinishCopy(unsafe.Add(dst, from), unsafe.Pointer(unsafe.SliceData(src[from:])), n-from, lb, fault, sig)
		},
		op: func(from uintptr) (uintptr, safecopy.Fault) {
			return safecopy.Copy(unsafe.Add(dst, from), unsafe.Pointer(unsafe.SliceData(src[from:])), n-from)
		},
	})
	return int(done), err
}

// CopyIn implements usermem.IO.CopyIn: it copies len(dst) bytes from the
// simulated memory at addr to dst and returns the number of bytes copied,
// with errors as for CopyOut. Bytes of dst past the count returned may
// have been written. CopyIn does not retain dst.
//
//go:nosplit
func (as *AddressSpace) CopyIn(ctx context.Context, addr hostarch.Addr, dst []byte, opts usermem.IOOpts) (int, error) {
	// As in CopyOut, the fast path keeps four values live across the copy.
	n := uintptr(len(dst))
	end := uintptr(addr) + n
	if n == 0 || opts.IgnorePermissions || end < uintptr(addr) || uint64(end) > as.limit.Load() {
		return as.copyInOther(addr, dst, opts)
	}
	p := unsafe.SliceData(dst)
	done, fault, sig := safecopy.Memcpy(unsafe.Pointer(p), unsafe.Add(as.appBase, addr), n)
	if sig == 0 {
		return int(n), nil
	}
	return as.copyInSlow(as.appBase, unsafe.Add(as.appBase, addr), unsafe.Slice(p, n), done, fault, sig, usermem.IOOpts{})
}

// copyInOther is CopyIn for an empty or out-of-range dst, or through the
// max view.
//
//go:nosplit
//go:noinline
func (as *AddressSpace) copyInOther(addr hostarch.Addr, dst []byte, opts usermem.IOOpts) (int, error) {
	if len(dst) == 0 {
		return 0, as.closedErr()
	}
	if !as.ioRange(addr, uint64(len(dst))) {
		return 0, as.ioRangeErr(addr, hostarch.Read)
	}
	base := as.appBase
	if opts.IgnorePermissions {
		if base = unsafe.Pointer(as.maxBase.Load()); base == nil {
			if base = as.maxView(); base == nil {
				return 0, as.errNoView(addr, hostarch.Read)
			}
		}
	}
	src := unsafe.Add(base, addr)
	done, fault, sig := safecopy.Memcpy(unsafe.Pointer(unsafe.SliceData(dst)), src, uintptr(len(dst)))
	if sig == 0 {
		return len(dst), nil
	}
	return as.copyInSlow(base, src, dst, done, fault, sig, opts)
}

//go:noinline
func (as *AddressSpace) copyInSlow(base, src unsafe.Pointer, dst []byte, rawDone, rawFault uintptr, rawSig int32, opts usermem.IOOpts) (int, error) {
	n := uintptr(len(dst))
	done, err := as.finishRaw(base, n, 0, rawDone, rawFault, rawSig, hostarch.Read, opts, rawOp{
		view: src,
		raw: func(from uintptr) (uintptr, uintptr, int32) {
			return safecopy.Memcpy(unsafe.Pointer(unsafe.SliceData(dst[from:])), unsafe.Add(src, from), n-from)
		},
		exact: func(from, lb, fault uintptr, sig int32) (uintptr, safecopy.Fault) {
			return safecopy.FinishCopy(unsafe.Pointer(unsafe.SliceData(dst[from:])), unsafe.Add(src, from), n-from, lb, fault, sig)
		},
		op: func(from uintptr) (uintptr, safecopy.Fault) {
			return safecopy.Copy(unsafe.Pointer(unsafe.SliceData(dst[from:])), unsafe.Add(src, from), n-from)
		},
	})
	return int(done), err
}

var _ usermem.VecIO = (*AddressSpace)(nil)

// CopyInSeq implements usermem.VecIO.CopyInSeq: CopyInVec over ars in one
// call, with one fault-safe copy per range and no lock (faults resolve as
// in CopyIn).
func (as *AddressSpace) CopyInSeq(ctx context.Context, ars hostarch.AddrRangeSeq, dst []byte, opts usermem.IOOpts) (int, error) {
	return as.seqCopy(ars, dst, opts, false)
}

// CopyOutSeq implements usermem.VecIO.CopyOutSeq: CopyOutVec over ars in
// one call, as CopyInSeq.
func (as *AddressSpace) CopyOutSeq(ctx context.Context, ars hostarch.AddrRangeSeq, src []byte, opts usermem.IOOpts) (int, error) {
	return as.seqCopy(ars, src, opts, true)
}

// vecBatch is how many ranges seqCopy takes at a time.
const vecBatch = 16

// seqCopy is CopyInSeq (out false: from ars to buf) and CopyOutSeq (out
// true). It takes the ranges vecBatch at a time (AddrRangeSeq.Next: plain
// loops, no call per range). A batch of small ranges (1 to
// safecopy.VecMax bytes each) that lie inside the space and fit in buf is
// copied with one fault-safe call (safecopy.MemcpyRanges); any other batch,
// and the rest of a batch after a fault, goes range by range.
func (as *AddressSpace) seqCopy(ars hostarch.AddrRangeSeq, buf []byte, opts usermem.IOOpts, out bool) (int, error) {
	base := as.view(opts)
	var ranges [vecBatch]hostarch.AddrRange
	done := 0
	for !ars.IsEmpty() && done < len(buf) {
		nr, rest := ars.Next(ranges[:])
		ars = rest
		rs := ranges[:nr]
		if n, ok := smallRanges(rs, as.limit.Load(), len(buf)-done); ok && base != nil {
			i, fault, sig := safecopy.MemcpyRanges(unsafe.Pointer(&buf[done]), base, unsafe.Pointer(&rs[0]), uintptr(nr), out)
			if sig == 0 {
				done += n
				continue
			}
			for _, ar := range rs[:i] {
				done += int(ar.Length())
			}
			// Range i faulted, possibly part done: 0 bytes is a certain
			// lower bound of its progress.
			ar := rs[i]
			m, err := as.rangeSlow(base, unsafe.Add(base, ar.Start), buf[done:done+int(ar.Length())], 0, fault, sig, opts, out)
			done += m
			if err != nil {
				return done, err
			}
			rs = rs[i+1:]
		}
		var err error
		if done, err = as.seqRanges(rs, buf, done, base, opts, out); err != nil {
			return done, err
		}
	}
	return done, nil
}

// smallRanges reports whether every range of rs has 1 to safecopy.VecMax
// bytes and ends by limit (the space's: see ioRange), and all of them
// fit in room bytes; n is their total.
func smallRanges(rs []hostarch.AddrRange, limit uint64, room int) (n int, ok bool) {
	for _, ar := range rs {
		l := uint64(ar.End - ar.Start)
		if l-1 >= safecopy.VecMax || uint64(ar.End) > limit {
			return 0, false
		}
		n += int(l)
	}
	return n, len(rs) > 0 && n <= room
}

// seqRanges copies rs one range at a time, buf from offset done on, as
// CopyInVec and CopyOutVec do with CopyIn and CopyOut: it stops at the end
// of buf or at the first range that fails, and returns the new offset.
func (as *AddressSpace) seqRanges(rs []hostarch.AddrRange, buf []byte, done int, base unsafe.Pointer, opts usermem.IOOpts, out bool) (int, error) {
	at := hostarch.Read
	if out {
		at = hostarch.Write
	}
	for _, ar := range rs {
		if done >= len(buf) {
			break
		}
		n := len(buf) - done
		if uint64(n) > uint64(ar.Length()) {
			n = int(ar.Length())
		}
		if n == 0 {
			if as.closed.Load() { // as CopyIn of nothing reports
				return done, errClosedIO
			}
			continue
		}
		if !as.ioRange(ar.Start, uint64(n)) {
			return done, as.ioRangeErr(ar.Start, at)
		}
		if base == nil {
			return done, as.errNoView(ar.Start, at)
		}
		b, view := buf[done:done+n], unsafe.Add(base, ar.Start)
		dst, src := unsafe.Pointer(unsafe.SliceData(b)), view
		if out {
			dst, src = src, dst
		}
		lb, fault, sig := safecopy.Memcpy(dst, src, uintptr(n))
		if sig == 0 {
			done += n
			continue
		}
		m, err := as.rangeSlow(base, view, b, lb, fault, sig, opts, out)
		done += m
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// rangeSlow finishes the copy of one range, at view, to or from b, whose
// first attempt faulted (lb, fault and sig as Memcpy returns them).
//
//go:noinline
func (as *AddressSpace) rangeSlow(base, view unsafe.Pointer, b []byte, lb, fault uintptr, sig int32, opts usermem.IOOpts, out bool) (int, error) {
	if out {
		return as.copyOutSlow(base, view, b, lb, fault, sig, opts)
	}
	return as.copyInSlow(base, view, b, lb, fault, sig, opts)
}

// closedErr returns the error for an empty transfer: none, unless closed.
func (as *AddressSpace) closedErr() error {
	if as.closed.Load() {
		return errClosedIO
	}
	return nil
}

// ZeroOut implements usermem.IO.ZeroOut: it sets toZero bytes at addr to
// zero and returns the number of bytes zeroed, with errors as for CopyOut.
//
// Preconditions: toZero >= 0; a negative toZero returns EINVAL.
func (as *AddressSpace) ZeroOut(ctx context.Context, addr hostarch.Addr, toZero int64, opts usermem.IOOpts) (int64, error) {
	if toZero < 0 {
		return 0, fmt.Errorf("addrspace: ZeroOut of %d bytes: %w", toZero, unix.EINVAL)
	}
	if toZero == 0 {
		return 0, as.closedErr()
	}
	if !as.ioRange(addr, uint64(toZero)) {
		return 0, as.ioRangeErr(addr, hostarch.Write)
	}
	base := as.appBase
	if opts.IgnorePermissions {
		if base = as.maxView(); base == nil {
			return 0, as.errNoView(addr, hostarch.Write)
		}
	}
	dst := unsafe.Add(base, addr)
	n := uintptr(toZero)
	lb, fault, sig := safecopy.MemclrRaw(dst, n)
	if sig == 0 {
		return toZero, nil
	}
	done, err := as.finishRaw(base, n, 0, lb, fault, sig, hostarch.Write, opts, rawOp{
		view: dst,
		zero: true,
		raw: func(from uintptr) (uintptr, uintptr, int32) {
			return safecopy.MemclrRaw(unsafe.Add(dst, from), n-from)
		},
		exact: func(from, lb, fault uintptr, sig int32) (uintptr, safecopy.Fault) {
			return safecopy.FinishZero(unsafe.Add(dst, from), n-from, lb, fault, sig)
		},
		op: func(from uintptr) (uintptr, safecopy.Fault) {
			return safecopy.Zero(unsafe.Add(dst, from), n-from)
		},
	})
	return int64(done), err
}

// atomicAddr validates the address of a 4-byte atomic access.
func (as *AddressSpace) atomicAddr(addr hostarch.Addr, at hostarch.AccessType) error {
	if addr&3 != 0 {
		if as.closed.Load() {
			return errClosedIO
		}
		return errMisalignedIO(addr)
	}
	if !as.ioRange(addr, 4) {
		return as.ioRangeErr(addr, at)
	}
	return nil
}

// SwapUint32 implements usermem.IO.SwapUint32. A misaligned addr returns
// an error wrapping EINVAL and touches nothing; a fault returns a
// *FaultError.
//
// (The atomics' fast paths are built as CopyIn's: an aligned addr below
// Size through the application view, with every other case and every
// fault out of line. Size is a page multiple, so an aligned addr below it
// has its 4 bytes inside.)
//
//go:nosplit
func (as *AddressSpace) SwapUint32(ctx context.Context, addr hostarch.Addr, new uint32, opts usermem.IOOpts) (uint32, error) {
	if addr&3 != 0 || opts.IgnorePermissions || uint64(addr) >= as.limit.Load() {
		return as.swapUint32Other(addr, new, opts)
	}
	old, sig := safecopy.SwapUint32Raw(unsafe.Add(as.appBase, addr), new)
	if sig == 0 {
		return old, nil
	}
	return as.swapUint32Fault(as.appBase, addr, new, sig, opts)
}

//go:noinline
func (as *AddressSpace) swapUint32Other(addr hostarch.Addr, new uint32, opts usermem.IOOpts) (uint32, error) {
	base, err := as.atomicBase(addr, hostarch.ReadWrite, opts)
	if err != nil {
		return 0, err
	}
	old, sig := safecopy.SwapUint32Raw(unsafe.Add(base, addr), new)
	if sig == 0 {
		return old, nil
	}
	return as.swapUint32Fault(base, addr, new, sig, opts)
}

// swapUint32Fault finishes a SwapUint32 through the view at base whose
// first attempt raised signal sig.
//
//go:noinline
func (as *AddressSpace) swapUint32Fault(base unsafe.Pointer, addr hostarch.Addr, new uint32, sig int32, opts usermem.IOOpts) (uint32, error) {
	var old uint32
	err := as.atomicRetry(base, addr, sig, hostarch.ReadWrite, opts, func(p unsafe.Pointer) (f safecopy.Fault) {
		old, f = safecopy.SwapUint32(p, new)
		return f
	})
	return old, err
}

// CompareAndSwapUint32 implements usermem.IO.CompareAndSwapUint32, with
// errors as for SwapUint32.
//
//go:nosplit
func (as *AddressSpace) CompareAndSwapUint32(ctx context.Context, addr hostarch.Addr, old, new uint32, opts usermem.IOOpts) (uint32, error) {
	if addr&3 != 0 || opts.IgnorePermissions || uint64(addr) >= as.limit.Load() {
		return as.casUint32Other(addr, old, new, opts)
	}
	prev, sig := safecopy.CompareAndSwapUint32Raw(unsafe.Add(as.appBase, addr), old, new)
	if sig == 0 {
		return prev, nil
	}
	return as.casUint32Fault(as.appBase, addr, old, new, sig, opts)
}

//go:noinline
func (as *AddressSpace) casUint32Other(addr hostarch.Addr, old, new uint32, opts usermem.IOOpts) (uint32, error) {
	base, err := as.atomicBase(addr, hostarch.ReadWrite, opts)
	if err != nil {
		return 0, err
	}
	prev, sig := safecopy.CompareAndSwapUint32Raw(unsafe.Add(base, addr), old, new)
	if sig == 0 {
		return prev, nil
	}
	return as.casUint32Fault(base, addr, old, new, sig, opts)
}

// casUint32Fault is swapUint32Fault for CompareAndSwapUint32.
//
//go:noinline
func (as *AddressSpace) casUint32Fault(base unsafe.Pointer, addr hostarch.Addr, old, new uint32, sig int32, opts usermem.IOOpts) (uint32, error) {
	var prev uint32
	err := as.atomicRetry(base, addr, sig, hostarch.ReadWrite, opts, func(p unsafe.Pointer) (f safecopy.Fault) {
		prev, f = safecopy.CompareAndSwapUint32(p, old, new)
		return f
	})
	return prev, err
}

// LoadUint32 implements usermem.IO.LoadUint32, with errors as for
// SwapUint32.
//
//go:nosplit
func (as *AddressSpace) LoadUint32(ctx context.Context, addr hostarch.Addr, opts usermem.IOOpts) (uint32, error) {
	if addr&3 != 0 || opts.IgnorePermissions || uint64(addr) >= as.limit.Load() {
		return as.loadUint32Other(addr, opts)
	}
	val, sig := safecopy.LoadUint32Raw(unsafe.Add(as.appBase, addr))
	if sig == 0 {
		return val, nil
	}
	return as.loadUint32Fault(as.appBase, addr, sig, opts)
}

//go:noinline
func (as *AddressSpace) loadUint32Other(addr hostarch.Addr, opts usermem.IOOpts) (uint32, error) {
	base, err := as.atomicBase(addr, hostarch.Read, opts)
	if err != nil {
		return 0, err
	}
	val, sig := safecopy.LoadUint32Raw(unsafe.Add(base, addr))
	if sig == 0 {
		return val, nil
	}
	return as.loadUint32Fault(base, addr, sig, opts)
}

// loadUint32Fault is swapUint32Fault for LoadUint32.
//
//go:noinline
func (as *AddressSpace) loadUint32Fault(base unsafe.Pointer, addr hostarch.Addr, sig int32, opts usermem.IOOpts) (uint32, error) {
	var val uint32
	err := as.atomicRetry(base, addr, sig, hostarch.Read, opts, func(p unsafe.Pointer) (f safecopy.Fault) {
		val, f = safecopy.LoadUint32(p)
		return f
	})
	return val, err
}

// atomicBase validates the address of a 4-byte atomic and returns the
// view opts select.
func (as *AddressSpace) atomicBase(addr hostarch.Addr, at hostarch.AccessType, opts usermem.IOOpts) (unsafe.Pointer, error) {
	if err := as.atomicAddr(addr, at); err != nil {
		return nil, err
	}
	base := as.view(opts)
	if base == nil {
		return nil, as.errNoView(addr, at)
	}
	return base, nil
}

// atomicRetry finishes a 4-byte atomic at addr through the view at base
// whose raw attempt raised signal sig: it resolves the fault (its one
// access is at the word) and retries with op until op succeeds or the
// fault cannot be resolved.
func (as *AddressSpace) atomicRetry(base unsafe.Pointer, addr hostarch.Addr, sig int32, at hostarch.AccessType, opts usermem.IOOpts, op func(p unsafe.Pointer) safecopy.Fault) error {
	p := unsafe.Add(base, addr)
	f := safecopy.Fault{Addr: uintptr(p), Sig: unix.Signal(sig)}
	_, err := as.finish(base, 1, 0, f, at, opts, func(uintptr) (uintptr, safecopy.Fault) {
		f := op(p)
		return boolDone(f), f
	}, nil)
	return err
}

func boolDone(f safecopy.Fault) uintptr {
	if f.Sig == 0 {
		return 1
	}
	return 0
}

// checkRanges applies ioRange to every range of ars (Linux checks the whole
// iovec before any transfer).
func (as *AddressSpace) checkRanges(ars hostarch.AddrRangeSeq, at hostarch.AccessType) error {
	if as.closed.Load() {
		return errClosedIO
	}
	for ; !ars.IsEmpty(); ars = ars.Tail() {
		ar := ars.Head()
		if !as.ioRange(ar.Start, uint64(ar.Length())) {
			return as.ioRangeErr(ar.Start, at)
		}
	}
	return nil
}

// blocks returns the blocks of the view at base that back ars, for
// zero-copy transfers.
func (as *AddressSpace) blocks(ars hostarch.AddrRangeSeq, base unsafe.Pointer) safemem.BlockSeq {
	if ars.NumRanges() == 1 {
		ar := ars.Head()
		return safemem.BlockSeqOf(safemem.BlockFromUnsafePointer(unsafe.Add(base, ar.Start), int(ar.Length())))
	}
	bs := make([]safemem.Block, 0, ars.NumRanges())
	for ; !ars.IsEmpty(); ars = ars.Tail() {
		ar := ars.Head()
		bs = append(bs, safemem.BlockFromUnsafePointer(unsafe.Add(base, ar.Start), int(ar.Length())))
	}
	return safemem.BlockSeqFromSlice(bs)
}

// blockFault converts a fault error from a safemem Reader or Writer that
// touched the view at base into a *FaultError. Other errors, including
// faults outside the view, are returned unchanged.
func (as *AddressSpace) blockFault(err error, base unsafe.Pointer, at hostarch.AccessType, opts usermem.IOOpts) error {
	var (
		hostAddr uintptr
		sig      unix.Signal
		segv     safemem.SegvError
		bus      safemem.BusError
	)
	switch {
	case errors.As(err, &segv):
		hostAddr, sig = segv.Addr, unix.SIGSEGV
	case errors.As(err, &bus):
		hostAddr, sig = bus.Addr, unix.SIGBUS
	default:
		return err
	}
	b := uintptr(base)
	if hostAddr < b || hostAddr-b >= uintptr(as.size) {
		return err
	}
	addr := hostarch.Addr(hostAddr - b)
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedIO
	}
	if ferr := as.resolveLocked(addr, sig, at, opts.IgnorePermissions); ferr != nil {
		return ferr
	}
	// The page is accessible now (it changed under the transfer).
	return &FaultError{Addr: addr, Access: at, Reason: FaultProtection}
}

// populate makes the pages of ars accessible through the view that opts
// select for an access at (faulting them in as an access would), and
// returns the number of leading bytes of ars that are, with the error for
// the first byte that is not (nil if all are). It takes the mapping lock
// for one fault-around window at a time, so that a large range never holds
// it for long. Once the faults it resolved cover budget bytes it stops
// early, reporting truncated (with a nil error) and how far it got.
func (as *AddressSpace) populate(ars hostarch.AddrRangeSeq, at hostarch.AccessType, opts usermem.IOOpts, budget int64) (done int64, truncated bool, err error) {
	for ; !ars.IsEmpty(); ars = ars.Tail() {
		ar := ars.Head()
		for cur := ar.Start; cur < ar.End; {
			if budget <= 0 {
				return done, true, nil
			}
			next, resolved, err := as.populateStep(cur, ar.End, at, opts)
			done += int64(next - cur)
			if err != nil {
				return done, false, err
			}
			if resolved {
				budget -= int64(next - cur)
			}
			cur = next
		}
	}
	return done, false, nil
}

// populateStep makes the pages from cur on accessible up to the first
// that is not, resolving at most one fault, and returns how far they are
// and whether it had to resolve a fault to get there.
func (as *AddressSpace) populateStep(cur, end hostarch.Addr, at hostarch.AccessType, opts usermem.IOOpts) (hostarch.Addr, bool, error) {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return cur, false, errClosedIO
	}
	ok := hostarch.Addr(as.pt.AccessibleUpTo(uint64(cur), uint64(end), at.Write, opts.IgnorePermissions))
	if ok > cur || ok >= end {
		// What is accessible already costs nothing to hand over.
		return min(ok, end), false, nil
	}
	if err := as.resolveLocked(ok, unix.SIGSEGV, at, opts.IgnorePermissions); err != nil {
		return ok, false, err
	}
	if next := hostarch.Addr(as.pt.AccessibleUpTo(uint64(ok), uint64(end), at.Write, opts.IgnorePermissions)); next > ok {
		return next, true, nil
	}
	// The page table backed the page but the view does not show it: the
	// host refused. Report the page as the access would have met it.
	return ok, false, &FaultError{Addr: ok, Access: at, Reason: FaultHostMemory}
}

// TransferFaultLimit bounds the work one CopyOutFrom or CopyInTo does
// before its reader or writer runs: once faults resolved for it (pages
// copied on write, fresh pages backed) reach this many bytes, the transfer
// stops there, and the call hands over, and reports, a shorter range, as a
// short read(2) or write(2) does. Pages that are accessible already cost
// nothing and do not count, so a transfer over resident memory is never
// shortened. A guest-chosen length cannot make a transfer copy or allocate
// more than this before any data moves.
const TransferFaultLimit = 16 << 20

// CopyOutFrom implements usermem.IO.CopyOutFrom: it hands src the blocks of
// the view that back ars (zero-copy) in a single call to src.ReadToBlocks.
// The pages are faulted in first (copy-on-write broken, fresh pages
// backed), taking the mapping lock for one fault-around window at a time;
// once that work reaches TransferFaultLimit bytes, src is given only the
// prefix prepared so far and CopyOutFrom returns at most its length with a
// nil error (callers loop, as for a short read);
// while src runs, calls that could take access away from its blocks
// (Clone, Mprotect, Madvise) wait, so src.ReadToBlocks must not make those
// calls on this address space, nor CopyOutFrom (gVisor's precondition that
// the reader not take the MemoryManager's activeMu). If part of ars cannot
// be written, src is given only the writable prefix, and if it fills that,
// CopyOutFrom returns the prefix length and a *FaultError. A range of ars
// that overflows or ends beyond Size fails the whole call (0, EFAULT).
//
// Close may run while src is blocked: src's further writes to the blocks
// fail (the views become inaccessible, never reused while src could reach
// them) and CopyOutFrom returns an error wrapping ErrClosed.
func (as *AddressSpace) CopyOutFrom(ctx context.Context, ars hostarch.AddrRangeSeq, src safemem.Reader, opts usermem.IOOpts) (int64, error) {
	return as.transfer(ars, hostarch.Write, opts, src.ReadToBlocks)
}

// CopyInTo implements usermem.IO.CopyInTo: it hands dst the blocks of the
// view that back ars (zero-copy) in a single call to dst.WriteFromBlocks,
// with the same rules as CopyOutFrom (the pages are faulted in first, up to
// TransferFaultLimit bytes of faults, after which dst is given the prefix
// and the count is short with a nil error; a range that cannot be read ends
// the blocks, and a *FaultError is returned if dst consumes them all). A range of ars that overflows or ends beyond
// Size fails the whole call (0, EFAULT).
func (as *AddressSpace) CopyInTo(ctx context.Context, ars hostarch.AddrRangeSeq, dst safemem.Writer, opts usermem.IOOpts) (int64, error) {
	return as.transfer(ars, hostarch.Read, opts, dst.WriteFromBlocks)
}

// transfer runs a zero-copy transfer over ars for CopyOutFrom and CopyInTo.
func (as *AddressSpace) transfer(ars hostarch.AddrRangeSeq, at hostarch.AccessType, opts usermem.IOOpts, f func(safemem.BlockSeq) (uint64, error)) (int64, error) {
	if err := as.checkRanges(ars, at); err != nil {
		return 0, err
	}
	if ars.NumBytes() == 0 {
		return 0, nil
	}
	base := as.view(opts)
	if base == nil {
		return 0, as.errNoView(ars.Head().Start, at)
	}
	as.activeMu.RLock()
	defer as.activeMu.RUnlock()
	// Pinned, the views keep what populate maps until f returns.
	as.pt.Pin()
	defer as.pt.Unpin()
	ok, truncated, prefixErr := as.populate(ars, at, opts, TransferFaultLimit)
	if prefixErr != nil {
		if errors.Is(prefixErr, ErrClosed) {
			return 0, prefixErr
		}
		ars = ars.TakeFirst64(ok)
		if ars.NumBytes() == 0 {
			return 0, prefixErr
		}
	} else if truncated {
		ars = ars.TakeFirst64(ok)
	}
	n, err := f(as.blocks(ars, base))
	runtime.KeepAlive(as) // the views stay reserved while f may touch them
	if err != nil {
		return int64(n), as.blockFault(err, base, at, opts)
	}
	if as.closed.Load() && int64(n) < ars.NumBytes() {
		return int64(n), errClosedIO
	}
	if prefixErr != nil && int64(n) == ars.NumBytes() {
		return int64(n), prefixErr
	}
	return int64(n), nil
}
