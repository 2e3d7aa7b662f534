/* race: the guest of the rv64 example's concurrency test. Another
 * goroutine keeps replacing the page at 0x800000 with one holding the next
 * number (1, 2, ... N = argv[1]) while this loop reads it: every value read
 * must be one that was there, never older than one read before. Each
 * iteration also writes and reads back a word of the heap, which the other
 * goroutine's Clones make copy-on-write again and again. Exits with 0 once
 * it has read N, 1 if a value went back, 2 if the heap lost a write. */
#include "sys.h"

static unsigned long atou(const char *s)
{
	unsigned long v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v;
}

int main(int argc, char **argv, char **envp)
{
	unsigned long n = argc > 1 ? atou(argv[1]) : 1;
	volatile unsigned long *p = (volatile unsigned long *)0x800000;
	long heap = sys_brk(0);
	if (sys_brk((void *)(heap + 4096)) != heap + 4096)
		return 3;
	volatile unsigned long *h = (volatile unsigned long *)heap;
	unsigned long last = 0, iters = 0;
	for (;;) {
		unsigned long v = *p;
		if (v < last || v > n) {
			puts1("read ");
			putu(v);
			puts1(" after ");
			putu(last);
			puts1("\n");
			return 1;
		}
		last = v;
		*h = iters;
		if (*h != iters)
			return 2;
		iters++;
		if (v == n)
			break;
	}
	puts1("read up to ");
	putu(n);
	puts1("\n");
	return 0;
}
