package addrspace

import (
	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// A Translation is host memory that backs guest pages for direct access:
// what an emulator's software TLB caches. Translate returns it.
//
// Mem stays valid memory (never another object's) for as long as the
// caller keeps the *AddressSpace reachable — after Close too, when every
// access to it faults — because guest address A is host address
// appBase+A for the address space's whole life and the host protections
// of those pages enforce the guest's: a page unmapped, never touched or
// made inaccessible is PROT_NONE on the host, a copy-on-write page is
// read-only, a page of a file beyond the file's end raises SIGBUS. A
// translation taken at generation Gen therefore never shows another
// address's memory; once Generation() != Gen it may show less than it
// promises (an access may fault), and Perms.Execute may no longer hold.
// Keep the address space reachable (use it, or runtime.KeepAlive) while
// Mem may be touched: the views are released once it is unreachable, and
// the host range may then be reused.
//
// Touching Mem can fault even while Generation() == Gen: another
// goroutine's Mprotect or Munmap bumps the generation only as it changes
// the host protections, and a shared file can be truncated at any time
// (SIGBUS). See ResolveFault for the recovery.
type Translation struct {
	// Range is page-aligned, contains the address asked for, and lies
	// within one mapping.
	Range hostarch.AddrRange

	// Perms are the accesses that Mem allows directly now, for the whole
	// Range: Read always, Write if every page of Range is writable on the
	// host (copy-on-write already broken), Execute if the mapping's
	// permissions allow it (the host never executes guest pages: the check
	// is this one, in software).
	Perms hostarch.AccessType

	// Mem is the host memory of Range: len(Mem) == Range.Length(), and
	// Mem[i] is the guest byte at Range.Start+i.
	Mem []byte

	// Gen is the Generation this translation was taken at.
	Gen uint64
}

// Generation returns the address space's generation: a number that
// changes whenever a Translation may have become wrong — Munmap, Mprotect,
// Mremap, Madvise that drops pages, Brk shrinking the heap, a fixed Mmap
// over a mapping, Clone (which makes private pages copy-on-write), Close,
// and any change the page table makes that takes host access away or
// re-lays the backing of pages (eviction under the host budget). Faults
// that only add access (Translate, ResolveFault, the copy paths) do not
// change it. The change is made before the call that causes it returns.
//
// An emulator compares its translations' Gen with Generation (one atomic
// load) and refills them with Translate when they differ. Safe for
// concurrent use.
func (as *AddressSpace) Generation() uint64 { return as.gen.Load() }

// Translate resolves an access at to guest address addr as the copy paths
// would — backing the page, breaking copy-on-write for a write, checking
// the mapping's permissions, Execute included — and returns the host
// memory that backs it: the largest run of pages around addr, within its
// mapping, that is accessible for at now (at most 64 page-table entries on
// each side of addr). at with no access is a read.
//
// Errors: a *FaultError (wrapping EFAULT) whose Reason is FaultUnmapped if
// no mapping contains addr or addr is beyond Size, FaultProtection if the
// mapping's Perms forbid at, FaultBus if addr lies beyond the end of the
// mapping's file, FaultHostMemory if the host cannot back the page; an
// error wrapping ErrClosed after Close. Translate changes no mapping; on
// success it may have backed pages or broken copy-on-write, as an access
// would.
func (as *AddressSpace) Translate(addr hostarch.Addr, at hostarch.AccessType) (Translation, error) {
	if !at.Any() {
		at = hostarch.Read
	}
	if uint64(addr) >= as.size {
		return Translation{}, as.ioRangeErr(addr, at)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return Translation{}, errClosedIO
	}
	return as.translateLocked(addr, at)
}

// translateLocked is Translate under the lock. Every fault goes through
// resolveLocked, the one fault handler, which checks the mapping's
// permissions and backs the page: growing a MAP_GROWSDOWN stack into the
// page below it belongs there too, so that Translate and ResolveFault get
// it with the copy paths (an address with no mapping is handed to it, not
// refused here). The page table then says how far the access may go.
//
// Preconditions: as.mu is held; addr < Size; at.Any().
func (as *AddressSpace) translateLocked(addr hostarch.Addr, at hostarch.AccessType) (Translation, error) {
	// A second resolution sees what the first mapped: a page beyond the
	// end of its file, say, which the first mapped with its file.
	for tries := 0; ; tries++ {
		if v := as.find(addr); v != nil && v.perms.Effective().SupersetOf(at) {
			s, e := as.pt.AccessibleRun(uint64(addr), uint64(v.start), uint64(v.end), at.Write)
			if e > s {
				write := at.Write
				if !write && v.perms.Write {
					ws, we := as.pt.AccessibleRun(uint64(addr), s, e, true)
					write = ws == s && we == e
				}
				return Translation{
					Range: hostarch.AddrRange{Start: hostarch.Addr(s), End: hostarch.Addr(e)},
					Perms: hostarch.AccessType{Read: true, Write: write, Execute: v.perms.Execute},
					Mem:   viewBytes(as.appBase, s, e-s),
					Gen:   as.pt.Generation(),
				}, nil
			}
		}
		if tries == 2 {
			// The page table backed the page but the view does not show
			// it: the host refused.
			return Translation{}, &FaultError{Addr: addr, Access: at, Reason: FaultHostMemory}
		}
		if err := as.resolveLocked(addr, unix.SIGSEGV, at, false); err != nil {
			return Translation{}, err
		}
	}
}

// ResolveFault resolves a fault that a direct access at to guest address
// addr through a Translation's Mem raised on the host: it returns nil if
// the access may be retried (the page is backed now, copy-on-write broken,
// or another goroutine resolved it first), and otherwise the error to
// deliver to the guest: a *FaultError whose Reason says SIGSEGV
// (FaultUnmapped, FaultProtection), SIGBUS (FaultBus: the page lies beyond
// the end of its file) or that the host is out of memory
// (FaultHostMemory), or an error wrapping ErrClosed after Close. It is
// Translate without the translation; the errors are Translate's.
//
// Direct access raises a real SIGSEGV or SIGBUS on the host. To recover,
// the emulator's goroutine runs with debug.SetPanicOnFault(true) (it is
// per goroutine), and recovers the panic: its value is a runtime.Error
// with an Addr() uintptr method, the host address of the fault (the same
// for SIGSEGV and SIGBUS; GuestAddr maps it back). Pass ResolveFault the
// guest address the emulator computed for the access rather than the
// host's report (for an access that crosses a page boundary, each page it
// touches: the host reports an address in the page that faulted, which
// may be the second; and qemu-user 7.2 reports a wrong one for SIGBUS),
// then either retry or deliver the error. Faults that are not the address space's
// (a GuestAddr miss) are bugs: re-panic. A fault in the package's own copy
// routines never reaches the emulator; every other fault of the process
// reaches the Go runtime as it would without this package.
func (as *AddressSpace) ResolveFault(addr hostarch.Addr, at hostarch.AccessType) error {
	_, err := as.Translate(addr, at)
	return err
}

// Lookup returns the mapping that contains addr, as Mappings would list
// it, without building the list; false if no mapping contains addr, addr
// is beyond Size, or the address space is closed.
func (as *AddressSpace) Lookup(addr hostarch.Addr) (Mapping, bool) {
	if uint64(addr) >= as.size {
		return Mapping{}, false
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() || as.find(addr) == nil {
		return Mapping{}, false
	}
	start, end := as.mappingAt(addr)
	m := describe(as.find(start))
	m.Range = hostarch.AddrRange{Start: start, End: end}
	return m, true
}
