package addrspace

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// This file holds the machinery of the differential test against the host
// kernel (hostdiff_test.go): a reserved host range that mirrors an
// AddressSpace, the operations applied to both, the comparison, and the
// shrinker.
//
// Each operation runs first on the AddressSpace, then, with real system
// calls, at the same offsets of the host range. Where the AddressSpace
// chooses an address (Mmap without Fixed, Mremap that moves), the host is
// told that address (MAP_FIXED_NOREPLACE, MREMAP_FIXED), so that it never
// leaves its range; where the AddressSpace finds no room, the host is not
// asked. Copies run per page through a pipe (read(2)/write(2) at the host
// address: the kernel's own copy_{to,from}_user) or, with
// IgnorePermissions, through /proc/self/mem (the kernel's FOLL_FORCE
// access, as ptrace uses). Page by page, because one read(2) or write(2)
// on a pipe does not report exact partial counts: it counts whole pipe
// buffers (a write(2) of 8192 bytes from 100 bytes into a page, with the
// fault 8092 bytes on, returns 4096 on Linux 6.18); per page, the count is
// exact, since permissions are per page.
//
// Deliberate differences, which the generator does not produce:
//   - A file truncated under a private mapping: Linux unmaps the private
//     copies of pages past the new end (they fault, SIGBUS); mmsim keeps
//     the copied pages readable, since a copy belongs to the address space,
//     not to the file. No truncation is generated.
//   - IgnorePermissions writes to a shared mapping without PROT_WRITE:
//     mmsim allows them where MaxPerms has write (a debugger writing
//     through the mapping), /proc/self/mem refuses them (FOLL_FORCE writes
//     only through copy-on-write). Such writes are compared only on private
//     mappings and on mappings with write permission.
//   - MaxPerms below what the file allows: the host has no such argument.
//     Only the default MaxPerms is used.
//   - Addresses outside [MinAddr, Size): the host range is surrounded by
//     other host mappings, not by the end of an address space. The edges
//     are covered by table tests.
//   - Private anonymous memory never written: Linux gives a VMA an
//     anon_vma on its first write fault, and merges VMAs (and resets the
//     pgoff of one that moves) depending on it; mmsim cannot see which
//     pages a program writes and assumes every mapping is written soon
//     after it is made (see vma.anonID). The test writes the first page of
//     each new private anonymous mapping on both sides.

// hdKind is the kind of a differential operation.
type hdKind int

const (
	hdMmap hdKind = iota
	hdMunmap
	hdMprotect
	hdMremap
	hdMadvise
	hdCopyIn
	hdCopyOut
	hdZeroOut
	hdCompare
)

// hdOp is one operation of a differential sequence.
type hdOp struct {
	Kind    hdKind
	Addr    hostarch.Addr
	Len     uint64
	Fixed   bool
	Perms   hostarch.AccessType
	Private bool
	File    int // -1: anonymous; otherwise an index into the run's files
	Off     uint64
	NewLen  uint64
	Flags   int
	NewAddr hostarch.Addr
	Advice  int
	Ignore  bool
	Seed    int64
}

func permsGo(p hostarch.AccessType) string {
	var parts []string
	if p.Read {
		parts = append(parts, "Read: true")
	}
	if p.Write {
		parts = append(parts, "Write: true")
	}
	if p.Execute {
		parts = append(parts, "Execute: true")
	}
	return "hostarch.AccessType{" + strings.Join(parts, ", ") + "}"
}

func mremapFlagsGo(f int) string {
	var parts []string
	if f&unix.MREMAP_MAYMOVE != 0 {
		parts = append(parts, "unix.MREMAP_MAYMOVE")
	}
	if f&unix.MREMAP_FIXED != 0 {
		parts = append(parts, "unix.MREMAP_FIXED")
	}
	if f&unix.MREMAP_DONTUNMAP != 0 {
		parts = append(parts, "unix.MREMAP_DONTUNMAP")
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "|")
}

var adviceNames = map[int]string{
	unix.MADV_NORMAL: "unix.MADV_NORMAL", unix.MADV_RANDOM: "unix.MADV_RANDOM",
	unix.MADV_SEQUENTIAL: "unix.MADV_SEQUENTIAL", unix.MADV_WILLNEED: "unix.MADV_WILLNEED",
	unix.MADV_DONTNEED: "unix.MADV_DONTNEED",
}

// String renders the operation as the Go call that performs it on an
// AddressSpace named as (files are f0, f1, ...).
func (o hdOp) String() string {
	switch o.Kind {
	case hdMmap:
		s := fmt.Sprintf("as.Mmap(MmapOpts{Addr: %#x, Length: %#x", o.Addr, o.Len)
		if o.Fixed {
			s += ", Fixed: true"
		}
		s += ", Perms: " + permsGo(o.Perms)
		if o.Private {
			s += ", Private: true"
		}
		if o.File >= 0 {
			s += fmt.Sprintf(", File: f%d, Offset: %#x", o.File, o.Off)
		}
		return s + "})"
	case hdMunmap:
		return fmt.Sprintf("as.Munmap(%#x, %#x)", o.Addr, o.Len)
	case hdMprotect:
		return fmt.Sprintf("as.Mprotect(%#x, %#x, %s)", o.Addr, o.Len, permsGo(o.Perms))
	case hdMremap:
		return fmt.Sprintf("as.Mremap(%#x, %#x, %#x, %s, %#x)", o.Addr, o.Len, o.NewLen, mremapFlagsGo(o.Flags), o.NewAddr)
	case hdMadvise:
		return fmt.Sprintf("as.Madvise(%#x, %#x, %s)", o.Addr, o.Len, adviceNames[o.Advice])
	case hdCopyIn:
		return fmt.Sprintf("as.CopyIn(ctx, %#x, make([]byte, %d), usermem.IOOpts{IgnorePermissions: %v})", o.Addr, o.Len, o.Ignore)
	case hdCopyOut:
		return fmt.Sprintf("as.CopyOut(ctx, %#x, randomBytes(%d, seed %d), usermem.IOOpts{IgnorePermissions: %v})", o.Addr, o.Len, o.Seed, o.Ignore)
	case hdZeroOut:
		return fmt.Sprintf("as.ZeroOut(ctx, %#x, %d, usermem.IOOpts{IgnorePermissions: %v})", o.Addr, o.Len, o.Ignore)
	case hdCompare:
		return "// compare every page's bytes"
	}
	return fmt.Sprintf("hdOp(%d)", o.Kind)
}

// hdFileSpec describes one of a run's files: each side gets its own copy
// with the same contents, so that shared writes on one side cannot hide a
// difference on the other.
type hdFileSpec struct {
	writable bool
	size     int64
}

var hdFiles = []hdFileSpec{{true, 8 * pg}, {false, 5*pg - 1000}}

// hdSize is the size of the mirrored address space.
const hdSize = 48 * pg

// hostRange is the host side: a range of the host's address space that
// mirrors an AddressSpace, surrounded by guard mappings.
type hostRange struct {
	base  uintptr
	guard []uintptr // guard mappings below and above, to unmap at the end
	pipe  [2]int
	mem   *os.File // /proc/self/mem
}

// hdNextBase spreads the host ranges of successive runs, far below where
// the kernel places mappings of its own choosing (top-down from the stack),
// so that no other mapping lands in the holes of a range.
var hdNextBase uintptr = 0x1000_0000_0000

func newHostRange(guardFD int) (*hostRange, error) {
	h := &hostRange{}
	for tries := 0; ; tries++ {
		base := hdNextBase
		hdNextBase += 2 * hdSize
		if hdNextBase > 0x1800_0000_0000 {
			hdNextBase = 0x1000_0000_0000
		}
		// Claim the range and its guards, then turn the range into a hole.
		_, _, e := unix.Syscall6(unix.SYS_MMAP, base-pg, hdSize+2*pg, unix.PROT_NONE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_FIXED_NOREPLACE, ^uintptr(0), 0)
		if e != 0 {
			if tries > 100 {
				return nil, fmt.Errorf("reserving a host range: %w", e)
			}
			continue
		}
		h.base = base
		break
	}
	// Guards: shared mappings of their own file, which nothing merges with.
	for _, g := range []uintptr{h.base - pg, h.base + hdSize} {
		if _, _, e := unix.Syscall6(unix.SYS_MMAP, g, pg, unix.PROT_NONE, unix.MAP_SHARED|unix.MAP_FIXED, uintptr(guardFD), 0); e != 0 {
			return nil, fmt.Errorf("guard: %w", e)
		}
		h.guard = append(h.guard, g)
	}
	if _, _, e := unix.Syscall(unix.SYS_MUNMAP, h.base, hdSize, 0); e != 0 {
		return nil, fmt.Errorf("munmap: %w", e)
	}
	if err := unix.Pipe2(h.pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	f, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	h.mem = f
	return h, nil
}

func (h *hostRange) close() {
	unix.Syscall(unix.SYS_MUNMAP, h.base-pg, hdSize+2*pg, 0)
	unix.Close(h.pipe[0])
	unix.Close(h.pipe[1])
	h.mem.Close()
}

func (h *hostRange) drain() {
	var buf [pg]byte
	for {
		if n, err := unix.Read(h.pipe[0], buf[:]); n <= 0 || err != nil {
			return
		}
	}
}

// copyIn reads n bytes at addr the kernel's way, page by page.
func (h *hostRange) copyIn(addr hostarch.Addr, n uint64, ignore bool) ([]byte, unix.Errno) {
	out := make([]byte, 0, n)
	for done := uint64(0); done < n; {
		a := uint64(addr) + done
		chunk := min(n-done, pg-a%pg)
		buf := make([]byte, chunk)
		if ignore {
			got, err := h.mem.ReadAt(buf, int64(h.base+uintptr(a)))
			if got != int(chunk) || err != nil {
				return out, unix.EFAULT
			}
		} else {
			r, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(h.pipe[1]), h.base+uintptr(a), uintptr(chunk))
			if e != 0 || r != uintptr(chunk) {
				h.drain()
				return out, unix.EFAULT
			}
			if got, err := unix.Read(h.pipe[0], buf); got != int(chunk) || err != nil {
				panic(fmt.Sprintf("pipe read: %d, %v", got, err))
			}
		}
		out = append(out, buf...)
		done += chunk
	}
	return out, 0
}

// copyOut writes src at addr the kernel's way, page by page, and returns
// the count.
func (h *hostRange) copyOut(addr hostarch.Addr, src []byte, ignore bool) (uint64, unix.Errno) {
	n := uint64(len(src))
	for done := uint64(0); done < n; {
		a := uint64(addr) + done
		chunk := min(n-done, pg-a%pg)
		part := src[done : done+chunk]
		if ignore {
			got, err := h.mem.WriteAt(part, int64(h.base+uintptr(a)))
			if got != int(chunk) || err != nil {
				return done, unix.EFAULT
			}
		} else {
			if got, err := unix.Write(h.pipe[1], part); got != int(chunk) || err != nil {
				panic(fmt.Sprintf("pipe write: %d, %v", got, err))
			}
			r, _, e := unix.Syscall(unix.SYS_READ, uintptr(h.pipe[0]), h.base+uintptr(a), uintptr(chunk))
			if e != 0 || r != uintptr(chunk) {
				h.drain()
				return done, unix.EFAULT
			}
		}
		done += chunk
	}
	return n, 0
}

// hdLine is one line of a maps listing, normalised for comparison.
type hdLine struct {
	start, end uint64
	perms      string // "rwxp"
	off        uint64
	name       string // "f<i>" for the run's files, "/dev/zero (deleted)", or ""
}

func (l hdLine) String() string {
	return fmt.Sprintf("%08x-%08x %s %08x %s", l.start, l.end, l.perms, l.off, l.name)
}

// parseMaps parses maps lines in [lo, lo+hdSize), offsetting addresses by
// -lo; inodes maps a file's inode to its normalised name.
func parseMaps(text []byte, lo uint64, inodes map[uint64]string) []hdLine {
	var ls []hdLine
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		se := strings.SplitN(fields[0], "-", 2)
		s, _ := strconv.ParseUint(se[0], 16, 64)
		e, _ := strconv.ParseUint(se[1], 16, 64)
		if e <= lo || s >= lo+hdSize {
			continue
		}
		s, e = max(s, lo)-lo, min(e, lo+hdSize)-lo
		off, _ := strconv.ParseUint(fields[2], 16, 64)
		ino, _ := strconv.ParseUint(fields[4], 10, 64)
		l := hdLine{start: s, end: e, perms: fields[1], off: off}
		if name, ok := inodes[ino]; ok && ino != 0 {
			l.name = name
		} else if len(fields) > 5 {
			l.name = strings.Join(fields[5:], " ")
		}
		if l.name == "/dev/zero (deleted)" {
			// Linux shows the offset in the shared-memory object.
		} else if l.name == "" {
			l.off = 0
		}
		ls = append(ls, l)
	}
	return ls
}

// hdRun is one differential run: an AddressSpace, its host mirror, and
// the files of both.
type hdRun struct {
	as     *AddressSpace
	h      *hostRange
	simF   []*os.File
	hostF  []*os.File
	inodes map[uint64]string
	guard  *os.File
	ctx    context.Context
}

func memfdWith(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "/memfd:"+name+" (deleted)")
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openAs reopens f through /proc/self/fd with flag.
func openAs(f *os.File, flag int) (*os.File, error) {
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), flag|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func newHDRun() (*hdRun, error) {
	r := &hdRun{inodes: map[uint64]string{}, ctx: context.Background()}
	guard, err := memfdWith("hdguard", make([]byte, pg))
	if err != nil {
		return nil, err
	}
	r.guard = guard
	for i, spec := range hdFiles {
		data := make([]byte, spec.size)
		rand.New(rand.NewSource(int64(i) + 1)).Read(data)
		for side := 0; side < 2; side++ {
			f, err := memfdWith(fmt.Sprintf("hd%d", i), data)
			if err != nil {
				r.close()
				return nil, err
			}
			if !spec.writable {
				ro, err := openAs(f, unix.O_RDONLY)
				f.Close()
				if err != nil {
					r.close()
					return nil, err
				}
				f = ro
			}
			var st unix.Stat_t
			unix.Fstat(int(f.Fd()), &st)
			r.inodes[st.Ino] = fmt.Sprintf("f%d", i)
			if side == 0 {
				r.simF = append(r.simF, f)
			} else {
				r.hostF = append(r.hostF, f)
			}
		}
	}
	if r.as, err = New(Options{Size: hdSize}); err != nil {
		r.close()
		return nil, err
	}
	if r.h, err = newHostRange(int(guard.Fd())); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *hdRun) close() {
	if r.as != nil {
		r.as.Close()
	}
	if r.h != nil {
		r.h.close()
	}
	for _, f := range append(r.simF, r.hostF...) {
		f.Close()
	}
	if r.guard != nil {
		r.guard.Close()
	}
}

func hdProt(p hostarch.AccessType) uintptr {
	prot := 0
	if p.Read {
		prot |= unix.PROT_READ
	}
	if p.Write {
		prot |= unix.PROT_WRITE
	}
	if p.Execute {
		prot |= unix.PROT_EXEC
	}
	return uintptr(prot)
}

// step applies o to both sides and returns a description of the first
// difference, or "".
func (r *hdRun) step(o hdOp) string {
	h := r.h
	switch o.Kind {
	case hdMmap:
		opts := MmapOpts{Addr: o.Addr, Length: o.Len, Fixed: o.Fixed, Perms: o.Perms, Private: o.Private, Offset: o.Off}
		fd := ^uintptr(0)
		if o.File >= 0 {
			opts.File = r.simF[o.File]
			fd = r.hostF[o.File].Fd()
		}
		got, err := r.as.Mmap(opts)
		flags := uintptr(unix.MAP_SHARED)
		if o.Private {
			flags = unix.MAP_PRIVATE
		}
		if o.File < 0 {
			flags |= unix.MAP_ANONYMOUS
		}
		at := o.Addr
		if o.Fixed {
			flags |= unix.MAP_FIXED
		} else {
			if errnoOf(err) == unix.ENOMEM {
				return "" // no room in the space: the host has no such limit
			}
			if err == nil {
				// Where mmsim chose; it must have been free.
				flags |= unix.MAP_FIXED_NOREPLACE
				at = got
			}
		}
		p, _, e := unix.Syscall6(unix.SYS_MMAP, h.base+uintptr(at), uintptr(o.Len), hdProt(o.Perms), flags, fd, uintptr(o.Off))
		if e == 0 && err != nil && !o.Fixed {
			// The host placed it somewhere of its own choosing.
			unix.Syscall(unix.SYS_MUNMAP, p, uintptr(o.Len), 0)
			return fmt.Sprintf("Mmap = %v; the host maps it", err)
		}
		if errnoOf(err) != e {
			return fmt.Sprintf("Mmap = %#x, %v; host %v", got, err, e)
		}
		if e == 0 && p != h.base+uintptr(got) {
			return fmt.Sprintf("Mmap = %#x; host %#x", got, p-h.base)
		}
		if e == 0 && o.File < 0 && o.Private {
			// Write the new mapping's first page on both sides, as programs
			// do: mmsim assumes private anonymous memory is written (see
			// vma.anonID), Linux gives it an anon_vma when it is.
			if _, err := r.as.CopyOut(r.ctx, got, []byte{0}, usermem.IOOpts{IgnorePermissions: true}); err != nil {
				return fmt.Sprintf("touching the new mapping: %v", err)
			}
			if _, e := h.copyOut(got, []byte{0}, true); e != 0 {
				return fmt.Sprintf("touching the new mapping on the host: %v", e)
			}
		}
	case hdMunmap:
		err := r.as.Munmap(o.Addr, o.Len)
		_, _, e := unix.Syscall(unix.SYS_MUNMAP, h.base+uintptr(o.Addr), uintptr(o.Len), 0)
		if errnoOf(err) != e {
			return fmt.Sprintf("Munmap = %v; host %v", err, e)
		}
	case hdMprotect:
		err := r.as.Mprotect(o.Addr, o.Len, o.Perms)
		_, _, e := unix.Syscall(unix.SYS_MPROTECT, h.base+uintptr(o.Addr), uintptr(o.Len), hdProt(o.Perms))
		if errnoOf(err) != e {
			return fmt.Sprintf("Mprotect = %v; host %v", err, e)
		}
	case hdMremap:
		return r.mremap(o)
	case hdMadvise:
		err := r.as.Madvise(o.Addr, o.Len, o.Advice)
		_, _, e := unix.Syscall(unix.SYS_MADVISE, h.base+uintptr(o.Addr), uintptr(o.Len), uintptr(o.Advice))
		if errnoOf(err) != e {
			return fmt.Sprintf("Madvise = %v; host %v", err, e)
		}
	case hdCopyIn:
		buf := make([]byte, o.Len)
		n, err := r.as.CopyIn(r.ctx, o.Addr, buf, usermem.IOOpts{IgnorePermissions: o.Ignore})
		want, e := h.copyIn(o.Addr, o.Len, o.Ignore)
		if errnoOf(err) != e || n != len(want) {
			return fmt.Sprintf("CopyIn = %d, %v; host %d, %v", n, err, len(want), e)
		}
		if !bytes.Equal(buf[:n], want) {
			return fmt.Sprintf("CopyIn bytes differ at %d", firstDiff(buf[:n], want))
		}
	case hdCopyOut, hdZeroOut:
		src := make([]byte, o.Len)
		var n int64
		var err error
		opts := usermem.IOOpts{IgnorePermissions: o.Ignore}
		if o.Kind == hdCopyOut {
			rand.New(rand.NewSource(o.Seed)).Read(src)
			var k int
			k, err = r.as.CopyOut(r.ctx, o.Addr, src, opts)
			n = int64(k)
		} else {
			n, err = r.as.ZeroOut(r.ctx, o.Addr, int64(o.Len), opts)
		}
		want, e := h.copyOut(o.Addr, src, o.Ignore)
		if errnoOf(err) != e || uint64(n) != want {
			return fmt.Sprintf("copy out = %d, %v; host %d, %v", n, err, want, e)
		}
	case hdCompare:
		return r.compareBytes()
	}
	return r.compareMaps()
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// mremap mirrors a Mremap: the host moves only where the AddressSpace did,
// to the same address.
func (r *hdRun) mremap(o hdOp) string {
	h := r.h
	got, err := r.as.Mremap(o.Addr, o.Len, o.NewLen, o.Flags, o.NewAddr)
	sys := func(flags int, newAddr hostarch.Addr) (uintptr, unix.Errno) {
		p, _, e := unix.Syscall6(unix.SYS_MREMAP, h.base+uintptr(o.Addr), uintptr(o.Len), uintptr(o.NewLen), uintptr(flags), h.base+uintptr(newAddr), 0)
		return p, e
	}
	var p uintptr
	var e unix.Errno
	if o.Flags&unix.MREMAP_MAYMOVE != 0 && o.Flags&unix.MREMAP_FIXED == 0 {
		// The host would choose its own target: first see whether it stays
		// in place, and if it must move, move it where mmsim did.
		p, e = sys(0, 0)
		if e == unix.ENOMEM {
			if errnoOf(err) == unix.ENOMEM && !r.hasGap(o.NewLen) {
				return r.compareMaps() // no room in the space
			}
			if err != nil {
				return fmt.Sprintf("Mremap = %v; the host moves", err)
			}
			p, e = sys(unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, got)
		}
	} else {
		p, e = sys(o.Flags, o.NewAddr)
	}
	if errnoOf(err) != e {
		return fmt.Sprintf("Mremap = %#x, %v; host %#x, %v", got, err, p-h.base, e)
	}
	if e == 0 && p != h.base+uintptr(got) {
		return fmt.Sprintf("Mremap = %#x; host %#x", got, p-h.base)
	}
	return r.compareMaps()
}

// hasGap reports whether the AddressSpace has a free range of n bytes.
func (r *hdRun) hasGap(n uint64) bool {
	n, _ = hostarch.PageRoundUp(n)
	prev := hostarch.Addr(MinAddr)
	for _, m := range r.as.Mappings() {
		if m.Range.Start >= prev && uint64(m.Range.Start-prev) >= n {
			return true
		}
		prev = max(prev, m.Range.End)
	}
	return uint64(hdSize)-uint64(prev) >= n
}

// maps returns both sides' maps lines, normalised.
func (r *hdRun) maps() (sim, host []hdLine) {
	var b bytes.Buffer
	r.as.WriteMaps(&b)
	sim = parseMaps(b.Bytes(), 0, r.inodes)
	text, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		panic(err)
	}
	host = parseMaps(text, uint64(r.h.base), r.inodes)
	return sim, host
}

func (r *hdRun) compareMaps() string {
	sim, host := r.maps()
	if len(sim) == len(host) {
		same := true
		for i := range sim {
			if sim[i] != host[i] {
				same = false
			}
		}
		if same {
			return ""
		}
	}
	var b strings.Builder
	b.WriteString("maps differ:\n  mmsim:\n")
	for _, l := range sim {
		b.WriteString("    " + l.String() + "\n")
	}
	b.WriteString("  host:\n")
	for _, l := range host {
		b.WriteString("    " + l.String() + "\n")
	}
	return b.String()
}

// compareBytes reads every page of both sides with IgnorePermissions.
func (r *hdRun) compareBytes() string {
	buf := make([]byte, pg)
	for a := hostarch.Addr(0); uint64(a) < hdSize; a += pg {
		n, err := r.as.CopyIn(r.ctx, a, buf, usermem.IOOpts{IgnorePermissions: true})
		want, e := r.h.copyIn(a, pg, true)
		if errnoOf(err) != e || n != len(want) || !bytes.Equal(buf[:n], want) {
			return fmt.Sprintf("page %#x: mmsim %d bytes, %v; host %d bytes, %v (first difference at %d)", a, n, err, len(want), e, firstDiff(buf[:n], want))
		}
	}
	// The shared writable file's contents.
	for i, spec := range hdFiles {
		if !spec.writable {
			continue
		}
		a, _ := readAll(r.simF[i])
		b, _ := readAll(r.hostF[i])
		if !bytes.Equal(a, b) {
			return fmt.Sprintf("file f%d differs at %d", i, firstDiff(a, b))
		}
	}
	return ""
}

func readAll(f *os.File) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	b := make([]byte, st.Size)
	_, err := f.ReadAt(b, 0)
	return b, err
}

// hdGen draws random operations. It looks at the AddressSpace's mappings
// so that many operations land on or next to them.
type hdGen struct {
	rng *rand.Rand
}

func (g *hdGen) perms() hostarch.AccessType {
	x := g.rng.Intn(8)
	return hostarch.AccessType{Read: x&1 != 0, Write: x&2 != 0, Execute: x&4 != 0}
}

// addr returns a page-aligned address in [MinAddr, hdSize), often at or
// next to a mapping's edge.
func (g *hdGen) addr(ms []Mapping) hostarch.Addr {
	if len(ms) > 0 && g.rng.Intn(3) != 0 {
		m := ms[g.rng.Intn(len(ms))]
		var a hostarch.Addr
		switch g.rng.Intn(4) {
		case 0:
			a = m.Range.Start
		case 1:
			a = m.Range.End
		default:
			a = m.Range.Start + hostarch.Addr(g.rng.Int63n(int64(m.Range.Length()/pg)))*pg
		}
		a += hostarch.Addr(g.rng.Intn(3)-1) * pg
		if a >= MinAddr && uint64(a) < hdSize {
			return a
		}
	}
	return hostarch.Addr(1+g.rng.Int63n(hdSize/pg-1)) * pg
}

// length returns a length in pages such that [a, a+length) ends inside the
// space, sometimes not a page multiple.
func (g *hdGen) length(a hostarch.Addr, maxPages int) uint64 {
	room := (hdSize - uint64(a)) / pg
	n := uint64(g.rng.Intn(maxPages) + 1)
	n = min(n, room)
	l := n * pg
	if g.rng.Intn(8) == 0 {
		l -= uint64(g.rng.Intn(pg))
	}
	return l
}

func (g *hdGen) next(ms []Mapping) hdOp {
	rng := g.rng
	o := hdOp{File: -1}
	switch k := rng.Intn(100); {
	case k < 20:
		o.Kind = hdMmap
		o.Fixed = rng.Intn(3) != 0
		o.Addr = g.addr(ms)
		o.Len = g.length(o.Addr, 6)
		o.Perms = g.perms()
		o.Private = rng.Intn(2) == 0
		if !o.Fixed && rng.Intn(3) == 0 {
			o.Addr = 0
		}
		if rng.Intn(2) == 0 {
			o.File = rng.Intn(len(hdFiles))
			o.Off = uint64(rng.Intn(7)) * pg
			if rng.Intn(30) == 0 {
				o.Off += 100
			}
		}
	case k < 27:
		o.Kind = hdMunmap
		o.Addr = g.addr(ms)
		o.Len = g.length(o.Addr, 6)
	case k < 37:
		o.Kind = hdMprotect
		o.Addr = g.addr(ms)
		o.Len = g.length(o.Addr, 6)
		if rng.Intn(20) == 0 {
			o.Len = 0
		}
		o.Perms = g.perms()
	case k < 57:
		o.Kind = hdMremap
		o.Addr = g.addr(ms)
		o.Len = g.length(o.Addr, 5)
		o.NewLen = uint64(rng.Intn(8)+1) * pg
		switch rng.Intn(8) {
		case 0:
			o.NewLen = o.Len // same length
		case 1:
			o.Len = 0 // duplicate
		}
		if rng.Intn(8) == 0 {
			o.NewLen -= uint64(rng.Intn(pg))
		}
		switch rng.Intn(5) {
		case 0:
		case 1, 2:
			o.Flags = unix.MREMAP_MAYMOVE
		default:
			o.Flags = unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED
			o.NewAddr = g.addr(ms)
			if rng.Intn(3) == 0 {
				o.NewLen = max(o.Len, pg)
			}
			room := (hdSize - uint64(o.NewAddr)) / pg * pg
			if o.NewLen > room {
				o.NewLen = room
			}
			if rng.Intn(30) == 0 {
				o.NewAddr += 100
			}
		}
	case k < 65:
		o.Kind = hdMadvise
		o.Addr = g.addr(ms)
		o.Len = g.length(o.Addr, 8)
		if rng.Intn(15) == 0 {
			o.Len = 0
		}
		o.Advice = []int{unix.MADV_DONTNEED, unix.MADV_DONTNEED, unix.MADV_DONTNEED, unix.MADV_NORMAL,
			unix.MADV_RANDOM, unix.MADV_SEQUENTIAL, unix.MADV_WILLNEED}[rng.Intn(7)]
	case k < 75:
		o.Kind = hdCopyIn
	case k < 90:
		o.Kind = hdCopyOut
	case k < 95:
		o.Kind = hdZeroOut
	default:
		o.Kind = hdCompare
	}
	if o.Kind >= hdCopyIn && o.Kind <= hdZeroOut {
		a := g.addr(ms)
		if rng.Intn(2) == 0 {
			a += hostarch.Addr(rng.Intn(pg))
		}
		room := hdSize - uint64(a)
		o.Addr = a
		o.Len = min(uint64(rng.Intn(3*pg)+1), room)
		o.Ignore = rng.Intn(4) == 0
		o.Seed = rng.Int63()
	}
	return o
}

// ignorable reports whether o is one of the deliberate differences (see
// the top of the file) given the mappings before it, so that it is not
// run.
func ignorable(o hdOp, ms []Mapping) bool {
	if !o.Ignore || (o.Kind != hdCopyOut && o.Kind != hdZeroOut) {
		return false
	}
	end := o.Addr + hostarch.Addr(o.Len)
	for _, m := range ms {
		if m.Range.Start < end && o.Addr < m.Range.End && !m.Private && !m.Perms.Write {
			return true
		}
	}
	return false
}

// hdResult is the outcome of a sequence.
type hdResult struct {
	ops  []hdOp // the operations run, up to and including the divergent one
	diff string // "" if none
}

// runOps runs ops on a fresh pair and returns the first divergence.
func runOps(ops []hdOp) (hdResult, error) {
	r, err := newHDRun()
	if err != nil {
		return hdResult{}, err
	}
	defer r.close()
	var res hdResult
	for _, o := range ops {
		if ignorable(o, r.as.Mappings()) {
			continue
		}
		res.ops = append(res.ops, o)
		if d := r.step(o); d != "" {
			res.diff = d
			return res, nil
		}
	}
	if d := r.compareBytes(); d != "" {
		res.diff = "at the end: " + d
	}
	return res, nil
}

// runRandom runs a random sequence of n operations from seed.
func runRandom(seed int64, n int) (hdResult, error) {
	r, err := newHDRun()
	if err != nil {
		return hdResult{}, err
	}
	defer r.close()
	g := &hdGen{rng: rand.New(rand.NewSource(seed))}
	var res hdResult
	for i := 0; i < n; i++ {
		ms := r.as.Mappings()
		o := g.next(ms)
		if ignorable(o, ms) {
			continue
		}
		res.ops = append(res.ops, o)
		if d := r.step(o); d != "" {
			res.diff = d
			return res, nil
		}
	}
	if d := r.compareBytes(); d != "" {
		res.diff = "at the end: " + d
	}
	return res, nil
}

// shrink reduces a divergent sequence: it drops chunks of operations, then
// single ones, as long as some divergence remains.
func shrink(ops []hdOp, budget int) (hdResult, error) {
	best, err := runOps(ops)
	if err != nil || best.diff == "" {
		return best, err
	}
	ops = best.ops
	for chunk := len(ops) / 2; chunk >= 1 && budget > 0; chunk /= 2 {
		for i := 0; i+chunk <= len(ops) && budget > 0; {
			cand := append(append([]hdOp(nil), ops[:i]...), ops[i+chunk:]...)
			budget--
			res, err := runOps(cand)
			if err != nil {
				return best, err
			}
			if res.diff != "" {
				best, ops = res, res.ops
				continue
			}
			i += chunk
		}
	}
	return best, nil
}

// repro renders a divergent sequence as Go code.
func repro(res hdResult) string {
	var b strings.Builder
	b.WriteString("// f0: a memfd of 8 pages opened O_RDWR, f1: a memfd of 5 pages less 1000 bytes opened O_RDONLY\n")
	fmt.Fprintf(&b, "as, _ := New(Options{Size: %#x})\n", hdSize)
	for _, o := range res.ops {
		b.WriteString(o.String() + "\n")
	}
	b.WriteString("// diverges: " + res.diff)
	return b.String()
}
