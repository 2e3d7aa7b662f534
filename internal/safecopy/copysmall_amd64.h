// COPY_UP_TO_64(next) copies BX bytes, 0 to 64, from SI to DI, then runs
// next (RET, or a jump back into a loop). It loads before it stores, with
// overlapping accesses for sizes between the powers of two, uses AX, CX
// and X0-X3, and leaves DI, SI and BX as they were. Memcpy and
// MemcpyRanges share it; its labels are local to the routine using it, so
// a routine uses it once.
#define COPY_UP_TO_64(next) \
	CMPQ	BX, $16; \
	JA	small_over16; \
	CMPQ	BX, $8; \
	JB	small_under8; \
	MOVQ	(SI), AX; \
	MOVQ	-8(SI)(BX*1), CX; \
	MOVQ	AX, (DI); \
	MOVQ	CX, -8(DI)(BX*1); \
	next; \
small_under8: \
	CMPQ	BX, $4; \
	JB	small_under4; \
	MOVL	(SI), AX; \
	MOVL	-4(SI)(BX*1), CX; \
	MOVL	AX, (DI); \
	MOVL	CX, -4(DI)(BX*1); \
	next; \
small_under4: \
	CMPQ	BX, $2; \
	JB	small_under2; \
	MOVW	(SI), AX; \
	MOVW	-2(SI)(BX*1), CX; \
	MOVW	AX, (DI); \
	MOVW	CX, -2(DI)(BX*1); \
	next; \
small_under2: \
	TESTQ	BX, BX; \
	JEQ	small_zero; \
	MOVB	(SI), AX; \
	MOVB	AX, (DI); \
small_zero: \
	next; \
small_over16: \
	CMPQ	BX, $32; \
	JA	small_over32; \
	MOVOU	(SI), X0; \
	MOVOU	-16(SI)(BX*1), X1; \
	MOVOU	X0, (DI); \
	MOVOU	X1, -16(DI)(BX*1); \
	next; \
small_over32: \
	MOVOU	(SI), X0; \
	MOVOU	16(SI), X1; \
	MOVOU	-32(SI)(BX*1), X2; \
	MOVOU	-16(SI)(BX*1), X3; \
	MOVOU	X0, (DI); \
	MOVOU	X1, 16(DI); \
	MOVOU	X2, -32(DI)(BX*1); \
	MOVOU	X3, -16(DI)(BX*1); \
	next
