/* A tiny freestanding Linux system-call layer for RV64 guests of the rv64
 * example: no libc, only the calls the emulator implements. */
#ifndef RV64_SYS_H
#define RV64_SYS_H

typedef unsigned long size_t;
typedef long ssize_t;

enum {
	SYS_kill = 129, SYS_getpid = 172, SYS_getppid = 173, SYS_write = 64,
	SYS_exit = 93, SYS_exit_group = 94, SYS_brk = 214, SYS_munmap = 215,
	SYS_clone = 220, SYS_mmap = 222, SYS_mprotect = 226, SYS_wait4 = 260,
};
enum { PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4 };
enum { MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20 };
enum { SIGCHLD = 17, SIGSEGV = 11 };

static inline long syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	register long a0 __asm__("a0") = a;
	register long a1 __asm__("a1") = b;
	register long a2 __asm__("a2") = c;
	register long a3 __asm__("a3") = d;
	register long a4 __asm__("a4") = e;
	register long a5 __asm__("a5") = f;
	register long a7 __asm__("a7") = n;
	__asm__ volatile("ecall"
			 : "+r"(a0)
			 : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5), "r"(a7)
			 : "memory");
	return a0;
}

static inline ssize_t sys_write(int fd, const void *p, size_t n) { return syscall6(SYS_write, fd, (long)p, n, 0, 0, 0); }
static inline __attribute__((noreturn)) void sys_exit(int code)
{
	syscall6(SYS_exit_group, code, 0, 0, 0, 0, 0);
	for (;;)
		;
}
static inline long sys_brk(void *p) { return syscall6(SYS_brk, (long)p, 0, 0, 0, 0, 0); }
static inline long sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	return syscall6(SYS_mmap, (long)addr, len, prot, flags, fd, off);
}
static inline long sys_munmap(void *addr, size_t len) { return syscall6(SYS_munmap, (long)addr, len, 0, 0, 0, 0); }
static inline long sys_mprotect(void *addr, size_t len, int prot) { return syscall6(SYS_mprotect, (long)addr, len, prot, 0, 0, 0); }
/* fork(2) as glibc does it on riscv64: clone(SIGCHLD) with no new stack. */
static inline long sys_fork(void) { return syscall6(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0); }
static inline long sys_wait4(long pid, int *status, int options) { return syscall6(SYS_wait4, pid, (long)status, options, 0, 0, 0); }
static inline long sys_getpid(void) { return syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0); }
static inline long sys_getppid(void) { return syscall6(SYS_getppid, 0, 0, 0, 0, 0, 0); }

/* The compiler may emit calls to these for loops and struct copies. */
void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}
void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}
static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}
static void puts1(const char *s) { sys_write(1, s, slen(s)); }

/* putu writes v in decimal; puth in hexadecimal with a 0x prefix. */
static void putu(unsigned long v)
{
	char b[24];
	int i = sizeof b;
	do
		b[--i] = '0' + v % 10;
	while (v /= 10);
	sys_write(1, b + i, sizeof b - i);
}
static void puth(unsigned long v)
{
	char b[24];
	int i = sizeof b;
	do
		b[--i] = "0123456789abcdef"[v & 15];
	while (v >>= 4);
	b[--i] = 'x';
	b[--i] = '0';
	sys_write(1, b + i, sizeof b - i);
}
static void putd(long v)
{
	if (v < 0) {
		puts1("-");
		v = -v;
	}
	putu(v);
}

/* _start: the stack pointer points at argc (then argv, envp, auxv), as
 * Linux's execve leaves it. gp is set as the psABI's crt0 does. */
int main(int argc, char **argv, char **envp);
void cstart(long *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	sys_exit(main(argc, argv, argv + argc + 1));
}
__asm__(".section .text._start\n"
	".globl _start\n"
	"_start:\n"
	".option push\n.option norelax\n"
	"	la gp, __global_pointer$\n"
	".option pop\n"
	"	mv a0, sp\n"
	"	call cstart\n");

#define WIFEXITED(s) (((s) & 0x7f) == 0)
#define WEXITSTATUS(s) (((s) >> 8) & 0xff)
#define WIFSIGNALED(s) (((s) & 0x7f) != 0 && ((s) & 0x7f) != 0x7f)
#define WTERMSIG(s) ((s) & 0x7f)

#endif
