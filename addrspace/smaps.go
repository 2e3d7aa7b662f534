package addrspace

import (
	"bytes"
	"io"
	"strconv"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// WriteSmaps writes the address space's mappings to w in the format of
// Linux's /proc/PID/smaps (Linux 6.x, without memory protection keys): for
// each mapping, its WriteMaps line, then one line per field with Linux's
// names, order and widths ("Rss:" padded to 16 columns, the value in 8,
// then " kB"), then "THPeligible:" and "VmFlags:" with Linux's two-letter
// codes in Linux's order (rd wr ex sh mr mw me ms gd lo sr rr dc lf ac wf hg
// nh, those mmsim keeps). The values are mmsim's:
//
//   - Size is the mapping's length; KernelPageSize and MMUPageSize the page
//     size.
//   - Rss counts the pages the page table backs whose memory the host
//     holds: a private page of the space's own (private anonymous memory
//     once touched, for reading or writing, and private copies) while the
//     memory file holds it, and a page of a file or shared-memory object
//     while a view maps it and it is in the host's page cache. (Linux does
//     not count anonymous pages only read, which map its zero page; and
//     mmsim maps a shared or file mapping's pages around a fault, as Linux's
//     fault-around does, but not exactly the same ones.)
//   - Private pages that a clone also references (copy-on-write after
//     Clone) are Shared_Dirty, the others Private_Dirty; both are
//     Anonymous. Pages of files and shared-memory objects are Private_Clean:
//     mmsim sees neither which of them the program wrote (its writes go to
//     the page cache) nor other processes' mappings of them.
//   - Pss divides each page by the number of address spaces that reference
//     it, as Linux divides by the page's map count (in Linux's fixed-point
//     arithmetic); Pss_Dirty is the part of Pss that is dirty.
//   - Referenced equals Rss; Locked equals Pss for locked mappings, 0
//     otherwise.
//   - KSM, LazyFree (MADV_FREE drops pages at once), AnonHugePages,
//     ShmemPmdMapped, FilePmdMapped, Shared_Hugetlb, Private_Hugetlb, Swap
//     and SwapPss are 0, and THPeligible is 0: mmsim uses base pages only
//     and never swaps.
//
// It returns the first error from w, or ErrClosed after Close. Nothing is
// written to w while the address space's lock is held.
func (as *AddressSpace) WriteSmaps(w io.Writer) error {
	var b bytes.Buffer
	as.mu.Lock()
	if as.closed.Load() {
		as.mu.Unlock()
		return errClosedMgmt
	}
	for _, m := range as.mappingsLocked() {
		as.writeSmap(&b, m)
	}
	as.mu.Unlock()
	_, err := w.Write(b.Bytes())
	return err
}

// smapStats are the counts of one mapping's smaps entry, in bytes; pss and
// pssDirty are in bytes shifted left by pssShift, as Linux keeps them.
type smapStats struct {
	rss, pss, pssDirty                                   uint64
	sharedClean, sharedDirty, privateClean, privateDirty uint64
	anonymous                                            uint64
}

// pssShift is Linux's PSS_SHIFT: the fixed-point precision of Pss.
const pssShift = 12

// writeSmap appends m's smaps entry to b.
//
// Preconditions: as.mu is held; m is one of mappingsLocked's.
func (as *AddressSpace) writeSmap(b *bytes.Buffer, m Mapping) {
	v := as.find(m.Range.Start)
	var st smapStats
	as.pt.ResidentEach(uint64(m.Range.Start), uint64(m.Range.End), func(_ uint64, owned bool, off uint64) {
		const ps = hostarch.PageSize
		st.rss += ps
		if !owned {
			st.pss += ps << pssShift
			st.privateClean += ps
			return
		}
		n := uint64(max(as.mem.Refs(off), 1))
		p := (ps << pssShift) / n
		st.pss += p
		st.pssDirty += p
		st.anonymous += ps
		if n > 1 {
			st.sharedDirty += ps
		} else {
			st.privateDirty += ps
		}
	})
	locked := uint64(0)
	if v.flags&vmLocked != 0 {
		locked = st.pss
	}
	b.WriteString(mapsLine(m))
	b.WriteByte('\n')
	kb := func(name string, bytes uint64) { smapLine(b, name, bytes>>10, " kB\n") }
	kb("Size", uint64(m.Range.Length()))
	kb("KernelPageSize", hostarch.PageSize)
	kb("MMUPageSize", hostarch.PageSize)
	kb("Rss", st.rss)
	kb("Pss", st.pss>>pssShift)
	kb("Pss_Dirty", st.pssDirty>>pssShift)
	kb("Shared_Clean", st.sharedClean)
	kb("Shared_Dirty", st.sharedDirty)
	kb("Private_Clean", st.privateClean)
	kb("Private_Dirty", st.privateDirty)
	kb("Referenced", st.rss)
	kb("Anonymous", st.anonymous)
	for _, name := range []string{"KSM", "LazyFree", "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped",
		"Shared_Hugetlb", "Private_Hugetlb", "Swap", "SwapPss"} {
		kb(name, 0)
	}
	kb("Locked", locked>>pssShift)
	smapLine(b, "THPeligible", 0, "\n")
	b.WriteString("VmFlags: ")
	writeVMFlags(b, v)
	b.WriteByte('\n')
}

// smapLine appends "name:" padded to 16 columns, v right-aligned in 8, and
// unit: fmt's "%-16s%8d" without its allocations.
func smapLine(b *bytes.Buffer, name string, v uint64, unit string) {
	var num [20]byte
	digits := strconv.AppendUint(num[:0], v, 10)
	b.WriteString(name)
	b.WriteByte(':')
	for i := len(name) + 1; i < 16; i++ {
		b.WriteByte(' ')
	}
	for i := len(digits); i < 8; i++ {
		b.WriteByte(' ')
	}
	b.Write(digits)
	b.WriteString(unit)
}

// writeVMFlags appends v's VmFlags codes, each followed by a space, in the
// order of Linux's show_smap_vma_flags (the order of the VM_* bits).
func writeVMFlags(b *bytes.Buffer, v *vma) {
	shared := !v.private
	// VM_SHARED: Linux drops it for a shared mapping of a file not open for
	// writing (a shared-memory object always is). (For a write-sealed memfd
	// open for writing Linux keeps it; mmsim's file reference does not
	// record the open mode apart from the seals, and shows it without.)
	sh := shared && v.file != nil && v.file.writable
	for _, f := range [...]struct {
		on   bool
		code string
	}{
		{v.perms.Read, "rd"}, {v.perms.Write, "wr"}, {v.perms.Execute, "ex"}, {sh, "sh"},
		{v.maxPerms.Read, "mr"}, {v.maxPerms.Write, "mw"}, {v.maxPerms.Execute, "me"}, {shared, "ms"},
		{v.flags&vmGrowsDown != 0, "gd"}, {v.flags&vmLocked != 0, "lo"},
		{v.advice == unix.MADV_SEQUENTIAL, "sr"}, {v.advice == unix.MADV_RANDOM, "rr"},
		{v.flags&vmDontCopy != 0, "dc"}, {v.flags&vmLockOnFault != 0, "lf"}, {v.account, "ac"},
		{v.flags&vmWipeOnFork != 0, "wf"}, {v.flags&vmHugePage != 0, "hg"}, {v.flags&vmNoHugePage != 0, "nh"},
	} {
		if f.on {
			b.WriteString(f.code)
			b.WriteByte(' ')
		}
	}
}
