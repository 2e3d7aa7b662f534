//go:build linux && amd64

#include "textflag.h"
#include "copysmall_amd64.h"

// func Memcpy(dst, src, n uintptr) (done, fault uintptr, sig int32)
//
// Copies forward. Invariant relied on by memcpyFault: every byte of dst below
// DI has been written with its source byte; DI moves only after the stores
// before it are done. (Paths for n <= 256 keep DI at dst.) The handler's
// registers, AX and R9, are not used for anything the stub needs.
TEXT ·Memcpy(SB), NOSPLIT|NOFRAME, $0-44
	MOVL	$0, sig+40(FP)
	MOVQ	dst+0(FP), DI
	MOVQ	src+8(FP), SI
	MOVQ	n+16(FP), BX
	CMPQ	BX, $8
	JEQ	eq8
	CMPQ	BX, $64
	JA	over64
	COPY_UP_TO_64(RET)
eq8:	// the commonest small copy, a word: one load, one store
	MOVQ	(SI), AX
	MOVQ	AX, (DI)
	RET
over64:
	CMPQ	BX, $128
	JA	over128
	MOVOU	(SI), X0
	MOVOU	16(SI), X1
	MOVOU	32(SI), X2
	MOVOU	48(SI), X3
	MOVOU	-64(SI)(BX*1), X4
	MOVOU	-48(SI)(BX*1), X5
	MOVOU	-32(SI)(BX*1), X6
	MOVOU	-16(SI)(BX*1), X7
	MOVOU	X0, (DI)
	MOVOU	X1, 16(DI)
	MOVOU	X2, 32(DI)
	MOVOU	X3, 48(DI)
	MOVOU	X4, -64(DI)(BX*1)
	MOVOU	X5, -48(DI)(BX*1)
	MOVOU	X6, -32(DI)(BX*1)
	MOVOU	X7, -16(DI)(BX*1)
	RET
over128:
	CMPQ	BX, $256
	JA	big
	MOVOU	(SI), X0
	MOVOU	16(SI), X1
	MOVOU	32(SI), X2
	MOVOU	48(SI), X3
	MOVOU	64(SI), X4
	MOVOU	80(SI), X5
	MOVOU	96(SI), X6
	MOVOU	112(SI), X7
	MOVOU	-128(SI)(BX*1), X8
	MOVOU	-112(SI)(BX*1), X9
	MOVOU	-96(SI)(BX*1), X10
	MOVOU	-80(SI)(BX*1), X11
	MOVOU	-64(SI)(BX*1), X12
	MOVOU	-48(SI)(BX*1), X13
	MOVOU	-32(SI)(BX*1), X14
	MOVOU	-16(SI)(BX*1), X15
	MOVOU	X0, (DI)
	MOVOU	X1, 16(DI)
	MOVOU	X2, 32(DI)
	MOVOU	X3, 48(DI)
	MOVOU	X4, 64(DI)
	MOVOU	X5, 80(DI)
	MOVOU	X6, 96(DI)
	MOVOU	X7, 112(DI)
	MOVOU	X8, -128(DI)(BX*1)
	MOVOU	X9, -112(DI)(BX*1)
	MOVOU	X10, -96(DI)(BX*1)
	MOVOU	X11, -80(DI)(BX*1)
	MOVOU	X12, -64(DI)(BX*1)
	MOVOU	X13, -48(DI)(BX*1)
	MOVOU	X14, -32(DI)(BX*1)
	MOVOU	X15, -16(DI)(BX*1)
	RET

big:
	// n > 256.
	CMPQ	BX, ·copyRepMin(SB)
	JAE	rep
	CMPB	·useAVX2(SB), $0
	JEQ	sse_loop
	// Copy the first 32 bytes, then move DI up to a 32-byte boundary
	// (by 1..32 bytes) so the loops store aligned.
	VMOVDQU	(SI), Y0
	VMOVDQU	Y0, (DI)
	MOVQ	DI, CX
	ADDQ	$32, DI
	ANDQ	$~31, DI
	SUBQ	DI, CX
	SUBQ	CX, SI
	ADDQ	CX, BX
	// Now BX > 224.
	CMPQ	BX, ·copyNTMin(SB)
	JAE	nt_loop
	// Up to 16 KiB, 256 bytes an iteration while more than 256 are left:
	// half the loop overhead of the 128-byte loop, which matters where the
	// copy runs from L1 (4 KiB: +11% on a Xeon); from L2 on the 128-byte
	// loop is 3-5% ahead.
	CMPQ	BX, $16384
	JA	avx_loop
	PCALIGN	$64
avx_loop256:
	CMPQ	BX, $256
	JBE	avx_rest
	VMOVDQU	(SI), Y0
	VMOVDQU	32(SI), Y1
	VMOVDQU	64(SI), Y2
	VMOVDQU	96(SI), Y3
	VMOVDQU	128(SI), Y4
	VMOVDQU	160(SI), Y5
	VMOVDQU	192(SI), Y6
	VMOVDQU	224(SI), Y7
	VMOVDQA	Y0, (DI)
	VMOVDQA	Y1, 32(DI)
	VMOVDQA	Y2, 64(DI)
	VMOVDQA	Y3, 96(DI)
	VMOVDQA	Y4, 128(DI)
	VMOVDQA	Y5, 160(DI)
	VMOVDQA	Y6, 192(DI)
	VMOVDQA	Y7, 224(DI)
	ADDQ	$256, SI
	ADDQ	$256, DI
	SUBQ	$256, BX
	JMP	avx_loop256
avx_rest:
	// 0 < BX <= 256.
	CMPQ	BX, $128
	JBE	avx_tail
	PCALIGN	$64
avx_loop:
	VMOVDQU	(SI), Y0
	VMOVDQU	32(SI), Y1
	VMOVDQU	64(SI), Y2
	VMOVDQU	96(SI), Y3
	VMOVDQA	Y0, (DI)
	VMOVDQA	Y1, 32(DI)
	VMOVDQA	Y2, 64(DI)
	VMOVDQA	Y3, 96(DI)
	ADDQ	$128, SI
	ADDQ	$128, DI
	SUBQ	$128, BX
	CMPQ	BX, $128
	JA	avx_loop
avx_tail:
	// 0 < BX <= 128: copy the last 128 bytes, overlapping done ones.
	VMOVDQU	-128(SI)(BX*1), Y0
	VMOVDQU	-96(SI)(BX*1), Y1
	VMOVDQU	-64(SI)(BX*1), Y2
	VMOVDQU	-32(SI)(BX*1), Y3
	VMOVDQU	Y0, -128(DI)(BX*1)
	VMOVDQU	Y1, -96(DI)(BX*1)
	VMOVDQU	Y2, -64(DI)(BX*1)
	VMOVDQU	Y3, -32(DI)(BX*1)
	VZEROUPPER
	RET

nt_loop:
	VMOVDQU	(SI), Y0
	VMOVDQU	32(SI), Y1
	VMOVDQU	64(SI), Y2
	VMOVDQU	96(SI), Y3
	VMOVNTDQ	Y0, (DI)
	VMOVNTDQ	Y1, 32(DI)
	VMOVNTDQ	Y2, 64(DI)
	VMOVNTDQ	Y3, 96(DI)
	ADDQ	$128, SI
	ADDQ	$128, DI
	SUBQ	$128, BX
	CMPQ	BX, $128
	JA	nt_loop
	SFENCE
	JMP	avx_tail

rep:
	MOVQ	BX, CX
	REP;	MOVSB
	RET

sse_loop:
	MOVOU	(SI), X0
	MOVOU	16(SI), X1
	MOVOU	32(SI), X2
	MOVOU	48(SI), X3
	MOVOU	64(SI), X4
	MOVOU	80(SI), X5
	MOVOU	96(SI), X6
	MOVOU	112(SI), X7
	MOVOU	X0, (DI)
	MOVOU	X1, 16(DI)
	MOVOU	X2, 32(DI)
	MOVOU	X3, 48(DI)
	MOVOU	X4, 64(DI)
	MOVOU	X5, 80(DI)
	MOVOU	X6, 96(DI)
	MOVOU	X7, 112(DI)
	ADDQ	$128, SI
	ADDQ	$128, DI
	SUBQ	$128, BX
	CMPQ	BX, $128
	JA	sse_loop
	MOVOU	-128(SI)(BX*1), X0
	MOVOU	-112(SI)(BX*1), X1
	MOVOU	-96(SI)(BX*1), X2
	MOVOU	-80(SI)(BX*1), X3
	MOVOU	-64(SI)(BX*1), X4
	MOVOU	-48(SI)(BX*1), X5
	MOVOU	-32(SI)(BX*1), X6
	MOVOU	-16(SI)(BX*1), X7
	MOVOU	X0, -128(DI)(BX*1)
	MOVOU	X1, -112(DI)(BX*1)
	MOVOU	X2, -96(DI)(BX*1)
	MOVOU	X3, -80(DI)(BX*1)
	MOVOU	X4, -64(DI)(BX*1)
	MOVOU	X5, -48(DI)(BX*1)
	MOVOU	X6, -32(DI)(BX*1)
	MOVOU	X7, -16(DI)(BX*1)
	RET

// memcpyFault is where the signal handler resumes a faulting memcpy, with the
// fault address in AX and the signal number in R9. The frame is memcpy's
// (none), so RET returns to memcpy's caller.
TEXT ·memcpyFault(SB), NOSPLIT|NOFRAME, $0-44
	MOVQ	AX, fault+32(FP)
	SUBQ	dst+0(FP), DI
	MOVQ	DI, done+24(FP)
	MOVL	R9, sig+40(FP)
	// Order the non-temporal stores made so far, as memcpy would have.
	SFENCE
	CMPB	·useAVX2(SB), $0
	JEQ	ret
	VZEROUPPER
ret:
	RET
