//go:build linux && amd64

#include "textflag.h"

// func memclr(dst, n uintptr) (fault, done uintptr, sig int32)
//
// Zeroes forward. Invariant relied on by memclrFault: every byte below DI has
// been zeroed; DI moves only after the stores before it are done. (Paths for
// n <= 256 keep DI at dst.) AX is only a zero source: the handler may clobber
// it, and R9, once the routine is abandoned.
TEXT ·memclr(SB), NOSPLIT|NOFRAME, $0-36
	MOVL	$0, sig+32(FP)
	MOVQ	dst+0(FP), DI
	MOVQ	n+8(FP), BX
	XORL	AX, AX
	CMPQ	BX, $16
	JA	over16
	CMPQ	BX, $8
	JB	under8
	MOVQ	AX, (DI)
	MOVQ	AX, -8(DI)(BX*1)
	RET
under8:
	CMPQ	BX, $4
	JB	under4
	MOVL	AX, (DI)
	MOVL	AX, -4(DI)(BX*1)
	RET
under4:
	CMPQ	BX, $2
	JB	under2
	MOVW	AX, (DI)
	MOVW	AX, -2(DI)(BX*1)
	RET
under2:
	TESTQ	BX, BX
	JEQ	ret
	MOVB	AX, (DI)
ret:
	RET

over16:
	PXOR	X0, X0
	CMPQ	BX, $32
	JA	over32
	MOVOU	X0, (DI)
	MOVOU	X0, -16(DI)(BX*1)
	RET
over32:
	CMPQ	BX, $64
	JA	over64
	MOVOU	X0, (DI)
	MOVOU	X0, 16(DI)
	MOVOU	X0, -32(DI)(BX*1)
	MOVOU	X0, -16(DI)(BX*1)
	RET
over64:
	CMPQ	BX, $128
	JA	over128
	MOVOU	X0, (DI)
	MOVOU	X0, 16(DI)
	MOVOU	X0, 32(DI)
	MOVOU	X0, 48(DI)
	MOVOU	X0, -64(DI)(BX*1)
	MOVOU	X0, -48(DI)(BX*1)
	MOVOU	X0, -32(DI)(BX*1)
	MOVOU	X0, -16(DI)(BX*1)
	RET
over128:
	CMPQ	BX, $256
	JA	big
	MOVOU	X0, (DI)
	MOVOU	X0, 16(DI)
	MOVOU	X0, 32(DI)
	MOVOU	X0, 48(DI)
	MOVOU	X0, 64(DI)
	MOVOU	X0, 80(DI)
	MOVOU	X0, 96(DI)
	MOVOU	X0, 112(DI)
	MOVOU	X0, -128(DI)(BX*1)
	MOVOU	X0, -112(DI)(BX*1)
	MOVOU	X0, -96(DI)(BX*1)
	MOVOU	X0, -80(DI)(BX*1)
	MOVOU	X0, -64(DI)(BX*1)
	MOVOU	X0, -48(DI)(BX*1)
	MOVOU	X0, -32(DI)(BX*1)
	MOVOU	X0, -16(DI)(BX*1)
	RET

big:
	// n > 256.
	CMPQ	BX, ·zeroRepMin(SB)
	JAE	rep
	CMPB	·useAVX2(SB), $0
	JEQ	sse_loop
	VPXOR	Y0, Y0, Y0
	// Zero the first 32 bytes, then move DI up to a 32-byte boundary.
	VMOVDQU	Y0, (DI)
	MOVQ	DI, CX
	ADDQ	$32, DI
	ANDQ	$~31, DI
	SUBQ	DI, CX
	ADDQ	CX, BX
	CMPQ	BX, ·zeroNTMin(SB)
	JAE	nt_loop
avx_loop:
	VMOVDQA	Y0, (DI)
	VMOVDQA	Y0, 32(DI)
	VMOVDQA	Y0, 64(DI)
	VMOVDQA	Y0, 96(DI)
	ADDQ	$128, DI
	SUBQ	$128, BX
	CMPQ	BX, $128
	JA	avx_loop
avx_tail:
	VMOVDQU	Y0, -128(DI)(BX*1)
	VMOVDQU	Y0, -96(DI)(BX*1)
	VMOVDQU	Y0, -64(DI)(BX*1)
	VMOVDQU	Y0, -32(DI)(BX*1)
	VZEROUPPER
	RET

nt_loop:
	VMOVNTDQ	Y0, (DI)
	VMOVNTDQ	Y0, 32(DI)
	VMOVNTDQ	Y0, 64(DI)
	VMOVNTDQ	Y0, 96(DI)
	ADDQ	$128, DI
	SUBQ	$128, BX
	CMPQ	BX, $128
	JA	nt_loop
	SFENCE
	JMP	avx_tail

rep:
	MOVQ	BX, CX
	REP;	STOSB
	RET

sse_loop:
	MOVOU	X0, (DI)
	MOVOU	X0, 16(DI)
	MOVOU	X0, 32(DI)
	MOVOU	X0, 48(DI)
	MOVOU	X0, 64(DI)
	MOVOU	X0, 80(DI)
	MOVOU	X0, 96(DI)
	MOVOU	X0, 112(DI)
	ADDQ	$128, DI
	SUBQ	$128, BX
	CMPQ	BX, $128
	JA	sse_loop
	MOVOU	X0, -128(DI)(BX*1)
	MOVOU	X0, -112(DI)(BX*1)
	MOVOU	X0, -96(DI)(BX*1)
	MOVOU	X0, -80(DI)(BX*1)
	MOVOU	X0, -64(DI)(BX*1)
	MOVOU	X0, -48(DI)(BX*1)
	MOVOU	X0, -32(DI)(BX*1)
	MOVOU	X0, -16(DI)(BX*1)
	RET

// memclrFault is where the signal handler resumes a faulting memclr, with the
// fault address in AX and the signal number in R9 (see memcpyFault).
TEXT ·memclrFault(SB), NOSPLIT|NOFRAME, $0-36
	MOVQ	AX, fault+24(FP)
	SUBQ	dst+0(FP), DI
	MOVQ	DI, done+16(FP)
	MOVL	R9, sig+32(FP)
	SFENCE
	CMPB	·useAVX2(SB), $0
	JEQ	ret
	VZEROUPPER
ret:
	RET
