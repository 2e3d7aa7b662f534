//go:build linux && amd64

#include "textflag.h"

// func IndexByteRaw(p unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32)
//
// Reads only the aligned 16-byte (32 with AVX2) blocks that overlap [p, p+n), so it never
// touches a page the range does not; bits of the first and last block
// outside the range are masked off.
TEXT ·IndexByteRaw(SB), NOSPLIT|NOFRAME, $0-36
	MOVL	$0, sig+32(FP)
	MOVQ	p+0(FP), SI
	MOVQ	n+8(FP), BX
	MOVBLZX	c+16(FP), AX
	TESTQ	BX, BX
	JEQ	none
	LEAQ	(SI)(BX*1), R8 // end of the range
	MOVQ	AX, X0
	CMPB	·useAVX2(SB), $0
	JEQ	sse
	// The same with aligned 32-byte blocks.
	VPBROADCASTB	X0, Y0
	MOVQ	SI, DI
	ANDQ	$~31, DI
	MOVQ	SI, CX
	ANDQ	$31, CX
	VMOVDQA	(DI), Y1
	VPCMPEQB	Y0, Y1, Y1
	VPMOVMSKB	Y1, DX
	SHRL	CX, DX
	TESTL	DX, DX
	JNE	firstavx
avxloop:
	ADDQ	$32, DI
	CMPQ	DI, R8
	JAE	noneavx
	VMOVDQA	(DI), Y1
	VPCMPEQB	Y0, Y1, Y1
	VPMOVMSKB	Y1, DX
	TESTL	DX, DX
	JEQ	avxloop
	VZEROUPPER
	BSFL	DX, DX
	ADDQ	DI, DX
	SUBQ	SI, DX
	CMPQ	DX, BX
	JAE	none
	MOVQ	DX, idx+24(FP)
	RET
firstavx:
	VZEROUPPER
	JMP	first
noneavx:
	VZEROUPPER
	JMP	none
sse:
	// X0 = c in every byte.
	PUNPCKLBW	X0, X0
	PUNPCKLBW	X0, X0
	PSHUFL	$0, X0, X0
	MOVQ	SI, DI
	ANDQ	$~15, DI // first block
	MOVQ	SI, CX
	ANDQ	$15, CX // offset of p in it
	MOVOA	(DI), X1
	PCMPEQB	X0, X1
	PMOVMSKB	X1, DX
	SHRL	CX, DX // bit i is now byte p+i
	TESTL	DX, DX
	JNE	first
loop:
	ADDQ	$16, DI
	CMPQ	DI, R8
	JAE	none
	MOVOA	(DI), X1
	PCMPEQB	X0, X1
	PMOVMSKB	X1, DX
	TESTL	DX, DX
	JEQ	loop
	BSFL	DX, DX
	ADDQ	DI, DX
	SUBQ	SI, DX // index from p
	CMPQ	DX, BX
	JAE	none
	MOVQ	DX, idx+24(FP)
	RET
first:
	BSFL	DX, DX
	CMPQ	DX, BX
	JAE	none
	MOVQ	DX, idx+24(FP)
	RET
none:
	MOVQ	BX, idx+24(FP)
	RET

// indexByteFault is where the signal handler resumes a faulting
// IndexByteRaw, with the signal number in R9.
TEXT ·indexByteFault(SB), NOSPLIT|NOFRAME, $0-36
	MOVL	R9, sig+32(FP)
	CMPB	·useAVX2(SB), $0
	JEQ	ret
	VZEROUPPER
ret:
	RET
