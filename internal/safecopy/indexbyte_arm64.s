//go:build linux && arm64

#include "textflag.h"

// func IndexByteRaw(p unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32)
//
// Reads the bytes of [p, p+n) one at a time, up to the first c. (R14 and
// R15 are the signal handler's; see sighandler_arm64.s.)
TEXT ·IndexByteRaw(SB), NOSPLIT|NOFRAME, $0-36
	MOVW	ZR, sig+32(FP)
	MOVD	p+0(FP), R0
	MOVD	n+8(FP), R1
	MOVBU	c+16(FP), R2
	MOVD	ZR, R3
loop:
	CMP	R1, R3
	BHS	done
	MOVBU	(R0)(R3), R4
	CMP	R2, R4
	BEQ	done
	ADD	$1, R3
	B	loop
done:
	MOVD	R3, idx+24(FP)
	RET

// indexByteFault is where the signal handler resumes a faulting
// IndexByteRaw, with the signal number in R15.
TEXT ·indexByteFault(SB), NOSPLIT|NOFRAME, $0-36
	MOVW	R15, sig+32(FP)
	RET
