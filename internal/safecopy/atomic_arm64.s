//go:build linux && arm64

#include "textflag.h"

// Each routine stores sig = 0 first; if one of its memory accesses faults,
// the signal handler resumes the thread in the routine's stub (same frame:
// none) with the signal number in R15, and the stub stores it over the 0.
//
// The read-modify-writes are load-acquire/store-release exclusive loops
// (LDAXR/STLXR), as sync/atomic's on CPUs without LSE: they need no CPU
// feature test and behave the same everywhere. The loads and stores are
// LDAR and STLR, as sync/atomic's. All are single-copy atomic on aligned
// addresses, which the Go wrappers guarantee.
//
// CompareAndSwap writes even when the comparison fails: it stores the value
// it loaded back with STLXR, which succeeds only if nothing wrote the word
// since the LDAXR, so the word never changes; if the STLXR fails the
// comparison is redone. So a CompareAndSwap of a read-only page always
// faults, as x86's LOCK CMPXCHG does (which writes the old value back on
// failure). An exclusive loop that skipped the store, and LSE's CASAL on
// some implementations and emulators, would succeed on a read-only page when
// the comparison fails; callers that probe writability with a
// CompareAndSwap of a word with itself rely on the fault.

// func SwapUint32Raw(p unsafe.Pointer, new uint32) (old uint32, sig int32)
TEXT ·SwapUint32Raw(SB), NOSPLIT|NOFRAME, $0-24
	MOVW	ZR, sig+20(FP)
	MOVD	p+0(FP), R0
	MOVW	new+8(FP), R1
again:
	LDAXRW	(R0), R2
	STLXRW	R1, (R0), R3
	CBNZ	R3, again
	MOVW	R2, old+16(FP)
	RET

TEXT ·swapUint32Fault(SB), NOSPLIT|NOFRAME, $0-24
	MOVW	R15, sig+20(FP)
	RET

// func swapUint64(addr uintptr, new uint64) (old uint64, sig int32)
TEXT ·swapUint64(SB), NOSPLIT|NOFRAME, $0-28
	MOVW	ZR, sig+24(FP)
	MOVD	addr+0(FP), R0
	MOVD	new+8(FP), R1
again:
	LDAXR	(R0), R2
	STLXR	R1, (R0), R3
	CBNZ	R3, again
	MOVD	R2, old+16(FP)
	RET

TEXT ·swapUint64Fault(SB), NOSPLIT|NOFRAME, $0-28
	MOVW	R15, sig+24(FP)
	RET

// func CompareAndSwapUint32Raw(p unsafe.Pointer, old, new uint32) (prev uint32, sig int32)
TEXT ·CompareAndSwapUint32Raw(SB), NOSPLIT|NOFRAME, $0-24
	MOVW	ZR, sig+20(FP)
	MOVD	p+0(FP), R0
	MOVWU	old+8(FP), R1
	MOVW	new+12(FP), R2
again:
	LDAXRW	(R0), R3
	CMPW	R1, R3
	BNE	differ
	STLXRW	R2, (R0), R4
	CBNZ	R4, again
	MOVW	R3, prev+16(FP)
	RET
differ:
	STLXRW	R3, (R0), R4
	CBNZ	R4, again
	MOVW	R3, prev+16(FP)
	RET

TEXT ·compareAndSwapUint32Fault(SB), NOSPLIT|NOFRAME, $0-24
	MOVW	R15, sig+20(FP)
	RET

// func compareAndSwapUint64(addr uintptr, old, new uint64) (prev uint64, sig int32)
TEXT ·compareAndSwapUint64(SB), NOSPLIT|NOFRAME, $0-36
	MOVW	ZR, sig+32(FP)
	MOVD	addr+0(FP), R0
	MOVD	old+8(FP), R1
	MOVD	new+16(FP), R2
again:
	LDAXR	(R0), R3
	CMP	R1, R3
	BNE	differ
	STLXR	R2, (R0), R4
	CBNZ	R4, again
	MOVD	R3, prev+24(FP)
	RET
differ:
	STLXR	R3, (R0), R4
	CBNZ	R4, again
	MOVD	R3, prev+24(FP)
	RET

TEXT ·compareAndSwapUint64Fault(SB), NOSPLIT|NOFRAME, $0-36
	MOVW	R15, sig+32(FP)
	RET

// func LoadUint32Raw(p unsafe.Pointer) (val uint32, sig int32)
TEXT ·LoadUint32Raw(SB), NOSPLIT|NOFRAME, $0-16
	MOVW	ZR, sig+12(FP)
	MOVD	p+0(FP), R0
	LDARW	(R0), R1
	MOVW	R1, val+8(FP)
	RET

TEXT ·loadUint32Fault(SB), NOSPLIT|NOFRAME, $0-16
	MOVW	R15, sig+12(FP)
	RET

// func loadUint64(addr uintptr) (val uint64, sig int32)
TEXT ·loadUint64(SB), NOSPLIT|NOFRAME, $0-20
	MOVW	ZR, sig+16(FP)
	MOVD	addr+0(FP), R0
	LDAR	(R0), R1
	MOVD	R1, val+8(FP)
	RET

TEXT ·loadUint64Fault(SB), NOSPLIT|NOFRAME, $0-20
	MOVW	R15, sig+16(FP)
	RET

// func storeUint32(addr uintptr, val uint32) (sig int32)
TEXT ·storeUint32(SB), NOSPLIT|NOFRAME, $0-20
	MOVW	ZR, sig+16(FP)
	MOVD	addr+0(FP), R0
	MOVW	val+8(FP), R1
	STLRW	R1, (R0)
	RET

TEXT ·storeUint32Fault(SB), NOSPLIT|NOFRAME, $0-20
	MOVW	R15, sig+16(FP)
	RET

// func storeUint64(addr uintptr, val uint64) (sig int32)
TEXT ·storeUint64(SB), NOSPLIT|NOFRAME, $0-20
	MOVW	ZR, sig+16(FP)
	MOVD	addr+0(FP), R0
	MOVD	val+8(FP), R1
	STLR	R1, (R0)
	RET

TEXT ·storeUint64Fault(SB), NOSPLIT|NOFRAME, $0-20
	MOVW	R15, sig+16(FP)
	RET
