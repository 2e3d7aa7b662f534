//go:build linux && amd64

#include "go_asm.h"
#include "textflag.h"

#define SIGSEGV 11

// Offsets in siginfo_t.
#define SI_CODE 0x08
#define SI_ADDR 0x10

// Offsets of uc_mcontext.gregs[REG_x] in ucontext_t (gregs start at 40).
#define UC_R9  0x30
#define UC_RAX 0x90
#define UC_RIP 0xa8

// sigHandler is installed for SIGSEGV and SIGBUS with SA_SIGINFO, so it is
// entered with the C ABI: DI = signal number, SI = *siginfo, DX = *ucontext.
// It runs on the signal stack at any point of any thread, with the Go
// runtime in any state, so it touches only registers and the ucontext.
//
// For a fault raised by the kernel (si_code > 0) at a PC inside a routine of
// faultRanges, it sets the saved RIP to the routine's fault stub, RAX to the
// fault address and R9 to the signal number, and returns: the kernel's
// sigreturn resumes the thread in the stub. Anything else jumps to the saved
// handler with DI, SI, DX untouched, as if we were not there.
TEXT ·sigHandler(SB), NOSPLIT|NOFRAME, $0
	CMPL	SI_CODE(SI), $0
	JLE	chain
	MOVQ	UC_RIP(DX), CX
	LEAQ	·faultRanges(SB), R10
	MOVQ	$const_numRoutines, R11
next:
	CMPQ	CX, faultRange_begin(R10)
	JB	skip
	CMPQ	CX, faultRange_end(R10)
	JAE	skip
	MOVQ	faultRange_stub(R10), CX
	MOVQ	CX, UC_RIP(DX)
	MOVQ	SI_ADDR(SI), CX
	MOVQ	CX, UC_RAX(DX)
	MOVLQZX	DI, CX
	MOVQ	CX, UC_R9(DX)
	RET
skip:
	ADDQ	$faultRange__size, R10
	DECQ	R11
	JNZ	next
chain:
	MOVQ	·savedSIGBUS(SB), AX
	CMPL	DI, $SIGSEGV
	CMOVQEQ	·savedSIGSEGV(SB), AX
	JMP	AX

// func routineAddrs(routines, stubs *[numRoutines]uintptr) (handler uintptr)
TEXT ·routineAddrs(SB), NOSPLIT, $0-24
	MOVQ	routines+0(FP), DI
	MOVQ	stubs+8(FP), SI
	MOVQ	$·Memcpy(SB), AX
	MOVQ	AX, 0(DI)
	MOVQ	$·memcpyFault(SB), AX
	MOVQ	AX, 0(SI)
	MOVQ	$·memclr(SB), AX
	MOVQ	AX, 8(DI)
	MOVQ	$·memclrFault(SB), AX
	MOVQ	AX, 8(SI)
	MOVQ	$·SwapUint32Raw(SB), AX
	MOVQ	AX, 16(DI)
	MOVQ	$·swapUint32Fault(SB), AX
	MOVQ	AX, 16(SI)
	MOVQ	$·swapUint64(SB), AX
	MOVQ	AX, 24(DI)
	MOVQ	$·swapUint64Fault(SB), AX
	MOVQ	AX, 24(SI)
	MOVQ	$·CompareAndSwapUint32Raw(SB), AX
	MOVQ	AX, 32(DI)
	MOVQ	$·compareAndSwapUint32Fault(SB), AX
	MOVQ	AX, 32(SI)
	MOVQ	$·compareAndSwapUint64(SB), AX
	MOVQ	AX, 40(DI)
	MOVQ	$·compareAndSwapUint64Fault(SB), AX
	MOVQ	AX, 40(SI)
	MOVQ	$·LoadUint32Raw(SB), AX
	MOVQ	AX, 48(DI)
	MOVQ	$·loadUint32Fault(SB), AX
	MOVQ	AX, 48(SI)
	MOVQ	$·loadUint64(SB), AX
	MOVQ	AX, 56(DI)
	MOVQ	$·loadUint64Fault(SB), AX
	MOVQ	AX, 56(SI)
	MOVQ	$·storeUint32(SB), AX
	MOVQ	AX, 64(DI)
	MOVQ	$·storeUint32Fault(SB), AX
	MOVQ	AX, 64(SI)
	MOVQ	$·storeUint64(SB), AX
	MOVQ	AX, 72(DI)
	MOVQ	$·storeUint64Fault(SB), AX
	MOVQ	AX, 72(SI)
	MOVQ	$·CopyToByte(SB), AX
	MOVQ	AX, 80(DI)
	MOVQ	$·copyToByteFault(SB), AX
	MOVQ	AX, 80(SI)
	MOVQ	$·IndexByteRaw(SB), AX
	MOVQ	AX, 88(DI)
	MOVQ	$·indexByteFault(SB), AX
	MOVQ	AX, 88(SI)
	MOVQ	$·MemcpyRanges(SB), AX
	MOVQ	AX, 96(DI)
	MOVQ	$·memcpyRangesFault(SB), AX
	MOVQ	AX, 96(SI)
	MOVQ	$·sigHandler(SB), AX
	MOVQ	AX, handler+16(FP)
	RET
