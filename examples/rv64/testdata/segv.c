/* segv: the rv64 example's faulting guest. argv[1] picks the fault:
 *
 *   unmapped  a forked child stores to 0x12345678 (beyond every mapping);
 *             the parent reports how the child died, then loads from
 *             0x23456780 itself.
 *   readonly  a page is mapped, written and made read-only; a forked child
 *             stores to page+0x10, then the parent stores to page+0x20.
 *   unmapped2 a page is mapped, unmapped again, and the parent loads from
 *             page+0x30.
 *   orphan    (no fault) a forked child loops forever; the parent exits
 *             with status 3 without waiting, and the child must be killed.
 *   forks     (no fault) the parent forks children that exit at once until
 *             fork fails, prints how many and the error, reaps them all and
 *             exits with 0.
 *
 * In each case the parent must be killed by SIGSEGV at the last address: it
 * exits with status 1 if it survives. */
#include "sys.h"

static void report(int status)
{
	puts1("child: ");
	if (WIFSIGNALED(status)) {
		puts1("killed by signal ");
		putu(WTERMSIG(status));
	} else {
		puts1("exited with ");
		putu(WEXITSTATUS(status));
	}
	puts1("\n");
}

/* child runs fn in a forked child and reports how the child ended. */
static void child_store(volatile long *p)
{
	long pid = sys_fork();
	if (pid == 0) {
		*p = 1;
		sys_exit(0); /* not reached */
	}
	int status = 0;
	if (sys_wait4(pid, &status, 0) != pid) {
		puts1("wait4 failed\n");
		sys_exit(2);
	}
	report(status);
}

int main(int argc, char **argv, char **envp)
{
	const char *mode = argc > 1 ? argv[1] : "unmapped";
	if (streq(mode, "forks")) {
		long n = 0, pid;
		while ((pid = sys_fork()) > 0)
			n++;
		if (pid == 0)
			sys_exit(0);
		puts1("forked ");
		putu(n);
		puts1(", then ");
		putd(pid);
		puts1("\n");
		int status;
		long reaped = 0;
		while (sys_wait4(-1, &status, 0) > 0)
			reaped++;
		puts1("reaped ");
		putu(reaped);
		puts1("\n");
		return 0;
	}
	if (streq(mode, "orphan")) {
		if (sys_fork() == 0)
			for (;;)
				;
		return 3;
	}
	if (streq(mode, "unmapped")) {
		child_store((volatile long *)0x12345678);
		puts1("parent: loading from 0x23456780\n");
		return (int)*(volatile long *)0x23456780;
	}
	long m = sys_mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m < 0)
		return 3;
	puts1("page ");
	puth(m);
	puts1("\n");
	*(volatile long *)m = 5;
	if (streq(mode, "readonly")) {
		if (sys_mprotect((void *)m, 4096, PROT_READ) != 0)
			return 4;
		child_store((volatile long *)(m + 0x10));
		puts1("parent: storing to page+0x20\n");
		*(volatile long *)(m + 0x20) = 6;
		return 1;
	}
	if (streq(mode, "unmapped2")) {
		if (sys_munmap((void *)m, 4096) != 0)
			return 4;
		puts1("parent: loading from page+0x30\n");
		return (int)*(volatile long *)(m + 0x30);
	}
	puts1("unknown mode\n");
	return 5;
}
