//go:build linux && (amd64 || arm64)

package safecopy

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pageMask clears the in-page offset of a host address. Host protections are
// page-granular, so a fault anywhere in a page means the whole page is
// inaccessible for that kind of access.
var pageMask = ^uintptr(unix.Getpagesize() - 1)

// Copy copies n bytes from host address src to host address dst.
//
// It returns the exact number of bytes copied before the first byte that could
// not be accessed (read in src or written in dst): done == n and the zero
// Fault on success; otherwise done < n and f names that first inaccessible
// byte (src+done or dst+done) and the signal. Bytes of
// dst before done hold the source bytes; bytes of dst at and beyond done may
// have been written.
//
// Preconditions:
//   - [src, src+n) and [dst, dst+n) do not wrap around the address space and
//     are user-space addresses; memory in them that is mapped may be touched.
//   - The two ranges do not overlap (through the same or aliased mappings), or
//     the contents of dst are unspecified.
//
// dst and src are pointers, not uintptrs, so that Go memory they refer to
// (even on a goroutine stack, which may move) stays valid throughout; they
// become uintptrs only in the argument lists of the assembly calls, where
// the compiler keeps the referenced objects in place.
func Copy(dst, src unsafe.Pointer, n uintptr) (done uintptr, f Fault) {
	lb, addr, s := Memcpy(dst, src, n)
	if s == 0 {
		return n, Fault{}
	}
	return copyFault(dst, src, n, addr, lb, s)
}

// FinishCopy returns Copy's results for a call Memcpy(dst, src, n) that
// returned done, fault and a non-zero sig (in that order, as Copy reports
// done before its Fault). Those include success (done == n and the zero
// Fault): the rest of the copy is retried, and the inaccessible page may
// have become accessible meanwhile.
func FinishCopy(dst, src unsafe.Pointer, n, done, fault uintptr, sig int32) (uintptr, Fault) {
	return copyFault(dst, src, n, fault, done, sig)
}

// copyFault turns a faulting memcpy into an exact count. f is the address the
// kernel reported, lb the number of leading bytes memcpy had certainly copied.
//
// The kernel's address lies inside the faulting access, and that access
// touches the first inaccessible byte or one beyond it; x86 reports a byte of
// the inaccessible page, but arm64 may report the start of an access that
// crosses into it. So the page of f is only a guess: the bytes up to it are
// copied again, then the byte there is tried alone, and if it succeeds the
// copy resumes after it.
//
//go:noinline
func copyFault(dstp, srcp unsafe.Pointer, n, f, lb uintptr, s int32) (uintptr, Fault) {
	for {
		// Addresses are compared as integers; memory is only reached
		// through the pointers.
		dst, src := uintptr(dstp), uintptr(srcp)
		var base uintptr // the side f is on
		switch {
		case f-src < n:
			base = src
		case f-dst < n:
			base = dst
		default:
			panic(fmt.Sprintf("safecopy: signal %d at %#x outside src [%#x, %#x) and dst [%#x, %#x)", s, f, src, src+n, dst, dst+n))
		}
		// k: the first byte of the page of f, if above lb.
		k := lb
		if p := f & pageMask; p > base+lb {
			k = p - base
		}
		if k > lb {
			// [0, lb) is copied; copy [lb, k), which may still fault lower.
			lb2, f2, s2 := Memcpy(unsafe.Add(dstp, lb), unsafe.Add(srcp, lb), k-lb)
			if s2 != 0 {
				f, lb, s = f2, lb+lb2, s2
				continue
			}
		}
		// [0, k) is copied. A one-byte access reports its own address.
		_, f2, s2 := Memcpy(unsafe.Add(dstp, k), unsafe.Add(srcp, k), 1)
		if s2 != 0 {
			return k, Fault{f2, unix.Signal(s2)}
		}
		k++
		if k == n {
			return n, Fault{}
		}
		lb2, f2, s2 := Memcpy(unsafe.Add(dstp, k), unsafe.Add(srcp, k), n-k)
		if s2 == 0 {
			return n, Fault{}
		}
		f, lb, s = f2, k+lb2, s2
	}
}

// Zero writes n zero bytes at host address dst.
//
// It returns the exact number of bytes zeroed before the first byte that could
// not be written: done == n and the zero Fault on success; otherwise done <
// n and f names dst+done, the first unwritable byte, and the signal. Bytes at and beyond done may have been written.
//
// Preconditions: [dst, dst+n) does not wrap around the address space and is a
// user-space range. dst is a pointer for the reason given at Copy.
func Zero(dst unsafe.Pointer, n uintptr) (done uintptr, f Fault) {
	lb, addr, s := memclr(uintptr(dst), n)
	if s == 0 {
		return n, Fault{}
	}
	return zeroFault(dst, n, addr, lb, s)
}

// zeroFault is copyFault for memclr.
//
//go:noinline
func zeroFault(dstp unsafe.Pointer, n, f, lb uintptr, s int32) (uintptr, Fault) {
	for {
		dst := uintptr(dstp)
		if f-dst >= n {
			panic(fmt.Sprintf("safecopy: signal %d at %#x outside [%#x, %#x)", s, f, dst, dst+n))
		}
		k := lb
		if p := f & pageMask; p > dst+lb {
			k = p - dst
		}
		if k > lb {
			lb2, f2, s2 := memclr(uintptr(unsafe.Add(dstp, lb)), k-lb)
			if s2 != 0 {
				f, lb, s = f2, lb+lb2, s2
				continue
			}
		}
		_, f2, s2 := memclr(uintptr(unsafe.Add(dstp, k)), 1)
		if s2 != 0 {
			return k, Fault{f2, unix.Signal(s2)}
		}
		k++
		if k == n {
			return n, Fault{}
		}
		lb2, f2, s2 := memclr(uintptr(unsafe.Add(dstp, k)), n-k)
		if s2 == 0 {
			return n, Fault{}
		}
		f, lb, s = f2, k+lb2, s2
	}
}

func checkAlign(addr, align uintptr) {
	if addr&(align-1) != 0 {
		panic(fmt.Sprintf("safecopy: address %#x is not %d-byte aligned", addr, align))
	}
}

// SwapUint32 atomically stores new at host address p and returns the value
// it replaced. If the access faults, nothing is stored, old is 0 and f names
// p and the signal; otherwise f is the zero Fault.
//
// Preconditions: addr is 4-byte aligned (it panics otherwise).
func SwapUint32(p unsafe.Pointer, new uint32) (old uint32, f Fault) {
	addr := uintptr(p)
	checkAlign(addr, 4)
	old, s := SwapUint32Raw(p, new)
	if s != 0 {
		return 0, Fault{addr, unix.Signal(s)}
	}
	return old, Fault{}
}

// SwapUint64 is SwapUint32 for a 64-bit word.
//
// Preconditions: addr is 8-byte aligned (it panics otherwise).
func SwapUint64(p unsafe.Pointer, new uint64) (old uint64, f Fault) {
	addr := uintptr(p)
	checkAlign(addr, 8)
	old, s := swapUint64(uintptr(p), new)
	if s != 0 {
		return 0, Fault{addr, unix.Signal(s)}
	}
	return old, Fault{}
}

// CompareAndSwapUint32 atomically stores new at host address p if the
// value there is old, and returns the value that was there (prev == old means
// the swap happened). If the access faults, prev is 0 and f names p and the
// signal; otherwise f is the zero Fault.
//
// It is a write access even when the comparison fails (the value read is
// written back, changing nothing), so a read-only page always faults: on
// amd64 by LOCK CMPXCHG's own semantics, on arm64 by construction
// (atomic_arm64.s). The same holds for CompareAndSwapUint64.
//
// Preconditions: addr is 4-byte aligned (it panics otherwise).
func CompareAndSwapUint32(p unsafe.Pointer, old, new uint32) (prev uint32, f Fault) {
	addr := uintptr(p)
	checkAlign(addr, 4)
	prev, s := CompareAndSwapUint32Raw(p, old, new)
	if s != 0 {
		return 0, Fault{addr, unix.Signal(s)}
	}
	return prev, Fault{}
}

// CompareAndSwapUint64 is CompareAndSwapUint32 for a 64-bit word.
//
// Preconditions: addr is 8-byte aligned (it panics otherwise).
func CompareAndSwapUint64(p unsafe.Pointer, old, new uint64) (prev uint64, f Fault) {
	addr := uintptr(p)
	checkAlign(addr, 8)
	prev, s := compareAndSwapUint64(uintptr(p), old, new)
	if s != 0 {
		return 0, Fault{addr, unix.Signal(s)}
	}
	return prev, Fault{}
}

// LoadUint32 atomically loads the value at host address p. If the access
// faults, val is 0 and f names p and the signal; otherwise f is the zero
// Fault.
//
// Preconditions: addr is 4-byte aligned (it panics otherwise).
func LoadUint32(p unsafe.Pointer) (val uint32, f Fault) {
	addr := uintptr(p)
	checkAlign(addr, 4)
	val, s := LoadUint32Raw(p)
	if s != 0 {
		return 0, Fault{addr, unix.Signal(s)}
	}
	return val, Fault{}
}

// LoadUint64 is LoadUint32 for a 64-bit word.
//
// Preconditions: addr is 8-byte aligned (it panics otherwise).
func LoadUint64(p unsafe.Pointer) (val uint64, f Fault) {
	addr := uintptr(p)
	checkAlign(addr, 8)
	val, s := loadUint64(uintptr(p))
	if s != 0 {
		return 0, Fault{addr, unix.Signal(s)}
	}
	return val, Fault{}
}

// StoreUint32 atomically (sequentially consistently, like sync/atomic) stores
// val at host address p. If the access faults, nothing is stored and f
// names p and the signal; otherwise f is the zero Fault.
//
// Preconditions: addr is 4-byte aligned (it panics otherwise).
func StoreUint32(p unsafe.Pointer, val uint32) (f Fault) {
	addr := uintptr(p)
	checkAlign(addr, 4)
	if s := storeUint32(uintptr(p), val); s != 0 {
		return Fault{addr, unix.Signal(s)}
	}
	return Fault{}
}

// StoreUint64 is StoreUint32 for a 64-bit word.
//
// Preconditions: addr is 8-byte aligned (it panics otherwise).
func StoreUint64(p unsafe.Pointer, val uint64) (f Fault) {
	addr := uintptr(p)
	checkAlign(addr, 8)
	if s := storeUint64(uintptr(p), val); s != 0 {
		return Fault{addr, unix.Signal(s)}
	}
	return Fault{}
}
