//go:build linux && (amd64 || arm64)

package safecopy

import "unsafe"

// FaultPageExact reports whether the page holding fault, the address that
// a faulting Memcpy or MemclrRaw reported, is certainly the first page of
// the side of the operation that faulted (source or destination) that the
// routine could not access, provided the other side did not fault. [lo, hi)
// is the range of that side the call was given. A caller that can make that
// page accessible (back it, break copy-on-write) may then resume the
// operation from the routine's done count without first making the count
// exact (FinishCopy, FinishZero), which costs a second fault.
//
// Why it holds: on each side the routines touch a contiguous prefix before
// any later byte — every access starts at or below the end of the bytes
// already accessed on that side (the overlapping head-and-tail moves of the
// short paths, the aligned loops, REP MOVSB/STOSB) — so when one faults,
// every byte of that side below it has been accessed and the first
// inaccessible byte lies in the faulting access. On amd64 the reported
// address (CR2) is in the page whose translation failed, and for an access
// that crosses into the next page that is the lower page if it is the one
// that is inaccessible: the page of the address is the first inaccessible
// page. On arm64 the kernel (and qemu-user) may report any address inside a
// faulting access that crosses a page (see the package documentation), so
// the page is certain only when no access that contains the address can
// cross a page boundary: every such access, at most maxAccess bytes wide
// and inside [lo, hi), lies in the address's page.
func FaultPageExact(fault, lo, hi uintptr) bool {
	return faultAddrInFaultingPage || accessesInPage(fault, lo, hi, maxAccess, ^pageMask+1)
}

// accessesInPage reports whether every access of at most width bytes inside
// [lo, hi) that contains addr lies in addr's page (of size bytes).
func accessesInPage(addr, lo, hi, width, size uintptr) bool {
	if addr < lo || addr >= hi {
		return false
	}
	page := addr &^ (size - 1)
	first := lo // the lowest start of such an access
	if addr-lo >= width {
		first = addr - (width - 1)
	}
	last := hi // the highest end of one
	if hi-addr > width {
		last = addr + width
	}
	return first >= page && last-page <= size
}

// MemclrRaw zeroes n bytes at dst and returns the routine's raw results, as
// Memcpy does: if sig != 0, done bytes were certainly zeroed and fault is
// the address the host reported; FinishZero makes the count exact.
//
// Preconditions: as for Zero.
func MemclrRaw(dst unsafe.Pointer, n uintptr) (done, fault uintptr, sig int32) {
	return memclr(uintptr(dst), n)
}

// FinishZero returns Zero's results for a call MemclrRaw(dst, n) that
// returned done, fault and a non-zero sig, as FinishCopy does for Copy.
func FinishZero(dst unsafe.Pointer, n, done, fault uintptr, sig int32) (uintptr, Fault) {
	return zeroFault(dst, n, fault, done, sig)
}
