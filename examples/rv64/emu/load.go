package emu

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
)

const (
	pageSize  = hostarch.PageSize
	stackSize = 256 << 10
)

func pageDown(x uint64) uint64 { return x &^ (pageSize - 1) }
func pageUp(x uint64) uint64   { return (x + pageSize - 1) &^ (pageSize - 1) }

// A segment is a checked PT_LOAD program header.
type segment struct {
	vaddr, memsz, off, filesz uint64
	perms                     hostarch.AccessType
}

// Auxiliary vector types (Linux's include/uapi/linux/auxvec.h).
const (
	atNull   = 0
	atPhdr   = 3
	atPhent  = 4
	atPhnum  = 5
	atPagesz = 6
	atEntry  = 9
	atRandom = 25
	atExecfn = 31
)

// load loads the static RV64 executable at path into sp (whose addresses
// are [MinAddr, size)) and builds its initial stack, as execve(2) does; it
// returns the entry point and the initial stack pointer. The checks and the
// stack layout are examples/elfload's; position-independent executables
// and program interpreters are refused.
func load(sp space, size uint64, path string, argv, envv []string) (entry, stackPtr uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: not a valid ELF file: %w", path, err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB || ef.Machine != elf.EM_RISCV {
		return 0, 0, fmt.Errorf("%s: not a 64-bit little-endian RISC-V ELF file (%v %v %v)", path, ef.Class, ef.Data, ef.Machine)
	}
	if ef.Type != elf.ET_EXEC {
		return 0, 0, fmt.Errorf("%s: not a static executable (type %v)", path, ef.Type)
	}
	var hdr [0x28]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return 0, 0, fmt.Errorf("%s: reading the ELF header: %w", path, err)
	}
	phoff := binary.LittleEndian.Uint64(hdr[0x20:])
	var loads []segment
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return 0, 0, fmt.Errorf("%s: dynamically linked (PT_INTERP)", path)
		}
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		i := len(loads)
		start, end := p.Vaddr, p.Vaddr+p.Memsz
		switch {
		case p.Filesz > p.Memsz:
			return 0, 0, fmt.Errorf("%s: PT_LOAD %d: p_filesz %#x > p_memsz %#x", path, i, p.Filesz, p.Memsz)
		case p.Off+p.Filesz < p.Off || p.Off+p.Filesz > uint64(st.Size()):
			return 0, 0, fmt.Errorf("%s: PT_LOAD %d: file bytes beyond the end of the file", path, i)
		case p.Filesz > 0 && p.Vaddr%pageSize != p.Off%pageSize:
			return 0, 0, fmt.Errorf("%s: PT_LOAD %d: p_vaddr %#x and p_offset %#x differ modulo the page size", path, i, p.Vaddr, p.Off)
		case i > 0 && start < loads[i-1].vaddr+loads[i-1].memsz:
			return 0, 0, fmt.Errorf("%s: PT_LOAD %d overlaps PT_LOAD %d", path, i, i-1)
		case end < start || pageDown(start) < addrspace.MinAddr || pageUp(end) > size-stackSize-pageSize || pageUp(end) < end:
			return 0, 0, fmt.Errorf("%s: PT_LOAD %d [%#x, %#x) lies outside [%#x, %#x)", path, i, start, end, addrspace.MinAddr, size-stackSize-pageSize)
		}
		loads = append(loads, segment{vaddr: p.Vaddr, memsz: p.Memsz, off: p.Off, filesz: p.Filesz, perms: hostarch.AccessType{
			Read: p.Flags&elf.PF_R != 0, Write: p.Flags&elf.PF_W != 0, Execute: p.Flags&elf.PF_X != 0,
		}})
	}
	if len(loads) == 0 {
		return 0, 0, fmt.Errorf("%s: no PT_LOAD segments", path)
	}
	if err := sp.loadSegments(f, loads); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	last := loads[len(loads)-1]
	if err := sp.setBrkStart(pageUp(last.vaddr + last.memsz)); err != nil {
		return 0, 0, fmt.Errorf("%s: brk: %w", path, err)
	}
	var phdr uint64
	for _, l := range loads {
		if l.off <= phoff && phoff < l.off+l.filesz {
			phdr = phoff - l.off + l.vaddr
			break
		}
	}
	stackPtr, err = buildStack(sp, size, argv, envv, []uint64{
		atPhdr, phdr,
		atPhent, 56, // sizeof(Elf64_Phdr)
		atPhnum, uint64(len(ef.Progs)),
		atPagesz, pageSize,
		atEntry, ef.Entry,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: building the stack: %w", path, err)
	}
	return ef.Entry, stackPtr, nil
}

// buildStack maps the stack, named "[stack]", at the top of the address
// space and lays out the initial process stack as Linux's
// create_elf_tables does (and examples/elfload): from the stack pointer
// up, argc, argv[] and NULL, envp[] and NULL, the auxiliary vector (auxv
// followed by AT_RANDOM, AT_EXECFN and AT_NULL), 16 bytes for AT_RANDOM,
// then the strings. The stack pointer is 16-byte aligned, as the RISC-V
// psABI requires. AT_RANDOM's bytes are fixed (a run is deterministic).
func buildStack(sp space, top uint64, argv, envv []string, auxv []uint64) (uint64, error) {
	low := top - stackSize
	if err := sp.mapStack(low, top); err != nil {
		return 0, err
	}
	p := top - 8
	push := func(b []byte) (uint64, error) {
		if uint64(len(b)) > p-low {
			return 0, errors.New("arguments too long for the stack")
		}
		p -= uint64(len(b))
		_, err := sp.copyOut(p, b)
		return p, err
	}
	pushStrings := func(ss []string) ([]uint64, error) {
		addrs := make([]uint64, len(ss))
		for i := len(ss) - 1; i >= 0; i-- {
			a, err := push(append([]byte(ss[i]), 0))
			if err != nil {
				return nil, err
			}
			addrs[i] = a
		}
		return addrs, nil
	}
	execfn, err := push(append([]byte(argv[0]), 0))
	if err != nil {
		return 0, err
	}
	envp, err := pushStrings(envv)
	if err != nil {
		return 0, err
	}
	argvp, err := pushStrings(argv)
	if err != nil {
		return 0, err
	}
	p &^= 15
	random, err := push([]byte("rv64-emu-random!"))
	if err != nil {
		return 0, err
	}
	words := []uint64{uint64(len(argv))}
	words = append(words, argvp...)
	words = append(words, 0)
	words = append(words, envp...)
	words = append(words, 0)
	words = append(words, auxv...)
	words = append(words, atRandom, random, atExecfn, execfn, atNull, 0)
	stackPtr := (p - uint64(8*len(words))) &^ 15
	if stackPtr < low {
		return 0, errors.New("arguments too long for the stack")
	}
	buf := make([]byte, 8*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint64(buf[8*i:], w)
	}
	if _, err := sp.copyOut(stackPtr, buf); err != nil {
		return 0, err
	}
	return stackPtr, nil
}
