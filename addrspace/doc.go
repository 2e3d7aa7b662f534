// Package addrspace simulates a process's virtual address space on real
// host memory: Mmap, Munmap, Mprotect, Mremap, Madvise, Msync, Mincore, Brk
// and fork-style copy-on-write Clone on simulated addresses, and gVisor's
// usermem.IO copy interface over them, where touching an unmapped or
// forbidden page is an EFAULT return with the exact number of bytes that did
// move, never a crash.
//
// # How it works
//
// An AddressSpace of Size bytes reserves two ranges of host address space of
// Size bytes each: the app view, whose pages carry the application's
// protections (Perms), and the max view, whose pages carry the most the
// mapped target allows (MaxPerms). Simulated address a is host address
// view+a. Every mapped page is a MAP_SHARED host mapping of (file, offset)
// in both views, so both always show the same bytes. A copy is a bounds
// check and one fault-safe memmove over a view: no lock and no lookup, the
// host MMU checks every permission. Only when the copy faults does the
// address space take its lock, look the address up, and either return
// EFAULT (unmapped page, forbidden access, SIGBUS) or resolve the fault
// (copy-on-write) and resume the copy.
//
// # Linux concepts and the types that play them
//
//	mm_struct                  AddressSpace
//	vm_area_struct (VMA)       an entry of the AddressSpace's B-tree (see Mappings)
//	page tables / PTEs         host mappings in the two views (package pma)
//	private anonymous memory   pages of the AddressSpace's memory file (memfd)
//	shmem object (MAP_SHARED|  a memfd of its own per shared anonymous Mmap,
//	  MAP_ANONYMOUS)             mapped like a file (past its size: SIGBUS)
//	vm_pgoff, anon_vma,        vma fields that decide, as in Linux, which
//	  VM_ACCOUNT, VM_RAND_READ   neighbours are one mapping (see Mappings)
//	page cache                 the user's file, mapped MAP_SHARED
//	copy-on-write (private     the page write-protected on the host; the first
//	  file mappings, fork)       write copies it into the memory file and remaps
//	                             it, or, if no other space shares it, just
//	                             makes it writable
//	fork(2)                    Clone (memory-file pages are reference-counted)
//	brk(2), [heap]             Brk
//	copy_{to,from}_user        the usermem.IO methods
//	access_ok                  the bounds check against Size
//	/proc/PID/maps             WriteMaps
//
// # Concurrency
//
// All methods are safe for concurrent use. Copies take no lock; the
// memory-management calls and fault resolution hold the address space's
// mutex, and Clone, Mprotect and Madvise also wait for CopyOutFrom calls in
// progress. A copy racing with Munmap sees, page by page, either the old
// mapping or EFAULT, as on Linux. Close must be called only after every
// other call on the AddressSpace has returned; calls made after Close
// return an error and touch no host memory.
package addrspace
