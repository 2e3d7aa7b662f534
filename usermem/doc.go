// Package usermem governs access to user memory: the memory of a simulated
// (or any other) virtual address space, reached through the [IO] interface.
//
// [IO] is the consumer interface: eight methods that copy bytes in and out,
// zero them, stream them to or from a [safemem.Reader] or [safemem.Writer],
// and perform 4-byte atomics. Every copy follows the contract of package io:
// it returns n < the requested count if and only if it returns a non-nil
// error, and it never retains the caller's buffer. Faults are errors, never
// crashes: an access to memory that is not there, or not accessible, returns
// the bytes done before it and an error for which
// errors.Is(err, unix.EFAULT) holds. Every error that mirrors Linux is a
// [syscall.Errno] from golang.org/x/sys/unix (EFAULT, EINVAL, ENAMETOOLONG),
// bare or wrapped with %w.
//
// Two implementations exist: [BytesIO], over a byte slice (addresses are
// offsets into it), and package addrspace's AddressSpace, over a simulated
// address space backed by host memory. This package knows nothing of the
// latter.
//
// On top of IO it provides:
//
//   - vectored helpers over a [hostarch.AddrRangeSeq]: [CopyInVec],
//     [CopyOutVec], [ZeroOutVec];
//   - [IOSequence], an IO with its address ranges and options bundled, with
//     io.Reader and io.Writer adapters ([IOSequence.Reader],
//     [IOSequence.Writer]);
//   - [IOReadWriter], an io.ReadWriter at an advancing address;
//   - [IOCopyContext], the CopyContext shape used by marshalling code;
//   - the string and integer readers of system call emulation:
//     [CopyStringIn] (a NUL-terminated string, like strncpy_from_user) and
//     [CopyInt32StringsInVec] (whitespace-separated decimals, like Linux's
//     proc_dointvec).
//
// The meaning of every name is that of gVisor's package of the same name;
// where this package differs, the difference is documented on the name.
// Preconditions about gVisor's mm.MemoryManager locks become, here, "the
// caller must not hold the IO's own locks".
//
// Concurrency: every exported type states its rule. In short, the value
// types ([IOOpts], [IOSequence], [IOCopyContext]) and [BytesIO] are safe for
// concurrent use as far as their IO is; the stateful adapters
// ([IOSequenceReadWriter], [IOReadWriter]) are not.
package usermem
