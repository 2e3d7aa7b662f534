//go:build linux && amd64

#include "textflag.h"

// func MemcpyRanges(buf, base, ranges unsafe.Pointer, n uintptr, out bool) (done, fault uintptr, sig int32)
//
// R10 walks the ranges (16 bytes each: Start, End) up to R11, R12 walks
// buf, R13 is base and R8 out. The copy of each range is memcpy's for its
// size, through AX, CX and X0-X3. The handler's registers, AX and R9, hold
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
	CMPQ	BX, $16
	JA	over16
	CMPQ	BX, $8
	JB	under8
	MOVQ	(SI), AX
	MOVQ	-8(SI)(BX*1), CX
	MOVQ	AX, (DI)
	MOVQ	CX, -8(DI)(BX*1)
	JMP	loop
under8:
	CMPQ	BX, $4
	JB	under4
	MOVL	(SI), AX
	MOVL	-4(SI)(BX*1), CX
	MOVL	AX, (DI)
	MOVL	CX, -4(DI)(BX*1)
	JMP	loop
under4:
	CMPQ	BX, $2
	JB	one
	MOVW	(SI), AX
	MOVW	-2(SI)(BX*1), CX
	MOVW	AX, (DI)
	MOVW	CX, -2(DI)(BX*1)
	JMP	loop
one:
	MOVB	(SI), AX
	MOVB	AX, (DI)
	JMP	loop
over16:
	CMPQ	BX, $32
	JA	over32
	MOVOU	(SI), X0
	MOVOU	-16(SI)(BX*1), X1
	MOVOU	X0, (DI)
	MOVOU	X1, -16(DI)(BX*1)
	JMP	loop
over32:
	MOVOU	(SI), X0
	MOVOU	16(SI), X1
	MOVOU	-32(SI)(BX*1), X2
	MOVOU	-16(SI)(BX*1), X3
	MOVOU	X0, (DI)
	MOVOU	X1, 16(DI)
	MOVOU	X2, -32(DI)(BX*1)
	MOVOU	X3, -16(DI)(BX*1)
	JMP	loop
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
