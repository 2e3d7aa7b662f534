// COPY_UP_TO_64(next) copies R2 bytes, 0 to 64, from R1 to R0, then runs
// next (RET, or a branch back into a loop). R6 and R7 must hold R1+R2 and
// R0+R2. It loads before it stores, with overlapping accesses for sizes
// between the powers of two, uses R4, R5, R8 and R9, and leaves R0-R3, R6
// and R7 as they were. Memcpy and MemcpyRanges share it; its labels are
// local to the routine using it, so a routine uses it once.
#define COPY_UP_TO_64(next) \
	CMP	$16, R2; \
	BHI	small_over16; \
	CMP	$8, R2; \
	BLO	small_under8; \
	MOVD	(R1), R4; \
	MOVD	-8(R6), R5; \
	MOVD	R4, (R0); \
	MOVD	R5, -8(R7); \
	next; \
small_under8: \
	CMP	$4, R2; \
	BLO	small_under4; \
	MOVWU	(R1), R4; \
	MOVWU	-4(R6), R5; \
	MOVW	R4, (R0); \
	MOVW	R5, -4(R7); \
	next; \
small_under4: \
	CMP	$2, R2; \
	BLO	small_under2; \
	MOVHU	(R1), R4; \
	MOVHU	-2(R6), R5; \
	MOVH	R4, (R0); \
	MOVH	R5, -2(R7); \
	next; \
small_under2: \
	CBZ	R2, small_zero; \
	MOVBU	(R1), R4; \
	MOVB	R4, (R0); \
small_zero: \
	next; \
small_over16: \
	CMP	$32, R2; \
	BHI	small_over32; \
	LDP	(R1), (R4, R5); \
	LDP	-16(R6), (R8, R9); \
	STP	(R4, R5), (R0); \
	STP	(R8, R9), -16(R7); \
	next; \
small_over32: \
	LDP	(R1), (R4, R5); \
	LDP	16(R1), (R8, R9); \
	STP	(R4, R5), (R0); \
	STP	(R8, R9), 16(R0); \
	LDP	-32(R6), (R4, R5); \
	LDP	-16(R6), (R8, R9); \
	STP	(R4, R5), -32(R7); \
	STP	(R8, R9), -16(R7); \
	next
