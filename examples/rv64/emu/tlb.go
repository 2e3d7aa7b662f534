package emu

import (
	"encoding/binary"
	"errors"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
)

// The TLB back-end reaches guest memory directly, through the host memory
// that AddressSpace.Translate returns, cached per page in a software TLB as
// Unicorn and QEMU do:
//
//   - an access hashes its page to an entry of the TLB of its kind (read,
//     write or execute) and compares the entry's tag with the address; the
//     tag is the page address, and an access of n bytes also compares the
//     address's low log2(n) bits, which are zero in every tag, so an
//     access that is misaligned (and only such an access can cross a page)
//     misses too and takes the slow path, CopyIn or CopyOut;
//   - every instruction fetch also compares the generation the TLB was
//     filled at with the address space's Generation, which changes
//     whenever a cached translation may have become wrong (Munmap,
//     Mprotect, Clone, ...), and flushes the TLB if it differs. Loads and
//     stores need no compare of their own: their entries were checked at
//     the fetch of the same instruction, and a change since then (on
//     another goroutine) cannot make an entry show another address's
//     memory — guest address A is always host address base+A, and the
//     host protections are the guest's — only fault, which is resolved
//     as below. Execute is the one permission the host cannot enforce,
//     hence the compare at every fetch;
//   - a miss calls Translate for the access, which faults the page in (or
//     breaks copy-on-write, for a write) and checks the mapping's
//     permissions, Execute included, and fills the entries of the pages
//     around it that the translation covers;
//   - a host fault through an entry (another goroutine unmapped or
//     protected the page since the compare) panics, as
//     debug.SetPanicOnFault makes it; proc.step recovers it and asks
//     ResolveFault about the guest address: retry, or the guest's SIGSEGV
//     or SIGBUS.

// tlbSize is the number of entries of each TLB (a power of two).
const tlbSize = 256

// A tlbEntry caches the host memory of one guest page. tag is the page's
// address, or 1 (never page-aligned, so never equal) when empty.
type tlbEntry struct {
	tag  uint64
	page *[pageSize]byte
}

type tlb struct {
	as      *addrspace.AddressSpace
	gen     uint64 // the generation every entry was filled at
	r, w, x [tlbSize]tlbEntry
}

func newTLB(as *addrspace.AddressSpace) *tlb {
	t := &tlb{as: as}
	t.flush()
	return t
}

func (t *tlb) flush() {
	for i := range t.r {
		t.r[i].tag, t.w[i].tag, t.x[i].tag = 1, 1, 1
	}
	t.gen = t.as.Generation()
}

// tlbMem is the memory the interpreter sees for the TLB back-end.
type tlbMem struct{ t *tlb }

// entry returns the entry of tlb for an access of n bytes (a power of two)
// at a, or nil on a miss.
func (t *tlb) entry(tlb *[tlbSize]tlbEntry, a, n uint64) *tlbEntry {
	e := &tlb[(a/pageSize)%tlbSize]
	if a&^(pageSize-n) != e.tag {
		return nil
	}
	return e
}

func (m tlbMem) fetch(pc uint64) uint32 {
	t := m.t
	e := &t.x[(pc/pageSize)%tlbSize]
	if pc&^(pageSize-4) == e.tag && t.gen == t.as.Generation() {
		return binary.LittleEndian.Uint32(e.page[pc&(pageSize-4):])
	}
	return uint32(t.slowLoad(pc, 4, hostarch.Execute))
}

func (m tlbMem) load8(a uint64) uint64 {
	if e := m.t.entry(&m.t.r, a, 1); e != nil {
		return uint64(e.page[a&(pageSize-1)])
	}
	return m.t.slowLoad(a, 1, hostarch.Read)
}

func (m tlbMem) load16(a uint64) uint64 {
	if e := m.t.entry(&m.t.r, a, 2); e != nil {
		return uint64(binary.LittleEndian.Uint16(e.page[a&(pageSize-2):]))
	}
	return m.t.slowLoad(a, 2, hostarch.Read)
}

func (m tlbMem) load32(a uint64) uint64 {
	if e := m.t.entry(&m.t.r, a, 4); e != nil {
		return uint64(binary.LittleEndian.Uint32(e.page[a&(pageSize-4):]))
	}
	return m.t.slowLoad(a, 4, hostarch.Read)
}

func (m tlbMem) load64(a uint64) uint64 {
	if e := m.t.entry(&m.t.r, a, 8); e != nil {
		return binary.LittleEndian.Uint64(e.page[a&(pageSize-8):])
	}
	return m.t.slowLoad(a, 8, hostarch.Read)
}

func (m tlbMem) store8(a, v uint64) {
	if e := m.t.entry(&m.t.w, a, 1); e != nil {
		e.page[a&(pageSize-1)] = byte(v)
		return
	}
	m.t.slowStore(a, v, 1)
}

func (m tlbMem) store16(a, v uint64) {
	if e := m.t.entry(&m.t.w, a, 2); e != nil {
		binary.LittleEndian.PutUint16(e.page[a&(pageSize-2):], uint16(v))
		return
	}
	m.t.slowStore(a, v, 2)
}

func (m tlbMem) store32(a, v uint64) {
	if e := m.t.entry(&m.t.w, a, 4); e != nil {
		binary.LittleEndian.PutUint32(e.page[a&(pageSize-4):], uint32(v))
		return
	}
	m.t.slowStore(a, v, 4)
}

func (m tlbMem) store64(a, v uint64) {
	if e := m.t.entry(&m.t.w, a, 8); e != nil {
		binary.LittleEndian.PutUint64(e.page[a&(pageSize-8):], v)
		return
	}
	m.t.slowStore(a, v, 8)
}

// slowLoad is a TLB miss: it fills the TLB and loads, or for a misaligned
// access copies with CopyIn (which checks Read: misaligned fetches, which
// RV64 without C does not make, are not checked for Execute).
//
//go:noinline
func (t *tlb) slowLoad(a, n uint64, at hostarch.AccessType) uint64 {
	if a%n != 0 {
		var b [8]byte
		if _, err := t.as.CopyIn(ctxBackground, hostarch.Addr(a), b[:n], ioOpts); err != nil {
			panicFault(err)
		}
		return binary.LittleEndian.Uint64(b[:])
	}
	e := t.fill(a, at)
	var b [8]byte
	copy(b[:n], e.page[a%pageSize:])
	return binary.LittleEndian.Uint64(b[:])
}

//go:noinline
func (t *tlb) slowStore(a, v, n uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	if a%n != 0 {
		if _, err := t.as.CopyOut(ctxBackground, hostarch.Addr(a), b[:n], ioOpts); err != nil {
			panicFault(err)
		}
		return
	}
	e := t.fill(a, hostarch.Write)
	copy(e.page[a%pageSize:a%pageSize+n], b[:n])
}

// tlbFillPages bounds the pages one miss fills on each side of the
// address, so that a miss in a large mapping does not evict the whole TLB.
const tlbFillPages = tlbSize / 4

// fill translates an access at to a, fills the TLB entries of the pages of
// the translation near a, and returns a's. It panics with the guest's
// fault.
func (t *tlb) fill(a uint64, at hostarch.AccessType) *tlbEntry {
	if t.gen != t.as.Generation() {
		t.flush()
	}
	tr, err := t.as.Translate(hostarch.Addr(a), at)
	if err != nil {
		panicFault(err)
	}
	if tr.Gen != t.gen {
		t.flush()
		t.gen = tr.Gen
	}
	page := pageDown(a)
	lo := max(uint64(tr.Range.Start), page-min(page, tlbFillPages*pageSize))
	hi := min(uint64(tr.Range.End), page+tlbFillPages*pageSize)
	for p := lo; p < hi; p += pageSize {
		off := p - uint64(tr.Range.Start)
		pg := (*[pageSize]byte)(tr.Mem[off : off+pageSize])
		i := (p / pageSize) % tlbSize
		t.r[i] = tlbEntry{tag: p, page: pg}
		if tr.Perms.Write {
			t.w[i] = tlbEntry{tag: p, page: pg}
		}
		if tr.Perms.Execute {
			t.x[i] = tlbEntry{tag: p, page: pg}
		}
	}
	var e *tlbEntry
	switch {
	case at.Write:
		e = &t.w[(page/pageSize)%tlbSize]
	case at.Execute:
		e = &t.x[(page/pageSize)%tlbSize]
	default:
		e = &t.r[(page/pageSize)%tlbSize]
	}
	if e.tag != page {
		// Translate promised the access; the run excludes only pages
		// that it does not.
		panic(errors.New("rv64: Translate returned a translation without the access asked for"))
	}
	return e
}

// resolveHostFault handles a host fault at host address host raised by the
// instruction at c.pc, which has changed nothing: it works out the access
// and the guest address the instruction computed — its load's or store's
// (x[rs1] plus the offset), or, if the instruction cannot be read or is
// neither, its fetch at pc — and asks ResolveFault about that address, as
// its doc says to, rather than about the host's report (qemu-user reports
// SIGBUS at a wrong address). It returns nil if the instruction may be
// retried, the guest's fault otherwise, and false if host is not in the
// address space (a fault of the emulator's own: the caller re-panics).
func (t *tlb) resolveHostFault(host uintptr, c *cpu) (*addrspace.FaultError, bool) {
	if _, ok := t.as.GuestAddr(host); !ok {
		return nil, false
	}
	t.flush()
	g, at := hostarch.Addr(c.pc), hostarch.Execute
	var b [4]byte
	if _, err := t.as.CopyIn(ctxBackground, hostarch.Addr(c.pc), b[:], ioOpts); err == nil {
		in := binary.LittleEndian.Uint32(b[:])
		rs1 := c.x[(in>>15)&31]
		switch in & 0x7f {
		case 0x03:
			g, at = hostarch.Addr(rs1+uint64(int64(int32(in))>>20)), hostarch.Read
		case 0x23:
			imm := uint64(int64(int32(in&0xfe000000))>>20) | uint64((in>>7)&31)
			g, at = hostarch.Addr(rs1+imm), hostarch.Write
		}
	}
	err := t.as.ResolveFault(g, at)
	if err == nil {
		return nil, true
	}
	var fe *addrspace.FaultError
	if !errors.As(err, &fe) {
		// Closed under the guest: no memory at all.
		fe = &addrspace.FaultError{Addr: g, Access: at, Reason: addrspace.FaultUnmapped}
	}
	return fe, true
}
