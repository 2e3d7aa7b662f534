// Package pma is the page-table layer of a simulated address space: the
// one owner of every host mapping that package addrspace uses.
//
// A Table holds, in simulated addresses, which (file, offset) backs each
// page that has been touched — ranges in a B-tree, not a map of pages — and
// maps them into its views: reserved ranges of host address space where
// view offset o is simulated address o. It backs pages lazily on a fault
// (Fault), breaks copy-on-write with fault-around into neighbouring
// memory-file offsets (or, for a write whose bytes are known and cover
// whole pages, backs them with new pages holding those bytes:
// WriteThrough, ZeroThrough), and unmaps, protects, moves, shares (for Clone) and
// discards pages as the address space asks. Each View mirrors the kernel's
// list of VMAs for its range, so every change knows beforehand how many
// host mappings it adds.
//
// A MemoryFile is the sparse memfd that backs anonymous memory and private
// copies, with reference-counted pages shared by clones. It stays compact:
// it grows with the memory in use and shrinks when its tail is freed, so a
// file size limit (RLIMIT_FSIZE) bounds memory in use, not addresses.
//
// The process-wide account (ReadHostStats) keeps the host mappings of
// every Table within vm.max_map_count less a headroom for the rest of the
// process, and the host address space that views reserve within what the
// host has less AddressHeadroom.
//
// In Linux terms (see mm/ in the kernel, and gVisor's pkg/sentry/mm and
// pkg/sentry/pgalloc, after which it is named — "platform mapping area"):
//
//	page tables                → Table (entries) and its Views (host mappings)
//	page cache / shmem         → the user's file, or a MemoryFile (memfd)
//	page frame allocator       → MemoryFile.Allocate, IncRef, DecRef
//	struct page refcount       → MemoryFile.Refs (counted per range)
//	handle_mm_fault, do_wp_page → Table.Fault
//	copy_page_range (fork)     → Table.Share
//	mm->map_count limit        → the account (ReadHostStats)
//
// pma knows nothing of VMAs or Linux's rules; package addrspace decides
// what is mapped where and describes it to Fault as a Mapping.
package pma
