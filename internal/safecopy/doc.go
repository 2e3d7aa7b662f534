// Package safecopy copies, zeroes and atomically accesses raw host memory such
// that a SIGSEGV or SIGBUS raised while touching that memory does not crash the
// process: the operation stops and reports the faulting address and signal.
//
// # How it works
//
// Every routine that may touch such memory is hand-written assembly (amd64,
// arm64). At
// init the package replaces the process's SIGSEGV and SIGBUS handlers (with a
// raw rt_sigaction, keeping the Go runtime's handler, its flags, mask and
// restorer). The replacement looks at the program counter of a kernel-raised
// fault: if it lies inside one of this package's routines, it rewrites the
// signal's ucontext so that the thread resumes in that routine's fault stub
// with the fault address and signal number in registers, and the routine
// returns them to its Go caller. Every other signal, and every fault in any
// other code, is passed unchanged to the saved Go runtime handler, so a fault
// in ordinary Go code crashes (or panics under debug.SetPanicOnFault) exactly
// as it would without this package.
//
// Only faults raised by the kernel are claimed: a SIGSEGV or SIGBUS sent by
// a process (kill, tgkill, sigqueue: si_code <= 0) goes to the Go runtime
// even if it interrupts a routine here, as it would without this package.
//
// # Other signal handlers
//
// The handler must stay installed. Code that installs its own SIGSEGV or
// SIGBUS handler later (typically a C library, through sigaction(3)) takes
// every fault from then on; unless it chains to the handler it replaced, the
// first fault in a copy kills the process, often without a message.
// CheckHandlers detects a replacement and, since a handler's code does not
// say whether it chains, tries the new handlers once in a forked child:
// handlers that pass this package's faults on (gVisor's safecopy, crash
// reporters that chain) are accepted, others reported (addrspace.New calls it
// and refuses with unix.EBUSY). A handler installed after that point cannot
// be detected before it takes a fault. A handler installed before the Go
// program starts (a C constructor) is fine: the Go runtime forwards the
// faults that are not its own to it, and this package chains to the runtime.
//
// # Exact counts
//
// The assembly uses wide, overlapping and out-of-order accesses, so the address
// the kernel reports is not by itself the first inaccessible byte (x86 reports
// a byte of the inaccessible page; arm64 may report the start of an access
// that crosses into it). The Go wrappers make the count exact: protections
// are page-granular, so the page holding the reported address is the likely
// culprit; the routines also report how far they had certainly progressed;
// the wrapper re-runs the range between the two until it completes without
// a fault, then tries the next byte alone (a one-byte access reports its own
// address) and, should that succeed, resumes after it. The result is the
// distance to the first byte that cannot be accessed, whatever the access
// pattern and whatever address inside the access the kernel reports.
//
// A caller that can make a faulting page accessible (package addrspace backs
// pages lazily) need not pay for the exact count — the one-byte retry is a
// second fault — when the reported page is certainly the first inaccessible
// one (FaultPageExact): it makes that page accessible and resumes from the
// routine's own progress (Memcpy, MemclrRaw), and makes the count exact
// (FinishCopy, FinishZero) only for a fault it cannot resolve.
//
// This is the technique of gVisor's pkg/safecopy, implemented independently.
//
// # Platforms
//
// linux/amd64 and linux/arm64. On arm64 the copy and zero routines use
// LDP/STP register pairs, the read-modify-writes exclusive (LDAXR/STLXR)
// loops, and the handler reads the PC from the arm64 sigcontext; the kernel
// (and qemu-user, on which the arm64 tests run) may report any address
// inside a faulting access that crosses a page, which the exact-count
// wrappers do not rely on (see Exact counts).
package safecopy
