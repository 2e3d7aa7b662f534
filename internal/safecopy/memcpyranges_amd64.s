//go:build linux && amd64

#include "textflag.h"
#include "copysmall_amd64.h"

// func MemcpyRanges(buf, base, ranges unsafe.Pointer, n uintptr, out bool) (done, fault uintptr, sig int32)
//
// R10 walks the ranges (16 bytes each: Start, End) up to R11, R12 walks
// buf, R13 is base and R8 out. Each range is copied by COPY_UP_TO_64, as
// Memcpy copies up to 64 bytes. The handler's registers, AX and R9, hold
// nothing the stub needs.
TEXT ·MemcpyRanges(SB), NOSPLIT|NOFRAME, $0-60
	MOVL	$0, sig+56(FP)
	MOVQ	buf+0(FP), R12
	MOVQ	base+8(FP), R13
	MOVQ	ranges+16(FP), R10
	MOVQ	n+24(FP), R11
	SHLQ	$4, R11
	ADDQ	R10, R11
	MOVBLZX	out+32(FP), R8
loop:
	CMPQ	R10, R11
	JAE	end
	MOVQ	0(R10), SI
	MOVQ	8(R10), BX
	SUBQ	SI, BX
	ADDQ	R13, SI
	MOVQ	R12, DI
	ADDQ	BX, R12
	ADDQ	$16, R10
	TESTL	R8, R8
	JEQ	copy
	XCHGQ	SI, DI
copy:
	COPY_UP_TO_64(JMP loop)
end:
	MOVQ	n+24(FP), R11
	MOVQ	R11, done+40(FP)
	RET

// memcpyRangesFault is where the signal handler resumes a faulting
// MemcpyRanges, with the fault address in AX and the signal number in R9.
// R10 is one range past the faulting one.
TEXT ·memcpyRangesFault(SB), NOSPLIT|NOFRAME, $0-60
	MOVQ	AX, fault+48(FP)
	MOVL	R9, sig+56(FP)
	SUBQ	ranges+16(FP), R10
	SHRQ	$4, R10
	DECQ	R10
	MOVQ	R10, done+40(FP)
	RET
