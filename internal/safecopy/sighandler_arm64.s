//go:build linux && arm64

#include "go_asm.h"
#include "textflag.h"

#define SIGSEGV 11

// Offsets in siginfo_t.
#define SI_CODE 0x08
#define SI_ADDR 0x10

// Offsets in the arm64 ucontext_t: uc_mcontext (struct sigcontext) starts at
// 176 (uc_flags, uc_link, uc_stack, a 128-byte uc_sigmask, 16-byte
// alignment), and holds fault_address, regs[31], sp, pc, pstate.
#define UC_REGS 184
#define UC_R14 (UC_REGS+14*8)
#define UC_R15 (UC_REGS+15*8)
#define UC_PC 440

// sigHandler is installed for SIGSEGV and SIGBUS with SA_SIGINFO, so it is
// entered with the C ABI: R0 = signal number, R1 = *siginfo, R2 = *ucontext,
// LR = the restorer. It runs on the signal stack at any point of any thread,
// with the Go runtime in any state, so it touches only R3-R7 and the
// ucontext (never R28, g, which the Go handler it chains to relies on).
//
// For a fault raised by the kernel (si_code > 0) at a PC inside a routine of
// faultRanges, it sets the saved PC to the routine's fault stub, R14 to the
// fault address and R15 to the signal number, and returns: the kernel's
// sigreturn resumes the thread in the stub. Anything else (including a
// SIGSEGV sent by kill or tgkill, whose si_code is <= 0) jumps to the saved
// handler with R0, R1, R2 and LR untouched, as if we were not there.
TEXT ·sigHandler(SB), NOSPLIT|NOFRAME, $0
	MOVW	SI_CODE(R1), R3
	CMPW	$0, R3
	BLE	chain
	MOVD	UC_PC(R2), R3
	MOVD	$·faultRanges(SB), R4
	MOVD	$const_numRoutines, R5
next:
	MOVD	faultRange_begin(R4), R6
	CMP	R6, R3
	BLO	skip
	MOVD	faultRange_end(R4), R6
	CMP	R6, R3
	BHS	skip
	MOVD	faultRange_stub(R4), R6
	MOVD	R6, UC_PC(R2)
	MOVD	SI_ADDR(R1), R6
	MOVD	R6, UC_R14(R2)
	MOVWU	R0, R6
	MOVD	R6, UC_R15(R2)
	RET
skip:
	ADD	$faultRange__size, R4
	SUBS	$1, R5
	BNE	next
chain:
	MOVD	·savedSIGBUS(SB), R3
	CMPW	$SIGSEGV, R0
	BNE	jump
	MOVD	·savedSIGSEGV(SB), R3
jump:
	JMP	(R3)

// func routineAddrs(routines, stubs *[numRoutines]uintptr) (handler uintptr)
TEXT ·routineAddrs(SB), NOSPLIT|NOFRAME, $0-24
	MOVD	routines+0(FP), R0
	MOVD	stubs+8(FP), R1
	MOVD	$·Memcpy(SB), R2
	MOVD	R2, 0(R0)
	MOVD	$·memcpyFault(SB), R2
	MOVD	R2, 0(R1)
	MOVD	$·memclr(SB), R2
	MOVD	R2, 8(R0)
	MOVD	$·memclrFault(SB), R2
	MOVD	R2, 8(R1)
	MOVD	$·SwapUint32Raw(SB), R2
	MOVD	R2, 16(R0)
	MOVD	$·swapUint32Fault(SB), R2
	MOVD	R2, 16(R1)
	MOVD	$·swapUint64(SB), R2
	MOVD	R2, 24(R0)
	MOVD	$·swapUint64Fault(SB), R2
	MOVD	R2, 24(R1)
	MOVD	$·CompareAndSwapUint32Raw(SB), R2
	MOVD	R2, 32(R0)
	MOVD	$·compareAndSwapUint32Fault(SB), R2
	MOVD	R2, 32(R1)
	MOVD	$·compareAndSwapUint64(SB), R2
	MOVD	R2, 40(R0)
	MOVD	$·compareAndSwapUint64Fault(SB), R2
	MOVD	R2, 40(R1)
	MOVD	$·LoadUint32Raw(SB), R2
	MOVD	R2, 48(R0)
	MOVD	$·loadUint32Fault(SB), R2
	MOVD	R2, 48(R1)
	MOVD	$·loadUint64(SB), R2
	MOVD	R2, 56(R0)
	MOVD	$·loadUint64Fault(SB), R2
	MOVD	R2, 56(R1)
	MOVD	$·storeUint32(SB), R2
	MOVD	R2, 64(R0)
	MOVD	$·storeUint32Fault(SB), R2
	MOVD	R2, 64(R1)
	MOVD	$·storeUint64(SB), R2
	MOVD	R2, 72(R0)
	MOVD	$·storeUint64Fault(SB), R2
	MOVD	R2, 72(R1)
	MOVD	$·CopyToByte(SB), R2
	MOVD	R2, 80(R0)
	MOVD	$·copyToByteFault(SB), R2
	MOVD	R2, 80(R1)
	MOVD	$·IndexByteRaw(SB), R2
	MOVD	R2, 88(R0)
	MOVD	$·indexByteFault(SB), R2
	MOVD	R2, 88(R1)
	MOVD	$·MemcpyRanges(SB), R2
	MOVD	R2, 96(R0)
	MOVD	$·memcpyRangesFault(SB), R2
	MOVD	R2, 96(R1)
	MOVD	$·sigHandler(SB), R2
	MOVD	R2, handler+16(FP)
	RET
