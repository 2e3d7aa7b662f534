package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
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
	if want := ef.Entry + img.bias; uint64(img.entry) != want {
		t.Errorf("entry %#x, want %#x", img.entry, want)
	}
	checkStack(t, img, argv, envv, random, ef)
	checkEntryBytes(t, img, exe, ef)
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
	if got := aux[atEntry]; got != uint64(img.entry) {
		t.Errorf("AT_ENTRY = %#x, want %#x", got, img.entry)
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
		if _, err := img.as.CopyIn(context.Background(), img.entry, got, usermem.IOOpts{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("bytes at entry %#x:\n got %x\nwant %x", img.entry, got, want)
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
	checkStack(t, img, []string{path}, nil, make([]byte, 16), ef)
	checkEntryBytes(t, img, path, ef)
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
