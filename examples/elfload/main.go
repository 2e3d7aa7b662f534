// Command elfload loads an ELF executable into a simulated address space
// the way a userspace kernel's execve(2) does (after Linux's binfmt_elf): it
// maps each PT_LOAD segment privately from the file with the segment's
// permissions, zero-fills and maps the bss, puts the start of the heap
// (brk) at the first page after the last segment, maps the stack (named
// "[stack]") at the top, loads the program interpreter its PT_INTERP names
// (the dynamic linker, ld.so) at a base of its own below the stack, builds
// the initial process stack (argc, argv, envp, auxv — with AT_BASE, the
// interpreter's base, and AT_PHDR and AT_ENTRY, the program's — and the
// strings they point to), and prints the address space as /proc/PID/maps
// would, the entry point (the interpreter's, if there is one), the break
// and the stack pointer. Nothing runs; a CPU emulator would start at the
// entry point with %rsp set to the stack pointer.
//
//	go run ./examples/elfload                 # loads its own executable
//	go run ./examples/elfload /bin/true a b   # loads /bin/true, argv "/bin/true a b"
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("elfload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.Uint64("size", addrspace.DefaultSize, "size of the simulated address space in bytes")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: elfload [-size BYTES] [ELF-FILE [ARG...]]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	argv := fs.Args()
	if len(argv) == 0 {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "elfload:", err)
			return 1
		}
		argv = []string{self}
	}
	img, err := load(argv[0], *size, argv, defaultEnv, rand.Reader)
	if err != nil {
		fmt.Fprintln(stderr, "elfload:", err)
		return 1
	}
	defer img.as.Close()
	if err := img.print(stdout); err != nil {
		fmt.Fprintln(stderr, "elfload:", err)
		return 1
	}
	return 0
}

// defaultEnv is the environment given to the loaded program.
var defaultEnv = []string{"HOME=/", "PATH=/usr/bin:/bin"}

// Auxiliary vector types (Linux's include/uapi/linux/auxvec.h).
const (
	atNull   = 0
	atPhdr   = 3
	atPhent  = 4
	atPhnum  = 5
	atPagesz = 6
	atBase   = 7
	atEntry  = 9
	atRandom = 25
	atExecfn = 31
)

var auxvNames = map[uint64]string{
	atNull: "AT_NULL", atPhdr: "AT_PHDR", atPhent: "AT_PHENT", atPhnum: "AT_PHNUM",
	atPagesz: "AT_PAGESZ", atBase: "AT_BASE", atEntry: "AT_ENTRY", atRandom: "AT_RANDOM", atExecfn: "AT_EXECFN",
}

const (
	pageSize  = hostarch.PageSize
	stackSize = 128 << 10
	// stackGap is what Linux keeps free below the stack for it to grow
	// into before the mmap area begins (mmap_base's minimum gap, 128 MiB):
	// the interpreter goes below it, where the space allows.
	stackGap = 128 << 20
	// pathMax is Linux's PATH_MAX, the longest PT_INTERP it accepts
	// (counting the NUL).
	pathMax = 4096
)

func pageDown(x uint64) uint64 { return x &^ (pageSize - 1) }
func pageUp(x uint64) uint64   { return (x + pageSize - 1) &^ (pageSize - 1) }

// An image is a loaded program: its address space, where it starts and
// its initial stack pointer.
type image struct {
	as    *addrspace.AddressSpace
	bias  uint64        // added to every p_vaddr (0 for ET_EXEC)
	entry hostarch.Addr // where execution starts: the interpreter's entry, or the program's
	// progEntry is the program's e_entry + bias (AT_ENTRY).
	progEntry hostarch.Addr
	// interp is the interpreter's path ("" for none), interpBias its load
	// bias (AT_BASE).
	interp     string
	interpBias uint64
	brk        hostarch.Addr // the start of the heap
	sp         hostarch.Addr // points at argc
}

// An object is an ELF file being loaded: the program or its interpreter.
type object struct {
	path  string
	f     *os.File
	ef    *elf.File
	phoff uint64 // e_phoff, which debug/elf does not export (AT_PHDR needs it)
	loads []elf.ProgHeader
}

// openObject opens and checks the ELF executable or shared object at path.
// The caller closes o.f.
func openObject(path string) (o *object, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid ELF file: %w", path, err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("%s: only 64-bit little-endian ELF is supported (got %v %v)", path, ef.Class, ef.Data)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return nil, fmt.Errorf("%s: not an executable (type %v)", path, ef.Type)
	}
	var hdr [0x28]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading the ELF header: %w", path, err)
	}
	loads, err := checkSegments(ef, uint64(st.Size()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &object{path: path, f: f, ef: ef, phoff: binary.LittleEndian.Uint64(hdr[0x20:]), loads: loads}, nil
}

// interpreter returns the path PT_INTERP names, or "" if there is none.
// As Linux does, it insists on a NUL-terminated path shorter than PATH_MAX
// and on at most one PT_INTERP.
func (o *object) interpreter() (string, error) {
	path := ""
	for _, p := range o.ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		if path != "" {
			return "", errors.New("more than one PT_INTERP")
		}
		if p.Filesz < 2 || p.Filesz > pathMax {
			return "", fmt.Errorf("PT_INTERP of %d bytes", p.Filesz)
		}
		b := make([]byte, p.Filesz)
		if _, err := o.f.ReadAt(b, int64(p.Off)); err != nil {
			return "", fmt.Errorf("reading PT_INTERP: %w", err)
		}
		if b[len(b)-1] != 0 || bytes.IndexByte(b[:len(b)-1], 0) >= 0 {
			return "", fmt.Errorf("PT_INTERP %q is not one NUL-terminated path", b)
		}
		path = string(b[:len(b)-1])
	}
	return path, nil
}

// span returns the page-aligned range of addresses o's segments cover
// (before any bias), and the largest power-of-two p_align (at least a
// page).
func (o *object) span() (start, end, align uint64) {
	align = pageSize
	for _, p := range o.loads {
		if p.Align&(p.Align-1) == 0 { // a power of two (or 0)
			align = max(align, p.Align)
		}
	}
	last := o.loads[len(o.loads)-1]
	return pageDown(o.loads[0].Vaddr), pageUp(last.Vaddr + last.Memsz), align
}

// checkFits checks that every segment of o, moved by bias, lies in
// [MinAddr, size): page 0 stays unmapped.
func (o *object) checkFits(bias, size uint64) error {
	for i, p := range o.loads {
		start, end := p.Vaddr+bias, p.Vaddr+bias+p.Memsz
		if end < start || start < bias || pageDown(start) < addrspace.MinAddr || pageUp(end) > size || pageUp(end) < end {
			return fmt.Errorf("%s: PT_LOAD %d [%#x, %#x) lies outside the address space [%#x, %#x)",
				o.path, i, start, end, addrspace.MinAddr, size)
		}
	}
	return nil
}

// load loads the ELF executable at path, and the interpreter it names,
// into a new address space of the given size, with an initial stack for
// argv and envv. random supplies the 16 bytes of AT_RANDOM. On error
// nothing is left allocated.
func load(path string, size uint64, argv, envv []string, random io.Reader) (*image, error) {
	if size == 0 {
		size = addrspace.DefaultSize
	}
	prog, err := openObject(path)
	if err != nil {
		return nil, err
	}
	defer prog.f.Close() // the address space keeps its own descriptor
	img := &image{}
	if img.interp, err = prog.interpreter(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var interp *object
	if img.interp != "" {
		if interp, err = openObject(img.interp); err != nil {
			return nil, fmt.Errorf("%s: interpreter: %w", path, err)
		}
		defer interp.f.Close()
	}

	if prog.ef.Type == elf.ET_DYN {
		// Position-independent: pick a load bias. Linux puts such programs
		// at ELF_ET_DYN_BASE, two thirds of the way up the address space,
		// aligned to the largest p_align.
		start, _, align := prog.span()
		img.bias = (size/3*2)&^(align-1) - start
	}
	if err := prog.checkFits(img.bias, size); err != nil {
		return nil, err
	}

	if img.as, err = addrspace.New(addrspace.Options{Size: size}); err != nil {
		return nil, err
	}
	if err := img.build(prog, interp, argv, envv, random); err != nil {
		img.as.Close()
		return nil, err
	}
	return img, nil
}

// build maps prog (and interp, if not nil) into img.as and lays out the
// stack, as binfmt_elf's load_elf_binary does, in its order: the program's
// segments, the break after them, the stack, the interpreter below the
// stack's gap, the stack's contents.
func (img *image) build(prog, interp *object, argv, envv []string, random io.Reader) error {
	ctx := context.Background()
	as := img.as
	if err := img.mapSegments(ctx, prog.f, prog.loads, img.bias); err != nil {
		return fmt.Errorf("%s: %w", prog.path, err)
	}
	img.progEntry = hostarch.Addr(prog.ef.Entry + img.bias)
	img.entry = img.progEntry
	// The heap starts at the first page after the program's last segment
	// (its bss), as Linux's mm->start_brk does without randomisation.
	_, end, _ := prog.span()
	img.brk = hostarch.Addr(end + img.bias)
	if err := as.SetBrkStart(img.brk); err != nil {
		return fmt.Errorf("%s: setting the break: %w", prog.path, err)
	}
	top := as.Size()
	if _, err := as.Mmap(addrspace.MmapOpts{
		Addr:    hostarch.Addr(top - stackSize),
		Length:  stackSize,
		Fixed:   true,
		Perms:   hostarch.ReadWrite,
		Private: true,
		Name:    "[stack]",
	}); err != nil {
		return fmt.Errorf("%s: mapping the stack: %w", prog.path, err)
	}
	if interp != nil {
		if err := img.loadInterp(ctx, interp, top-stackSize); err != nil {
			return fmt.Errorf("%s: interpreter %w", prog.path, err)
		}
	}
	if err := img.buildStack(ctx, prog, argv, envv, random); err != nil {
		return fmt.Errorf("%s: building the stack: %w", prog.path, err)
	}
	return nil
}

// loadInterp maps the interpreter at a base of its own, as Linux's
// load_elf_interp does: an ET_DYN interpreter goes wherever a non-fixed mmap
// of its whole span would go (the address space picks a free range, here
// hinted below the stack's gap under stackBottom, as Linux's mmap_base
// lies), aligned to its largest p_align; an ET_EXEC one at its own
// addresses. The segments are then mapped at fixed addresses in that range
// and the gaps between them left unmapped. It sets the interpreter's bias
// (AT_BASE) and the entry point.
func (img *image) loadInterp(ctx context.Context, o *object, stackBottom uint64) error {
	as := img.as
	start, end, align := o.span()
	var bias uint64
	if o.ef.Type == elf.ET_DYN {
		length := end - start + align - pageSize // room to align the base
		if length < end-start {
			return fmt.Errorf("%s: a span of %#x bytes aligned to %#x overflows", o.path, end-start, align)
		}
		var hint uint64
		if stackBottom > stackGap+length {
			hint = (stackBottom - stackGap - length) &^ (align - 1)
		}
		// Reserve the span to find it free, then give it back: the
		// segments replace it piece by piece (MAP_FIXED), and what lies
		// between them must end up unmapped, as on Linux.
		at, err := as.Mmap(addrspace.MmapOpts{Addr: hostarch.Addr(hint), Length: length, Private: true})
		if err != nil {
			return fmt.Errorf("%s: no room for %#x bytes: %w", o.path, length, err)
		}
		if err := as.Munmap(at, length); err != nil {
			return err
		}
		base := (uint64(at) + align - 1) &^ (align - 1)
		bias = base - start
	}
	if err := o.checkFits(bias, as.Size()); err != nil {
		return err
	}
	if err := img.mapSegments(ctx, o.f, o.loads, bias); err != nil {
		return fmt.Errorf("%s: %w", o.path, err)
	}
	img.interpBias = bias
	img.entry = hostarch.Addr(o.ef.Entry + bias)
	return nil
}

// checkSegments returns the PT_LOAD program headers, having checked what
// mapping them relies on.
func checkSegments(ef *elf.File, fileSize uint64) ([]elf.ProgHeader, error) {
	var loads []elf.ProgHeader
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		i := len(loads)
		switch {
		case p.Filesz > p.Memsz:
			return nil, fmt.Errorf("PT_LOAD %d: p_filesz %#x > p_memsz %#x", i, p.Filesz, p.Memsz)
		case p.Off+p.Filesz < p.Off || p.Off+p.Filesz > fileSize:
			return nil, fmt.Errorf("PT_LOAD %d: file bytes [%#x, %#x) beyond the end of the file (%#x bytes): truncated?",
				i, p.Off, p.Off+p.Filesz, fileSize)
		case p.Filesz > 0 && p.Vaddr%pageSize != p.Off%pageSize:
			// mmap can only map whole pages: the file and memory offsets
			// within a page must agree.
			return nil, fmt.Errorf("PT_LOAD %d: p_vaddr %#x and p_offset %#x differ modulo the page size", i, p.Vaddr, p.Off)
		case i > 0 && p.Vaddr < loads[i-1].Vaddr+loads[i-1].Memsz:
			// The ELF spec requires PT_LOADs in ascending p_vaddr order.
			// They may share a page (handled by mapSegments), not bytes.
			q := loads[i-1]
			return nil, fmt.Errorf("PT_LOAD %d [%#x, %#x) overlaps PT_LOAD %d [%#x, %#x)",
				i, p.Vaddr, p.Vaddr+p.Memsz, i-1, q.Vaddr, q.Vaddr+q.Memsz)
		}
		loads = append(loads, p.ProgHeader)
	}
	if len(loads) == 0 {
		return nil, errors.New("no PT_LOAD segments")
	}
	return loads, nil
}

// perms converts ELF segment flags to an access type.
func perms(flags elf.ProgFlag) hostarch.AccessType {
	return hostarch.AccessType{
		Read:    flags&elf.PF_R != 0,
		Write:   flags&elf.PF_W != 0,
		Execute: flags&elf.PF_X != 0,
	}
}

// mapSegments maps the PT_LOAD segments as binfmt_elf's elf_load does.
//
// Segment i covers [p_vaddr, p_vaddr+p_memsz): its first p_filesz bytes
// come from the file at p_offset, the rest (the bss) is zeros. mmap works
// in whole pages, so the file part is mapped from the page containing
// p_vaddr (file offset rounded down by the same amount), and the bytes of
// its last page after p_filesz, which hold whatever follows in the file,
// are zeroed if they belong to the bss. Pages wholly in the bss are
// anonymous memory.
//
// Two segments may share a page (one ends and the next begins within it).
// Like Linux, each later segment is mapped with MAP_FIXED, replacing the
// shared page: it gets the later segment's permissions, and its bytes come
// from the file page both segments were linked from.
func (img *image) mapSegments(ctx context.Context, f *os.File, loads []elf.ProgHeader, bias uint64) error {
	var mappedEnd uint64 // end of the pages mapped so far
	for i, p := range loads {
		vaddr := p.Vaddr + bias
		prot := perms(p.Flags)
		bssStart := vaddr + p.Filesz
		anonStart := pageUp(bssStart)
		if p.Filesz > 0 {
			start := pageDown(vaddr)
			_, err := img.as.Mmap(addrspace.MmapOpts{
				Addr:    hostarch.Addr(start),
				Length:  bssStart - start, // Mmap rounds up to whole pages
				Fixed:   true,
				Perms:   prot,
				Private: true,
				File:    f,
				Offset:  p.Off - (vaddr - start),
			})
			if err != nil {
				return fmt.Errorf("PT_LOAD %d: %w", i, err)
			}
		} else if pageDown(vaddr) >= mappedEnd {
			// A bss-only segment starting on a page of its own.
			anonStart = pageDown(vaddr)
		}
		// else: a bss-only segment whose first page belongs to the
		// previous segment: zero its part of that page, keep the rest.
		memEnd := vaddr + p.Memsz
		if p.Memsz > p.Filesz && anonStart > bssStart {
			// Zero the bss's part of the last file page. The segment may
			// be read-only; a kernel writes anyway, as IgnorePermissions
			// does (a private mapping always allows writing underneath).
			n := min(anonStart, memEnd) - bssStart
			if _, err := img.as.ZeroOut(ctx, hostarch.Addr(bssStart), int64(n), usermem.IOOpts{IgnorePermissions: true}); err != nil {
				return fmt.Errorf("PT_LOAD %d: zeroing the bss: %w", i, err)
			}
		}
		if end := pageUp(memEnd); end > anonStart {
			_, err := img.as.Mmap(addrspace.MmapOpts{
				Addr:    hostarch.Addr(anonStart),
				Length:  end - anonStart,
				Fixed:   true,
				Perms:   prot,
				Private: true,
			})
			if err != nil {
				return fmt.Errorf("PT_LOAD %d: bss: %w", i, err)
			}
		}
		mappedEnd = max(mappedEnd, pageUp(memEnd))
	}
	return nil
}

// buildStack lays out the initial process stack in the stack mapping at
// the top of the address space, as Linux's create_elf_tables does. From
// the stack pointer up:
//
//	argc
//	argv[0] ... argv[argc-1]  NULL
//	envp[0] ... envp[envc-1]  NULL
//	auxv: (type, value) pairs ending with (AT_NULL, 0)
//	padding to 16 bytes
//	16 random bytes (AT_RANDOM points here)
//	argv strings, envp strings, the file name (AT_EXECFN), 8 zero bytes
//	                                                    <- top of the stack
func (img *image) buildStack(ctx context.Context, prog *object, argv, envv []string, random io.Reader) error {
	as := img.as
	top := as.Size()

	// push copies b just below p and moves p down to it.
	p := hostarch.Addr(top - 8)
	push := func(b []byte) (hostarch.Addr, error) {
		if uint64(len(b)) > uint64(p)-(top-stackSize) {
			return 0, errors.New("arguments too long for the stack")
		}
		p -= hostarch.Addr(len(b))
		_, err := as.CopyOut(ctx, p, b, usermem.IOOpts{})
		return p, err
	}
	pushStrings := func(ss []string) ([]hostarch.Addr, error) {
		// Pushed last to first, so that they lie in order in memory.
		addrs := make([]hostarch.Addr, len(ss))
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
		return err
	}
	envp, err := pushStrings(envv)
	if err != nil {
		return err
	}
	argvp, err := pushStrings(argv)
	if err != nil {
		return err
	}
	p &^= 15
	var rnd [16]byte
	if _, err := io.ReadFull(random, rnd[:]); err != nil {
		return err
	}
	randAddr, err := push(rnd[:])
	if err != nil {
		return err
	}

	// AT_PHDR: where the program headers are in memory, found through
	// the PT_LOAD whose file bytes contain them (0 if none does).
	var phdr uint64
	for _, l := range prog.loads {
		if l.Off <= prog.phoff && prog.phoff < l.Off+l.Filesz {
			phdr = prog.phoff - l.Off + l.Vaddr + img.bias
			break
		}
	}
	auxv := []uint64{
		atPhdr, phdr,
		atPhent, 56, // sizeof(Elf64_Phdr)
		atPhnum, uint64(len(prog.ef.Progs)),
		atPagesz, pageSize,
		atBase, img.interpBias, // 0 without an interpreter, as on Linux
		atEntry, uint64(img.progEntry), // the program's, not the interpreter's
		atRandom, uint64(randAddr),
		atExecfn, uint64(execfn),
		atNull, 0,
	}
	words := []uint64{uint64(len(argv))}
	for _, a := range argvp {
		words = append(words, uint64(a))
	}
	words = append(words, 0)
	for _, a := range envp {
		words = append(words, uint64(a))
	}
	words = append(words, 0)
	words = append(words, auxv...)

	// The x86-64 ABI wants the stack pointer 16-byte aligned at entry.
	sp := (p - hostarch.Addr(8*len(words))) &^ 15
	if uint64(sp) < top-stackSize {
		return errors.New("arguments too long for the stack")
	}
	// IOReadWriter makes simulated memory an io.Writer at an advancing
	// address, so encoding/binary can write the table straight into it.
	w := &usermem.IOReadWriter{Ctx: ctx, IO: as, Addr: sp}
	if err := binary.Write(w, binary.LittleEndian, words); err != nil {
		return err
	}
	img.sp = sp
	return nil
}

// print writes the maps, the entry point, the stack pointer and the
// initial stack read back from simulated memory.
func (img *image) print(out io.Writer) error {
	ctx := context.Background()
	as := img.as
	if err := as.WriteMaps(out); err != nil {
		return err
	}
	if img.interp != "" {
		fmt.Fprintf(out, "interpreter   %s at %#x\n", img.interp, img.interpBias)
	}
	fmt.Fprintf(out, "entry point   %#x\n", img.entry)
	fmt.Fprintf(out, "brk           %#x\n", img.brk)
	fmt.Fprintf(out, "stack pointer %#x\n", img.sp)

	// Walk the stack as the program's C runtime would.
	r := &usermem.IOReadWriter{Ctx: ctx, IO: as, Addr: img.sp}
	word := func() (uint64, error) {
		var v uint64
		err := binary.Read(r, binary.LittleEndian, &v)
		return v, err
	}
	str := func(addr uint64) string {
		s, err := usermem.CopyStringIn(ctx, as, hostarch.Addr(addr), 4096, usermem.IOOpts{})
		if err != nil {
			return fmt.Sprintf("<%v>", err)
		}
		return fmt.Sprintf("%q", s)
	}
	argc, err := word()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "argc %d\n", argc)
	for _, name := range []string{"argv", "envp"} {
		for i := 0; ; i++ {
			a, err := word()
			if err != nil {
				return err
			}
			if a == 0 {
				break
			}
			fmt.Fprintf(out, "%s[%d] %#x %s\n", name, i, a, str(a))
		}
	}
	for {
		typ, err := word()
		if err != nil {
			return err
		}
		val, err := word()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "auxv %-9s %#x", auxvNames[typ], val)
		switch typ {
		case atRandom:
			var rnd [16]byte
			if _, err := as.CopyIn(ctx, hostarch.Addr(val), rnd[:], usermem.IOOpts{}); err != nil {
				return err
			}
			fmt.Fprintf(out, " %x", rnd)
		case atExecfn:
			fmt.Fprintf(out, " %s", str(val))
		case atPagesz, atPhent, atPhnum:
			fmt.Fprintf(out, " (%d)", val)
		}
		fmt.Fprintln(out)
		if typ == atNull {
			return nil
		}
	}
}
