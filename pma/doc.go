// Package pma manages the host memory behind a simulated address space: the
// anonymous memory file that backs anonymous and copied-on-write pages, the
// allocator that hands out its pages, and the host views (reserved ranges of
// host address space) into which those pages, and the pages of user files,
// are mapped.
//
// In Linux terms (see mm/ in the kernel, and gVisor's pkg/sentry/mm and
// pkg/sentry/pgalloc, after which it is named — "platform mapping area"):
//
//	page cache / shmem        → the user's file, or a MemoryFile (memfd)
//	page frame allocator      → MemoryFile.Allocate, IncRef, DecRef
//	struct page refcount      → MemoryFile.Refs (counted per range)
//	page tables               → a View: host mappings at view.base + address
//
// pma knows nothing of simulated addresses or VMAs; package addrspace
// decides what is mapped where and calls pma to make the host agree.
package pma
