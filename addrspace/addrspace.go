package addrspace

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/pma"
	"golang.org/x/sys/unix"
)

// DefaultSize is the size of an address space whose Options.Size is 0:
// 64 GiB of simulated addresses (host address space only; no memory is
// committed until pages are touched).
const DefaultSize = 64 << 30

// MinAddr is the lowest address a mapping may start at: page 0 is never
// mappable, so that a nil simulated pointer always faults (Linux's
// vm.mmap_min_addr).
const MinAddr = hostarch.PageSize

// Options configures a new AddressSpace.
type Options struct {
	// Size is the size of the simulated address space in bytes: addresses
	// are [0, Size). 0 selects DefaultSize. It must be a multiple of the
	// page size. The host must be able to reserve 2*Size bytes of address
	// space (two views); sizes up to at least 1 TiB work on 64-bit hosts.
	Size uint64

	// BrkStart is where the heap that Brk manages starts (Linux's
	// start_brk, which exec places after the program's bss). 0 selects
	// Size/8 rounded down to a page, or MinAddr if that is 0. It must be
	// page-aligned and inside the address space; see also SetBrkStart.
	BrkStart hostarch.Addr
}

// An AddressSpace is a simulated virtual address space backed by host
// memory. It implements usermem.IO.
//
// Concurrency: see the package documentation. Lock order: AddressSpace.mu,
// then pma.MemoryFile's internal lock.
type AddressSpace struct {
	// Immutable after New.
	size    uint64
	app     *pma.View
	max     *pma.View
	appBase unsafe.Pointer
	maxBase unsafe.Pointer
	mem     *pma.MemoryFile

	// closed is set by Close, before any host resource is released.
	closed atomic.Bool

	// limit is Size while the address space is open and 0 once it is
	// closed, so that the copy fast path checks bounds and openness with
	// one load.
	limit atomic.Uint64

	// cowVMAs counts VMAs that copy on write (private file mappings). While
	// it is zero no write can need fault resolution before it is done, so
	// CopyOutFrom can skip pre-faulting.
	cowVMAs atomic.Int64

	// activeMu is held for reading by CopyOutFrom while its reader writes
	// into the views, and for writing by the calls that may write-protect
	// pages that were writable (Clone, Mprotect, Madvise): a reader cannot
	// resume after a fault, so it must not meet one that resolution would
	// have cleared. Lock order: activeMu, then mu.
	activeMu sync.RWMutex

	// mu protects everything below, and serializes changes to the host
	// mappings of the views.
	mu    sync.Mutex
	vmas  *vmaTree
	files map[fileKey]*fileRef
	// override maps the simulated page addresses of private pages that
	// have their own memory-file page (a private file page once written, a
	// page copied on write after a clone) to that page's offset. It plays
	// the part of the page table for pages that differ from their VMA's.
	override map[hostarch.Addr]uint64
	// pageBuf is scratch space for copying a page on write.
	pageBuf []byte

	// brkStart and brk are the start and the current end of the heap that
	// Brk manages (Linux's start_brk and brk).
	brkStart, brk hostarch.Addr
}

// New creates an empty address space.
//
// It returns an error wrapping EINVAL if opts.Size is not a multiple of the
// page size, and one wrapping ENOMEM if the host cannot reserve the address
// space (or create the memory file).
func New(opts Options) (*AddressSpace, error) {
	size := opts.Size
	if size == 0 {
		size = DefaultSize
	}
	if size%hostarch.PageSize != 0 || size < 2*hostarch.PageSize || size > 1<<62 {
		return nil, fmt.Errorf("addrspace: size %#x is not a page multiple of at least two pages: %w", size, unix.EINVAL)
	}
	brk := opts.BrkStart
	if brk == 0 {
		brk = max(hostarch.Addr(size/8).RoundDown(), MinAddr)
	}
	if !brk.IsPageAligned() || brk < MinAddr || uint64(brk) >= size {
		return nil, fmt.Errorf("addrspace: BrkStart %#x is not a page-aligned address inside the address space: %w", brk, unix.EINVAL)
	}
	mem, err := pma.NewMemoryFile("mmsim")
	if err != nil {
		return nil, memoryFileError(err)
	}
	as, err := newWithMemory(size, mem)
	if err != nil {
		return nil, err
	}
	as.brkStart, as.brk = brk, brk
	return as, nil
}

// newWithMemory creates an empty address space of size bytes whose
// anonymous memory comes from mem. On failure it closes mem (drops this
// holder).
func newWithMemory(size uint64, mem *pma.MemoryFile) (*AddressSpace, error) {
	as := &AddressSpace{
		size:     size,
		mem:      mem,
		vmas:     newVMATree(),
		files:    make(map[fileKey]*fileRef),
		override: make(map[hostarch.Addr]uint64),
		pageBuf:  make([]byte, hostarch.PageSize),
	}
	var err error
	if as.app, err = pma.Reserve(size); err != nil {
		as.mem.Close()
		return nil, fmt.Errorf("addrspace: cannot reserve %d bytes of host address space for the app view: %w", size, unix.ENOMEM)
	}
	if as.max, err = pma.Reserve(size); err != nil {
		as.app.Release()
		as.mem.Close()
		return nil, fmt.Errorf("addrspace: cannot reserve %d bytes of host address space for the max view: %w", size, unix.ENOMEM)
	}
	as.appBase = hostPointer(as.app.Base())
	as.maxBase = hostPointer(as.max.Base())
	as.limit.Store(size)
	return as, nil
}

// Size returns the size of the address space: addresses are [0, Size()).
func (as *AddressSpace) Size() uint64 { return as.size }

// Close releases every host resource of the address space: both views, the
// memory file, and its references to mapped files. Shared file mappings
// have already written their data to the file (the host's page cache).
//
// Preconditions: no other call on as is in progress (see the package
// documentation). A second Close returns an error wrapping ErrClosed.
func (as *AddressSpace) Close() error {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Swap(true) {
		return errClosedTwice
	}
	as.limit.Store(0)
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	keep(as.app.Release())
	keep(as.max.Release())
	if as.mem.Shared() {
		// Clones still use the memory file: drop this space's references so
		// that pages they share become theirs alone (and are written without
		// a copy), and pages only this space used are freed.
		as.vmas.Ascend(func(v *vma) bool {
			as.forEachPage(v, v.start, v.end, func(off, length uint64) { as.mem.DecRef(off, length) })
			return true
		})
	}
	keep(as.mem.Close())
	for _, r := range as.files {
		keep(r.f.Close())
	}
	as.files = nil
	as.vmas.Clear(false)
	as.override = nil
	return first
}

// MmapOpts are the arguments of Mmap.
type MmapOpts struct {
	// Addr is where to map: the exact address if Fixed, otherwise a hint
	// (0: anywhere). A fixed Addr must be page-aligned.
	Addr hostarch.Addr

	// Length is the length of the mapping in bytes; it is rounded up to a
	// whole number of pages and must not be 0.
	Length uint64

	// Fixed maps at exactly Addr, replacing whatever was mapped there (Linux
	// MAP_FIXED).
	Fixed bool

	// Perms are the application's permissions for the mapping (PROT_*).
	Perms hostarch.AccessType

	// MaxPerms are the most that Mprotect may grant later. Zero means the
	// most the target allows: for a shared file mapping, read and execute,
	// plus write if File is open for writing and not write-sealed; for private and anonymous
	// mappings, read, write and execute. A non-zero MaxPerms is reduced to
	// what the target allows.
	MaxPerms hostarch.AccessType

	// Private selects MAP_PRIVATE (copy-on-write) instead of MAP_SHARED.
	Private bool

	// File is the file to map, or nil for anonymous memory. The address
	// space keeps its own descriptor: the caller may close File afterwards.
	// File must be a regular file open for reading.
	File *os.File

	// Offset is the offset in File of the start of the mapping. It must be
	// page-aligned. Unused for anonymous mappings.
	Offset uint64

	// Name labels an anonymous mapping in Mappings and WriteMaps (as
	// Linux's "[stack]" or prctl(PR_SET_VMA_ANON_NAME) do); mappings with
	// different names never merge. Ignored for file mappings. It must be
	// "", one of the labels Linux's kernel gives its own mappings ("[stack]",
	// "[vdso]", "[vvar]"), or a name prctl(PR_SET_VMA_ANON_NAME) accepts: at
	// most 79 bytes of printable ASCII without any of \ ` $ [ ] (shown as
	// "[anon:Name]"); otherwise Mmap fails with EINVAL.
	Name string
}

// Mmap creates a mapping and returns its address, as mmap(2) does.
//
// Errors (each wrapping a unix.Errno; a failed Mmap changes nothing):
// EINVAL for a zero Length, an unaligned fixed Addr or Offset, or an
// invalid Name; EPERM for a fixed mapping at page 0, or a writable shared
// mapping of a write-sealed memfd (F_SEAL_WRITE, F_SEAL_FUTURE_WRITE),
// whose shared mappings never have write in MaxPerms, as on Linux; ENOMEM
// if the mapping does not fit in the address space, no gap is large
// enough, or the host refuses more mappings or the descriptor the address
// space keeps of File; EOVERFLOW if Offset+Length overflows; EACCES if File
// is not open for reading, or Perms exceed MaxPerms or what File's open
// mode allows for a shared mapping; EBADF if File is closed; ENODEV if File
// is not a regular file; ErrClosed after Close.
func (as *AddressSpace) Mmap(opts MmapOpts) (hostarch.Addr, error) {
	if opts.Length == 0 {
		return 0, fmt.Errorf("addrspace: mmap of length 0: %w", unix.EINVAL)
	}
	if opts.File == nil {
		if err := checkName(opts.Name); err != nil {
			return 0, err
		}
	}
	length, ok := hostarch.PageRoundUp(opts.Length)
	if !ok || length == 0 {
		return 0, fmt.Errorf("addrspace: mmap length %#x overflows: %w", opts.Length, unix.ENOMEM)
	}
	if opts.File != nil {
		if opts.Offset%hostarch.PageSize != 0 {
			return 0, fmt.Errorf("addrspace: mmap offset %#x is not page-aligned: %w", opts.Offset, unix.EINVAL)
		}
		if opts.Offset+length < opts.Offset || opts.Offset+length > 1<<63 {
			return 0, fmt.Errorf("addrspace: mmap offset %#x + length %#x overflows: %w", opts.Offset, length, unix.EOVERFLOW)
		}
	}
	if opts.Fixed {
		if !opts.Addr.IsPageAligned() {
			return 0, fmt.Errorf("addrspace: fixed mmap at unaligned address %#x: %w", opts.Addr, unix.EINVAL)
		}
		if opts.Addr < MinAddr {
			return 0, fmt.Errorf("addrspace: fixed mmap at %#x, below the first mappable address %#x: %w", opts.Addr, MinAddr, unix.EPERM)
		}
		if uint64(opts.Addr) > as.size || length > as.size-uint64(opts.Addr) {
			return 0, fmt.Errorf("addrspace: fixed mmap [%#x, +%#x) does not fit in the address space of %#x bytes: %w", opts.Addr, length, as.size, unix.ENOMEM)
		}
	} else if length > as.size-MinAddr {
		return 0, fmt.Errorf("addrspace: mmap of %#x bytes does not fit in the address space of %#x bytes: %w", length, as.size, unix.ENOMEM)
	}

	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return 0, errClosedMgmt
	}
	return as.mmapLocked(opts, length)
}

// mmapLocked is Mmap after the checks that need no lock.
//
// Preconditions: as.mu is held; length is opts.Length rounded up; the
// checks at the start of Mmap passed.
func (as *AddressSpace) mmapLocked(opts MmapOpts, length uint64) (hostarch.Addr, error) {
	// As Linux does, choose the address before checking the file and the
	// permissions.
	v := &vma{perms: opts.Perms, private: opts.Private}
	if opts.File == nil {
		v.name = opts.Name
	}
	if opts.Fixed {
		v.start = opts.Addr
	} else {
		start, ok := as.findGap(opts.Addr, length)
		if !ok {
			return 0, fmt.Errorf("addrspace: no free gap of %#x bytes: %w", length, unix.ENOMEM)
		}
		v.start = start
	}
	v.end = v.start + hostarch.Addr(length)

	allowed := hostarch.AnyAccess
	if opts.File != nil {
		r, err := as.openFile(opts.File, !opts.Private && opts.Perms.Write)
		if err != nil {
			return 0, err
		}
		v.file, v.off = r, opts.Offset
		if !opts.Private && !r.writable {
			allowed.Write = false
		}
	}
	v.maxPerms = allowed
	if opts.MaxPerms.Any() {
		v.maxPerms = opts.MaxPerms.Intersect(allowed)
	}
	fail := func(err error) (hostarch.Addr, error) {
		if v.file != nil {
			as.dropFile(v.file)
		}
		return 0, err
	}
	if !v.maxPerms.SupersetOf(v.perms) {
		return fail(fmt.Errorf("addrspace: mmap permissions %v exceed the most allowed, %v: %w", v.perms, v.maxPerms, unix.EACCES))
	}

	if v.usesMem() {
		mem, err := as.mem.Allocate(length, uint64(v.start))
		if err != nil {
			return fail(err)
		}
		v.mem = mem
	}
	// Map over whatever is there: the host replaces old mappings in one
	// step, so on failure the old ones can be mapped again from the tree.
	err := as.mapBase(v, v.start, v.end)
	if err == nil && opts.Fixed {
		err = as.clearStaleMax(v.ar())
	}
	if err != nil {
		if v.usesMem() {
			as.mem.DecRef(v.mem, length)
		}
		as.remapHost(v.ar())
		return fail(fmt.Errorf("addrspace: mmap: %w", err))
	}
	if opts.Fixed {
		as.removeRange(v.ar())
	}
	as.insert(v)
	as.mergeAround(v.ar())
	return v.start, nil
}

// findGap returns the start of a free range of length bytes: at hint if
// that range is free and fits, otherwise the highest free range below Size
// (top-down, as Linux's default layout does).
//
// Preconditions: as.mu is held; length is page-aligned and non-zero.
func (as *AddressSpace) findGap(hint hostarch.Addr, length uint64) (hostarch.Addr, bool) {
	hint = hint.RoundDown()
	if hint >= MinAddr && uint64(hint) <= as.size && length <= as.size-uint64(hint) {
		if as.isFree(hostarch.AddrRange{Start: hint, End: hint + hostarch.Addr(length)}) {
			return hint, true
		}
	}
	// Walk the VMAs from the top, checking the gap above each.
	end := hostarch.Addr(as.size)
	var found hostarch.Addr
	ok := false
	as.vmas.Descend(func(v *vma) bool {
		if uint64(end-v.end) >= length {
			found, ok = end-hostarch.Addr(length), true
			return false
		}
		end = v.start
		return true
	})
	if !ok && end >= MinAddr && uint64(end-MinAddr) >= length {
		found, ok = end-hostarch.Addr(length), true
	}
	return found, ok
}

// isFree reports whether no VMA overlaps ar.
func (as *AddressSpace) isFree(ar hostarch.AddrRange) bool {
	free := true
	as.visit(ar, func(*vma) bool { free = false; return false })
	return free
}

// visit calls f for each VMA overlapping ar, in address order, until f
// returns false. f must not change the tree.
func (as *AddressSpace) visit(ar hostarch.AddrRange, f func(*vma) bool) {
	if ar.Length() == 0 {
		return
	}
	if v := as.find(ar.Start); v != nil {
		if !f(v) {
			return
		}
	}
	as.vmas.AscendRange(&vma{start: ar.Start + 1}, &vma{start: ar.End}, f)
}

// find returns the VMA containing addr, or nil.
func (as *AddressSpace) find(addr hostarch.Addr) *vma {
	var found *vma
	as.vmas.DescendLessOrEqual(&vma{start: addr}, func(v *vma) bool {
		if v.end > addr {
			found = v
		}
		return false
	})
	return found
}

// overlapping returns the VMAs overlapping ar, in address order.
func (as *AddressSpace) overlapping(ar hostarch.AddrRange) []*vma {
	var vs []*vma
	as.visit(ar, func(v *vma) bool { vs = append(vs, v); return true })
	return vs
}

func (as *AddressSpace) insert(v *vma) {
	if v.cow() {
		as.cowVMAs.Add(1)
	}
	as.vmas.ReplaceOrInsert(v)
}

func (as *AddressSpace) delete(v *vma) {
	if v.cow() {
		as.cowVMAs.Add(-1)
	}
	as.vmas.Delete(v)
}

// splitAt splits the VMA containing addr, if addr lies strictly inside it,
// so that a VMA starts at addr. Host mappings are unchanged.
func (as *AddressSpace) splitAt(addr hostarch.Addr) {
	v := as.find(addr)
	if v == nil || v.start == addr {
		return
	}
	right := *v
	right.start = addr
	right.off = v.offAt(addr)
	right.mem = v.memAt(addr)
	if v.file != nil {
		v.file.refs++
	}
	v.end = addr
	as.insert(&right)
}

// mergeAround joins compatible neighbouring VMAs from the one before ar to
// the one after it.
func (as *AddressSpace) mergeAround(ar hostarch.AddrRange) {
	lo := ar.Start
	if lo > 0 {
		lo--
	}
	var prev *vma
	for _, v := range as.overlapping(hostarch.AddrRange{Start: lo, End: ar.End + 1}) {
		if prev != nil && prev.canMerge(v) {
			as.delete(v)
			prev.end = v.end
			if v.file != nil {
				as.dropFile(v.file)
			}
			continue
		}
		prev = v
	}
}

// removeRange removes every VMA page in ar from the tree, releasing their
// memory-file pages and file references. Host mappings are not touched.
func (as *AddressSpace) removeRange(ar hostarch.AddrRange) {
	as.splitAt(ar.Start)
	as.splitAt(ar.End)
	for _, v := range as.overlapping(ar) {
		as.delete(v)
		as.forEachPage(v, v.start, v.end, func(off, length uint64) { as.mem.DecRef(off, length) })
		as.dropOverrides(v.start, v.end)
		if v.file != nil {
			as.dropFile(v.file)
		}
	}
}

// overridesIn returns the addresses in [start, end) that have an override,
// in increasing order.
func (as *AddressSpace) overridesIn(start, end hostarch.Addr) []hostarch.Addr {
	if len(as.override) == 0 {
		return nil
	}
	var addrs []hostarch.Addr
	if uint64(len(as.override)) < uint64(end-start)/hostarch.PageSize {
		for a := range as.override {
			if a >= start && a < end {
				addrs = append(addrs, a)
			}
		}
		slices.Sort(addrs)
		return addrs
	}
	for a := start; a < end; a += hostarch.PageSize {
		if _, ok := as.override[a]; ok {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// forEachPage calls f for the memory-file ranges that v's pages in [start,
// end) hold references to: the VMA's own range (for anonymous memory) less
// the pages with overrides, and each override page.
func (as *AddressSpace) forEachPage(v *vma, start, end hostarch.Addr, f func(off, length uint64)) {
	cur := start
	for _, a := range as.overridesIn(start, end) {
		if v.usesMem() && a > cur {
			f(v.memAt(cur), uint64(a-cur))
		}
		f(as.override[a], hostarch.PageSize)
		cur = a + hostarch.PageSize
	}
	if v.usesMem() && end > cur {
		f(v.memAt(cur), uint64(end-cur))
	}
}

// dropOverrides forgets the overrides of [start, end) (their pages'
// references are the caller's to drop).
func (as *AddressSpace) dropOverrides(start, end hostarch.Addr) {
	for _, a := range as.overridesIn(start, end) {
		delete(as.override, a)
	}
}

// viewProts returns the host protections of v's pages in the app and max
// views. Write is withheld from the pages of mappings that copy on write
// unless the page is known to be exclusive; a write fault grants it.
func viewProts(v *vma, exclusive bool) (app, max int) {
	app, max = pma.HostProt(v.perms), pma.HostProt(v.maxPerms)
	if v.cow() && !exclusive {
		app &^= unix.PROT_WRITE
		max &^= unix.PROT_WRITE
	}
	return app, max
}

// mapHost makes the views map v's pages in [start, end) as v and the
// overrides say: the app view always, the max view if v.maxMapped.
func (as *AddressSpace) mapHost(v *vma, start, end hostarch.Addr) error {
	if err := as.mapIn(as.app, v, start, end); err != nil {
		return err
	}
	if v.maxMapped {
		return as.mapIn(as.max, v, start, end)
	}
	return nil
}

// mapIn maps v's pages in [start, end) in one view, overrides included.
func (as *AddressSpace) mapIn(view *pma.View, v *vma, start, end hostarch.Addr) error {
	if err := as.mapBaseIn(view, v, start, end); err != nil {
		return err
	}
	prot := as.viewProt(view, v)
	for _, a := range as.overridesIn(start, end) {
		if err := view.MapFile(uint64(a), hostarch.PageSize, as.mem.FD(), as.override[a], prot); err != nil {
			return err
		}
	}
	return nil
}

// viewProt returns the host protection of v's pages in view (write withheld
// from pages that copy on write; see viewProts).
func (as *AddressSpace) viewProt(view *pma.View, v *vma) int {
	app, max := viewProts(v, false)
	if view == as.max {
		return max
	}
	return app
}

// mapBase makes the views map v's pages in [start, end) as v says,
// ignoring overrides: the app view always, the max view if v.maxMapped.
func (as *AddressSpace) mapBase(v *vma, start, end hostarch.Addr) error {
	if err := as.mapBaseIn(as.app, v, start, end); err != nil {
		return err
	}
	if v.maxMapped {
		return as.mapBaseIn(as.max, v, start, end)
	}
	return nil
}

// mapBaseIn maps v's pages in [start, end), ignoring overrides, in view.
func (as *AddressSpace) mapBaseIn(view *pma.View, v *vma, start, end hostarch.Addr) error {
	fd, off := as.mem.FD(), v.memAt(start)
	if v.file != nil {
		fd, off = v.file.fd(), v.offAt(start)
	}
	return view.MapFile(uint64(start), uint64(end-start), fd, off, as.viewProt(view, v))
}

// mapPage maps memory-file page off at addr, a page of v, in the app view
// and, if v.maxMapped, the max view.
func (as *AddressSpace) mapPage(v *vma, addr hostarch.Addr, off uint64, app, max int) error {
	if err := as.app.MapFile(uint64(addr), hostarch.PageSize, as.mem.FD(), off, app); err != nil {
		return err
	}
	if !v.maxMapped {
		return nil
	}
	return as.max.MapFile(uint64(addr), hostarch.PageSize, as.mem.FD(), off, max)
}

// ensureMax maps v's pages in the max view, if they are not yet.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) ensureMax(v *vma) error {
	if v.maxMapped {
		return nil
	}
	if err := as.mapIn(as.max, v, v.start, v.end); err != nil {
		as.max.Clear(uint64(v.start), v.length())
		return fmt.Errorf("addrspace: mapping the max view: %w", err)
	}
	v.maxMapped = true
	return nil
}

// anyMaxMapped reports whether a VMA overlapping ar has its max view
// mapped, so that clearing ar must clear the max view too.
func (as *AddressSpace) anyMaxMapped(ar hostarch.AddrRange) bool {
	found := false
	as.visit(ar, func(v *vma) bool { found = v.maxMapped; return !found })
	return found
}

// clearStaleMax clears ar in the max view if mappings there are about to be
// replaced by ones whose max view is not mapped.
func (as *AddressSpace) clearStaleMax(ar hostarch.AddrRange) error {
	if !as.anyMaxMapped(ar) {
		return nil
	}
	return as.max.Clear(uint64(ar.Start), uint64(ar.Length()))
}

// remapHost makes the host mappings of ar agree with the tree again, after a
// host operation failed partway. It is best effort: it fails only if the
// host refuses mappings, and then the affected pages fault (EFAULT) instead
// of exposing wrong memory.
func (as *AddressSpace) remapHost(ar hostarch.AddrRange) {
	as.app.Clear(uint64(ar.Start), uint64(ar.Length()))
	as.max.Clear(uint64(ar.Start), uint64(ar.Length()))
	for _, v := range as.overlapping(ar) {
		r := v.ar().Intersect(ar)
		as.mapHost(v, r.Start, r.End)
	}
}

// Munmap removes the mappings of [addr, addr+length), as munmap(2) does.
// length is rounded up to whole pages; unmapped pages in the range are
// ignored.
//
// Errors (wrapping a unix.Errno): EINVAL for an unaligned addr, a zero
// length, or a range beyond the address space; ENOMEM if the host refuses
// the change (too many host mappings), in which case nothing changed;
// ErrClosed after Close.
func (as *AddressSpace) Munmap(addr hostarch.Addr, length uint64) error {
	ar, err := as.mgmtRange("munmap", addr, length, unix.EINVAL)
	if err != nil {
		return err
	}
	if ar.Length() == 0 {
		return fmt.Errorf("addrspace: munmap of length 0: %w", unix.EINVAL)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	return as.unmapLocked(ar)
}

// unmapLocked removes the mappings of ar, from the host views first.
//
// Preconditions: as.mu is held; ar is page-aligned and inside the space.
func (as *AddressSpace) unmapLocked(ar hostarch.AddrRange) error {
	if as.isFree(ar) {
		return nil
	}
	if err := as.app.Clear(uint64(ar.Start), uint64(ar.Length())); err != nil {
		as.remapHost(ar)
		return fmt.Errorf("addrspace: munmap: %w", err)
	}
	if err := as.clearStaleMax(ar); err != nil {
		as.remapHost(ar)
		return fmt.Errorf("addrspace: munmap: %w", err)
	}
	as.removeRange(ar)
	return nil
}

// mgmtRange validates the page range of a memory-management call (Munmap,
// Mprotect, Madvise, Msync, Mincore): addr aligned,
// and [addr, addr+roundup(length)) inside the address space. Failures wrap
// unix.EINVAL, or outOfRange for ranges past the end.
func (as *AddressSpace) mgmtRange(op string, addr hostarch.Addr, length uint64, outOfRange unix.Errno) (hostarch.AddrRange, error) {
	if !addr.IsPageAligned() {
		return hostarch.AddrRange{}, fmt.Errorf("addrspace: %s at unaligned address %#x: %w", op, addr, unix.EINVAL)
	}
	rounded, ok := hostarch.PageRoundUp(length)
	if !ok {
		return hostarch.AddrRange{}, fmt.Errorf("addrspace: %s length %#x overflows: %w", op, length, outOfRange)
	}
	if uint64(addr) > as.size || rounded > as.size-uint64(addr) {
		return hostarch.AddrRange{}, fmt.Errorf("addrspace: %s range [%#x, +%#x) is beyond the address space: %w", op, addr, rounded, outOfRange)
	}
	return hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(rounded)}, nil
}

// Mprotect changes the application permissions of the pages in [addr,
// addr+length), as mprotect(2) does. length is rounded up to whole pages; a
// zero length succeeds without effect.
//
// Errors (wrapping a unix.Errno): EINVAL for an unaligned addr; ENOMEM if
// part of the range is not mapped or lies beyond the address space, or the
// host refuses more mappings; EACCES if perms exceed a mapping's MaxPerms;
// ErrClosed after Close. As on Linux, on ENOMEM or EACCES the pages before
// the failing point keep their new permissions.
func (as *AddressSpace) Mprotect(addr hostarch.Addr, length uint64, perms hostarch.AccessType) error {
	ar, err := as.mgmtRange("mprotect", addr, length, unix.ENOMEM)
	if err != nil {
		return err
	}
	as.activeMu.Lock()
	defer as.activeMu.Unlock()
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	if ar.Length() == 0 {
		return nil
	}
	defer as.mergeAround(ar)
	for cur := ar.Start; cur < ar.End; {
		v := as.find(cur)
		if v == nil {
			return fmt.Errorf("addrspace: mprotect: %#x is not mapped: %w", cur, unix.ENOMEM)
		}
		if !v.maxPerms.SupersetOf(perms) {
			return fmt.Errorf("addrspace: mprotect: %v exceeds the most allowed at %#x, %v: %w", perms, cur, v.maxPerms, unix.EACCES)
		}
		end := min(v.end, ar.End)
		if v.perms != perms {
			as.splitAt(cur)
			as.splitAt(end)
			v = as.find(cur)
			old := v.perms
			v.perms = perms
			if err := as.protectHost(v); err != nil {
				v.perms = old
				as.remapHost(v.ar())
				return fmt.Errorf("addrspace: mprotect: %w", err)
			}
		}
		cur = end
	}
	return nil
}

// protectHost applies v.perms to v's pages in the app view. Pages that copy
// on write lose write access even where a fault had granted it; the next
// write fault grants it again, without a copy if the page is exclusive.
func (as *AddressSpace) protectHost(v *vma) error {
	app, _ := viewProts(v, false)
	return as.app.Protect(uint64(v.start), v.length(), app)
}
