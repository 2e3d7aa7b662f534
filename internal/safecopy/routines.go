//go:build linux && (amd64 || arm64)

//lint:file-ignore U1000 sigHandler and the fault stubs are only referenced from assembly (routineAddrs); they are declared for vet.

package safecopy

import "unsafe"

// The assembly routines below are ABI0 functions with no frame. If one of them
// faults, the signal handler resumes the thread in the routine's fault stub,
// which stores the fault address (where the routine has such a result), a
// lower bound on its progress (ditto) and the signal number into the results
// and returns to the caller. Otherwise sig is 0 and fault is unspecified.

// Memcpy copies n bytes from src to dst. On a fault, fault is the address
// the kernel reported and done is a number of leading bytes certainly
// copied; pass the results to FinishCopy, which makes the count exact as
// Copy does. It is exported for fast paths that cannot afford Copy's own
// call frame (an 8-byte Copy costs about a nanosecond more); it is the
// routine itself, not a stub that jumps to it, so it costs one call.
//
// Preconditions: as for Copy. dst and src are pointers, so that Go memory
// they refer to stays in place during the call without the temporaries a
// conversion to uintptr in the argument list costs.
//
//go:noescape
func Memcpy(dst, src unsafe.Pointer, n uintptr) (done, fault uintptr, sig int32)

// memclr zeroes n bytes at dst; results as for Memcpy.
//
//go:noescape
func memclr(dst, n uintptr) (done, fault uintptr, sig int32)

// SwapUint32Raw is the routine behind SwapUint32, exported (as Memcpy is)
// for fast paths that check alignment themselves: sig is the signal number
// of a fault, 0 if none.
//
// Preconditions: p is 4-byte aligned.
//
//go:noescape
func SwapUint32Raw(p unsafe.Pointer, new uint32) (old uint32, sig int32)

//go:noescape
func swapUint64(addr uintptr, new uint64) (old uint64, sig int32)

// CompareAndSwapUint32Raw is the routine behind CompareAndSwapUint32,
// exported as SwapUint32Raw is, with the same preconditions.
//
//go:noescape
func CompareAndSwapUint32Raw(p unsafe.Pointer, old, new uint32) (prev uint32, sig int32)

//go:noescape
func compareAndSwapUint64(addr uintptr, old, new uint64) (prev uint64, sig int32)

// LoadUint32Raw is the routine behind LoadUint32, exported as SwapUint32Raw
// is, with the same preconditions.
//
//go:noescape
func LoadUint32Raw(p unsafe.Pointer) (val uint32, sig int32)

//go:noescape
func loadUint64(addr uintptr) (val uint64, sig int32)

//go:noescape
func storeUint32(addr uintptr, val uint32) (sig int32)

//go:noescape
func storeUint64(addr uintptr, val uint64) (sig int32)

// CopyToByte copies the bytes of [src, src+n) to dst up to the first byte
// equal to c, and returns that byte's index, or n if there is none; dst
// must have room for n bytes. dst[:idx] is exactly what was read and holds
// no c, even if another thread writes the source meanwhile; bytes of dst
// from idx on may have been written too. sig is the signal number of a
// fault (0 if none; then idx is unspecified). Every access is inside the
// two ranges.
//
// A fault-safe strncpy: it copies a NUL-terminated string and finds its end
// in one pass (see addrspace's CopyStringIn).
//
//go:noescape
func CopyToByte(dst, src unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32)

// IndexByteRaw returns the index in [p, p+n) of the first byte equal to c,
// or n if there is none; sig is the signal number of a fault (0 if none;
// then idx is unspecified). It reads no page that [p, p+n) does not
// overlap (on amd64 it reads aligned 16-byte blocks, and so may read bytes
// of those pages outside the range). A fault-safe strnlen.
//
//go:noescape
func IndexByteRaw(p unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32)

// VecMax is the longest range MemcpyRanges takes: it is for many small
// copies, where a call each would cost more than the copy.
const VecMax = 64

// MemcpyRanges copies between buf and the n ranges at ranges (an array of
// [2]uintptr{Start, End}, a hostarch.AddrRange's layout), each at base+Start:
// from the ranges to consecutive bytes of buf, or (out) from consecutive
// bytes of buf to the ranges. The ranges are copied in order; if one
// faults, done is its index (those before it are complete; it may be partly
// done), fault the address the kernel reported and sig the signal number;
// otherwise done is n and sig 0.
//
// Preconditions: as for Copy, for each range and its part of buf; every
// range has 1 to VecMax bytes, and buf has room for all of them.
//
//go:noescape
func MemcpyRanges(buf, base, ranges unsafe.Pointer, n uintptr, out bool) (done, fault uintptr, sig int32)

// sigHandler is the SIGSEGV/SIGBUS handler (sighandler_$GOARCH.s). It is never
// called from Go; only its address is used.
func sigHandler()

// routineAddrs returns the ABI0 entry points of the protected routines and of
// their fault stubs, in faultRanges order, and of sigHandler. Go references
// to an assembly function resolve to an ABIInternal wrapper, so the addresses
// must be taken in assembly.
func routineAddrs(routines, stubs *[numRoutines]uintptr) (handler uintptr)

const numRoutines = 13

// faultRange is one protected routine: a kernel fault whose PC is in
// [begin, end) resumes at stub. Read by sigHandler: keep the layout.
type faultRange struct {
	begin, end, stub uintptr
}

// Read by sigHandler. Written only in init, before the handler is installed.
var (
	faultRanges  [numRoutines]faultRange
	savedSIGSEGV uintptr // the handler we replaced, which we chain to
	savedSIGBUS  uintptr
)

// The fault stubs. They are never called from Go; they are declared so that
// vet checks their frame offsets against the routines they return from.

func memcpyFault(dst, src, n uintptr) (done, fault uintptr, sig int32)
func memclrFault(dst, n uintptr) (done, fault uintptr, sig int32)
func swapUint32Fault(addr uintptr, new uint32) (old uint32, sig int32)
func copyToByteFault(dst, src unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32)
func indexByteFault(p unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32)
func memcpyRangesFault(buf, base, ranges unsafe.Pointer, n uintptr, out bool) (done, fault uintptr, sig int32)
func swapUint64Fault(addr uintptr, new uint64) (old uint64, sig int32)
func compareAndSwapUint32Fault(addr uintptr, old, new uint32) (prev uint32, sig int32)
func compareAndSwapUint64Fault(addr uintptr, old, new uint64) (prev uint64, sig int32)
func loadUint32Fault(addr uintptr) (val uint32, sig int32)
func loadUint64Fault(addr uintptr) (val uint64, sig int32)
func storeUint32Fault(addr uintptr, val uint32) (sig int32)
func storeUint64Fault(addr uintptr, val uint64) (sig int32)
