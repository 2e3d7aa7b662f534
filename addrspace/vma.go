package addrspace

import (
	"fmt"
	"os"

	"github.com/google/btree"
	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// A vma is one mapping: a range of simulated addresses with uniform
// permissions and backing. It plays Linux's vm_area_struct.
//
// Invariants (held under AddressSpace.mu): start < end, both page-aligned;
// VMAs in the tree do not overlap; maxPerms.SupersetOf(perms).
type vma struct {
	start, end hostarch.Addr

	perms    hostarch.AccessType
	maxPerms hostarch.AccessType

	// private is true for MAP_PRIVATE mappings.
	private bool

	// file is the mapped file, or nil for anonymous memory. off is the file
	// offset of start.
	file *fileRef
	off  uint64

	// name labels an anonymous mapping in WriteMaps ("[heap]", say).
	name string

	// pgoff plays Linux's vm_pgoff for private anonymous memory: the
	// address at which the mapping was created (in bytes, plus the offset of
	// start into it). It stays with the pages when Mremap moves them and
	// continues when it grows them, so that two private anonymous VMAs are
	// one mapping to the user exactly when Linux would merge them: same
	// attributes and contiguous pgoff. Where their memory-file pages are not
	// contiguous too, the tree keeps them as two VMAs (see compatible).
	pgoff uint64

	// account plays Linux's VM_ACCOUNT: set on a private mapping once it
	// has been writable (by Mmap or Mprotect), and cleared only where
	// Linux clears it: an Mprotect without write of anonymous memory that
	// has no anon_vma (anonID 0; mmsim assumes anonymous memory is written
	// once mapped, so only after MREMAP_DONTUNMAP moved all of it away, or
	// in a clone of a MADV_WIPEONFORK mapping). VMAs that differ in it do
	// not merge.
	account bool

	// anonID plays the identity of Linux's anon_vma, which a private VMA
	// gets on its first write fault: Linux merges two private VMAs only if
	// they share it or one has none yet. For private file mappings mmsim
	// sees that fault (the first copy on write, anonFault). For private
	// anonymous memory it cannot see which pages a program writes, so it
	// assumes, as for nearly every program, that a mapping is written soon
	// after it is made (assignAnonID). 0 means none yet; an ID with
	// anonDetached set means none either, for a VMA Linux keeps apart
	// from its neighbours all the same (see detachedAnonID).
	anonID uint64

	// advice is the access pattern that Madvise set (unix.MADV_RANDOM or
	// MADV_SEQUENTIAL; 0 for normal): Linux keeps it in the VMA's flags, so
	// VMAs with different advice do not merge.
	advice int

	// flags holds the other VM_* bits Linux keeps in vm_flags and compares
	// when it merges VMAs (MAP_LOCKED and mlock, MAP_GROWSDOWN, the
	// fork and huge-page advice). VMAs whose flags differ do not merge.
	flags vmFlags

	// lazy is the filler of a lazily filled mapping (MmapOpts.Fill), or
	// nil. VMAs with different fillers do not merge.
	lazy *lazySource
}

// vmFlags are the bits of vma.flags, named after Linux's VM_* flags.
type vmFlags uint32

const (
	vmLocked      vmFlags = 1 << iota // VM_LOCKED: mlock, MAP_LOCKED, MCL_FUTURE
	vmLockOnFault                     // VM_LOCKONFAULT: mlock2(MLOCK_ONFAULT), MCL_ONFAULT
	vmGrowsDown                       // VM_GROWSDOWN: MAP_GROWSDOWN
	vmDontCopy                        // VM_DONTCOPY: MADV_DONTFORK
	vmWipeOnFork                      // VM_WIPEONFORK: MADV_WIPEONFORK
	vmHugePage                        // VM_HUGEPAGE: MADV_HUGEPAGE
	vmNoHugePage                      // VM_NOHUGEPAGE: MADV_NOHUGEPAGE
)

func (v *vma) length() uint64 { return uint64(v.end - v.start) }

func (v *vma) ar() hostarch.AddrRange { return hostarch.AddrRange{Start: v.start, End: v.end} }

// offAt returns the file offset of the page at addr in v.
func (v *vma) offAt(addr hostarch.Addr) uint64 { return v.off + uint64(addr-v.start) }

// pgoffAt returns the pgoff of the page at addr in v.
func (v *vma) pgoffAt(addr hostarch.Addr) uint64 { return v.pgoff + uint64(addr-v.start) }

// compatible reports whether next, which starts where v ends, is v's
// continuation as Linux merges VMAs: the same permissions, sharing, file
// (or shared-memory object) at the next offset, name and advice, and for
// private anonymous memory the next pgoff. Such VMAs are one mapping, in
// the tree as to the user (the page table backs private pages whatever
// their VMA).
func (v *vma) compatible(next *vma) bool {
	if v.end != next.start || v.perms != next.perms || v.maxPerms != next.maxPerms ||
		v.private != next.private || v.file != next.file || v.name != next.name || v.advice != next.advice || v.flags != next.flags || v.lazy != next.lazy {
		return false
	}
	if v.account != next.account || (v.anonID != 0 && next.anonID != 0 && v.anonID != next.anonID) {
		return false
	}
	if v.file != nil {
		return next.off == v.off+v.length()
	}
	return next.pgoff == v.pgoff+v.length()
}

// anonReusable reports whether Linux's first write fault in one of v and
// next (private VMAs, next starting where v ends) reuses the other's
// anon_vma (anon_vma_compatible): the same attributes but for the
// permissions (VM_ACCOUNT included), and contiguous file offset or pgoff.
func (v *vma) anonReusable(next *vma) bool {
	if v.end != next.start || !v.private || !next.private || v.file != next.file ||
		v.maxPerms != next.maxPerms || v.name != next.name || v.advice != next.advice || v.account != next.account || v.flags != next.flags {
		return false
	}
	if v.file != nil {
		return next.off == v.off+v.length()
	}
	return next.pgoff == v.pgoff+v.length()
}

func vmaLess(a, b *vma) bool { return a.start < b.start }

type vmaTree = btree.BTreeG[*vma]

func newVMATree() *vmaTree { return btree.NewG(16, vmaLess) }

// fileRef is the address space's own reference to a mapped file: a
// duplicated descriptor, so the caller may close theirs. VMAs of the same
// file opened the same way share one fileRef, which lets them merge.
type fileRef struct {
	f        *os.File
	name     string
	dev, ino uint64
	writable bool
	refs     int

	// shm is set for the shared-memory object of a shared anonymous
	// mapping (Linux's shmem file behind MAP_SHARED|MAP_ANONYMOUS): a memfd
	// of the mapping's size, made by Mmap, that lives as long as a mapping
	// of it does. The mappings show as anonymous.
	shm bool
}

type fileKey struct {
	dev, ino uint64
	writable bool
}

func (r *fileRef) fd() int { return int(r.f.Fd()) }

// openFile returns the fileRef for f, taking a new reference, and reports
// whether f is open for writing. It fails with EACCES if f is not open for
// reading (mmap requires it), EBADF if f is not an open file, ENODEV if it
// is not a regular file, EPERM if sharedWrite (the mapping is shared and
// writable) but f is write-sealed, and ENOMEM if the host refuses the
// descriptor the address space keeps (a file it maps already needs none).
//
// Preconditions: as.mu is held.
func (as *AddressSpace) openFile(f *os.File, sharedWrite bool) (*fileRef, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("addrspace: mmap of %s: %w", f.Name(), unix.EBADF)
	}
	var (
		st       unix.Stat_t
		flags    int
		seals    int
		newFD    = -1
		opErr    error
		readable bool
	)
	ctlErr := raw.Control(func(fd uintptr) {
		if opErr = unix.Fstat(int(fd), &st); opErr != nil {
			return
		}
		if flags, opErr = unix.FcntlInt(fd, unix.F_GETFL, 0); opErr != nil {
			return
		}
		if readable = flags&unix.O_ACCMODE != unix.O_WRONLY; !readable || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return
		}
		seals = fileSeals(fd)
		// A file this space maps already needs no new descriptor.
		if as.files[fileKey{uint64(st.Dev), st.Ino, mapsWritable(flags, seals)}] == nil {
			if newFD, opErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); opErr != nil {
				opErr = dupError(f.Name(), opErr)
			}
		}
	})
	if ctlErr != nil {
		return nil, fmt.Errorf("addrspace: mmap of %s: %w", f.Name(), unix.EBADF)
	}
	if opErr != nil {
		return nil, fmt.Errorf("addrspace: mmap of %s: %w", f.Name(), opErr)
	}
	if !readable {
		return nil, fmt.Errorf("addrspace: mmap of %s: file is not open for reading: %w", f.Name(), unix.EACCES)
	}
	closeNew := func() {
		if newFD >= 0 {
			unix.Close(newFD)
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		closeNew()
		return nil, fmt.Errorf("addrspace: mmap of %s: not a regular file: %w", f.Name(), unix.ENODEV)
	}
	if err := checkSeals(f, flags, seals, sharedWrite); err != nil {
		closeNew()
		return nil, err
	}
	key := fileKey{uint64(st.Dev), st.Ino, mapsWritable(flags, seals)}
	if r := as.files[key]; r != nil {
		closeNew()
		r.refs++
		return r, nil
	}
	r := &fileRef{
		f:        newFile(newFD, f.Name()),
		name:     f.Name(),
		dev:      key.dev,
		ino:      key.ino,
		writable: key.writable,
		refs:     1,
	}
	as.files[key] = r
	return r, nil
}

// dropFile releases one reference to r.
func (as *AddressSpace) dropFile(r *fileRef) {
	r.refs--
	if r.refs == 0 {
		delete(as.files, fileKey{r.dev, r.ino, r.writable})
		r.f.Close()
	}
}

func newFile(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }

// newShm returns a new shared-memory object of length bytes, with one
// reference, for a shared anonymous mapping. As on Linux, its pages past
// length (reached by growing a mapping with Mremap) fault with SIGBUS.
func (as *AddressSpace) newShm(length uint64) (*fileRef, error) {
	fd, err := unix.MemfdCreate("mmsim-shm", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("addrspace: creating a shared-memory object: %v: %w", err, unix.ENOMEM)
	}
	var st unix.Stat_t
	err = unix.Ftruncate(fd, int64(length))
	if err == nil {
		err = unix.Fstat(fd, &st)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("addrspace: sizing a shared-memory object: %v: %w", err, unix.ENOMEM)
	}
	r := &fileRef{f: newFile(fd, "/dev/zero (deleted)"), dev: uint64(st.Dev), ino: st.Ino, writable: true, refs: 1, shm: true}
	as.files[fileKey{r.dev, r.ino, true}] = r
	return r, nil
}
