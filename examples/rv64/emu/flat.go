package emu

import (
	"encoding/binary"
	"os"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// flatSpace is the baseline back-end: guest memory is one []byte holding
// the guest addresses [addrspace.MinAddr, size), and the system calls do
// the trivial thing — mmap hands out fresh zeroed memory below the stack,
// munmap and mprotect only check their arguments (nothing is ever unmapped
// or protected), brk moves a number, fork copies the slice. An access
// outside the slice is a fault (reported as FaultUnmapped, as mmsim would);
// nothing else is.
type flatSpace struct {
	mem      []byte // mem[0] is guest address addrspace.MinAddr
	brkStart uint64
	brkCur   uint64
	mmapLow  uint64 // mmap hands out memory downward from here
	stackLow uint64 // bottom of the stack (mmap's ceiling)
}

const flatBase = addrspace.MinAddr

func newFlat(size uint64) *flatSpace {
	return &flatSpace{mem: make([]byte, size-flatBase)}
}

// flatMem is the memory the interpreter sees: the slice by value, so that
// each access is a subtraction, a compare and a load.
type flatMem struct{ b []byte }

// at returns the offset in b of the n bytes at guest address a, or panics
// with the fault. Preconditions: n <= len(b).
func (m flatMem) at(a, n uint64, at hostarch.AccessType) uint64 {
	off := a - flatBase // below flatBase wraps around to a huge offset
	if off > uint64(len(m.b))-n {
		flatFault(a, at)
	}
	return off
}

// flatFault panics with the fault at a; apart so that the accessors stay
// small enough to inline.
//
//go:noinline
func flatFault(a uint64, at hostarch.AccessType) {
	panic(&addrspace.FaultError{Addr: hostarch.Addr(a), Access: at, Reason: addrspace.FaultUnmapped})
}

func (m flatMem) fetch(pc uint64) uint32 {
	return binary.LittleEndian.Uint32(m.b[m.at(pc, 4, hostarch.Execute):])
}
func (m flatMem) load8(a uint64) uint64 { return uint64(m.b[m.at(a, 1, hostarch.Read)]) }
func (m flatMem) load16(a uint64) uint64 {
	return uint64(binary.LittleEndian.Uint16(m.b[m.at(a, 2, hostarch.Read):]))
}
func (m flatMem) load32(a uint64) uint64 {
	return uint64(binary.LittleEndian.Uint32(m.b[m.at(a, 4, hostarch.Read):]))
}
func (m flatMem) load64(a uint64) uint64 {
	return binary.LittleEndian.Uint64(m.b[m.at(a, 8, hostarch.Read):])
}
func (m flatMem) store8(a, v uint64) { m.b[m.at(a, 1, hostarch.Write)] = byte(v) }
func (m flatMem) store16(a, v uint64) {
	binary.LittleEndian.PutUint16(m.b[m.at(a, 2, hostarch.Write):], uint16(v))
}
func (m flatMem) store32(a, v uint64) {
	binary.LittleEndian.PutUint32(m.b[m.at(a, 4, hostarch.Write):], uint32(v))
}
func (m flatMem) store64(a, v uint64) {
	binary.LittleEndian.PutUint64(m.b[m.at(a, 8, hostarch.Write):], v)
}

func (s *flatSpace) run(c *cpu, budget int) stop { return execute(c, flatMem{s.mem}, budget) }

// span returns the slice of mem holding [a, a+n), or a fault for the first
// byte outside it.
func (s *flatSpace) span(a uint64, n int, at hostarch.AccessType) ([]byte, int, error) {
	off := a - flatBase
	if off >= uint64(len(s.mem)) {
		return nil, 0, &addrspace.FaultError{Addr: hostarch.Addr(a), Access: at, Reason: addrspace.FaultUnmapped}
	}
	b := s.mem[off:]
	if uint64(n) <= uint64(len(b)) {
		return b[:n], n, nil
	}
	return b, len(b), &addrspace.FaultError{Addr: hostarch.Addr(a + uint64(len(b))), Access: at, Reason: addrspace.FaultUnmapped}
}

func (s *flatSpace) copyIn(a uint64, dst []byte) (int, error) {
	b, _, err := s.span(a, len(dst), hostarch.Read)
	return copy(dst, b), err
}

func (s *flatSpace) copyOut(a uint64, src []byte) (int, error) {
	b, _, err := s.span(a, len(src), hostarch.Write)
	return copy(b, src), err
}

func (s *flatSpace) loadSegments(f *os.File, loads []segment) error {
	for _, p := range loads {
		b, _, err := s.span(p.vaddr, int(p.memsz), hostarch.Write)
		if err != nil {
			return err
		}
		if _, err := f.ReadAt(b[:p.filesz], int64(p.off)); err != nil {
			return err
		}
	}
	return nil
}

func (s *flatSpace) mapStack(low, high uint64) error {
	s.stackLow = low
	s.mmapLow = low - pageSize // a guard page, as between Linux's stack and mmap area
	return nil
}

func (s *flatSpace) setBrkStart(a uint64) error {
	s.brkStart, s.brkCur = a, a
	return nil
}

func (s *flatSpace) brk(a uint64) uint64 {
	if a < s.brkStart || pageUp(a) > s.mmapLow || pageUp(a) < a {
		return s.brkCur
	}
	if old := pageUp(s.brkCur); pageUp(a) > old {
		clear(s.mem[old-flatBase : pageUp(a)-flatBase])
	}
	s.brkCur = a
	return a
}

func (s *flatSpace) mmap(a, length uint64, prot, flags int) (uint64, error) {
	if err := checkMmap(a, length, flags); err != nil {
		return 0, err
	}
	n := pageUp(length)
	if flags&mapFixed != 0 {
		if a < flatBase {
			return 0, unix.EPERM // below mmap_min_addr
		}
		if a+n > uint64(len(s.mem))+flatBase || a+n < a {
			return 0, unix.ENOMEM
		}
	} else {
		if s.mmapLow < n || s.mmapLow-n < pageUp(s.brkCur)+pageSize {
			return 0, unix.ENOMEM
		}
		s.mmapLow -= n
		a = s.mmapLow
	}
	clear(s.mem[a-flatBase : a-flatBase+n])
	return a, nil
}

func (s *flatSpace) munmap(a, length uint64) error { return checkRange(a, length) }

func (s *flatSpace) mprotect(a, length uint64, prot int) error {
	if prot&^(protRead|protWrite|protExec) != 0 {
		return unix.EINVAL
	}
	return checkRange(a, length)
}

func (s *flatSpace) fork() (space, error) {
	c := *s
	c.mem = append([]byte(nil), s.mem...)
	return &c, nil
}

func (s *flatSpace) close() {}
