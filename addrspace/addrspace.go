package addrspace

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/pma"
	"github.com/mmsim/mmsim/usermem"
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

	// MaxMapCount limits the number of mappings (VMAs, as Mappings lists
	// them before merging for display) the address space may hold, as
	// Linux's vm.max_map_count limits a process's: a call that could exceed
	// it fails with ENOMEM. 0 selects DefaultMaxMapCount. The process-wide
	// host budget (HostStats) applies as well.
	MaxMapCount int

	// Limits are the space's resource limits (RLIMIT_AS, RLIMIT_DATA,
	// RLIMIT_STACK, RLIMIT_MEMLOCK); the zero value is unlimited. See
	// SetLimits.
	Limits Limits
}

// DefaultMaxMapCount is the MaxMapCount of an address space whose
// Options.MaxMapCount is 0: Linux's default vm.max_map_count.
const DefaultMaxMapCount = 65530

// An AddressSpace is a simulated virtual address space backed by host
// memory. It implements usermem.IO.
//
// Concurrency: see the package documentation. Lock order: AddressSpace.mu,
// then pma.MemoryFile's internal lock.
type AddressSpace struct {
	// Immutable after New.
	size        uint64
	maxMapCount int
	appBase     unsafe.Pointer
	mem         *pma.MemoryFile

	// gen is the page table's generation counter (see Generation), here
	// so that an emulator's check of it is one load from the space.
	gen atomic.Uint64

	// maxBase is the base of the max view, nil until an IgnorePermissions
	// access first needs it (see maxView).
	maxBase atomic.Pointer[byte]

	// closed is set by Close, before any host resource is released.
	closed atomic.Bool

	// limit is Size while the address space is open and 0 once it is
	// closed, so that the copy fast path checks bounds and openness with
	// one load.
	limit atomic.Uint64

	// activeMu is held for reading by CopyOutFrom and CopyInTo while their
	// reader or writer touches the views, and for writing by the calls that
	// may take access away from pages that had it (Clone, Mprotect,
	// Madvise): a reader cannot resume after a fault, so it must not meet
	// one that resolution would have cleared. Lock order: activeMu, then mu.
	activeMu sync.RWMutex

	// mu protects everything below, and serializes every change to the
	// host mappings (pt).
	mu    sync.Mutex
	vmas  *vmaTree
	files map[fileKey]*fileRef
	// pt is the page-table layer: what backs each touched page, and the
	// host views.
	pt *pma.Table

	// nextAnonID is the last vma.anonID handed out.
	nextAnonID uint64

	// brkStart and brk are the start and the current end of the heap that
	// Brk manages (Linux's start_brk and brk).
	brkStart, brk hostarch.Addr

	// limits are the resource limits (SetLimits).
	limits Limits

	// defFlags plays Linux's mm->def_flags: the lock bits (vmLocked,
	// vmLockOnFault) that Mlockall(MCL_FUTURE) gives every new mapping.
	defFlags vmFlags

	// populateHolds counts the times lockPopulate took the lock: what the
	// tests check to see that populating is done a chunk per lock hold,
	// outside the call that asked for it, and skips what needs none.
	populateHolds uint64

	// filling lists the lazy fills in progress (see fillLazy).
	filling []*fillInFlight

	// lastSave is what the last Save with Track saved, for the next
	// incremental Save.
	lastSave *saveState
}

// New creates an empty address space.
//
// It returns an error wrapping EINVAL if opts.Size is not a multiple of the
// page size (or opts.BrkStart or opts.MaxMapCount is out of range), and one
// wrapping ENOMEM if the host cannot provide the address space: its address
// space or the process-wide host mapping budget is exhausted, or the
// memory file cannot be created (the process is out of file descriptors,
// say).
func New(opts Options) (*AddressSpace, error) {
	if err := checkHost(); err != nil {
		return nil, err
	}
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
	if opts.MaxMapCount < 0 {
		return nil, fmt.Errorf("addrspace: MaxMapCount %d: %w", opts.MaxMapCount, unix.EINVAL)
	}
	mem, err := pma.NewMemoryFile("mmsim")
	if err != nil {
		return nil, memoryFileError(err)
	}
	as, err := newWithMemory(size, mem, 1)
	if err != nil {
		return nil, err
	}
	as.maxMapCount = opts.MaxMapCount
	if as.maxMapCount == 0 {
		as.maxMapCount = DefaultMaxMapCount
	}
	as.brkStart, as.brk = brk, brk
	as.limits = opts.Limits
	return as, nil
}

// newWithMemory creates an empty address space of size bytes whose
// anonymous memory comes from mem, committing floor host mappings. On
// failure it closes mem (drops this holder).
func newWithMemory(size uint64, mem *pma.MemoryFile, floor int) (*AddressSpace, error) {
	pt, err := pma.NewTable(size, mem, floor)
	if err != nil {
		mem.Close()
		return nil, fmt.Errorf("addrspace: cannot reserve %d bytes of host address space: %w", size, err)
	}
	as := &AddressSpace{
		size:  size,
		mem:   mem,
		vmas:  newVMATree(),
		files: make(map[fileKey]*fileRef),
		pt:    pt,
	}
	as.appBase = hostPointer(pt.AppBase())
	pt.UseGeneration(&as.gen)
	as.limit.Store(size)
	return as, nil
}

// Size returns the size of the address space: addresses are [0, Size()).
func (as *AddressSpace) Size() uint64 { return as.size }

// Close releases the host resources of the address space: its memory
// (pages no clone shares), the memory file, and its references to mapped
// files. Shared file mappings have already written their data to the file
// (the host's page cache). A second Close returns an error wrapping
// ErrClosed.
//
// Close may be called while other calls are in progress, including a
// CopyOutFrom or CopyInTo blocked in its reader or writer: they fail with an
// error wrapping ErrClosed (EFAULT), or complete if they got past their
// last access, and never touch memory that anything else was given
// afterwards. The views' host address space stays reserved, inaccessible,
// until the AddressSpace is unreachable; New collects such views when it
// needs the room.
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
	release := as.pt.Close()
	runtime.AddCleanup(as, func(release func()) { release() }, release)
	keep(as.mem.Close())
	for _, r := range as.files {
		keep(r.f.Close())
	}
	as.files = nil
	as.vmas.Clear(false)
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

	// NoReplace maps at exactly Addr, as Fixed does, but fails with EEXIST
	// if anything is mapped there (Linux MAP_FIXED_NOREPLACE), with or
	// without Fixed.
	NoReplace bool

	// Populate faults every page of the mapping in before Mmap returns, as
	// Linux's MAP_POPULATE does: for writing where the mapping is private
	// and writable (copying private file pages, backing anonymous ones),
	// for reading otherwise. As on Linux, a page that cannot be populated
	// (past the end of its file, say) does not fail the Mmap.
	Populate bool

	// GrowsDown makes a private anonymous mapping grow down, as Linux's
	// MAP_GROWSDOWN does (a stack): an access to an unmapped address below
	// it, down to 256 pages (Linux's stack_guard_gap) above the next
	// accessible mapping below, extends it to that address's page instead
	// of faulting, within Limits.Stack, Limits.AS and (if locked)
	// Limits.Memlock, never below MinAddr. Every access path grows it: the
	// copies, the atomics, CopyOutFrom and CopyInTo, with or without
	// IOOpts.IgnorePermissions (Linux's /proc/PID/mem and ptrace grow a
	// stack too). Mmap fails with
	// EINVAL for a file or shared mapping that grows down. A mapping that
	// grows down does not count against Limits.Data, and Mmap without a
	// fixed address leaves the 256 pages below it free, as Linux does.
	GrowsDown bool

	// Locked locks the mapping's pages in memory, as Linux's MAP_LOCKED
	// does: they are faulted in before Mmap returns (as Populate does;
	// PROT_NONE mappings are not) and stay resident (see Mlock). Mmap fails
	// with EAGAIN if the locked pages would exceed Limits.Memlock. After
	// Mlockall(MCL_FUTURE) every new mapping is locked as if Locked were
	// set (on fault with MCL_ONFAULT).
	Locked bool

	// Fill makes the mapping lazily filled: the first access to each page
	// calls Fill for its contents instead of reading zeros (see
	// PageFiller). The mapping must be private and anonymous (File nil),
	// else Mmap fails with EINVAL. Clone gives the child the same filler:
	// each address space fills the pages it has not got yet.
	Fill PageFiller
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
// is not a regular file; EEXIST with NoReplace if anything is mapped in the
// range; EAGAIN if a locked mapping (Locked, or after Mlockall with
// MCL_FUTURE) would exceed Limits.Memlock; EINVAL for GrowsDown on a file
// or shared mapping; ENOMEM if the mapping would exceed Limits.AS or, for
// a private writable one, Limits.Data (counting only the pages it adds
// over those a fixed mapping replaces, as Linux does); ErrClosed after
// Close. The errors come in Linux's order: EINVAL and EPERM for the
// arguments, ENOMEM for the address, EEXIST, EAGAIN, the file's errors,
// EINVAL for GrowsDown and EACCES, then ENOMEM for the limits and the
// mapping count.
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
	if opts.Fill != nil && (opts.File != nil || !opts.Private) {
		return 0, errLazyKind
	}
	if opts.NoReplace {
		opts.Fixed = true
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
	if as.closed.Load() {
		as.mu.Unlock()
		return 0, errClosedMgmt
	}
	addr, err := as.mmapLocked(opts, length)
	lockPopulate := err == nil && (opts.Locked || as.defFlags&vmLocked != 0)
	as.mu.Unlock()
	if lockPopulate {
		as.lockPopulate(hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(length)}, false)
	}
	if err == nil && opts.Populate {
		at := hostarch.Read
		if opts.Perms.Write {
			at = hostarch.Write
		}
		// One window at a time under the lock; errors (a PROT_NONE mapping,
		// a page past its file's end) are ignored, as Linux ignores them.
		as.populate(hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(length)}), at, usermem.IOOpts{}, math.MaxInt64)
		// Then have the host allocate the pages, a chunk per lock hold.
		const chunk = 4 << 20
		for off := uint64(0); off < length; off += chunk {
			as.mu.Lock()
			if !as.closed.Load() {
				as.pt.Commit(uint64(addr)+off, uint64(addr)+min(off+chunk, length), at.Write)
			}
			as.mu.Unlock()
		}
	}
	return addr, err
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
		if opts.NoReplace && !as.isFree(hostarch.AddrRange{Start: v.start, End: v.start + hostarch.Addr(length)}) {
			return 0, fmt.Errorf("addrspace: mmap [%#x, +%#x) with NoReplace over a mapping: %w", v.start, length, unix.EEXIST)
		}
	} else {
		start, ok := as.findGap(opts.Addr, length)
		if !ok {
			return 0, fmt.Errorf("addrspace: no free gap of %#x bytes: %w", length, unix.ENOMEM)
		}
		v.start = start
	}
	v.end = v.start + hostarch.Addr(length)
	v.pgoff = uint64(v.start) // as Linux sets vm_pgoff of anonymous memory
	if err := lazyOpts(opts, v); err != nil {
		return 0, err
	}
	v.account = opts.Private && opts.Perms.Write
	v.flags = as.defFlags
	if opts.Locked {
		v.flags |= vmLocked
	}
	if opts.GrowsDown {
		v.flags |= vmGrowsDown
	}
	if !as.mlockFutureOK(v.flags&vmLocked != 0, length) {
		return 0, fmt.Errorf("addrspace: mmap: locking %#x more bytes would exceed the lock limit %#x (RLIMIT_MEMLOCK): %w", length, as.limits.Memlock, unix.EAGAIN)
	}
	if opts.GrowsDown && opts.File == nil && !opts.Private {
		return 0, fmt.Errorf("addrspace: mmap: a shared mapping cannot grow down: %w", unix.EINVAL)
	}

	allowed := hostarch.AnyAccess
	if opts.File == nil && !opts.Private {
		r, err := as.newShm(length)
		if err != nil {
			return 0, err
		}
		v.file = r
	} else if opts.File != nil {
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
	if opts.GrowsDown && opts.File != nil {
		return fail(fmt.Errorf("addrspace: mmap: a file mapping cannot grow down: %w", unix.EINVAL))
	}
	if err := as.checkExpandLocked("mmap", v, opts.Fixed); err != nil {
		return fail(err)
	}

	// Linux counts the mapping before it merges: one more VMA, and one
	// more if a fixed mapping splits one in two.
	extra := 1
	if opts.Fixed {
		extra += as.splits(v.ar(), nil)
	}
	if err := as.admit(extra); err != nil {
		return fail(err)
	}
	defer as.settle()
	if opts.Fixed {
		as.pt.Unmap(uint64(v.start), uint64(v.end))
		as.removeRange(v.ar())
	}
	// Nothing is mapped on the host until an access faults.
	as.insert(v)
	if v.file == nil && v.private {
		as.assignAnonID(v)
	}
	as.mergeAround(v.ar())
	return v.start, nil
}

// splits returns the number of ends of ar that lie strictly inside a VMA
// for which changes holds (every VMA if changes is nil): changing ar splits
// each such VMA, one more VMA for each (Munmap: one more only when both
// ends lie inside the same VMA, counted as 2-1 by the caller).
//
// Preconditions: as.mu is held.
func (as *AddressSpace) splits(ar hostarch.AddrRange, changes func(*vma) bool) int {
	n := 0
	for _, a := range []hostarch.Addr{ar.Start, ar.End} {
		if v := as.find(a); v != nil && v.start < a && (changes == nil || changes(v)) {
			n++
		}
	}
	return n
}

// admit checks that extra more VMAs fit within MaxMapCount and the host
// budget (each VMA may need a host mapping and a gap after it), and
// commits the host budget for them.
//
// Preconditions: as.mu is held; settle is called after the change.
func (as *AddressSpace) admit(extra int) error {
	n := as.vmas.Len() + extra
	if n > as.maxMapCount {
		return fmt.Errorf("addrspace: more than %d mappings (MaxMapCount): %w", as.maxMapCount, unix.ENOMEM)
	}
	if err := as.pt.SetFloor(hostFloor(n)); err != nil {
		return fmt.Errorf("addrspace: %w", err)
	}
	return nil
}

// settle sets the host budget committed for the address space to what its
// VMAs need now.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) settle() {
	as.pt.SetFloor(hostFloor(as.vmas.Len()))
}

// hostFloor is the most host mappings n VMAs need when each is mapped
// whole: one each, and one for each gap of reserved space around them.
func hostFloor(n int) int { return 2*n + 1 }

// anonFault gives v's mapping the anonID its anon_vma would get from
// Linux's first write fault (anon_vma_prepare): the one the mapping already
// has, or that of a neighbour whose anon_vma Linux reuses (the next one
// first), or a fresh one.
//
// Preconditions: as.mu is held; v is in the tree.
func (as *AddressSpace) anonFault(v *vma) {
	if v.hasAnonVMA() || !v.private {
		return
	}
	s, e := as.mappingAt(v.start)
	pieces := as.overlapping(hostarch.AddrRange{Start: s, End: e})
	var id uint64
	for _, p := range pieces {
		if p.hasAnonVMA() {
			id = max(id, p.anonID)
		}
	}
	first, last := pieces[0], pieces[len(pieces)-1]
	if next := as.find(e); id == 0 && next != nil && next.hasAnonVMA() && last.anonReusable(next) {
		id = next.anonID
	}
	if prev := as.find(s - 1); id == 0 && s > 0 && prev != nil && prev.hasAnonVMA() && prev.anonReusable(first) {
		id = prev.anonID
	}
	if id == 0 {
		as.nextAnonID++
		id = as.nextAnonID
	}
	for _, p := range pieces {
		p.anonID = id
	}
}

// freshAnonIDs gives each private anonymous mapping (run of compatible
// VMAs) a new anonID, as Linux's fork gives the child's VMAs new anon_vmas.
//
// Preconditions: as.mu is held, or as is not yet shared.
func (as *AddressSpace) freshAnonIDs() {
	var vs []*vma
	as.vmas.Ascend(func(v *vma) bool { vs = append(vs, v); return true })
	same := make([]bool, len(vs))
	for i := 1; i < len(vs); i++ {
		same[i] = vs[i-1].compatible(vs[i])
	}
	for i, v := range vs {
		if v.file != nil || !v.private || !v.hasAnonVMA() {
			continue
		}
		if same[i] {
			v.anonID = vs[i-1].anonID
			continue
		}
		as.nextAnonID++
		v.anonID = as.nextAnonID
	}
}

// assignAnonID gives the new private anonymous VMA v the anonID Linux's
// anon_vma would have once v is written: that of the neighbour it merges
// with (the one before first, as Linux's vma_merge_new_range prefers), else
// of a neighbour whose anon_vma the first fault would reuse, else a fresh
// one.
//
// Preconditions: as.mu is held; v is in the tree and not yet merged.
func (as *AddressSpace) assignAnonID(v *vma) {
	prev, next := as.find(v.start-1), as.find(v.end)
	if v.start == 0 {
		prev = nil
	}
	switch {
	case prev != nil && prev.compatible(v):
		v.anonID = prev.anonID
	case next != nil && v.compatible(next):
		v.anonID = next.anonID
	case next != nil && next.hasAnonVMA() && v.anonReusable(next):
		v.anonID = next.anonID // find_mergeable_anon_vma tries next first
	case prev != nil && prev.hasAnonVMA() && prev.anonReusable(v):
		v.anonID = prev.anonID
	default:
		as.nextAnonID++
		v.anonID = as.nextAnonID
	}
}

// findGap returns the start of a free range of length bytes: at hint if
// that range is free and fits, otherwise the highest free range below Size
// (top-down, as Linux's default layout does).
//
// Preconditions: as.mu is held; length is page-aligned and non-zero.
func (as *AddressSpace) findGap(hint hostarch.Addr, length uint64) (hostarch.Addr, bool) {
	hint = hint.RoundDown()
	if hint >= MinAddr && uint64(hint) <= as.size && length <= as.size-uint64(hint) {
		if ar := (hostarch.AddrRange{Start: hint, End: hint + hostarch.Addr(length)}); as.isFree(ar) && as.clearOfStackGap(ar.End) {
			return hint, true
		}
	}
	// Walk the VMAs from the top, checking the gap above each (below a
	// mapping that grows down, the gap ends stackGuardGap lower, as
	// Linux's vm_start_gap has it).
	end := hostarch.Addr(as.size)
	var found hostarch.Addr
	ok := false
	as.vmas.Descend(func(v *vma) bool {
		if end >= v.end && uint64(end-v.end) >= length {
			found, ok = end-hostarch.Addr(length), true
			return false
		}
		end = min(end, v.startGap())
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
	as.vmas.ReplaceOrInsert(v)
}

func (as *AddressSpace) delete(v *vma) {
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
	right.pgoff = v.pgoffAt(addr)
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
	vs := as.overlapping(hostarch.AddrRange{Start: lo, End: ar.End + 1})
	as.joinDetached(vs)
	// A VMA without an anon_vma that joins one with it takes it, the one
	// before first (as Linux's vma_merge_new_range prefers).
	for i := 1; i < len(vs); i++ {
		if p, v := vs[i-1], vs[i]; p.compatible(v) && v.anonID == 0 {
			v.anonID = p.anonID
		}
	}
	for i := len(vs) - 1; i > 0; i-- {
		if p, v := vs[i-1], vs[i]; p.compatible(v) && p.anonID == 0 {
			p.anonID = v.anonID
		}
	}
	as.joinRun(vs)
}

// joinRun joins each of vs, consecutive VMAs in address order, into the one
// before it where the two are compatible.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) joinRun(vs []*vma) {
	var prev *vma
	for _, v := range vs {
		if prev != nil && prev.compatible(v) {
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
// shared-memory pages and file references. Host mappings and the pages
// the page table backs them with are the caller's (pt.Unmap).
//
// Preconditions: as.mu is held.
func (as *AddressSpace) removeRange(ar hostarch.AddrRange) {
	as.splitAt(ar.Start)
	as.splitAt(ar.End)
	for _, v := range as.overlapping(ar) {
		as.delete(v)
		if v.file != nil {
			as.dropFile(v.file)
		}
	}
}

// mapping describes v for the page table.
func (as *AddressSpace) mapping(v *vma) pma.Mapping {
	m := pma.Mapping{
		Start:   uint64(v.start),
		End:     uint64(v.end),
		Private: v.private,
		FD:      -1,
		Prot:    pma.HostProt(v.perms),
		MaxProt: pma.HostProt(v.maxPerms),
		Lazy:    v.lazy != nil,
	}
	if v.file != nil {
		m.FD, m.Off = v.file.fd(), v.off
	}
	return m
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

// unmapLocked removes the mappings of ar.
//
// Preconditions: as.mu is held; ar is page-aligned and inside the space.
func (as *AddressSpace) unmapLocked(ar hostarch.AddrRange) error {
	if as.isFree(ar) {
		return nil
	}
	// Unmapping the middle of a mapping splits it in two.
	if err := as.admit(max(as.splits(ar, nil)-1, 0)); err != nil {
		return err
	}
	defer as.settle()
	err := as.pt.Unmap(uint64(ar.Start), uint64(ar.End))
	as.removeRange(ar)
	if err != nil {
		return fmt.Errorf("addrspace: munmap: %w", err)
	}
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
// the range overflows, if part of the range is not mapped or lies beyond
// the end of the address space (the end is a hole, as Linux's TASK_SIZE
// is), or the change would exceed MaxMapCount or the host budget, or make
// private memory writable beyond Limits.Data; EACCES if
// perms exceed a mapping's MaxPerms; ErrClosed after Close. As on Linux,
// on ENOMEM or EACCES the pages before the failing point keep their new
// permissions.
func (as *AddressSpace) Mprotect(addr hostarch.Addr, length uint64, perms hostarch.AccessType) error {
	if !addr.IsPageAligned() {
		return fmt.Errorf("addrspace: mprotect at unaligned address %#x: %w", addr, unix.EINVAL)
	}
	rounded, ok := hostarch.PageRoundUp(length)
	if !ok || uint64(addr)+rounded < uint64(addr) {
		return fmt.Errorf("addrspace: mprotect length %#x overflows: %w", length, unix.ENOMEM)
	}
	// The end of the address space is a hole: apply up to it, then fail.
	end := uint64(addr) + rounded
	pastEnd := end > as.size
	if pastEnd {
		end = max(as.size, uint64(addr))
	}
	ar := hostarch.AddrRange{Start: addr, End: hostarch.Addr(end)}
	as.activeMu.Lock()
	defer as.activeMu.Unlock()
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	if rounded == 0 {
		return nil
	}
	if err := as.mprotectLocked(ar, perms); err != nil {
		return err
	}
	if pastEnd {
		return fmt.Errorf("addrspace: mprotect: %#x is beyond the address space: %w", end, unix.ENOMEM)
	}
	return nil
}

// mprotectLocked is Mprotect over ar, which lies inside the space.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) mprotectLocked(ar hostarch.AddrRange, perms hostarch.AccessType) error {
	if ar.Length() == 0 {
		return nil
	}
	if err := as.admit(as.splits(ar, func(v *vma) bool { return v.perms != perms })); err != nil {
		return err
	}
	defer as.settle()
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
			if err := as.mprotectDataLocked(v, perms, uint64(end-cur)); err != nil {
				return err
			}
			as.splitAt(cur)
			as.splitAt(end)
			v = as.find(cur)
			oldAccount, oldPerms := v.account, v.perms
			v.perms = perms
			if perms.Write && v.private {
				v.account = true // Linux's VM_ACCOUNT, kept once set
			} else if !perms.Write && v.private && v.file == nil && !v.hasAnonVMA() {
				// Linux's mprotect_fixup uncharges anonymous memory that
				// has no anon_vma (after MREMAP_DONTUNMAP moved all of it
				// away, or in a clone of a MADV_WIPEONFORK mapping).
				v.account = false
			}
			if err := as.pt.Protect(uint64(v.start), uint64(v.end), pma.HostProt(perms)); err != nil {
				v.account = oldAccount
				return fmt.Errorf("addrspace: mprotect: %w", err)
			}
			as.mprotectPopulateLocked(v, oldPerms)
		}
		cur = end
	}
	return nil
}
