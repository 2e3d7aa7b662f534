//go:build linux && arm64

#include "textflag.h"

// func memclr(dst, n uintptr) (fault, done uintptr, sig int32)
//
// Zeroes forward; registers as in memcpy_arm64.s. Invariant relied on by
// memclrFault: every byte below R3 has been zeroed; R3 moves only after the
// stores before it are done. (Paths for n <= 64 keep R3 at dst.)
TEXT ·memclr(SB), NOSPLIT|NOFRAME, $0-36
	MOVW	ZR, sig+32(FP)
	MOVD	dst+0(FP), R0
	MOVD	n+8(FP), R2
	MOVD	R0, R3
	ADD	R2, R0, R7
	CMP	$16, R2
	BHI	over16
	CMP	$8, R2
	BLO	under8
	MOVD	ZR, (R0)
	MOVD	ZR, -8(R7)
	RET
under8:
	CMP	$4, R2
	BLO	under4
	MOVW	ZR, (R0)
	MOVW	ZR, -4(R7)
	RET
under4:
	CMP	$2, R2
	BLO	under2
	MOVH	ZR, (R0)
	MOVH	ZR, -2(R7)
	RET
under2:
	CBZ	R2, done
	MOVB	ZR, (R0)
done:
	RET

over16:
	CMP	$32, R2
	BHI	over32
	STP	(ZR, ZR), (R0)
	STP	(ZR, ZR), -16(R7)
	RET
over32:
	CMP	$64, R2
	BHI	big
	STP	(ZR, ZR), (R0)
	STP	(ZR, ZR), 16(R0)
	STP	(ZR, ZR), -32(R7)
	STP	(ZR, ZR), -16(R7)
	RET

big:
	// n > 64. Zero the first 16 bytes, then move R3 up to a 16-byte
	// boundary.
	STP	(ZR, ZR), (R0)
	ADD	$16, R0, R3
	AND	$~15, R3
	SUB	R3, R7, R2
loop:
	// R2 bytes are left from R3; R2 > 48.
	CMP	$64, R2
	BLS	tail
	STP	(ZR, ZR), (R3)
	STP	(ZR, ZR), 16(R3)
	STP	(ZR, ZR), 32(R3)
	STP	(ZR, ZR), 48(R3)
	ADD	$64, R3
	SUB	$64, R2
	B	loop
tail:
	STP	(ZR, ZR), -64(R7)
	STP	(ZR, ZR), -48(R7)
	STP	(ZR, ZR), -32(R7)
	STP	(ZR, ZR), -16(R7)
	RET

// memclrFault is where the signal handler resumes a faulting memclr, with the
// fault address in R14 and the signal number in R15 (see memcpyFault).
TEXT ·memclrFault(SB), NOSPLIT|NOFRAME, $0-36
	MOVD	R14, fault+24(FP)
	MOVD	dst+0(FP), R4
	SUB	R4, R3, R4
	MOVD	R4, done+16(FP)
	MOVW	R15, sig+32(FP)
	RET
