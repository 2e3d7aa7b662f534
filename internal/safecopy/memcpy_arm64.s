//go:build linux && arm64

#include "textflag.h"
#include "copysmall_arm64.h"

// Register use in memcpy and memclr: R0 dst, R1 src, R2 n (then the bytes
// left from R1/R3), R3 progress, R6 src+n, R7 dst+n, R4, R5 and R8-R13 data.
// The signal handler writes the fault address to R14 and the signal number
// to R15 (see sighandler_arm64.s); the routines do not use them.

// func Memcpy(dst, src, n uintptr) (done, fault uintptr, sig int32)
//
// Copies forward. Invariant relied on by memcpyFault: every byte of dst below
// R3 has been written with its source byte; R3 moves only after the stores
// before it are done. (Paths for n <= 64 keep R3 at dst.)
TEXT ·Memcpy(SB), NOSPLIT|NOFRAME, $0-44
	MOVW	ZR, sig+40(FP)
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	n+16(FP), R2
	MOVD	R0, R3
	ADD	R2, R1, R6
	ADD	R2, R0, R7
	CMP	$8, R2
	BEQ	eq8
	CMP	$64, R2
	BHI	big
	COPY_UP_TO_64(RET)
eq8:	// the commonest small copy, a word: one load, one store
	MOVD	(R1), R4
	MOVD	R4, (R0)
	RET

big:
	// n > 64. Copy the first 16 bytes, then move R3 up to a 16-byte
	// boundary (by 1..16 bytes) so that the loop stores aligned pairs.
	LDP	(R1), (R4, R5)
	STP	(R4, R5), (R0)
	ADD	$16, R0, R3
	AND	$~15, R3
	SUB	R0, R3, R4
	ADD	R4, R1
	SUB	R4, R2
loop:
	// R2 bytes are left from R1 to R3; R2 > 48.
	CMP	$64, R2
	BLS	tail
	LDP	(R1), (R4, R5)
	LDP	16(R1), (R8, R9)
	LDP	32(R1), (R10, R11)
	LDP	48(R1), (R12, R13)
	STP	(R4, R5), (R3)
	STP	(R8, R9), 16(R3)
	STP	(R10, R11), 32(R3)
	STP	(R12, R13), 48(R3)
	ADD	$64, R1
	ADD	$64, R3
	SUB	$64, R2
	B	loop
tail:
	// Copy the last 64 bytes, overlapping done ones.
	LDP	-64(R6), (R4, R5)
	LDP	-48(R6), (R8, R9)
	LDP	-32(R6), (R10, R11)
	LDP	-16(R6), (R12, R13)
	STP	(R4, R5), -64(R7)
	STP	(R8, R9), -48(R7)
	STP	(R10, R11), -32(R7)
	STP	(R12, R13), -16(R7)
	RET

// memcpyFault is where the signal handler resumes a faulting memcpy, with the
// fault address in R14 and the signal number in R15. The frame is memcpy's
// (none, and LR untouched), so RET returns to memcpy's caller.
TEXT ·memcpyFault(SB), NOSPLIT|NOFRAME, $0-44
	MOVD	R14, fault+32(FP)
	MOVD	dst+0(FP), R4
	SUB	R4, R3, R4
	MOVD	R4, done+24(FP)
	MOVW	R15, sig+40(FP)
	RET
