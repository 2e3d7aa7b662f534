package addrspace

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/internal/safecopy"
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

// view returns the base of the view that opts select.
func (as *AddressSpace) view(opts usermem.IOOpts) unsafe.Pointer {
	if opts.IgnorePermissions {
		return as.maxBase
	}
	return as.appBase
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
// (copy-on-write was broken, or the page became accessible meanwhile), and
// otherwise the error to return.
//
// A fault outside the view is not the address space's: it panics, as the
// fault would have crashed the process without fault-safe copying.
func (as *AddressSpace) resolve(base unsafe.Pointer, hostFault uintptr, sig unix.Signal, at hostarch.AccessType, ignorePerms bool) error {
	b := uintptr(base)
	if hostFault < b || hostFault-b >= uintptr(as.size) {
		panic(fmt.Sprintf("addrspace: fault (signal %d) at host address %#x, outside the address space's view [%#x, %#x)", sig, hostFault, b, b+uintptr(as.size)))
	}
	addr := hostarch.Addr(hostFault - b)
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedIO
	}
	return as.resolveLocked(addr, sig, at, ignorePerms)
}

// Preconditions: as.mu is held.
func (as *AddressSpace) resolveLocked(addr hostarch.Addr, sig unix.Signal, at hostarch.AccessType, ignorePerms bool) error {
	v := as.find(addr)
	if v == nil {
		return &FaultError{Addr: addr, Access: at, Reason: FaultUnmapped}
	}
	perms := v.perms
	if ignorePerms {
		perms = v.maxPerms
	}
	if !perms.Effective().SupersetOf(at) {
		return &FaultError{Addr: addr, Access: at, Reason: FaultProtection}
	}
	if sig == unix.SIGBUS {
		return &FaultError{Addr: addr, Access: at, Reason: FaultBus}
	}
	if ignorePerms && !v.maxMapped {
		return as.ensureMax(v)
	}
	if at.Write && v.cow() {
		return as.resolveWrite(v, addr.RoundDown(), addr, at)
	}
	return nil
}

// resolveWrite lets a write proceed to v's page at page, which the host
// write-protects because it may be shared: a page of a private file mapping
// not yet written gets a private copy of the file's page; a memory-file page
// that another address space also references (after Clone) is copied; a
// page that is this address space's alone is made writable in place.
//
// Preconditions: as.mu is held; v.cow(); v allows the write.
func (as *AddressSpace) resolveWrite(v *vma, page, addr hostarch.Addr, at hostarch.AccessType) error {
	cur, ok := as.override[page]
	if !ok && v.file == nil {
		cur, ok = v.memAt(page), true
	}
	if ok && as.mem.Refs(cur) == 1 {
		app, max := viewProts(v, true)
		if err := as.app.Protect(uint64(page), hostarch.PageSize, app); err != nil {
			return fmt.Errorf("addrspace: write fault at %#x: %w", addr, err)
		}
		if v.maxMapped {
			if err := as.max.Protect(uint64(page), hostarch.PageSize, max); err != nil {
				return fmt.Errorf("addrspace: write fault at %#x: %w", addr, err)
			}
		}
		return nil
	}
	return as.copyPage(v, page, addr, at, cur, ok)
}

// copyPage gives v's page at page a private copy of its current contents
// (as the max view shows them: a file page's page-cache bytes included, as
// Linux copies them), maps the copy writable in both views, and drops the
// reference to the old memory-file page cur if hadMem.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) copyPage(v *vma, page, addr hostarch.Addr, at hostarch.AccessType, cur uint64, hadMem bool) error {
	// Linux gives the VMA its anon_vma before it reads the page, so even a
	// fault that ends in SIGBUS does.
	as.anonFault(v)
	// The max view always maps the page readable (pma.HostProt). A file page
	// wholly beyond the end of its file raises SIGBUS, as on Linux.
	if err := as.ensureMax(v); err != nil {
		return err
	}
	buf := as.pageBuf
	if _, _, sig := safecopy.Copy(unsafe.Pointer(unsafe.SliceData(buf)), unsafe.Add(as.maxBase, page), hostarch.PageSize); sig != 0 {
		return &FaultError{Addr: addr, Access: at, Reason: FaultBus}
	}
	off, err := as.mem.Allocate(hostarch.PageSize, 0)
	if err != nil {
		return fmt.Errorf("addrspace: copy-on-write at %#x: %w", addr, err)
	}
	if _, err := unix.Pwrite(as.mem.FD(), buf, int64(off)); err != nil {
		as.mem.DecRef(off, hostarch.PageSize)
		return fmt.Errorf("addrspace: copy-on-write at %#x: %v: %w", addr, err, unix.ENOMEM)
	}
	app, max := viewProts(v, true)
	if err := as.mapPage(v, page, off, app, max); err != nil {
		as.mem.DecRef(off, hostarch.PageSize)
		as.remapHost(hostarch.AddrRange{Start: page, End: page + hostarch.PageSize})
		return fmt.Errorf("addrspace: copy-on-write at %#x: %w", addr, err)
	}
	as.override[page] = off
	if hadMem {
		as.mem.DecRef(cur, hostarch.PageSize)
	}
	return nil
}

// finish completes a transfer of n bytes touching the view at base whose
// first attempt stopped after done bytes with a fault at host address fault:
// it resolves the fault and resumes with op, which transfers bytes [from, n)
// and reports how far it got, until the transfer completes or fails.
func (as *AddressSpace) finish(base unsafe.Pointer, n, done, fault uintptr, sig unix.Signal, at hostarch.AccessType, opts usermem.IOOpts, op func(from uintptr) (uintptr, uintptr, unix.Signal)) (uintptr, error) {
	stuck := 0
	for {
		if err := as.resolve(base, fault, sig, at, opts.IgnorePermissions); err != nil {
			return done, err
		}
		lastFault := fault
		var d uintptr
		d, fault, sig = op(done)
		done += d
		if sig == 0 {
			return n, nil
		}
		if d != 0 || fault != lastFault {
			stuck = 0
		} else if stuck++; stuck > maxNoProgress {
			return done, &FaultError{Addr: hostarch.Addr(fault - uintptr(base)), Access: at, Reason: FaultProtection}
		}
	}
}

// CopyOut implements usermem.IO.CopyOut: it copies src to the simulated
// memory at addr and returns the number of bytes copied. If that is less
// than len(src), the error says why: a *FaultError (errors.Is EFAULT) for
// the first page that could not be written, or for a range that overflows
// or ends beyond Size (then nothing is copied). CopyOut does not retain src.
func (as *AddressSpace) CopyOut(ctx context.Context, addr hostarch.Addr, src []byte, opts usermem.IOOpts) (int, error) {
	if len(src) == 0 {
		return 0, as.closedErr()
	}
	if !as.ioRange(addr, uint64(len(src))) {
		return 0, as.ioRangeErr(addr, hostarch.Write)
	}
	base := as.view(opts)
	dst := unsafe.Add(base, addr)
	fault, done, sig := safecopy.Memcpy(uintptr(dst), uintptr(unsafe.Pointer(unsafe.SliceData(src))), uintptr(len(src)))
	if sig == 0 {
		return len(src), nil
	}
	return as.copyOutSlow(base, dst, src, fault, done, sig, opts)
}

//go:noinline
func (as *AddressSpace) copyOutSlow(base, dst unsafe.Pointer, src []byte, rawFault, rawDone uintptr, rawSig int32, opts usermem.IOOpts) (int, error) {
	done, fault, sig := safecopy.FinishCopy(dst, unsafe.Pointer(unsafe.SliceData(src)), uintptr(len(src)), rawFault, rawDone, rawSig)
	done, err := as.finish(base, uintptr(len(src)), done, fault, sig, hostarch.Write, opts, func(from uintptr) (uintptr, uintptr, unix.Signal) {
		return safecopy.Copy(unsafe.Add(dst, from), unsafe.Pointer(unsafe.SliceData(src[from:])), uintptr(len(src))-from)
	})
	return int(done), err
}

// CopyIn implements usermem.IO.CopyIn: it copies len(dst) bytes from the
// simulated memory at addr to dst and returns the number of bytes copied,
// with errors as for CopyOut. Bytes of dst past the count returned may
// have been written. CopyIn does not retain dst.
func (as *AddressSpace) CopyIn(ctx context.Context, addr hostarch.Addr, dst []byte, opts usermem.IOOpts) (int, error) {
	if len(dst) == 0 {
		return 0, as.closedErr()
	}
	if !as.ioRange(addr, uint64(len(dst))) {
		return 0, as.ioRangeErr(addr, hostarch.Read)
	}
	base := as.view(opts)
	src := unsafe.Add(base, addr)
	fault, done, sig := safecopy.Memcpy(uintptr(unsafe.Pointer(unsafe.SliceData(dst))), uintptr(src), uintptr(len(dst)))
	if sig == 0 {
		return len(dst), nil
	}
	return as.copyInSlow(base, src, dst, fault, done, sig, opts)
}

//go:noinline
func (as *AddressSpace) copyInSlow(base, src unsafe.Pointer, dst []byte, rawFault, rawDone uintptr, rawSig int32, opts usermem.IOOpts) (int, error) {
	done, fault, sig := safecopy.FinishCopy(unsafe.Pointer(unsafe.SliceData(dst)), src, uintptr(len(dst)), rawFault, rawDone, rawSig)
	done, err := as.finish(base, uintptr(len(dst)), done, fault, sig, hostarch.Read, opts, func(from uintptr) (uintptr, uintptr, unix.Signal) {
		return safecopy.Copy(unsafe.Pointer(unsafe.SliceData(dst[from:])), unsafe.Add(src, from), uintptr(len(dst))-from)
	})
	return int(done), err
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
	base := as.view(opts)
	dst := unsafe.Add(base, addr)
	n := uintptr(toZero)
	done, fault, sig := safecopy.Zero(dst, n)
	if sig == 0 {
		return toZero, nil
	}
	done, err := as.finish(base, n, done, fault, sig, hostarch.Write, opts, func(from uintptr) (uintptr, uintptr, unix.Signal) {
		return safecopy.Zero(unsafe.Add(dst, from), n-from)
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
func (as *AddressSpace) SwapUint32(ctx context.Context, addr hostarch.Addr, new uint32, opts usermem.IOOpts) (uint32, error) {
	if err := as.atomicAddr(addr, hostarch.ReadWrite); err != nil {
		return 0, err
	}
	base := as.view(opts)
	p := unsafe.Add(base, addr)
	old, fault, sig := safecopy.SwapUint32(p, new)
	if sig == 0 {
		return old, nil
	}
	_, err := as.finish(base, 1, 0, fault, sig, hostarch.ReadWrite, opts, func(uintptr) (uintptr, uintptr, unix.Signal) {
		old, fault, sig = safecopy.SwapUint32(p, new)
		return boolDone(sig), fault, sig
	})
	return old, err
}

// CompareAndSwapUint32 implements usermem.IO.CompareAndSwapUint32, with
// errors as for SwapUint32.
func (as *AddressSpace) CompareAndSwapUint32(ctx context.Context, addr hostarch.Addr, old, new uint32, opts usermem.IOOpts) (uint32, error) {
	if err := as.atomicAddr(addr, hostarch.ReadWrite); err != nil {
		return 0, err
	}
	base := as.view(opts)
	p := unsafe.Add(base, addr)
	prev, fault, sig := safecopy.CompareAndSwapUint32(p, old, new)
	if sig == 0 {
		return prev, nil
	}
	_, err := as.finish(base, 1, 0, fault, sig, hostarch.ReadWrite, opts, func(uintptr) (uintptr, uintptr, unix.Signal) {
		prev, fault, sig = safecopy.CompareAndSwapUint32(p, old, new)
		return boolDone(sig), fault, sig
	})
	return prev, err
}

// LoadUint32 implements usermem.IO.LoadUint32, with errors as for
// SwapUint32.
func (as *AddressSpace) LoadUint32(ctx context.Context, addr hostarch.Addr, opts usermem.IOOpts) (uint32, error) {
	if err := as.atomicAddr(addr, hostarch.Read); err != nil {
		return 0, err
	}
	base := as.view(opts)
	p := unsafe.Add(base, addr)
	val, fault, sig := safecopy.LoadUint32(p)
	if sig == 0 {
		return val, nil
	}
	_, err := as.finish(base, 1, 0, fault, sig, hostarch.Read, opts, func(uintptr) (uintptr, uintptr, unix.Signal) {
		val, fault, sig = safecopy.LoadUint32(p)
		return boolDone(sig), fault, sig
	})
	return val, err
}

func boolDone(sig unix.Signal) uintptr {
	if sig == 0 {
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

// blocks returns the view blocks of ars, for zero-copy transfers.
func (as *AddressSpace) blocks(ars hostarch.AddrRangeSeq, opts usermem.IOOpts) safemem.BlockSeq {
	base := as.view(opts)
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

// ensureMaxFor maps the max view of the mappings that ars touches, before
// a transfer through it that could not resume after a fault.
func (as *AddressSpace) ensureMaxFor(ars hostarch.AddrRangeSeq) error {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedIO
	}
	for ; !ars.IsEmpty(); ars = ars.Tail() {
		var err error
		as.visit(ars.Head(), func(v *vma) bool {
			err = as.ensureMax(v)
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// prefaultWrite makes every page of ars that a write may need to copy on
// write writable, and returns the number of leading bytes of ars that are
// writable, with the error for the first byte that is not (nil if all are).
func (as *AddressSpace) prefaultWrite(ars hostarch.AddrRangeSeq, opts usermem.IOOpts) (int64, error) {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return 0, errClosedIO
	}
	var done int64
	for ; !ars.IsEmpty(); ars = ars.Tail() {
		ar := ars.Head()
		for cur := ar.Start; cur < ar.End; {
			v := as.find(cur)
			if v == nil {
				return done, &FaultError{Addr: cur, Access: hostarch.Write, Reason: FaultUnmapped}
			}
			perms := v.perms
			if opts.IgnorePermissions {
				perms = v.maxPerms
			}
			if !perms.Write {
				return done, &FaultError{Addr: cur, Access: hostarch.Write, Reason: FaultProtection}
			}
			end := min(v.end, ar.End)
			// Every page up to the first that cannot be written is made
			// writable; a page of a file beyond its end (SIGBUS) ends the
			// prefix as an unmapped one would, so that no page after it is
			// copied on write, as in gVisor.
			base := as.view(opts)
			for page := cur.RoundDown(); page < end; page += hostarch.PageSize {
				if writable(unsafe.Add(base, page)) {
					continue
				}
				at := max(page, cur)
				err := &FaultError{Addr: at, Access: hostarch.Write, Reason: FaultBus}
				if v.cow() {
					if err := as.resolveWrite(v, page, at, hostarch.Write); err != nil {
						return done + int64(at-cur), err
					}
					if writable(unsafe.Add(base, page)) {
						continue
					}
				}
				return done + int64(at-cur), err
			}
			done += int64(end - cur)
			cur = end
		}
	}
	return done, nil
}

// writable reports whether the host page at p accepts writes, by a
// compare-and-swap of a word with itself: it changes nothing, but x86
// performs the write cycle (and faults on a read-only page) whether or not
// the comparison succeeds.
func writable(p unsafe.Pointer) bool {
	v, _, sig := safecopy.LoadUint32(p)
	if sig != 0 {
		return false
	}
	_, _, sig = safecopy.CompareAndSwapUint32(p, v, v)
	return sig == 0
}

// CopyOutFrom implements usermem.IO.CopyOutFrom: it hands src the blocks of
// the view that back ars (zero-copy) in a single call to src.ReadToBlocks.
// While src runs, calls that could write-protect its blocks again (Clone,
// Mprotect, Madvise) wait; so src.ReadToBlocks must not make those calls
// on this address space, nor CopyOutFrom (gVisor's precondition that the
// reader not take the MemoryManager's activeMu).
// Pages that copy on write are made writable first; if part of ars cannot
// be written, src is given only the writable prefix, and if it fills that,
// CopyOutFrom returns the prefix length and a *FaultError. A range of ars
// that overflows or ends beyond Size fails the whole call (0, EFAULT).
func (as *AddressSpace) CopyOutFrom(ctx context.Context, ars hostarch.AddrRangeSeq, src safemem.Reader, opts usermem.IOOpts) (int64, error) {
	if err := as.checkRanges(ars, hostarch.Write); err != nil {
		return 0, err
	}
	if ars.NumBytes() == 0 {
		return 0, nil
	}
	as.activeMu.RLock()
	defer as.activeMu.RUnlock()
	if opts.IgnorePermissions {
		if err := as.ensureMaxFor(ars); err != nil {
			return 0, err
		}
	}
	var prefixErr error
	if as.cowVMAs.Load() != 0 {
		var ok int64
		ok, prefixErr = as.prefaultWrite(ars, opts)
		if prefixErr != nil {
			ars = ars.TakeFirst64(ok)
		}
	}
	base := as.view(opts)
	n, err := src.ReadToBlocks(as.blocks(ars, opts))
	if err != nil {
		return int64(n), as.blockFault(err, base, hostarch.Write, opts)
	}
	if prefixErr != nil && int64(n) == ars.NumBytes() {
		return int64(n), prefixErr
	}
	return int64(n), nil
}

// CopyInTo implements usermem.IO.CopyInTo: it hands dst the blocks of the
// view that back ars (zero-copy) in a single call to dst.WriteFromBlocks.
// A fault while dst reads them ends the transfer with the exact count and a
// *FaultError. A range of ars that overflows or ends beyond Size fails the
// whole call (0, EFAULT).
func (as *AddressSpace) CopyInTo(ctx context.Context, ars hostarch.AddrRangeSeq, dst safemem.Writer, opts usermem.IOOpts) (int64, error) {
	if err := as.checkRanges(ars, hostarch.Read); err != nil {
		return 0, err
	}
	if ars.NumBytes() == 0 {
		return 0, nil
	}
	if opts.IgnorePermissions {
		if err := as.ensureMaxFor(ars); err != nil {
			return 0, err
		}
	}
	base := as.view(opts)
	n, err := dst.WriteFromBlocks(as.blocks(ars, opts))
	if err != nil {
		return int64(n), as.blockFault(err, base, hostarch.Read, opts)
	}
	return int64(n), nil
}
