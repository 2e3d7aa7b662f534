// Package addrspace simulates a process's virtual address space on real
// host memory: Mmap, Munmap, Mprotect, Mremap, Madvise, Msync, Mincore, Brk
// and fork-style copy-on-write Clone on simulated addresses, and gVisor's
// usermem.IO copy interface over them, where touching an unmapped or
// forbidden page is an EFAULT return with the exact number of bytes that did
// move, never a crash.
//
// # How it works
//
// An AddressSpace of Size bytes reserves a range of host address space of
// Size bytes, the app view, whose pages carry the application's protections
// (Perms): simulated address a is host address view+a. A second view, the
// max view, whose pages carry the most the mapped target allows
// (MaxPerms), is reserved the first time an IOOpts.IgnorePermissions
// access needs it. Every mapped page is a MAP_SHARED host mapping of (file,
// offset) in the views, so both always show the same bytes. A copy is a
// bounds check and one fault-safe memmove over a view: no lock and no
// lookup, the host MMU checks every permission. Only when the copy faults
// does the address space take its lock, look the address up, and either
// return EFAULT (unmapped page, forbidden access, SIGBUS) or have the page
// table (package pma) back and map the page, then resume the copy.
//
// Pages are backed lazily, as Linux backs them: Mmap records the mapping
// and touches nothing on the host; the first access to a page faults and
// the page table maps a window of pages around it (fresh memory-file pages
// for private anonymous memory, the file's pages for file and shared
// mappings). A write to a page that Clone shares copies the run of shared
// pages around it into neighbouring memory-file offsets (fault-around), so
// that copies merge into one host mapping. A write to a private file page
// copies that page alone (with the copy-on-write pages next to it): its
// neighbours keep showing the file, as on Linux.
//
// A copy knows what a store does not: how much it will write. Where
// CopyOut or ZeroOut overwrites whole pages that need a page of their own
// first (copy-on-write after Clone, a private file page, anonymous memory
// not touched yet), the page table backs a run of them with new pages that
// already hold the bytes (one host write; for ZeroOut, none), instead of
// copying or zero-filling contents about to be overwritten and then
// faulting each page in through the view. A 16 MiB write after Clone costs
// less than half of what the host kernel's own copy-on-write of the same
// write does.
//
// # Direct access
//
// An emulator that cannot afford a call per guest access asks Translate
// for the host memory behind a guest page (a Translation: Mem is the app
// view itself, so a write through it is the guest's write) and caches it
// in a software TLB. Generation changes whenever a cached translation may
// have become wrong (unmapping, protection, Clone, eviction, Close); the
// host protections of Mem enforce the guest's meanwhile, so a stale entry
// faults rather than touching other memory, and ResolveFault turns that
// host fault (recovered with debug.SetPanicOnFault) into a retry or the
// guest's SIGSEGV or SIGBUS. Execute is checked by Translate, in software.
// See Example (tlb).
//
// # Host budgets
//
// Every address space shares the host's vm.max_map_count and address space
// with the Go runtime, which dies when its own mmap fails. So the page table
// keeps one account for the process (HostStats): each address space
// commits up to two host mappings per mapping (the mapping and a gap), and
// a call that would take the process past vm.max_map_count less a headroom
// (the larger of a tenth and 4,096 mappings) fails with ENOMEM and changes
// nothing, as Linux's mmap, mprotect, munmap and mremap do at the limit. A
// fault never fails for want of host mappings: where copy-on-write would
// fragment beyond the commitment, the page table re-lays the mapping into
// one run, or drops its own host mappings (the views are a cache: dropped
// pages fault back in). Options.MaxMapCount limits one space's mappings the
// way vm.max_map_count limits a Linux process's. New leaves 256 GiB of
// contiguous host address space free for the rest of the process.
//
// # Linux concepts and the types that play them
//
//	mm_struct                  AddressSpace
//	vm_area_struct (VMA)       an entry of the AddressSpace's B-tree (see Mappings)
//	page tables / PTEs         pma.Table: the backing of each touched page, and
//	                             its host mappings in the views
//	vm.max_map_count           Options.MaxMapCount; HostStats for the process
//	private anonymous memory   pages of the AddressSpace's memory file (memfd),
//	                             backed on first touch
//	shmem object (MAP_SHARED|  a memfd of its own per shared anonymous Mmap,
//	  MAP_ANONYMOUS)             mapped like a file (past its size: SIGBUS)
//	vm_pgoff, anon_vma,        vma fields that decide, as in Linux, which
//	  VM_ACCOUNT, VM_RAND_READ   neighbours are one mapping (see Mappings)
//	page cache                 the user's file, mapped MAP_SHARED
//	copy-on-write (private     the page write-protected on the host; the first
//	  file mappings, fork)       write copies it into the memory file and remaps
//	                             it, or, if no other space shares it, just
//	                             makes it writable; a copy that overwrites it
//	                             whole writes a new page instead (no copy)
//	fork(2)                    Clone (memory-file pages are reference-counted)
//	brk(2), [heap]             Brk
//	RLIMIT_AS, _DATA, _STACK,  Limits (Options.Limits, SetLimits), counted
//	  _MEMLOCK                   from the mappings as total_vm, data_vm and
//	                             locked_vm are
//	VM_GROWSDOWN, expand_stack MmapOpts.GrowsDown; growStackLocked, called by
//	                             the one fault handler
//	VM_LOCKED, mlock(2),       Mlock, Munlock, Mlockall, MmapOpts.Locked: a
//	  mm->def_flags              bit of the VMA's flags, pages faulted in and
//	                             allocated; MCL_FUTURE kept as def_flags is
//	copy_{to,from}_user        the usermem.IO methods
//	access_ok                  the bounds check against Size
//	/proc/PID/maps             WriteMaps
//	/proc/PID/smaps            WriteSmaps
//	VM_DONTCOPY, VM_WIPEONFORK, vma.flags, set by Madvise; Clone honours the
//	  VM_HUGEPAGE, VM_NOHUGEPAGE   fork advice
//	clear_refs 4, pagemap's    ClearDirty, Dirty (write-protection caught by
//	  soft-dirty bit             the fault handler; see snapshot.go)
//	CRIU/fuzzer snapshot       a Clone, and Reset to it
//	CRIU dump and restore      Save and Restore (incremental: SaveOptions)
//	userfaultfd (MISSING)      MmapOpts.Fill, a PageFiller; lazy Restore
//
// # Save, restore and lazy memory
//
// Save writes an address space (its mappings, heap bounds and the contents
// of its anonymous and private memory, sparsely; mapped files by
// reference) in the format that SaveVersion documents, and Restore builds
// a new space from it, applying increments (SaveOptions.Incremental) after
// it, or restoring private anonymous memory lazily (RestoreOptions.Lazy).
// A mapping with MmapOpts.Fill is filled lazily, page run by page run, by
// a PageFiller on first touch, as a userfaultfd handler fills a Linux
// process's memory; the filler runs without the mapping lock (fault
// resolution releases it while the filler runs, and resolves the fault
// again afterwards).
//
// # What copies check, and what they ignore
//
// The copy methods (the usermem.IO methods, CopyInSeq, CopyOutSeq,
// CopyBetween) check Read and Write only; a Write or Execute permission
// implies Read, as on x86, so a page mapped execute-only reads. No copy
// ever checks Execute: the host views are never executable (simulated code
// does not run on host pages), and an emulator fetching instructions must
// check Mapping.Perms.Execute itself (see Mappings).
//
// The ctx argument of the copy methods, of CopyOutFrom and CopyInTo (whose
// reader or writer gets no context: one that may block should watch its
// own) and of CopyBetween is not consulted: a copy neither blocks nor
// sleeps, and a fault resolves under the lock without waiting for
// anything but the host. FutexWait is the call that honours ctx: it
// returns ctx.Err() when ctx is canceled or its deadline passes (where
// futex(2) returns ETIMEDOUT or EINTR).
//
// # The cost of a fault
//
// A copy over backed pages costs a bounds check and a memmove. A fault
// that can be resolved costs one host signal (the copy resumes at the page
// the host reported, which is certainly the first it could not access: on
// amd64 always, on arm64 unless an access containing the reported address
// could cross a page), an EFAULT two (the second, a one-byte retry, makes
// the count exact); and the address space's lock and a VMA lookup, and, to
// back a page, a memory-file page, a host mmap into the view and the
// host's own page fault. BenchmarkFault measured, on the 2-vCPU Intel Xeon
// virtual machine (Linux 6.18, shared with other work) where this package
// is developed, with 8-byte CopyIns: 7 ns from a backed page; 6 µs from a
// hole (EFAULT); 16 µs from a private anonymous page never touched (the
// first touch, one page backed) — a fault costs about 2,000 copies. So
// Mmap with Populate, or fault-around (a first touch backs a window of
// pages, doubling on sequential faults), pays off for memory that will be
// touched.
//
// # Concurrency
//
// All methods are safe for concurrent use. Copies take no lock; the
// memory-management calls and fault resolution hold the address space's
// mutex, and Clone, Mprotect and Madvise also wait for CopyOutFrom and
// CopyInTo calls in progress. A copy racing with Munmap sees, page by page,
// either the old mapping or EFAULT, as on Linux. Close may be called at any
// time: calls in progress fail with an error wrapping ErrClosed or
// complete, and none touches memory that anything else was given later.
//
// Lock order (the one lock tree; a function that needs a lock says so in a
// "Preconditions:" line):
//
//	AddressSpace.activeMu   held for reading by CopyOutFrom and CopyInTo
//	                        while their reader or writer runs; for writing by
//	                        Clone, Mprotect, Madvise
//	  AddressSpace.mu       the VMA tree, the page table (pma.Table) and every
//	                        host mapping change of the space; fault resolution
//	    pma.MemoryFile.mu   the memory file's allocator and reference counts
//	    pma's account.mu    the process-wide host account (a leaf)
//
// A Clone holds the parent's mu while it builds the child, whose locks it
// never takes (nothing else can reach the child yet). Reset holds two
// spaces' locks: both activeMu, then both mu, each pair in the order the
// spaces were created.
package addrspace
