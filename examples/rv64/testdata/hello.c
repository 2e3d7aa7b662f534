/* hello: the rv64 example's first guest. It uses every system call the
 * emulator implements — write, brk, mmap, mprotect, munmap, fork (clone
 * with SIGCHLD), wait4, getpid, getppid, exit_group — checks what each
 * returns, prints what it saw and exits with status 7. Any surprise prints
 * "FAIL" and exits with status 1. */
#include "sys.h"

static int fails;
static void check(int ok, const char *what)
{
	if (!ok) {
		puts1("FAIL: ");
		puts1(what);
		puts1("\n");
		fails++;
	}
}

static long counter = 100; /* .data: the child changes its copy */
char zeros[1000]; /* .bss (not static: kept) */

/* sieve counts the primes below n in a heap array: loads, stores, branches,
 * multiplication. */
static unsigned long sieve(unsigned char *a, unsigned long n)
{
	unsigned long count = 0;
	for (unsigned long i = 0; i < n; i++)
		a[i] = 1;
	for (unsigned long i = 2; i < n; i++) {
		if (!a[i])
			continue;
		count++;
		for (unsigned long j = i * i; j < n; j += i)
			a[j] = 0;
	}
	return count;
}

int main(int argc, char **argv, char **envp)
{
	puts1("hello from rv64: argc=");
	putu(argc);
	for (int i = 0; i < argc; i++) {
		puts1(" ");
		puts1(argv[i]);
	}
	puts1("\n");
	for (char **e = envp; *e; e++) {
		puts1("env ");
		puts1(*e);
		puts1("\n");
	}
	for (int i = 0; i < (int)sizeof zeros; i++)
		check(zeros[i] == 0, "bss is zero");

	/* brk: grow the heap by 100000 bytes, use it, shrink it back. */
	long cur = sys_brk(0);
	check(cur > 0 && (cur & 4095) == 0, "brk(0) is page-aligned");
	long want = cur + 100000;
	check(sys_brk((void *)want) == want, "brk grows");
	unsigned char *heap = (unsigned char *)cur;
	unsigned long primes = sieve(heap, 100000);
	puts1("primes below 100000: ");
	putu(primes);
	puts1("\n");
	check(sys_brk((void *)cur) == cur, "brk shrinks");

	/* mmap: two anonymous pages, the second made read-only, then both
	 * unmapped. */
	long m = sys_mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(m > 0 && (m & 4095) == 0, "mmap returns a page");
	unsigned long *w = (unsigned long *)m;
	for (int i = 0; i < 512; i++) /* the first page (512 words) */
		w[i] = (unsigned long)i * 0x9e3779b97f4a7c15ul;
	check(w[511] == 511 * 0x9e3779b97f4a7c15ul, "mmap memory holds data");
	check(w[512 + 256] == 0, "fresh mmap memory is zero");
	check(sys_mprotect((void *)(m + 4096), 4096, PROT_READ) == 0, "mprotect");
	check(w[1023] == 0, "read-only page reads");
	check(sys_mprotect((void *)(m + 1), 4096, PROT_READ) == -22, "mprotect of an unaligned address is EINVAL");
	check(sys_mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == -22, "mmap of length 0 is EINVAL");
	check(sys_munmap((void *)m, 8192) == 0, "munmap");
	puts1("mmap, mprotect, munmap ok\n");

	/* A write from a bad pointer fails with EFAULT rather than killing. */
	check(sys_write(1, (void *)8, 1) == -14, "write from page 0 is EFAULT");

	/* fork: the child sees a copy of memory, changes it, exits with 42. */
	long parent = sys_getpid();
	long pid = sys_fork();
	if (pid == 0) {
		check(sys_getppid() == parent, "child's getppid is the parent");
		counter += 1;
		puts1("child: counter=");
		putu(counter);
		puts1("\n");
		sys_exit(fails ? 1 : 42);
	}
	check(pid > 0, "fork returns the child's pid");
	int status = 0;
	long got = sys_wait4(pid, &status, 0);
	check(got == pid, "wait4 returns the child");
	check(sys_wait4(-1, &status + 0, 0) == -10, "a second wait4 finds no child (ECHILD)");
	puts1("parent: child exited=");
	putu(WIFEXITED(status));
	puts1(" status=");
	putu(WEXITSTATUS(status));
	puts1(" counter=");
	putu(counter);
	puts1("\n");
	check(WIFEXITED(status) && WEXITSTATUS(status) == 42, "child's status");
	check(counter == 100, "the parent's memory is its own");

	/* Some arithmetic the compiler cannot fold: M extension. */
	long x = argc * 1000003;
	puts1("arith ");
	putd(x / -7);
	puts1(" ");
	putd(x % 7);
	puts1(" ");
	putu((unsigned long)-1 / (unsigned long)(argc + 2));
	puts1("\n");

	if (fails)
		return 1;
	puts1("bye\n");
	return 7;
}
