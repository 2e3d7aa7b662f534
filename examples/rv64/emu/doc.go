// Package emu is the RV64IM Linux user-mode emulator of examples/rv64: an
// interpreter of the RV64I base and M extension whose guest memory is an
// mmsim AddressSpace, with the few system calls a static C program needs.
//
// # How it works
//
// Load does what execve(2) does for a static executable (after
// examples/elfload, itself after Linux's binfmt_elf): each PT_LOAD segment
// is mapped privately from the file with its permissions (Mmap with
// MmapOpts.File; the bss zeroed and mapped anonymous), the heap starts at
// the page after the last segment (SetBrkStart), and the stack, a mapping
// named "[stack]" at the top of the address space, holds argc, argv, envp
// and the auxiliary vector. Machine.Run runs the first process, and every
// process it forks, each on its own goroutine.
//
// The system calls (numbers from asm-generic/unistd.h) are write (to
// descriptors 1 and 2), exit and exit_group, brk (Brk), mmap of anonymous
// memory (Mmap), munmap (Munmap), mprotect (Mprotect), clone with exactly
// SIGCHLD, which is fork (Clone: the child gets a copy-on-write address
// space and a copy of the registers), wait4 (options 0), getpid and
// getppid; others return ENOSYS. A guest access that the address space
// refuses kills the process with SIGSEGV (SIGBUS for a page beyond the end
// of a mapped file), the *addrspace.FaultError in its Status; signal
// handlers are not supported, so a signal always kills.
//
// # Memory back-ends
//
// The interpreter is one generic function, instantiated for each way of
// reaching guest memory (Backend), so that the same instructions run over
// each:
//
//   - Flat: a []byte holding the whole address space; system calls do the
//     trivial thing. The baseline of the benchmark.
//   - Copy: AddressSpace.CopyIn and CopyOut for every access, instruction
//     fetches included: what usermem.IO offers.
//   - TLB (the default): a software TLB of host memory from
//     AddressSpace.Translate, checked against AddressSpace.Generation; see
//     tlb.go for how it stays correct while other goroutines change the
//     address space.
//
// # Concurrency
//
// A Machine's processes run concurrently, each on its own goroutine with
// its own address space; guest output is serialised. A Machine is used by
// one goroutine (Run); AddressSpace may be changed by others while it runs.
package emu
