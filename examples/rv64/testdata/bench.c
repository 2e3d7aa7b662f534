/* bench: a compute-bound guest for the emulator's instructions-per-second
 * benchmark: a sieve, an insertion sort and a hash over a heap array, N
 * rounds (argv[1], default 1). Prints a checksum and exits with 0. */
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
	unsigned long rounds = argc > 1 ? atou(argv[1]) : 1;
	enum { N = 1 << 16, S = 1024 };
	long base = sys_brk(0);
	if (sys_brk((void *)(base + N + S * 8)) != base + N + S * 8)
		return 1;
	unsigned char *a = (unsigned char *)base;
	unsigned long *v = (unsigned long *)(base + N);
	unsigned long sum = 0, seed = 1;
	for (unsigned long r = 0; r < rounds; r++) {
		for (unsigned long i = 0; i < N; i++)
			a[i] = 1;
		for (unsigned long i = 2; i < N; i++)
			if (a[i])
				for (unsigned long j = i * i; j < N; j += i)
					a[j] = 0;
		for (unsigned long i = 2; i < N; i++)
			sum += a[i] ? i : 0;
		for (int i = 0; i < S; i++) {
			seed = seed * 6364136223846793005ul + 1442695040888963407ul;
			v[i] = seed >> 17;
		}
		for (int i = 1; i < S / 4; i++) {
			unsigned long x = v[i];
			int j = i - 1;
			for (; j >= 0 && v[j] > x; j--)
				v[j + 1] = v[j];
			v[j + 1] = x;
		}
		for (int i = 0; i < S; i++)
			sum = (sum ^ v[i]) * 0x100000001b3ul;
	}
	puts1("checksum ");
	puth(sum);
	puts1("\n");
	return 0;
}
