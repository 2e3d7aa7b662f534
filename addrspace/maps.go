package addrspace

import (
	"bufio"
	"fmt"
	"io"

	"github.com/mmsim/mmsim/hostarch"
)

// A Mapping describes one mapping of an address space, as a line of
// /proc/PID/maps does: what Linux keeps as one VMA. Neighbours are one
// mapping exactly when Linux would merge them: the same permissions,
// sharing, name and Madvise access pattern, the same file (or shared-memory
// object) at contiguous offsets or, for private anonymous memory, contiguous
// pgoff (the address it was first mapped at, which moves with Mremap), and
// for private mappings the same VM_ACCOUNT and anon_vma (see the vma type).
type Mapping struct {
	// Range is the mapping's simulated address range.
	Range hostarch.AddrRange

	// Perms are the application's permissions; MaxPerms the most Mprotect
	// may grant.
	Perms, MaxPerms hostarch.AccessType

	// Private is true for MAP_PRIVATE mappings.
	Private bool

	// FileName is the name of the mapped file (as given to os.Open), or ""
	// for anonymous memory.
	FileName string

	// Offset is the file offset of Range.Start: for a shared anonymous
	// mapping, its offset in its shared-memory object (as Linux shows it);
	// 0 for private anonymous memory.
	Offset uint64

	// Dev and Inode identify the mapped file (0 for anonymous memory).
	Dev, Inode uint64

	// Name is the label of an anonymous mapping (MmapOpts.Name; "[heap]"
	// for the heap Brk manages), or "".
	Name string

	// GrowsDown is set for a mapping that grows down (MmapOpts.GrowsDown,
	// Linux's VM_GROWSDOWN).
	GrowsDown bool

	// Locked is set for locked mappings (Mlock, Mlockall, MmapOpts.Locked:
	// Linux's VM_LOCKED), and LockOnFault for those locked on fault
	// (VM_LOCKONFAULT).
	Locked, LockOnFault bool
}

// Mappings returns the address space's mappings in address order. It
// returns nil after Close.
func (as *AddressSpace) Mappings() []Mapping {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return nil
	}
	return as.mappingsLocked()
}

// mappingsLocked lists the mappings, showing VMAs that differ only in
// whether their max view is mapped yet as one.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) mappingsLocked() []Mapping {
	ms := make([]Mapping, 0, as.vmas.Len())
	var prev *vma
	as.vmas.Ascend(func(v *vma) bool {
		m := describe(v)
		if prev != nil && prev.compatible(v) {
			ms[len(ms)-1].Range.End = m.Range.End
		} else {
			ms = append(ms, m)
		}
		prev = v
		return true
	})
	return ms
}

// describe returns the Mapping that v alone would be.
func describe(v *vma) Mapping {
	m := Mapping{
		Range:    v.ar(),
		Perms:    v.perms,
		MaxPerms: v.maxPerms,
		Private:  v.private,
		Name:     v.name,

		GrowsDown:   v.flags&vmGrowsDown != 0,
		Locked:      v.flags&vmLocked != 0,
		LockOnFault: v.flags&vmLockOnFault != 0,
	}
	switch {
	case v.file != nil && v.file.shm:
		m.Offset = v.off
	case v.file != nil:
		m.FileName, m.Offset, m.Dev, m.Inode = v.file.name, v.off, v.file.dev, v.file.ino
	}
	return m
}

// WriteMaps writes the address space's mappings to w in the format of
// Linux's /proc/PID/maps: one line per mapping,
//
//	start-end perms offset major:minor inode   path
//
// where perms is rwx and p (private) or s (shared). As on Linux, shared
// anonymous mappings are named "/dev/zero (deleted)", a newline in a file's
// path is shown as \012, and MmapOpts.Name is shown as "[anon:NAME]"
// ("[anon_shmem:NAME]" if shared) unless it is "[stack]", "[vdso]" or
// "[vvar]" (see MmapOpts.Name), or "[heap]" (Brk). It
// returns the first error from w, or ErrClosed after Close.
func (as *AddressSpace) WriteMaps(w io.Writer) error {
	if as.closed.Load() {
		return errClosedMgmt
	}
	bw := bufio.NewWriter(w)
	for _, m := range as.Mappings() {
		bw.WriteString(mapsLine(m))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// mapsLine formats m as a line of /proc/PID/maps, without the newline.
func mapsLine(m Mapping) string {
	ps := byte('s')
	if m.Private {
		ps = 'p'
	}
	line := fmt.Sprintf("%08x-%08x %s%c %08x %02x:%02x %d ",
		uint64(m.Range.Start), uint64(m.Range.End), m.Perms, ps, m.Offset,
		devMajor(m.Dev), devMinor(m.Dev), m.Inode)
	if name := mapsName(m); name != "" {
		// Linux pads the fixed fields to 73 columns before the name.
		for len(line) < 73 {
			line += " "
		}
		line += name
	}
	return line
}

// devMajor and devMinor split a Linux dev_t (see glibc's gnu_dev_major).
func devMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func devMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }
