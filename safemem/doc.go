// Package safemem moves bytes between blocks of host memory, some of which
// may fault when touched.
//
// A [Block] is a range of host memory. Blocks made with
// [BlockFromUnsafeSlice] or [BlockFromUnsafePointer] may refer to memory that
// raises SIGSEGV or SIGBUS when accessed (a PROT_NONE page, a file mapping
// past the end of its truncated file): [Copy], [Zero] and the atomics touch
// such blocks fault-safely, and return the exact number of bytes moved before
// the first byte that could not be accessed, with a [SegvError] or
// [BusError] naming the faulting address. A fault anywhere else (in a block
// made with BlockFromSafeSlice, or in unrelated code) is not caught: it
// crashes the process as it would without this package.
//
// [BlockSeq] is an immutable sequence of Blocks, and [Reader] and [Writer]
// are the vectored-I/O interfaces over them, with adapters to and from
// package io.
//
// Every copy function follows io's contract: it returns n < the requested
// count if and only if it returns a non-nil error, and it never retains the
// blocks it is given. On failure, bytes of the destination past n may have
// been written.
//
// Concurrency: Block and BlockSeq are immutable values, safe for concurrent
// use. Concurrent copies to overlapping memory race as plain memory accesses
// would.
package safemem
