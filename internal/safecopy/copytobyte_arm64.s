//go:build linux && arm64

#include "textflag.h"

// func CopyToByte(dst, src unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32)
//
// A byte at a time: each byte is stored from the register it was tested in,
// so dst[:idx] is exactly what was read. (R14 and R15 are the signal
// handler's; see sighandler_arm64.s.)
TEXT ·CopyToByte(SB), NOSPLIT|NOFRAME, $0-44
	MOVW	ZR, sig+40(FP)
	MOVD	dst+0(FP), R0
	MOVD	src+8(FP), R1
	MOVD	n+16(FP), R2
	MOVBU	c+24(FP), R5
	MOVD	ZR, R3
loop:
	CMP	R2, R3
	BHS	done
	MOVBU	(R1)(R3), R4
	MOVB	R4, (R0)(R3)
	CMP	R5, R4
	BEQ	done
	ADD	$1, R3
	B	loop
done:
	MOVD	R3, idx+32(FP)
	RET

// copyToByteFault is where the signal handler resumes a faulting
// CopyToByte, with the signal number in R15.
TEXT ·copyToByteFault(SB), NOSPLIT|NOFRAME, $0-44
	MOVW	R15, sig+40(FP)
	RET
