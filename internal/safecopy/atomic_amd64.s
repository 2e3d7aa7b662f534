//go:build linux && amd64

#include "textflag.h"

// Each routine stores sig = 0 first; if its one memory access faults, the
// signal handler resumes the thread in the routine's stub (same frame: none)
// with the signal number in R9, and the stub stores it over the 0.

// func SwapUint32Raw(p unsafe.Pointer, new uint32) (old uint32, sig int32)
TEXT ·SwapUint32Raw(SB), NOSPLIT|NOFRAME, $0-24
	MOVL	$0, sig+20(FP)
	MOVQ	p+0(FP), DI
	MOVL	new+8(FP), BX
	XCHGL	BX, 0(DI)
	MOVL	BX, old+16(FP)
	RET

TEXT ·swapUint32Fault(SB), NOSPLIT|NOFRAME, $0-24
	MOVL	R9, sig+20(FP)
	RET

// func swapUint64(addr uintptr, new uint64) (old uint64, sig int32)
TEXT ·swapUint64(SB), NOSPLIT|NOFRAME, $0-28
	MOVL	$0, sig+24(FP)
	MOVQ	addr+0(FP), DI
	MOVQ	new+8(FP), BX
	XCHGQ	BX, 0(DI)
	MOVQ	BX, old+16(FP)
	RET

TEXT ·swapUint64Fault(SB), NOSPLIT|NOFRAME, $0-28
	MOVL	R9, sig+24(FP)
	RET

// func CompareAndSwapUint32Raw(p unsafe.Pointer, old, new uint32) (prev uint32, sig int32)
TEXT ·CompareAndSwapUint32Raw(SB), NOSPLIT|NOFRAME, $0-24
	MOVL	$0, sig+20(FP)
	MOVQ	p+0(FP), DI
	MOVL	old+8(FP), AX
	MOVL	new+12(FP), BX
	LOCK
	CMPXCHGL	BX, 0(DI)
	MOVL	AX, prev+16(FP)
	RET

TEXT ·compareAndSwapUint32Fault(SB), NOSPLIT|NOFRAME, $0-24
	MOVL	R9, sig+20(FP)
	RET

// func compareAndSwapUint64(addr uintptr, old, new uint64) (prev uint64, sig int32)
TEXT ·compareAndSwapUint64(SB), NOSPLIT|NOFRAME, $0-36
	MOVL	$0, sig+32(FP)
	MOVQ	addr+0(FP), DI
	MOVQ	old+8(FP), AX
	MOVQ	new+16(FP), BX
	LOCK
	CMPXCHGQ	BX, 0(DI)
	MOVQ	AX, prev+24(FP)
	RET

TEXT ·compareAndSwapUint64Fault(SB), NOSPLIT|NOFRAME, $0-36
	MOVL	R9, sig+32(FP)
	RET

// func LoadUint32Raw(p unsafe.Pointer) (val uint32, sig int32)
TEXT ·LoadUint32Raw(SB), NOSPLIT|NOFRAME, $0-16
	MOVL	$0, sig+12(FP)
	MOVQ	p+0(FP), DI
	MOVL	0(DI), BX
	MOVL	BX, val+8(FP)
	RET

TEXT ·loadUint32Fault(SB), NOSPLIT|NOFRAME, $0-16
	MOVL	R9, sig+12(FP)
	RET

// func loadUint64(addr uintptr) (val uint64, sig int32)
TEXT ·loadUint64(SB), NOSPLIT|NOFRAME, $0-20
	MOVL	$0, sig+16(FP)
	MOVQ	addr+0(FP), DI
	MOVQ	0(DI), BX
	MOVQ	BX, val+8(FP)
	RET

TEXT ·loadUint64Fault(SB), NOSPLIT|NOFRAME, $0-20
	MOVL	R9, sig+16(FP)
	RET

// func storeUint32(addr uintptr, val uint32) (sig int32)
// XCHG, not MOV: a sequentially consistent store, as sync/atomic's.
TEXT ·storeUint32(SB), NOSPLIT|NOFRAME, $0-20
	MOVL	$0, sig+16(FP)
	MOVQ	addr+0(FP), DI
	MOVL	val+8(FP), BX
	XCHGL	BX, 0(DI)
	RET

TEXT ·storeUint32Fault(SB), NOSPLIT|NOFRAME, $0-20
	MOVL	R9, sig+16(FP)
	RET

// func storeUint64(addr uintptr, val uint64) (sig int32)
TEXT ·storeUint64(SB), NOSPLIT|NOFRAME, $0-20
	MOVL	$0, sig+16(FP)
	MOVQ	addr+0(FP), DI
	MOVQ	val+8(FP), BX
	XCHGQ	BX, 0(DI)
	RET

TEXT ·storeUint64Fault(SB), NOSPLIT|NOFRAME, $0-20
	MOVL	R9, sig+16(FP)
	RET
