package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

func self(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDefault runs the program as `go run ./examples/elfload` would: it
// loads its own (test) executable.
func TestDefault(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	exe := self(t)
	for _, re := range []string{
		`(?m)^[0-9a-f]{8,}-[0-9a-f]{8,} r-xp [0-9a-f]{8} [0-9a-f]{2}:[0-9a-f]{2} \d+ +` + regexp.QuoteMeta(exe) + `$`,
		`(?m)^entry point   0x[0-9a-f]+$`,
		`(?m)^stack pointer 0x[0-9a-f]*0$`, // 16-byte aligned
		`(?m)^[0-9a-f]{8,}-[0-9a-f]{8,} rw-p 00000000 00:00 0 +\[stack\]$`,
		`(?m)^brk           0x[0-9a-f]+000$`,
		`(?m)^auxv AT_BASE   0x(0|[0-9a-f]+000)$`, // 0, or the interpreter's base under -race
		`(?m)^argc 1$`,
		`(?m)^argv\[0\] 0x[0-9a-f]+ "` + regexp.QuoteMeta(exe) + `"$`,
		`(?m)^envp\[1\] 0x[0-9a-f]+ "PATH=/usr/bin:/bin"$`,
		`(?m)^auxv AT_PAGESZ 0x1000 \(4096\)$`,
		`(?m)^auxv AT_RANDOM 0x[0-9a-f]+ [0-9a-f]{32}$`,
		`(?m)^auxv AT_NULL   0x0\n\z`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s", re)
		}
	}
}

// TestStackAndEntry loads the test executable and checks, by reading the
// simulated memory back with CopyIn, the initial stack and the code at the
// entry point.
func TestStackAndEntry(t *testing.T) {
	exe := self(t)
	argv := []string{exe, "one", "", "three"}
	envv := []string{"A=1", "B=2"}
	random := []byte("0123456789abcdef")
	img, err := load(exe, addrspace.DefaultSize, argv, envv, bytes.NewReader(random))
	if err != nil {
		t.Fatal(err)
	}
	defer img.as.Close()
	ef, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	// A Go test binary is static, unless built with cgo (as -race
	// does): then it has an interpreter too.
	ief := openInterp(t, ef)
	checkEntry(t, img, ef, ief)
	checkStack(t, img, argv, envv, random, ef)
	checkEntryBytes(t, img, exe, ef)
	checkLayout(t, img, exe, ef, ief)
}

// openInterp opens the interpreter ef's PT_INTERP names, or returns nil
// if it has none.
func openInterp(t *testing.T, ef *elf.File) *elf.File {
	t.Helper()
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		ief, err := elf.Open(strings.TrimRight(string(b), "\x00"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ief.Close() })
		return ief
	}
	return nil
}

// checkEntry checks where execution starts: at the interpreter's entry
// if there is one (ief), at the program's otherwise; and that AT_BASE
// will be 0 without an interpreter.
func checkEntry(t *testing.T, img *image, ef, ief *elf.File) {
	t.Helper()
	if want := ef.Entry + img.bias; uint64(img.progEntry) != want {
		t.Errorf("program entry %#x, want %#x", img.progEntry, want)
	}
	want := ef.Entry + img.bias
	if ief != nil {
		want = ief.Entry + img.interpBias
	} else if img.interp != "" || img.interpBias != 0 {
		t.Errorf("interpreter %q at %#x, but no PT_INTERP", img.interp, img.interpBias)
	}
	if uint64(img.entry) != want {
		t.Errorf("entry %#x, want %#x", img.entry, want)
	}
}

// dynamicPrograms returns dynamically linked host executables to load:
// /bin/true, and, if gcc is installed, a small C program built as a PIE
// (ET_DYN) and as a fixed-address executable (ET_EXEC), whose bss spills
// past its file pages.
func dynamicPrograms(t *testing.T) []string {
	t.Helper()
	var progs []string
	if _, err := os.Stat("/bin/true"); err == nil {
		progs = append(progs, "/bin/true")
	}
	if gcc, err := exec.LookPath("gcc"); err == nil {
		dir := t.TempDir()
		src := filepath.Join(dir, "hello.c")
		code := "#include <stdio.h>\nstatic char bss[3*4096 + 123];\nint main(void) { bss[0] = 1; puts(\"hello\"); return bss[1]; }\n"
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, flags := range [][]string{{"-pie", "-fPIE"}, {"-no-pie"}} {
			out := filepath.Join(dir, "hello"+flags[0])
			cmd := exec.Command(gcc, append(append([]string{}, flags...), "-O1", "-o", out, src)...)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, b)
			}
			progs = append(progs, out)
		}
	} else {
		t.Log("no gcc: only /bin/true")
	}
	if len(progs) == 0 {
		t.Skip("no dynamically linked host executable")
	}
	return progs
}

// TestInterpreter loads dynamically linked host executables: their
// PT_INTERP (ld.so) is mapped at a base of its own below the stack's gap,
// AT_BASE is that base, AT_PHDR and AT_ENTRY are the program's, execution
// starts at the interpreter's entry, the break starts on the page after
// the program's last segment, and the stack is "[stack]": every mapped page
// is accounted for.
func TestInterpreter(t *testing.T) {
	for _, prog := range dynamicPrograms(t) {
		t.Run(filepath.Base(prog), func(t *testing.T) {
			argv := []string{prog, "x"}
			random := []byte("fedcba9876543210")
			img, err := load(prog, 1<<32, argv, nil, bytes.NewReader(random)) // 4 GiB: quicker under qemu than the default
			if err != nil {
				t.Fatal(err)
			}
			defer img.as.Close()
			var maps strings.Builder
			img.as.WriteMaps(&maps)
			t.Log("\n" + maps.String())
			ef, err := elf.Open(prog)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			var interpPath string
			for _, p := range ef.Progs {
				if p.Type == elf.PT_INTERP {
					b := make([]byte, p.Filesz)
					if _, err := p.ReadAt(b, 0); err != nil {
						t.Fatal(err)
					}
					interpPath = strings.TrimRight(string(b), "\x00")
				}
			}
			if interpPath == "" || img.interp != interpPath {
				t.Fatalf("interpreter %q, PT_INTERP names %q", img.interp, interpPath)
			}
			ief, err := elf.Open(interpPath)
			if err != nil {
				t.Fatal(err)
			}
			defer ief.Close()
			if ief.Type != elf.ET_DYN {
				t.Fatalf("%s is %v", interpPath, ief.Type)
			}
			// The interpreter's base: page-aligned, above the program,
			// below the stack by at least Linux's minimum gap.
			top := img.as.Size()
			if img.interpBias == 0 || img.interpBias%hostarch.PageSize != 0 ||
				img.interpBias+stackGap > top-stackSize {
				t.Errorf("interpreter base %#x (stack at %#x)", img.interpBias, top-stackSize)
			}
			if want := ief.Entry + img.interpBias; uint64(img.entry) != want {
				t.Errorf("entry %#x, want the interpreter's %#x", img.entry, want)
			}
			checkStack(t, img, argv, nil, random, ef)
			checkEntryBytesRaw(t, img, fileBytesAt(t, interpPath, ief, ief.Entry, 64))
			checkLayout(t, img, prog, ef, ief)
			if strings.Count(maps.String(), interpPath) == 0 {
				t.Errorf("maps do not name %s", interpPath)
			}
		})
	}
}

// fileBytesAt returns the n file bytes that a PT_LOAD of ef places at
// vaddr (before any bias).
func fileBytesAt(t *testing.T, path string, ef *elf.File, vaddr, n uint64) []byte {
	t.Helper()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Vaddr <= vaddr && vaddr+n <= p.Vaddr+p.Filesz {
			b := make([]byte, n)
			if _, err := p.ReadAt(b, int64(vaddr-p.Vaddr)); err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("%s: %#x+%d is in no PT_LOAD's file bytes", path, vaddr, n)
	return nil
}

// A pageWant is what one page of the address space must be.
type pageWant struct {
	perms hostarch.AccessType
	file  string // "" for anonymous memory
	off   uint64 // the file offset of the page
	name  string // the anonymous mapping's name
}

// checkLayout checks every page of img's address space against what the
// program's (and the interpreter's, if ief is not nil) PT_LOADs and the
// stack make of it, computed here from the ELF headers alone: each page
// of a segment has the permissions of the last segment covering it (as
// MAP_FIXED leaves them), and shows the file at the right offset up to
// the segment's file bytes, anonymous memory beyond; the stack is
// "[stack]"; nothing else is mapped. Then it checks the break: Brk(0) is
// the page after the program's last segment, and growing the heap maps
// "[heap]" right there.
func checkLayout(t *testing.T, img *image, prog string, ef, ief *elf.File) {
	t.Helper()
	want := map[uint64]pageWant{}
	addSegments := func(path string, ef *elf.File, bias uint64) (end uint64) {
		for _, p := range ef.Progs {
			if p.Type != elf.PT_LOAD || p.Memsz == 0 {
				continue
			}
			start := (p.Vaddr + bias) &^ (hostarch.PageSize - 1)
			fileEnd := (p.Vaddr + bias + p.Filesz + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
			if p.Filesz == 0 {
				fileEnd = start
			}
			end = (p.Vaddr + bias + p.Memsz + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
			for a := start; a < end; a += hostarch.PageSize {
				w := pageWant{perms: perms(p.Flags)}
				if a < fileEnd {
					w.file, w.off = path, p.Off-(p.Vaddr+bias-start)+(a-start)
				} else if old, ok := want[a]; ok && old.file != "" && p.Filesz == 0 {
					// A bss-only segment starting in the previous
					// segment's last page keeps that page's bytes.
					w.file, w.off = old.file, old.off
				}
				want[a] = w
			}
		}
		return end
	}
	progEnd := addSegments(prog, ef, img.bias)
	if ief != nil {
		addSegments(img.interp, ief, img.interpBias)
	}
	top := img.as.Size()
	for a := top - stackSize; a < top; a += hostarch.PageSize {
		want[a] = pageWant{perms: hostarch.ReadWrite, name: "[stack]"}
	}
	var mapped int
	for _, m := range img.as.Mappings() {
		if !m.Private {
			t.Errorf("shared mapping %+v", m)
		}
		for a := uint64(m.Range.Start); a < uint64(m.Range.End); a += hostarch.PageSize {
			mapped++
			w, ok := want[a]
			if !ok {
				t.Errorf("page %#x mapped (%+v), but no segment or stack covers it", a, m)
				continue
			}
			got := pageWant{perms: m.Perms, file: m.FileName, name: m.Name}
			if m.FileName != "" {
				got.off = m.Offset + (a - uint64(m.Range.Start))
			}
			if got != w {
				t.Errorf("page %#x is %+v, want %+v", a, got, w)
			}
		}
	}
	if mapped != len(want) {
		t.Errorf("%d pages mapped, want %d", mapped, len(want))
	}
	// The break.
	if img.brk != hostarch.Addr(progEnd) {
		t.Errorf("brk start %#x, want %#x (the page after the program's last segment)", img.brk, progEnd)
	}
	if cur, err := img.as.Brk(0); err != nil || cur != hostarch.Addr(progEnd) {
		t.Errorf("Brk(0) = %#x, %v; want %#x", cur, err, progEnd)
	}
	if cur, err := img.as.Brk(hostarch.Addr(progEnd + 1)); err != nil || cur != hostarch.Addr(progEnd+1) {
		t.Fatalf("Brk(%#x) = %#x, %v", progEnd+1, cur, err)
	}
	var m addrspace.Mapping
	ok := false
	for _, x := range img.as.Mappings() {
		if x.Range.Contains(hostarch.Addr(progEnd)) {
			m, ok = x, true
		}
	}
	if !ok || m.Name != "[heap]" || uint64(m.Range.Start) != progEnd || uint64(m.Range.End) != progEnd+hostarch.PageSize {
		t.Errorf("heap mapping %+v, %v; want [heap] at [%#x, %#x)", m, ok, progEnd, progEnd+hostarch.PageSize)
	}
	if _, err := img.as.Brk(hostarch.Addr(progEnd)); err != nil {
		t.Errorf("shrinking the heap back: %v", err)
	}
}

// checkStack walks the stack at img.sp with plain CopyIn calls.
func checkStack(t *testing.T, img *image, argv, envv []string, random []byte, ef *elf.File) {
	t.Helper()
	ctx := context.Background()
	as := img.as
	if img.sp%16 != 0 {
		t.Errorf("stack pointer %#x is not 16-byte aligned", img.sp)
	}
	addr := img.sp
	word := func() uint64 {
		t.Helper()
		var b [8]byte
		if _, err := as.CopyIn(ctx, addr, b[:], usermem.IOOpts{}); err != nil {
			t.Fatalf("CopyIn(%#x): %v", addr, err)
		}
		addr += 8
		return binary.LittleEndian.Uint64(b[:])
	}
	cstring := func(a uint64) string {
		t.Helper()
		var s []byte
		for {
			var b [1]byte
			if _, err := as.CopyIn(ctx, hostarch.Addr(a), b[:], usermem.IOOpts{}); err != nil {
				t.Fatalf("CopyIn(%#x): %v", a, err)
			}
			if b[0] == 0 {
				return string(s)
			}
			s = append(s, b[0])
			a++
		}
	}
	if argc := word(); argc != uint64(len(argv)) {
		t.Fatalf("argc = %d, want %d", argc, len(argv))
	}
	for _, v := range [][]string{argv, envv} {
		for i, want := range v {
			if got := cstring(word()); got != want {
				t.Errorf("string %d = %q, want %q", i, got, want)
			}
		}
		if w := word(); w != 0 {
			t.Errorf("vector not NULL-terminated: %#x", w)
		}
	}
	aux := map[uint64]uint64{}
	var order []uint64
	for {
		typ, val := word(), word()
		aux[typ] = val
		order = append(order, typ)
		if typ == atNull {
			break
		}
		if len(order) > 64 {
			t.Fatal("no AT_NULL")
		}
	}
	if val := aux[atNull]; val != 0 {
		t.Errorf("AT_NULL value %#x", val)
	}
	if got := aux[atPagesz]; got != hostarch.PageSize {
		t.Errorf("AT_PAGESZ = %d", got)
	}
	if got, want := aux[atEntry], ef.Entry+img.bias; got != want {
		t.Errorf("AT_ENTRY = %#x, want the program's entry %#x", got, want)
	}
	if got := aux[atBase]; got != img.interpBias {
		t.Errorf("AT_BASE = %#x, want %#x", got, img.interpBias)
	}
	if got := aux[atPhnum]; got != uint64(len(ef.Progs)) {
		t.Errorf("AT_PHNUM = %d, want %d", got, len(ef.Progs))
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_PHDR {
			if got, want := aux[atPhdr], p.Vaddr+img.bias; got != want {
				t.Errorf("AT_PHDR = %#x, want PT_PHDR's %#x", got, want)
			}
		}
	}
	// The program headers are really there: AT_PHDR's first entry reads
	// back as the file's first program header.
	var ph [4]byte
	if _, err := as.CopyIn(ctx, hostarch.Addr(aux[atPhdr]), ph[:], usermem.IOOpts{}); err != nil {
		t.Errorf("reading at AT_PHDR: %v", err)
	} else if got := elf.ProgType(binary.LittleEndian.Uint32(ph[:])); got != ef.Progs[0].Type {
		t.Errorf("first program header at AT_PHDR has type %v, want %v", got, ef.Progs[0].Type)
	}
	rnd := make([]byte, 16)
	if _, err := as.CopyIn(ctx, hostarch.Addr(aux[atRandom]), rnd, usermem.IOOpts{}); err != nil || !bytes.Equal(rnd, random) {
		t.Errorf("AT_RANDOM bytes = %q, %v; want %q", rnd, err, random)
	}
	if got := cstring(aux[atExecfn]); got != argv[0] {
		t.Errorf("AT_EXECFN = %q, want %q", got, argv[0])
	}
}

// checkEntryBytes compares the first bytes at the entry point with the
// file's bytes there.
func checkEntryBytes(t *testing.T, img *image, path string, ef *elf.File) {
	t.Helper()
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD || ef.Entry < p.Vaddr || ef.Entry >= p.Vaddr+p.Filesz {
			continue
		}
		n := min(64, p.Vaddr+p.Filesz-ef.Entry)
		want := make([]byte, n)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.ReadAt(want, int64(p.Off+ef.Entry-p.Vaddr)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, n)
		if _, err := img.as.CopyIn(context.Background(), img.progEntry, got, usermem.IOOpts{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("bytes at the program's entry %#x:\n got %x\nwant %x", img.progEntry, got, want)
		}
		return
	}
	t.Errorf("entry %#x is in no PT_LOAD's file bytes", ef.Entry)
}

// TestETDyn loads a copy of the test executable marked ET_DYN: it goes at a
// load bias.
func TestETDyn(t *testing.T) {
	exe := self(t)
	path := patched(t, exe, func(b []byte, _ []phdrAt) { binary.LittleEndian.PutUint16(b[0x10:], uint16(elf.ET_DYN)) })
	img, err := load(path, addrspace.DefaultSize, []string{path}, nil, bytes.NewReader(make([]byte, 16)))
	if err != nil {
		t.Fatal(err)
	}
	defer img.as.Close()
	if img.bias == 0 || img.bias%hostarch.PageSize != 0 {
		t.Errorf("load bias %#x", img.bias)
	}
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	ief := openInterp(t, ef)
	checkEntry(t, img, ef, ief)
	checkStack(t, img, []string{path}, nil, make([]byte, 16), ef)
	checkEntryBytes(t, img, path, ef)
	checkLayout(t, img, path, ef, ief)
}

// TestSharedPage loads a small hand-built ELF whose two PT_LOADs share a
// page, the second with a bss that spills onto anonymous pages, and a
// third bss-only segment starting inside the second's last page.
func TestSharedPage(t *testing.T) {
	const (
		base   = 0x400000
		phoff  = 64
		fsize  = 0x2000
		entry  = base + 0x100
		dataAt = 0x1800 // file offset of the second segment
	)
	file := make([]byte, fsize)
	for i := range file {
		file[i] = byte(i*7%251 + 1) // no zeros: garbage after p_filesz shows
	}
	le := binary.LittleEndian
	copy(file, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	clear(file[7:phoff])
	le.PutUint16(file[0x10:], uint16(elf.ET_EXEC))
	le.PutUint16(file[0x12:], uint16(elf.EM_X86_64))
	le.PutUint32(file[0x14:], 1)
	le.PutUint64(file[0x18:], entry)
	le.PutUint64(file[0x20:], phoff)
	le.PutUint16(file[0x34:], 64) // e_ehsize
	le.PutUint16(file[0x36:], 56) // e_phentsize
	le.PutUint16(file[0x38:], 3)  // e_phnum
	le.PutUint16(file[0x3a:], 64) // e_shentsize
	segs := []elf.Prog64{
		{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Off: 0, Vaddr: base, Filesz: dataAt, Memsz: dataAt},
		{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_W), Off: dataAt, Vaddr: base + dataAt, Filesz: 0x100, Memsz: 0x2000},
		{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R), Off: 0, Vaddr: base + 0x3900, Filesz: 0, Memsz: 0x1000},
	}
	for i, s := range segs {
		s.Paddr, s.Align = s.Vaddr, hostarch.PageSize
		var b bytes.Buffer
		binary.Write(&b, le, s)
		copy(file[phoff+56*i:], b.Bytes())
	}
	path := filepath.Join(t.TempDir(), "tiny")
	if err := os.WriteFile(path, file, 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := load(path, 1<<30, []string{path}, nil, bytes.NewReader(make([]byte, 16)))
	if err != nil {
		t.Fatal(err)
	}
	defer img.as.Close()
	var maps strings.Builder
	img.as.WriteMaps(&maps)
	t.Log("\n" + maps.String())

	type want struct {
		start, end uint64
		perms      hostarch.AccessType
		file       bool
		off        uint64
	}
	wants := []want{
		{base, base + 0x1000, hostarch.AccessType{Read: true, Execute: true}, true, 0},
		// The shared page: the later segment's permissions, as with
		// Linux's MAP_FIXED.
		{base + 0x1000, base + 0x2000, hostarch.ReadWrite, true, 0x1000},
		{base + 0x2000, base + 0x4000, hostarch.ReadWrite, false, 0},
		{base + 0x4000, base + 0x5000, hostarch.Read, false, 0},
	}
	ms := img.as.Mappings()
	if len(ms) != len(wants)+1 { // + the stack
		t.Fatalf("%d mappings, want %d", len(ms), len(wants)+1)
	}
	for i, w := range wants {
		m := ms[i]
		if uint64(m.Range.Start) != w.start || uint64(m.Range.End) != w.end || m.Perms != w.perms ||
			(m.FileName != "") != w.file || m.Offset != w.off || !m.Private {
			t.Errorf("mapping %d = %+v, want %+v", i, m, w)
		}
	}
	// Memory: the file's bytes up to the end of the second segment's file
	// part, then zeros (the file's garbage after p_filesz is not visible).
	ctx := context.Background()
	mem := make([]byte, 0x5000)
	if _, err := img.as.CopyIn(ctx, base, mem, usermem.IOOpts{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mem[:dataAt+0x100], file[:dataAt+0x100]) {
		t.Error("file bytes differ")
	}
	if i := bytes.IndexFunc(mem[dataAt+0x100:], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Errorf("nonzero bss byte at %#x", base+dataAt+0x100+i)
	}
	// The shared page is writable now (it was r-x for the first segment).
	if _, err := img.as.CopyOut(ctx, base+0x1000, []byte{1}, usermem.IOOpts{}); err != nil {
		t.Errorf("writing the shared page: %v", err)
	}
	checkEntryBytesRaw(t, img, file[0x100:0x140])
}

func checkEntryBytesRaw(t *testing.T, img *image, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := img.as.CopyIn(context.Background(), img.entry, got, usermem.IOOpts{}); err != nil || !bytes.Equal(got, want) {
		t.Errorf("bytes at entry: %x, %v; want %x", got, err, want)
	}
}

// phdrAt is a PT_LOAD program header and the file offset it sits at.
type phdrAt struct {
	off uint64
	elf.ProgHeader
}

// patched writes a copy of the ELF file at src, changed by edit, to a
// temporary file and returns its path. edit gets the file's bytes and its
// PT_LOAD headers.
func patched(t *testing.T, src string, edit func(b []byte, loads []phdrAt)) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	phoff := binary.LittleEndian.Uint64(b[0x20:])
	var loads []phdrAt
	for i, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, phdrAt{phoff + 56*uint64(i), p.ProgHeader})
		}
	}
	edit(b, loads)
	path := filepath.Join(t.TempDir(), "patched")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBadInput(t *testing.T) {
	exe := self(t)
	le := binary.LittleEndian
	text := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho this is not ELF\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args func() []string
		want string
	}{
		{"missing", func() []string { return []string{filepath.Join(t.TempDir(), "nope")} }, "no such file"},
		{"text", func() []string { return []string{text} }, "not a valid ELF file"},
		{"truncated header", func() []string { return []string{truncated(t, exe, 100)} }, "not a valid ELF file"},
		{"truncated segments", func() []string {
			// Cut in the middle, without section headers so debug/elf
			// still parses it: the loader's own check must catch it.
			p := patched(t, exe, func(b []byte, _ []phdrAt) {
				le.PutUint64(b[0x28:], 0) // e_shoff
				le.PutUint16(b[0x3c:], 0) // e_shnum
				le.PutUint16(b[0x3e:], 0) // e_shstrndx
			})
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()/2); err != nil {
				t.Fatal(err)
			}
			return []string{p}
		}, "beyond the end of the file"},
		{"overlapping", func() []string {
			return []string{patched(t, exe, func(b []byte, loads []phdrAt) {
				// Move the second PT_LOAD into the first, keeping
				// p_vaddr and p_offset congruent modulo the page size.
				l0, l1 := loads[0], loads[1]
				le.PutUint64(b[l1.off+16:], l0.Vaddr+l1.Off%hostarch.PageSize+hostarch.PageSize)
			})}
		}, "overlaps PT_LOAD 0"},
		{"outside", func() []string {
			return []string{patched(t, exe, func(b []byte, loads []phdrAt) {
				l := loads[len(loads)-1]
				le.PutUint64(b[l.off+16:], 1<<40+l.Off%hostarch.PageSize)
			})}
		}, "outside the address space"},
		{"small address space", func() []string { return []string{"-size", "0x100000", exe} }, "outside the address space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args(), &stdout, &stderr)
			msg := stderr.String()
			t.Log(strings.TrimSpace(msg))
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty:\n%s", stdout.String())
			}
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") || !strings.HasPrefix(msg, "elfload: ") {
				t.Errorf("stderr is not one line: %q", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q lacks %q", msg, tc.want)
			}
		})
	}
}

// truncated writes the first n bytes of src to a temporary file.
func truncated(t *testing.T, src string, n int) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "truncated")
	if err := os.WriteFile(path, b[:n], 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBadInterpreter: a PT_INTERP naming no file, or not NUL-terminated,
// fails the load with the reason, leaving nothing allocated.
func TestBadInterpreter(t *testing.T) {
	prog := dynamicPrograms(t)[0]
	ef, err := elf.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	var interp elf.ProgHeader
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			interp = p.ProgHeader
		}
	}
	ef.Close()
	if interp.Filesz < 4 {
		t.Fatalf("%s: PT_INTERP of %d bytes", prog, interp.Filesz)
	}
	for _, tc := range []struct {
		name string
		edit func(path []byte)
		want string
	}{
		{"missing", func(b []byte) { copy(b, "/nonexistent/") }, "interpreter: open /nonexistent/"},
		{"unterminated", func(b []byte) { b[len(b)-1] = 'x' }, "is not one NUL-terminated path"},
		{"inner NUL", func(b []byte) { b[1] = 0 }, "is not one NUL-terminated path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := patched(t, prog, func(b []byte, _ []phdrAt) { tc.edit(b[interp.Off : interp.Off+interp.Filesz]) })
			before := addrspace.HostStats()
			img, err := load(path, addrspace.DefaultSize, []string{path}, nil, bytes.NewReader(make([]byte, 16)))
			if err == nil {
				img.as.Close()
				t.Fatal("load succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			if after := addrspace.HostStats(); after.Mappings != before.Mappings || after.ReservedBytes != before.ReservedBytes {
				t.Errorf("host account %+v after a failed load, %+v before", after, before)
			}
		})
	}
}
