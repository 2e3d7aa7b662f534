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

	// mem is the memory-file offset of start, for anonymous mappings: page
	// start+i is backed by memory-file page mem+i, unless
	// AddressSpace.override names another page for it.
	mem uint64

	// wp is set on private mappings shared with a clone: their pages are
	// write-protected on the host until a write fault shows that the page is
	// this address space's alone (or copies it).
	wp bool

	// name labels an anonymous mapping in WriteMaps ("[heap]", say).
	name string

	// maxMapped is set once the max view maps v's pages. The max view serves
	// only IOOpts.IgnorePermissions accesses and copy-on-write copies, so it
	// is mapped on first use: a plain Mmap+Munmap then costs two host
	// mapping calls instead of four. Until then v's range of the max view is
	// PROT_NONE, and a fault there maps it (ensureMax). VMAs that differ in
	// maxMapped do not merge (Mappings still shows them as one), so that the
	// flag always describes the whole VMA.
	maxMapped bool
}

func (v *vma) usesMem() bool { return v.file == nil }

// cow reports whether a write to v's pages may need fault resolution
// (copy-on-write) before it can proceed: pages of private file mappings and
// private pages shared with a clone are write-protected on the host.
func (v *vma) cow() bool { return v.private && (v.file != nil || v.wp) }

func (v *vma) length() uint64 { return uint64(v.end - v.start) }

func (v *vma) ar() hostarch.AddrRange { return hostarch.AddrRange{Start: v.start, End: v.end} }

// memAt returns the memory-file offset of the page at addr in v.
func (v *vma) memAt(addr hostarch.Addr) uint64 { return v.mem + uint64(addr-v.start) }

// offAt returns the file offset of the page at addr in v.
func (v *vma) offAt(addr hostarch.Addr) uint64 { return v.off + uint64(addr-v.start) }

// canMerge reports whether next, which starts where v ends, can join v.
func (v *vma) canMerge(next *vma) bool {
	return v.compatible(next) && v.maxMapped == next.maxMapped
}

// compatible reports whether next, which starts where v ends, is v's
// continuation in all but whether their max views are mapped yet: such
// VMAs are one mapping to the user (Mappings, Mremap).
func (v *vma) compatible(next *vma) bool {
	if v.end != next.start || v.perms != next.perms || v.maxPerms != next.maxPerms ||
		v.private != next.private || v.file != next.file || v.wp != next.wp || v.name != next.name {
		return false
	}
	if v.file != nil && next.off != v.off+v.length() {
		return false
	}
	if v.usesMem() && next.mem != v.mem+v.length() {
		return false
	}
	return true
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
