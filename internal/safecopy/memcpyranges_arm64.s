//go:build linux && arm64

#include "textflag.h"
#include "copysmall_arm64.h"

// func MemcpyRanges(buf, base, ranges unsafe.Pointer, n uintptr, out bool) (done, fault uintptr, sig int32)
//
// R10 walks the ranges (16 bytes each: Start, End) up to R11, R12 walks
// buf, R13 is base and R3 out. Each range is copied by COPY_UP_TO_64, as
// Memcpy copies up to 64 bytes. (R14 and R15 are the signal handler's; see sighandler_arm64.s.)
TEXT ·MemcpyRanges(SB), NOSPLIT|NOFRAME, $0-60
	MOVW	ZR, sig+56(FP)
	MOVD	buf+0(FP), R12
	MOVD	base+8(FP), R13
	MOVD	ranges+16(FP), R10
	MOVD	n+24(FP), R11
	ADD	R11<<4, R10, R11
	MOVBU	out+32(FP), R3
loop:
	CMP	R11, R10
	BHS	end
	MOVD	0(R10), R1
	MOVD	8(R10), R2
	SUB	R1, R2, R2
	ADD	R13, R1, R1
	MOVD	R12, R0
	ADD	R2, R12, R12
	ADD	$16, R10
	CBZ	R3, copy
	MOVD	R0, R4
	MOVD	R1, R0
	MOVD	R4, R1
copy:
	ADD	R2, R1, R6
	ADD	R2, R0, R7
	COPY_UP_TO_64(B loop)
end:
	MOVD	n+24(FP), R11
	MOVD	R11, done+40(FP)
	RET

// memcpyRangesFault is where the signal handler resumes a faulting
// MemcpyRanges, with the fault address in R14 and the signal number in R15.
// R10 is one range past the faulting one.
TEXT ·memcpyRangesFault(SB), NOSPLIT|NOFRAME, $0-60
	MOVD	R14, fault+48(FP)
	MOVW	R15, sig+56(FP)
	MOVD	ranges+16(FP), R0
	SUB	R0, R10, R10
	LSR	$4, R10, R10
	SUB	$1, R10
	MOVD	R10, done+40(FP)
	RET
