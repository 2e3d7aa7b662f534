//go:build linux && amd64

#include "textflag.h"

// func CopyToByte(dst, src unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32)
//
// Copies 16 bytes (32 with AVX2, for n >= 32) at a time, testing each block for c in the register it
// was loaded into and then stored from, so that dst[:idx] is exactly what
// was read and holds no c. The last block of a length that is not a
// multiple of the block overlaps bytes already done; lengths below 16 go a byte at
// a time. Every access is inside [src, src+n) and [dst, dst+n).
TEXT ·CopyToByte(SB), NOSPLIT|NOFRAME, $0-44
	MOVL	$0, sig+40(FP)
	MOVQ	dst+0(FP), DI
	MOVQ	src+8(FP), SI
	MOVQ	n+16(FP), BX
	MOVBLZX	c+24(FP), AX
	XORQ	CX, CX
	CMPQ	BX, $16
	JB	small
	MOVQ	AX, X0
	CMPQ	BX, $32
	JB	sse
	CMPB	·useAVX2(SB), $0
	JEQ	sse
	// The same 32 bytes at a time.
	VPBROADCASTB	X0, Y0
avxloop:
	LEAQ	32(CX), DX
	CMPQ	DX, BX
	JA	avxtail
	VMOVDQU	(SI)(CX*1), Y1
	VMOVDQU	Y1, (DI)(CX*1)
	VPCMPEQB	Y0, Y1, Y1
	VPMOVMSKB	Y1, DX
	TESTL	DX, DX
	JNE	avxfound
	ADDQ	$32, CX
	JMP	avxloop
avxtail:
	CMPQ	CX, BX
	JEQ	avxnone
	LEAQ	-32(BX), CX
	VMOVDQU	(SI)(CX*1), Y1
	VMOVDQU	Y1, (DI)(CX*1)
	VPCMPEQB	Y0, Y1, Y1
	VPMOVMSKB	Y1, DX
	TESTL	DX, DX
	JEQ	avxnone
avxfound:
	VZEROUPPER
	JMP	found
avxnone:
	VZEROUPPER
	JMP	none
sse:
	// X0 = c in every byte.
	PUNPCKLBW	X0, X0
	PUNPCKLBW	X0, X0
	PSHUFL	$0, X0, X0
loop:
	LEAQ	16(CX), DX
	CMPQ	DX, BX
	JA	tail
	MOVOU	(SI)(CX*1), X1
	MOVOU	X1, (DI)(CX*1)
	PCMPEQB	X0, X1
	PMOVMSKB	X1, DX
	TESTL	DX, DX
	JNE	found
	ADDQ	$16, CX
	JMP	loop
tail:
	CMPQ	CX, BX
	JEQ	none
	// The last 16 bytes. Those below CX were found free of c before; if
	// another thread wrote c there since, this load sees it and its store
	// puts it in dst, so dst[:idx] is still what was read.
	LEAQ	-16(BX), CX
	MOVOU	(SI)(CX*1), X1
	MOVOU	X1, (DI)(CX*1)
	PCMPEQB	X0, X1
	PMOVMSKB	X1, DX
	TESTL	DX, DX
	JEQ	none
found:
	BSFL	DX, DX
	ADDQ	CX, DX
	MOVQ	DX, idx+32(FP)
	RET
small:
	CMPQ	CX, BX
	JAE	none
	MOVB	(SI)(CX*1), DX
	MOVB	DX, (DI)(CX*1)
	CMPB	DX, AX
	JEQ	smallfound
	INCQ	CX
	JMP	small
smallfound:
	MOVQ	CX, idx+32(FP)
	RET
none:
	MOVQ	BX, idx+32(FP)
	RET

// copyToByteFault is where the signal handler resumes a faulting
// CopyToByte, with the signal number in R9.
TEXT ·copyToByteFault(SB), NOSPLIT|NOFRAME, $0-44
	MOVL	R9, sig+40(FP)
	CMPB	·useAVX2(SB), $0
	JEQ	ret
	VZEROUPPER
ret:
	RET
