package emu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

// asSpace is guest memory in an mmsim AddressSpace; the system calls are
// its Mmap, Munmap, Mprotect, Brk and Clone.
type asSpace struct {
	as   *addrspace.AddressSpace
	kind Backend
	ctx  context.Context
	buf  [8]byte // copyMem's bounce buffer
	tlb  *tlb    // for the TLB back-end
}

var (
	ctxBackground = context.Background()
	ioOpts        = usermem.IOOpts{}
)

func newAS(size uint64, kind Backend) (*asSpace, error) {
	as, err := addrspace.New(addrspace.Options{Size: size})
	if err != nil {
		return nil, err
	}
	return newASSpace(as, kind), nil
}

func newASSpace(as *addrspace.AddressSpace, kind Backend) *asSpace {
	s := &asSpace{as: as, kind: kind, ctx: ctxBackground}
	if kind == TLB {
		s.tlb = newTLB(as)
	}
	return s
}

// copyMem accesses guest memory with the AddressSpace's CopyIn and CopyOut
// (the usermem.IO interface): every access, instruction fetches included,
// is a call that walks to the page and copies through a bounce buffer.
// Fetches check Read, not Execute: usermem.IO has no execute access.
type copyMem struct{ s *asSpace }

func (m copyMem) in(a uint64, n int) uint64 {
	b := m.s.buf[:n]
	if _, err := m.s.as.CopyIn(m.s.ctx, hostarch.Addr(a), b, usermem.IOOpts{}); err != nil {
		panicFault(err)
	}
	var w [8]byte
	copy(w[:], b)
	return binary.LittleEndian.Uint64(w[:])
}

func (m copyMem) out(a, v uint64, n int) {
	b := m.s.buf[:n]
	binary.LittleEndian.PutUint64(m.s.buf[:], v)
	if _, err := m.s.as.CopyOut(m.s.ctx, hostarch.Addr(a), b, usermem.IOOpts{}); err != nil {
		panicFault(err)
	}
}

// panicFault panics with err's *addrspace.FaultError, or with err itself
// if it has none (the address space was closed under the guest).
func panicFault(err error) {
	var fe *addrspace.FaultError
	if errors.As(err, &fe) {
		panic(fe)
	}
	panic(err)
}

func (m copyMem) fetch(pc uint64) uint32 { return uint32(m.in(pc, 4)) }
func (m copyMem) load8(a uint64) uint64  { return m.in(a, 1) }
func (m copyMem) load16(a uint64) uint64 { return m.in(a, 2) }
func (m copyMem) load32(a uint64) uint64 { return m.in(a, 4) }
func (m copyMem) load64(a uint64) uint64 { return m.in(a, 8) }
func (m copyMem) store8(a, v uint64)     { m.out(a, v, 1) }
func (m copyMem) store16(a, v uint64)    { m.out(a, v, 2) }
func (m copyMem) store32(a, v uint64)    { m.out(a, v, 4) }
func (m copyMem) store64(a, v uint64)    { m.out(a, v, 8) }

func (s *asSpace) run(c *cpu, budget int) stop {
	if s.tlb != nil {
		return execute(c, tlbMem{s.tlb}, budget)
	}
	return execute(c, copyMem{s}, budget)
}

func (s *asSpace) copyIn(a uint64, dst []byte) (int, error) {
	return s.as.CopyIn(s.ctx, hostarch.Addr(a), dst, usermem.IOOpts{})
}

func (s *asSpace) copyOut(a uint64, src []byte) (int, error) {
	return s.as.CopyOut(s.ctx, hostarch.Addr(a), src, usermem.IOOpts{})
}

// loadSegments maps the PT_LOAD segments as binfmt_elf's elf_load does
// (and as examples/elfload does, whose mapSegments this is):
//
// Segment i covers [p_vaddr, p_vaddr+p_memsz): its first p_filesz bytes
// come from the file at p_offset, the rest (the bss) is zeros. mmap works
// in whole pages, so the file part is mapped from the page containing
// p_vaddr, and the bytes of its last page after p_filesz, which hold
// whatever follows in the file, are zeroed if they belong to the bss. Pages
// wholly in the bss are anonymous memory. A later segment sharing a page
// with an earlier one replaces that page (MAP_FIXED), as on Linux.
func (s *asSpace) loadSegments(f *os.File, loads []segment) error {
	var mappedEnd uint64
	for i, p := range loads {
		bssStart := p.vaddr + p.filesz
		anonStart := pageUp(bssStart)
		if p.filesz > 0 {
			start := pageDown(p.vaddr)
			if _, err := s.as.Mmap(addrspace.MmapOpts{
				Addr: hostarch.Addr(start), Length: bssStart - start, Fixed: true,
				Perms: p.perms, Private: true, File: f, Offset: p.off - (p.vaddr - start),
			}); err != nil {
				return fmt.Errorf("PT_LOAD %d: %w", i, err)
			}
		} else if pageDown(p.vaddr) >= mappedEnd {
			anonStart = pageDown(p.vaddr)
		}
		memEnd := p.vaddr + p.memsz
		if p.memsz > p.filesz && anonStart > bssStart {
			// The segment may be read-only: write underneath, as a kernel
			// does.
			n := min(anonStart, memEnd) - bssStart
			if _, err := s.as.ZeroOut(s.ctx, hostarch.Addr(bssStart), int64(n), usermem.IOOpts{IgnorePermissions: true}); err != nil {
				return fmt.Errorf("PT_LOAD %d: zeroing the bss: %w", i, err)
			}
		}
		if end := pageUp(memEnd); end > anonStart {
			if _, err := s.as.Mmap(addrspace.MmapOpts{
				Addr: hostarch.Addr(anonStart), Length: end - anonStart, Fixed: true,
				Perms: p.perms, Private: true,
			}); err != nil {
				return fmt.Errorf("PT_LOAD %d: bss: %w", i, err)
			}
		}
		mappedEnd = max(mappedEnd, pageUp(memEnd))
	}
	return nil
}

func (s *asSpace) mapStack(low, high uint64) error {
	_, err := s.as.Mmap(addrspace.MmapOpts{
		Addr: hostarch.Addr(low), Length: high - low, Fixed: true,
		Perms: hostarch.ReadWrite, Private: true, Name: "[stack]",
	})
	return err
}

func (s *asSpace) setBrkStart(a uint64) error { return s.as.SetBrkStart(hostarch.Addr(a)) }

func (s *asSpace) brk(a uint64) uint64 {
	// On failure Brk returns the current break, which is what brk(2)
	// returns too.
	cur, _ := s.as.Brk(hostarch.Addr(a))
	return uint64(cur)
}

func (s *asSpace) mmap(a, length uint64, prot, flags int) (uint64, error) {
	if err := checkMmap(a, length, flags); err != nil {
		return 0, err
	}
	addr, err := s.as.Mmap(addrspace.MmapOpts{
		Addr:    hostarch.Addr(a),
		Length:  length,
		Fixed:   flags&mapFixed != 0,
		Perms:   perms(prot),
		Private: flags&mapPrivate != 0,
	})
	return uint64(addr), err
}

func (s *asSpace) munmap(a, length uint64) error {
	return s.as.Munmap(hostarch.Addr(a), length)
}

func (s *asSpace) mprotect(a, length uint64, prot int) error {
	if prot&^(protRead|protWrite|protExec) != 0 {
		return fmt.Errorf("mprotect: unknown bits in %#x: %w", prot, errEINVAL)
	}
	return s.as.Mprotect(hostarch.Addr(a), length, perms(prot))
}

func (s *asSpace) fork() (space, error) {
	child, err := s.as.Clone()
	if err != nil {
		return nil, err
	}
	return newASSpace(child, s.kind), nil
}

func (s *asSpace) close() { s.as.Close() }
