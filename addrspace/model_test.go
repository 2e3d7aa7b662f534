package addrspace

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// This file holds the randomised differential test: long random sequences of
// Mmap, Munmap, Mprotect, copies and atomics, run against an AddressSpace and
// against refModel, a plain Go model of Linux's semantics (a map of pages
// with permissions and bytes). Every result — count, bytes, error — must
// agree.

const pg = hostarch.PageSize

// refFile is a file as the model sees it: its bytes in the page cache
// (whole pages; bytes past size are the tail of the last page).
type refFile struct {
	f        *os.File
	writable bool
	size     uint64
	cache    []byte
	// shm marks the shared-memory object of a shared anonymous mapping
	// (f is nil): its size is the mapping's, and its pages live as long as
	// a mapping of them does.
	shm bool
}

type refPage struct {
	perms, maxPerms hostarch.AccessType
	private         bool
	file            *refFile // nil: anonymous
	off             uint64   // file offset of the page
	data            []byte   // anonymous memory, or the private copy
	// dontFork and wipeOnFork are MADV_DONTFORK and MADV_WIPEONFORK (see
	// model_advice_test.go).
	dontFork, wipeOnFork bool
}

type refModel struct {
	size  uint64
	pages map[uint64]*refPage // by page number
	// brkStart and brk are the heap's start and break.
	brkStart, brk uint64
}

// bytes returns the page's current contents, or nil if the page lies wholly
// beyond the end of its file (SIGBUS).
func (p *refPage) bytes() []byte {
	if p.data != nil {
		return p.data
	}
	if p.off >= hostarch.PageRoundDown(p.file.size+pg-1) {
		return nil
	}
	return p.file.cache[p.off : p.off+pg]
}

func (m *refModel) free(start, n uint64) bool {
	for i := start; i < start+n; i++ {
		if m.pages[i] != nil {
			return false
		}
	}
	return true
}

func (m *refModel) mmap(o MmapOpts, files map[*os.File]*refFile) (hostarch.Addr, unix.Errno) {
	if o.Length == 0 {
		return 0, unix.EINVAL
	}
	length, ok := hostarch.PageRoundUp(o.Length)
	if !ok || length == 0 {
		return 0, unix.ENOMEM
	}
	if o.File != nil {
		if o.Offset%pg != 0 {
			return 0, unix.EINVAL
		}
		if o.Offset+length < o.Offset {
			return 0, unix.EOVERFLOW
		}
	}
	n := length / pg
	var start uint64
	if o.Fixed {
		if !o.Addr.IsPageAligned() {
			return 0, unix.EINVAL
		}
		if o.Addr < MinAddr {
			return 0, unix.EPERM
		}
		if uint64(o.Addr) > m.size || length > m.size-uint64(o.Addr) {
			return 0, unix.ENOMEM
		}
		start = uint64(o.Addr) / pg
	} else {
		if length > m.size-pg {
			return 0, unix.ENOMEM
		}
		hint := uint64(o.Addr.RoundDown()) / pg
		total := m.size / pg
		if hint >= 1 && hint+n <= total && m.free(hint, n) {
			start = hint
		} else {
			found := false
			for s := total - n; s >= 1; s-- {
				if m.free(s, n) {
					start, found = s, true
					break
				}
			}
			if !found {
				return 0, unix.ENOMEM
			}
		}
	}
	allowed := hostarch.AnyAccess
	var rf *refFile
	if o.File != nil {
		rf = files[o.File]
		if !o.Private && !rf.writable {
			allowed.Write = false
		}
	}
	maxPerms := allowed
	if o.MaxPerms.Any() {
		maxPerms = o.MaxPerms.Intersect(allowed)
	}
	if !maxPerms.SupersetOf(o.Perms) {
		return 0, unix.EACCES
	}
	if rf == nil && !o.Private {
		rf = &refFile{writable: true, size: length, cache: make([]byte, length), shm: true}
	}
	for i := uint64(0); i < n; i++ {
		p := &refPage{perms: o.Perms, maxPerms: maxPerms, private: o.Private, file: rf}
		if rf != nil {
			p.off = o.Offset + i*pg
		} else {
			p.data = make([]byte, pg)
		}
		m.pages[start+i] = p
	}
	return hostarch.Addr(start * pg), 0
}

func (m *refModel) mgmtRange(addr hostarch.Addr, length uint64, outOfRange unix.Errno) (uint64, uint64, unix.Errno) {
	if !addr.IsPageAligned() {
		return 0, 0, unix.EINVAL
	}
	rounded, ok := hostarch.PageRoundUp(length)
	if !ok {
		return 0, 0, outOfRange
	}
	if uint64(addr) > m.size || rounded > m.size-uint64(addr) {
		return 0, 0, outOfRange
	}
	return uint64(addr) / pg, rounded / pg, 0
}

func (m *refModel) munmap(addr hostarch.Addr, length uint64) unix.Errno {
	start, n, e := m.mgmtRange(addr, length, unix.EINVAL)
	if e != 0 {
		return e
	}
	if n == 0 {
		return unix.EINVAL
	}
	for i := start; i < start+n; i++ {
		delete(m.pages, i)
	}
	return 0
}

func (m *refModel) mprotect(addr hostarch.Addr, length uint64, perms hostarch.AccessType) unix.Errno {
	if !addr.IsPageAligned() {
		return unix.EINVAL
	}
	rounded, ok := hostarch.PageRoundUp(length)
	if !ok || uint64(addr)+rounded < uint64(addr) {
		return unix.ENOMEM
	}
	// The end of the address space is a hole, as Linux's TASK_SIZE is:
	// pages up to it change, then ENOMEM.
	start, n := uint64(addr)/pg, rounded/pg
	for i := start; i < start+n; i++ {
		p := m.pages[i]
		if p == nil || i >= m.size/pg {
			return unix.ENOMEM
		}
		if !p.maxPerms.SupersetOf(perms) {
			return unix.EACCES
		}
		p.perms = perms
	}
	return 0
}

// access returns the page holding addr if the access is allowed, breaking
// copy-on-write for a write to a private file page; nil if it faults.
func (m *refModel) access(addr uint64, at hostarch.AccessType, ignore bool) []byte {
	p := m.pages[addr/pg]
	if p == nil {
		return nil
	}
	perms := p.perms
	if ignore {
		perms = p.maxPerms
	}
	if !perms.Effective().SupersetOf(at) {
		return nil
	}
	b := p.bytes()
	if b == nil {
		return nil
	}
	if at.Write && p.private && p.file != nil && p.data == nil {
		p.data = append([]byte(nil), b...)
		b = p.data
	}
	return b
}

// copy simulates CopyIn (write false) or CopyOut/ZeroOut (write true) of n
// bytes at addr: it returns the count and, for reads, the bytes read.
func (m *refModel) copy(addr uint64, n uint64, write bool, src []byte, ignore bool) (uint64, []byte, bool) {
	if n == 0 {
		return 0, nil, true
	}
	if end := addr + n; end < addr || end > m.size {
		return 0, nil, false
	}
	at := hostarch.Read
	if write {
		at = hostarch.Write
	}
	var out []byte
	var done uint64
	for done < n {
		a := addr + done
		b := m.access(a, at, ignore)
		if b == nil {
			return done, out, false
		}
		chunk := min(n-done, pg-a%pg)
		if write {
			if src == nil {
				clear(b[a%pg : a%pg+chunk])
			} else {
				copy(b[a%pg:], src[done:done+chunk])
			}
		} else {
			out = append(out, b[a%pg:a%pg+chunk]...)
		}
		done += chunk
	}
	return done, out, true
}

func errnoOf(err error) unix.Errno {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.Errno(1 << 20)
}

type modelRun struct {
	t  *testing.T
	as *AddressSpace
	m  *refModel
	// The family of clones: operations go to a random member (as, m).
	fam   []*AddressSpace
	fm    []*refModel
	files []*refFile
	byF   map[*os.File]*refFile
	rng   *rand.Rand
	ctx   context.Context
	log   []string
	// hostEvery > 0 checks every hostEvery operations that each space's
	// views consist of exactly the host mappings its account says.
	hostEvery int
}

func (r *modelRun) fail(format string, args ...any) {
	r.t.Helper()
	var tail []string
	for _, l := range r.log {
		if l != "compareAll" {
			tail = append(tail, l)
		}
	}
	if len(tail) > 25 {
		tail = tail[len(tail)-25:]
	}
	var b bytes.Buffer
	for _, l := range tail {
		b.WriteString("  " + l + "\n")
	}
	r.t.Fatalf("after %d ops (last ops:\n%s): %s", len(r.log), b.String(), fmt.Sprintf(format, args...))
}

func (r *modelRun) randPerms() hostarch.AccessType {
	x := r.rng.Intn(8)
	return hostarch.AccessType{Read: x&1 != 0, Write: x&2 != 0, Execute: x&4 != 0}
}

func (r *modelRun) randAddr() hostarch.Addr {
	switch r.rng.Intn(20) {
	case 0:
		return hostarch.Addr(r.m.size) - hostarch.Addr(r.rng.Intn(3))*pg
	case 1:
		return ^hostarch.Addr(0) - hostarch.Addr(r.rng.Intn(pg))
	case 2:
		return hostarch.Addr(r.rng.Intn(3) * pg)
	}
	return hostarch.Addr(r.rng.Int63n(int64(r.m.size)))
}

func (r *modelRun) step() {
	rng := r.rng
	i := rng.Intn(len(r.fam))
	r.as, r.m = r.fam[i], r.fm[i]
	logged := len(r.log)
	defer func() {
		for k := logged; k < len(r.log); k++ {
			r.log[k] = fmt.Sprintf("[%d] %s", i, r.log[k])
		}
	}()
	switch op := rng.Intn(118); {
	case op >= 112 && op < 115: // Brk
		r.brk()
	case op >= 115: // Msync and Mincore: errors and lengths
		r.syncCore()
	case op >= 100 && op < 102: // Clone
		if len(r.fam) >= 4 {
			return
		}
		r.log = append(r.log, fmt.Sprintf("Clone(space %d)", i))
		c, err := r.as.Clone()
		if err != nil {
			r.fail("Clone: %v", err)
		}
		r.fam = append(r.fam, c)
		r.fm = append(r.fm, r.m.clone())
	case op == 102: // Close one member
		if len(r.fam) < 2 {
			return
		}
		r.log = append(r.log, fmt.Sprintf("Close(space %d)", i))
		if err := r.as.Close(); err != nil {
			r.fail("Close: %v", err)
		}
		r.fam = append(r.fam[:i], r.fam[i+1:]...)
		r.fm = append(r.fm[:i], r.fm[i+1:]...)
	case op == 107: // Mremap with MREMAP_DONTUNMAP
		r.mremapDontUnmap()
	case op >= 103 && op < 107: // Mremap
		r.mremap()
	case op == 111: // the advice of the kernel-extras issue
		r.madviseMore()
	case op >= 108 && op < 111: // Madvise
		addr := r.randAddr()
		if rng.Intn(6) != 0 {
			addr = addr.RoundDown()
		}
		length := uint64(rng.Intn(5*pg + 1))
		r.log = append(r.log, fmt.Sprintf("Madvise(%#x, %#x, DONTNEED)", addr, length))
		err := r.as.Madvise(addr, length, unix.MADV_DONTNEED)
		if werr := r.m.dontNeed(addr, length); errnoOf(err) != werr {
			r.fail("Madvise(%#x, %#x) = %v; want %v", addr, length, err, werr)
		}
	case op < 14: // Mmap
		o := MmapOpts{
			Length:  uint64(rng.Intn(6)+1) * pg,
			Fixed:   rng.Intn(3) != 0,
			Perms:   r.randPerms(),
			Private: rng.Intn(2) == 0,
		}
		if rng.Intn(8) == 0 {
			o.Length -= uint64(rng.Intn(pg))
		}
		if rng.Intn(30) == 0 {
			o.Length = uint64(rng.Intn(2)) * (^uint64(0) - uint64(rng.Intn(pg)))
		}
		o.Addr = r.randAddr()
		if rng.Intn(2) == 0 {
			o.Addr = o.Addr.RoundDown()
		}
		if rng.Intn(4) == 0 {
			o.MaxPerms = r.randPerms()
		}
		if rng.Intn(2) == 0 {
			rf := r.files[rng.Intn(len(r.files))]
			o.File = rf.f
			o.Offset = uint64(rng.Intn(14)) * pg
			if rng.Intn(20) == 0 {
				o.Offset += uint64(rng.Intn(pg))
			}
		}
		r.log = append(r.log, fmt.Sprintf("Mmap(%+v)", o))
		got, err := r.as.Mmap(o)
		want, werr := r.m.mmap(o, r.byF)
		if errnoOf(err) != werr || (werr == 0 && got != want) {
			r.fail("Mmap(%+v) = %#x, %v; want %#x, %v", o, got, err, want, werr)
		}
	case op < 22: // Munmap
		addr := r.randAddr()
		if rng.Intn(4) != 0 {
			addr = addr.RoundDown()
		}
		length := uint64(rng.Intn(8*pg + 1))
		r.log = append(r.log, fmt.Sprintf("Munmap(%#x, %#x)", addr, length))
		err := r.as.Munmap(addr, length)
		if werr := r.m.munmap(addr, length); errnoOf(err) != werr {
			r.fail("Munmap(%#x, %#x) = %v; want %v", addr, length, err, werr)
		}
	case op < 34: // Mprotect
		addr := r.randAddr()
		if rng.Intn(6) != 0 {
			addr = addr.RoundDown()
		}
		length := uint64(rng.Intn(6*pg + 1))
		perms := r.randPerms()
		r.log = append(r.log, fmt.Sprintf("Mprotect(%#x, %#x, %v)", addr, length, perms))
		err := r.as.Mprotect(addr, length, perms)
		if werr := r.m.mprotect(addr, length, perms); errnoOf(err) != werr {
			r.fail("Mprotect(%#x, %#x, %v) = %v; want %v", addr, length, perms, err, werr)
		}
	case op < 60: // CopyIn
		addr, n, opts := r.copyArgs()
		r.log = append(r.log, fmt.Sprintf("CopyIn(%#x, %d, %+v)", addr, n, opts))
		buf := make([]byte, n)
		got, err := r.as.CopyIn(r.ctx, addr, buf, opts)
		want, wantBytes, ok := r.m.copy(uint64(addr), uint64(n), false, nil, opts.IgnorePermissions)
		if uint64(got) != want || (err == nil) != ok || (err != nil && !errors.Is(err, unix.EFAULT)) {
			r.fail("CopyIn(%#x, %d, %+v) = %d, %v; want %d, ok %v", addr, n, opts, got, err, want, ok)
		}
		if !bytes.Equal(buf[:got], wantBytes) {
			r.fail("CopyIn(%#x, %d) bytes differ", addr, n)
		}
	case op < 84: // CopyOut / ZeroOut
		addr, n, opts := r.copyArgs()
		src := make([]byte, n)
		rng.Read(src)
		zero := rng.Intn(4) == 0
		var got int64
		var err error
		if zero {
			r.log = append(r.log, fmt.Sprintf("ZeroOut(%#x, %d, %+v)", addr, n, opts))
			got, err = r.as.ZeroOut(r.ctx, addr, int64(n), opts)
			src = nil
		} else {
			r.log = append(r.log, fmt.Sprintf("CopyOut(%#x, %d, %+v)", addr, n, opts))
			var g int
			g, err = r.as.CopyOut(r.ctx, addr, src, opts)
			got = int64(g)
		}
		want, _, ok := r.m.copy(uint64(addr), uint64(n), true, src, opts.IgnorePermissions)
		if n == 0 {
			want, ok = 0, true
		}
		if uint64(got) != want || (err == nil) != ok || (err != nil && !errors.Is(err, unix.EFAULT)) {
			r.fail("write(%#x, %d, %+v, zero %v) = %d, %v; want %d, ok %v", addr, n, opts, zero, got, err, want, ok)
		}
	case op < 88: // vectored CopyOutFrom / CopyInTo
		r.vectored()
	case op < 94: // atomics
		addr := r.randAddr() &^ 3
		if rng.Intn(10) == 0 {
			addr |= 1
		}
		opts := usermem.IOOpts{IgnorePermissions: rng.Intn(4) == 0}
		r.atomic(addr, opts)
	default: // whole comparison
		r.compareAll()
	}
}

// brk drives a random Brk against the model.
func (r *modelRun) brk() {
	rng := r.rng
	var addr hostarch.Addr
	switch rng.Intn(6) {
	case 0:
	case 1:
		addr = r.randAddr()
	default:
		addr = hostarch.Addr(r.m.brkStart) + hostarch.Addr(rng.Intn(12*pg))
	}
	r.log = append(r.log, fmt.Sprintf("Brk(%#x)", addr))
	got, err := r.as.Brk(addr)
	want, werr := r.m.setBrk(uint64(addr))
	if errnoOf(err) != werr || uint64(got) != want {
		r.fail("Brk(%#x) = %#x, %v; want %#x, %v", addr, got, err, want, werr)
	}
}

func (m *refModel) setBrk(addr uint64) (uint64, unix.Errno) {
	cur := m.brk
	if addr == 0 {
		return cur, 0
	}
	if addr < m.brkStart || addr > m.size {
		return cur, unix.ENOMEM
	}
	oldEnd, newEnd := (cur+pg-1)/pg, (addr+pg-1)/pg
	switch {
	case newEnd < oldEnd:
		for i := newEnd; i < oldEnd; i++ {
			delete(m.pages, i)
		}
	case newEnd > oldEnd:
		guard := min(newEnd+1, m.size/pg)
		if !m.free(oldEnd, guard-oldEnd) {
			return cur, unix.ENOMEM
		}
		for i := oldEnd; i < newEnd; i++ {
			m.pages[i] = &refPage{perms: hostarch.ReadWrite, maxPerms: hostarch.AnyAccess, private: true, data: make([]byte, pg)}
		}
	}
	m.brk = addr
	return addr, 0
}

// syncCore drives Msync or Mincore; the model knows their errors and how
// many pages Mincore reports, not which pages the host holds.
func (r *modelRun) syncCore() {
	rng := r.rng
	addr := r.randAddr()
	if rng.Intn(6) != 0 {
		addr = addr.RoundDown()
	}
	length := uint64(rng.Intn(5*pg + 1))
	var werr unix.Errno
	start, n, e := r.m.mgmtRange(addr, length, unix.ENOMEM)
	werr = e
	if werr == 0 {
		for i := start; i < start+n; i++ {
			if r.m.pages[i] == nil {
				werr = unix.ENOMEM
				break
			}
		}
	}
	if rng.Intn(2) == 0 {
		flags := []int{unix.MS_ASYNC, unix.MS_SYNC, unix.MS_SYNC | unix.MS_INVALIDATE, unix.MS_ASYNC | unix.MS_SYNC}[rng.Intn(4)]
		if flags == unix.MS_ASYNC|unix.MS_SYNC {
			werr = unix.EINVAL
		}
		r.log = append(r.log, fmt.Sprintf("Msync(%#x, %#x, %#x)", addr, length, flags))
		if err := r.as.Msync(addr, length, flags); errnoOf(err) != werr {
			r.fail("Msync(%#x, %#x, %#x) = %v; want %v", addr, length, flags, err, werr)
		}
		return
	}
	r.log = append(r.log, fmt.Sprintf("Mincore(%#x, %#x)", addr, length))
	res, err := r.as.Mincore(addr, length)
	if errnoOf(err) != werr || (werr == 0 && uint64(len(res)) != n) {
		r.fail("Mincore(%#x, %#x) = %d pages, %v; want %d, %v", addr, length, len(res), err, n, werr)
	}
}

// clone returns the model of a Clone: the same pages, private contents
// copied, shared contents aliased.
func (m *refModel) clone() *refModel {
	c := &refModel{size: m.size, pages: make(map[uint64]*refPage, len(m.pages)), brkStart: m.brkStart, brk: m.brk}
	for n, p := range m.pages {
		if p.dontFork {
			continue
		}
		cp := *p
		if p.private && p.data != nil {
			cp.data = append([]byte(nil), p.data...)
		}
		if p.wipeOnFork {
			cp.data = make([]byte, pg)
		}
		c.pages[n] = &cp
	}
	return c
}

// dontNeed is Madvise(MADV_DONTNEED): every mapped page of the range is
// advised, then a hole (the end of the space included) gives ENOMEM.
func (m *refModel) dontNeed(addr hostarch.Addr, length uint64) unix.Errno {
	if !addr.IsPageAligned() {
		return unix.EINVAL
	}
	rounded, ok := hostarch.PageRoundUp(length)
	if !ok || uint64(addr)+rounded < uint64(addr) {
		return unix.EINVAL
	}
	var e unix.Errno
	for a := uint64(addr); a < uint64(addr)+rounded; a += pg {
		p := m.pages[a/pg]
		if a >= m.size || p == nil {
			e = unix.ENOMEM
			continue
		}
		if !p.private {
			continue
		}
		if p.file != nil {
			p.data = nil
		} else {
			p.data = make([]byte, pg)
		}
	}
	return e
}

// mremap drives a random Mremap against the model: shrinks, growth in
// place and by move, FIXED moves (of several mappings when the length is
// unchanged) and duplicates (old length 0).
func (r *modelRun) mremap() {
	rng := r.rng
	var old hostarch.Addr
	var oldLen uint64
	ms := r.as.Mappings()
	if len(ms) > 0 && rng.Intn(5) != 0 {
		mp := ms[rng.Intn(len(ms))]
		n := uint64(mp.Range.Length()) / pg
		first := uint64(rng.Intn(int(n)))
		old = mp.Range.Start + hostarch.Addr(first*pg)
		oldLen = (uint64(rng.Intn(int(n-first))) + 1) * pg
	} else {
		old = r.randAddr().RoundDown()
		oldLen = uint64(rng.Intn(4)+1) * pg
	}
	newLen := uint64(rng.Intn(6)+1) * pg
	if rng.Intn(6) == 0 {
		newLen -= uint64(rng.Intn(pg))
	}
	flags := 0
	switch rng.Intn(4) {
	case 0:
	case 1, 2:
		flags = unix.MREMAP_MAYMOVE
	case 3:
		flags = unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED
	}
	if rng.Intn(30) == 0 {
		flags = unix.MREMAP_FIXED
	}
	newAddr := r.randAddr()
	if rng.Intn(5) != 0 {
		newAddr = newAddr.RoundDown()
	}
	if rng.Intn(10) == 0 {
		oldLen = 0 // duplicate
	}
	if rng.Intn(10) == 0 {
		newLen = oldLen // same length: with FIXED, a move of every mapping in the range
	}
	r.log = append(r.log, fmt.Sprintf("Mremap(%#x, %#x, %#x, %#x, %#x)", old, oldLen, newLen, flags, newAddr))
	got, err := r.as.Mremap(old, oldLen, newLen, flags, newAddr)
	want, werr := r.m.mremap(old, oldLen, newLen, flags, newAddr, ms)
	if errnoOf(err) != werr || (werr == 0 && got != want) {
		r.fail("Mremap = %#x, %v; want %#x, %v", got, err, want, werr)
	}
}

// mappingOf returns the mapping of ms containing addr.
func mappingOf(ms []Mapping, addr hostarch.Addr) (hostarch.AddrRange, bool) {
	for _, mp := range ms {
		if mp.Range.Start <= addr && addr < mp.Range.End {
			return mp.Range, true
		}
	}
	return hostarch.AddrRange{}, false
}

// mremap is Linux's mremap (6.17 and later) over the model's pages. Where a
// mapping's boundaries matter (a range to grow or move must lie in one; it
// grows in place only from the mapping's end; a FIXED move of the same
// length moves each mapping of the range), ms, the AddressSpace's Mappings
// before the call, says where they are: how VMAs merge is checked against
// the host kernel (TestHostDiff), what the pages hold is the model's.
func (m *refModel) mremap(old hostarch.Addr, oldLen, newLen uint64, flags int, newAddr hostarch.Addr, ms []Mapping) (hostarch.Addr, unix.Errno) {
	mayMove, fixed := flags&unix.MREMAP_MAYMOVE != 0, flags&unix.MREMAP_FIXED != 0
	if flags&^(unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED) != 0 || !old.IsPageAligned() {
		return 0, unix.EINVAL
	}
	oldLen = (oldLen + pg - 1) &^ (pg - 1)
	newLen = (newLen + pg - 1) &^ (pg - 1)
	size := m.size
	if newLen == 0 || newLen > size {
		return 0, unix.EINVAL
	}
	if fixed {
		if uint64(newAddr) > size-newLen || !newAddr.IsPageAligned() || !mayMove {
			return 0, unix.EINVAL
		}
		if uint64(old)+oldLen > uint64(newAddr) && uint64(newAddr)+newLen > uint64(old) {
			return 0, unix.EINVAL
		}
	}
	mapped := func(a uint64) bool { return a < size && m.pages[a/pg] != nil }
	movePages := func(from, to, n uint64) {
		moved := make([]*refPage, n/pg)
		for k := range moved {
			moved[k] = m.pages[from/pg+uint64(k)]
			delete(m.pages, from/pg+uint64(k))
		}
		for k, p := range moved {
			if p != nil {
				m.pages[to/pg+uint64(k)] = p
			}
		}
	}
	unmap := func(a, n uint64) {
		for i := a / pg; i < (a+n)/pg; i++ {
			delete(m.pages, i)
		}
	}
	if fixed && oldLen == newLen {
		// Every mapping in the range moves, gaps and all.
		if !mapped(uint64(old)) {
			return 0, unix.EFAULT
		}
		end := min(uint64(old)+oldLen, size)
		if uint64(old)+oldLen < uint64(old) {
			end = size
		}
		for a := uint64(old); a < end; {
			mp, ok := mappingOf(ms, hostarch.Addr(a))
			if !ok {
				a += pg
				continue
			}
			pe := min(uint64(mp.End), end)
			dst := uint64(newAddr) + (a - uint64(old))
			unmap(dst, pe-a)
			if dst < MinAddr {
				return 0, unix.EPERM // mmap_min_addr, after the target is unmapped
			}
			movePages(a, dst, pe-a)
			a = pe
		}
		return newAddr, 0
	}
	if !mapped(uint64(old)) {
		return 0, unix.EFAULT
	}
	if !fixed && oldLen == newLen {
		return old, 0
	}
	if !fixed && newLen < oldLen {
		if uint64(old)+oldLen < uint64(old) || uint64(old)+oldLen > size {
			return 0, unix.EINVAL
		}
		unmap(uint64(old)+newLen, oldLen-newLen)
		return old, 0
	}
	mp, _ := mappingOf(ms, old)
	first := m.pages[uint64(old)/pg]
	if oldLen == 0 && first.private {
		return 0, unix.EINVAL
	}
	if min(oldLen, newLen) > uint64(mp.End-old) {
		return 0, unix.EFAULT
	}
	o := uint64(old)
	extend := func(at, n uint64, last *refPage) {
		for k := uint64(0); k < n/pg; k++ {
			p := &refPage{perms: last.perms, maxPerms: last.maxPerms, private: last.private, file: last.file, dontFork: last.dontFork, wipeOnFork: last.wipeOnFork}
			if last.file != nil {
				p.off = last.off + (k+1)*pg
			} else {
				p.data = make([]byte, pg)
			}
			m.pages[at/pg+k] = p
		}
	}
	var dst uint64
	if fixed {
		dst = uint64(newAddr)
		unmap(dst, newLen)
		if !mapped(o) {
			return 0, unix.EFAULT
		}
		if oldLen > newLen {
			if o+oldLen < o || o+oldLen > size {
				return 0, unix.EINVAL
			}
			unmap(o+newLen, oldLen-newLen)
			oldLen = newLen
		}
		if dst < MinAddr {
			return 0, unix.EPERM
		}
	} else {
		oldEnd := o + oldLen
		extra := newLen - oldLen
		if oldLen > 0 && oldEnd == uint64(mp.End) && oldEnd <= size && extra <= size-oldEnd && m.free(oldEnd/pg, extra/pg) {
			extend(oldEnd, extra, m.pages[oldEnd/pg-1])
			return old, 0
		}
		if !mayMove {
			return 0, unix.ENOMEM
		}
		found := false
		nn := newLen / pg
		for s := size/pg - nn; s >= 1; s-- {
			if m.free(s, nn) {
				dst, found = s*pg, true
				break
			}
		}
		if !found {
			return 0, unix.ENOMEM
		}
	}
	if oldLen == 0 {
		// A second mapping of the shared pages from old on, with the
		// first page's flags: Linux's copy_vma duplicates the VMA, so
		// MADV_DONTFORK (VM_DONTCOPY, "dc" in smaps) carries over.
		for k := uint64(0); k < newLen/pg; k++ {
			m.pages[dst/pg+k] = &refPage{perms: first.perms, maxPerms: first.maxPerms, file: first.file, off: first.off + k*pg, dontFork: first.dontFork}
		}
		return hostarch.Addr(dst), 0
	}
	movePages(o, dst, oldLen)
	if newLen > oldLen {
		extend(dst+oldLen, newLen-oldLen, m.pages[(dst+oldLen)/pg-1])
	}
	return hostarch.Addr(dst), 0
}

// vectored runs CopyOutFrom or CopyInTo over 1-3 random ranges.
func (r *modelRun) vectored() {
	rng := r.rng
	var ars []hostarch.AddrRange
	var total int
	for k := rng.Intn(3) + 1; k > 0; k-- {
		addr, n, _ := r.copyArgs()
		end := addr + hostarch.Addr(n)
		if end < addr {
			end = addr
		}
		ars = append(ars, hostarch.AddrRange{Start: addr, End: end})
		total += int(end - addr)
	}
	opts := usermem.IOOpts{IgnorePermissions: rng.Intn(4) == 0}
	seq := hostarch.AddrRangeSeqFromSlice(ars)
	write := rng.Intn(2) == 0
	r.log = append(r.log, fmt.Sprintf("vectored(write %v, %v, %+v)", write, ars, opts))
	// The model: every range, even an empty one, must pass the bounds check
	// (as Linux's import_iovec checks access_ok of each iovec), then bytes
	// move in order until the first inaccessible one.
	inBounds := true
	for _, ar := range ars {
		if uint64(ar.End) > r.m.size {
			inBounds = false
		}
	}
	var want uint64
	var wantBytes []byte
	ok := true
	src := make([]byte, total)
	rng.Read(src)
	if inBounds && write {
		// Like gVisor, CopyOutFrom makes every page of the writable prefix
		// writable (breaking copy-on-write) before the reader writes any
		// byte: a private page whose file is written through another range
		// of the same call keeps the file's earlier contents.
		stop := false
		for _, ar := range ars {
			for a := uint64(ar.Start); a < uint64(ar.End) && !stop; a = (a/pg + 1) * pg {
				stop = r.m.access(a, hostarch.Write, opts.IgnorePermissions) == nil
			}
			if stop {
				break
			}
		}
	}
	if inBounds {
		for _, ar := range ars {
			n := uint64(ar.Length())
			var chunk []byte
			if write {
				chunk = src[want : want+n]
			}
			got, b, fine := r.m.copy(uint64(ar.Start), n, write, chunk, opts.IgnorePermissions)
			want += got
			wantBytes = append(wantBytes, b...)
			if !fine {
				ok = false
				break
			}
		}
	} else {
		ok = false
	}
	if seq.NumBytes() == 0 && inBounds {
		ok = true
	}
	var got int64
	var err error
	var out bytes.Buffer
	if write {
		got, err = r.as.CopyOutFrom(r.ctx, seq, safemem.FromIOReader{Reader: bytes.NewReader(src)}, opts)
	} else {
		got, err = r.as.CopyInTo(r.ctx, seq, safemem.FromIOWriter{Writer: &out}, opts)
	}
	if uint64(got) != want || (err == nil) != ok || (err != nil && !errors.Is(err, unix.EFAULT)) {
		r.fail("vectored(write %v, %v) = %d, %v; want %d, ok %v", write, ars, got, err, want, ok)
	}
	if !write && !bytes.Equal(out.Bytes(), wantBytes) {
		r.fail("CopyInTo bytes differ")
	}
}

func (r *modelRun) copyArgs() (hostarch.Addr, int, usermem.IOOpts) {
	addr := r.randAddr()
	n := r.rng.Intn(3*pg + 1)
	if r.rng.Intn(3) == 0 {
		n = r.rng.Intn(40)
	}
	return addr, n, usermem.IOOpts{IgnorePermissions: r.rng.Intn(4) == 0}
}

func (r *modelRun) atomic(addr hostarch.Addr, opts usermem.IOOpts) {
	kind := r.rng.Intn(3)
	r.log = append(r.log, fmt.Sprintf("atomic%d(%#x, %+v)", kind, addr, opts))
	var got uint32
	var err error
	v := r.rng.Uint32()
	switch kind {
	case 0:
		got, err = r.as.SwapUint32(r.ctx, addr, v, opts)
	case 1:
		got, err = r.as.CompareAndSwapUint32(r.ctx, addr, v&1, v, opts)
	case 2:
		got, err = r.as.LoadUint32(r.ctx, addr, opts)
	}
	if addr&3 != 0 {
		if !errors.Is(err, unix.EINVAL) {
			r.fail("misaligned atomic at %#x: %v", addr, err)
		}
		return
	}
	at := hostarch.ReadWrite
	if kind == 2 {
		at = hostarch.Read
	}
	a := uint64(addr)
	if a+4 > r.m.size {
		if !errors.Is(err, unix.EFAULT) {
			r.fail("atomic beyond Size at %#x: %v", addr, err)
		}
		return
	}
	b := r.m.access(a, at, opts.IgnorePermissions)
	if b == nil {
		if !errors.Is(err, unix.EFAULT) {
			r.fail("atomic %d at %#x = %d, %v; want EFAULT", kind, addr, got, err)
		}
		return
	}
	cur := hostarch.ByteOrder.Uint32(b[a%pg:])
	if err != nil || got != cur {
		r.fail("atomic %d at %#x = %#x, %v; want %#x", kind, addr, got, err, cur)
	}
	switch {
	case kind == 0, kind == 1 && cur == v&1:
		hostarch.ByteOrder.PutUint32(b[a%pg:], v)
	}
}

// compareAll reads every page of the model through the AddressSpace.
func (r *modelRun) compareAll() {
	r.log = append(r.log, "compareAll")
	buf := make([]byte, pg)
	for i := uint64(0); i < r.m.size/pg; i++ {
		addr := hostarch.Addr(i * pg)
		n, err := r.as.CopyIn(r.ctx, addr, buf, usermem.IOOpts{IgnorePermissions: true})
		p := r.m.pages[i]
		var want []byte
		if p != nil && p.maxPerms.Effective().Read {
			want = p.bytes()
		}
		if want == nil {
			if n != 0 || err == nil {
				r.fail("page %#x: CopyIn = %d, %v; want EFAULT", addr, n, err)
			}
			continue
		}
		if n != pg || err != nil || !bytes.Equal(buf, want) {
			first := -1
			for k := range buf {
				if buf[k] != want[k] {
					first = k
					break
				}
			}
			idx := -1
			for k, a := range r.fam {
				if a == r.as {
					idx = k
				}
			}
			if v := r.as.find(addr); v != nil {
				r.t.Logf("vma %+v", *v)
			}
			r.fail("space %d page %#x (%+v): CopyIn = %d, %v (first difference at %#x: %#x, want %#x)", idx, addr, *p, n, err, first, buf[max(first, 0)], want[max(first, 0)])
		}
	}
	// A private file page has a memory-file page of its own iff the model
	// copied it (fault-around takes in only pages copied already).
	r.as.mu.Lock()
	for n, p := range r.m.pages {
		if p.private && p.file != nil {
			has := false
			r.as.pt.Owned(n*pg, n*pg+pg, func(uint64, uint64) { has = true })
			if has != (p.data != nil) {
				r.as.mu.Unlock()
				r.fail("page %#x: the page table has a page of its own: %v; the model copied it: %v", n*pg, has, p.data != nil)
			}
		}
	}
	r.as.mu.Unlock()
	// Mappings must cover exactly the model's pages, with their attributes.
	covered := 0
	for _, mp := range r.as.Mappings() {
		for a := mp.Range.Start; a < mp.Range.End; a += pg {
			p := r.m.pages[uint64(a)/pg]
			if p == nil || p.perms != mp.Perms || p.maxPerms != mp.MaxPerms || p.private != mp.Private ||
				(p.file == nil || p.file.shm) != (mp.FileName == "") || (p.file != nil && p.off != mp.Offset+uint64(a-mp.Range.Start)) {
				r.fail("mapping %+v disagrees with the model at %#x: %+v", mp, a, p)
			}
			covered++
		}
	}
	if covered != len(r.m.pages) {
		var missing []string
		for n := range r.m.pages {
			if _, err := r.as.Mincore(hostarch.Addr(n*pg), pg); err != nil {
				missing = append(missing, fmt.Sprintf("%#x", n*pg))
			}
		}
		r.fail("Mappings cover %d pages, the model has %d (missing %v; mappings %+v)", covered, len(r.m.pages), missing, r.as.Mappings())
	}
	// Shared file data reached the files.
	for _, rf := range r.files {
		if !rf.writable {
			continue
		}
		data, err := os.ReadFile(rf.f.Name())
		if err != nil {
			r.t.Fatal(err)
		}
		if !bytes.Equal(data, rf.cache[:rf.size]) {
			r.fail("file %s differs from the model", rf.f.Name())
		}
	}
}

// TestModel runs seeded random operation sequences against the reference
// model. MMSIM_MODEL_OPS and MMSIM_MODEL_SEED override the defaults, and
// MMSIM_MODEL_TIME (a Go duration, default 5m) bounds the run.
func TestModel(t *testing.T) {
	ops := 120000
	if testing.Short() {
		ops = 20000
	}
	if s := os.Getenv("MMSIM_MODEL_OPS"); s != "" {
		fmt.Sscan(s, &ops)
	}
	seed := int64(1)
	if s := os.Getenv("MMSIM_MODEL_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	const runs = 4
	limit := 5 * time.Minute
	if s := os.Getenv("MMSIM_MODEL_TIME"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		limit = d
	}
	deadline := time.Now().Add(limit)
	done := 0
	for run := 0; run < runs; run++ {
		done += modelRunOnce(t, seed+int64(run), ops/runs, deadline)
	}
	t.Logf("%d operations, zero divergence", done)
}

func modelRunOnce(t *testing.T, seed int64, ops int, deadline time.Time) int {
	return modelRunWith(t, rand.NewSource(seed), ops, deadline, 0)
}

// TestModelHostAccount runs the model's random operations and checks after
// every one that the host's /proc/self/maps shows, within each space's
// views, exactly the host mappings that the page table accounts for.
func TestModelHostAccount(t *testing.T) {
	ops := 3000
	if testing.Short() {
		ops = 500
	}
	done := modelRunWith(t, rand.NewSource(7), ops, time.Now().Add(time.Minute), 1)
	t.Logf("%d operations, host account exact after each", done)
}

// modelRunWith runs up to ops random operations drawn from src.
func modelRunWith(t *testing.T, src rand.Source, ops int, deadline time.Time, hostEvery int) int {
	size := uint64(48 * pg)
	as, err := New(Options{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	dir := t.TempDir()
	rng := rand.New(src)
	r := &modelRun{t: t, as: as, m: &refModel{size: size, pages: map[uint64]*refPage{}, brkStart: size / 8, brk: size / 8}, rng: rng, ctx: context.Background(), byF: map[*os.File]*refFile{}, hostEvery: hostEvery}
	r.fam, r.fm = []*AddressSpace{as}, []*refModel{r.m}
	for i, spec := range []struct {
		writable bool
		size     uint64
	}{
		// The writable file is whole pages: the kernel may zero the bytes
		// past EOF of a dirty last page whenever it writes the page back
		// (msync, background writeback), which the model cannot predict.
		// The read-only file, never dirtied, keeps a partial last page.
		{true, 10 * pg}, {false, 6*pg - 1000},
	} {
		name := filepath.Join(dir, fmt.Sprintf("f%d", i))
		data := make([]byte, spec.size)
		rand.New(rand.NewSource(int64(i))).Read(data)
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		flag := os.O_RDONLY
		if spec.writable {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(name, flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cache := make([]byte, 16*pg)
		copy(cache, data)
		rf := &refFile{f: f, writable: spec.writable, size: spec.size, cache: cache}
		r.files = append(r.files, rf)
		r.byF[f] = rf
	}
	paranoid := os.Getenv("MMSIM_MODEL_PARANOID") != ""
	i := 0
	for ; i < ops; i++ {
		r.step()
		if r.hostEvery > 0 && i%r.hostEvery == 0 {
			for _, as := range r.fam {
				if err := checkHostAccount(as); err != nil {
					r.fail("%v", err)
				}
			}
		}
		if paranoid {
			if err := checkRefs(r.fam); err != nil {
				r.fail("%v", err)
			}
			for k := range r.fam {
				r.as, r.m = r.fam[k], r.fm[k]
				r.compareAll()
			}
		}
		if i%1024 == 0 && time.Now().After(deadline) {
			break
		}
	}
	for k := range r.fam {
		r.as, r.m = r.fam[k], r.fm[k]
		r.compareAll()
	}
	for _, c := range r.fam[1:] {
		c.Close()
	}
	return i
}

// byteSource is a rand.Source that replays a fuzzer's bytes, so that the
// fuzzer chooses the operations; past the end it yields zeros.
type byteSource struct{ data []byte }

func (s *byteSource) Int63() int64 {
	var b [8]byte
	n := copy(b[:], s.data)
	s.data = s.data[n:]
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1)
}

func (s *byteSource) Seed(int64) {}

// FuzzModel lets the fuzzer choose the operations of a short model run:
// every Mmap, Munmap, Mprotect, Mremap, Madvise, Brk, Clone, copy and
// atomic, with their address and length arithmetic, against the model.
func FuzzModel(f *testing.F) {
	for seed := int64(0); seed < 4; seed++ {
		b := make([]byte, 800)
		rand.New(rand.NewSource(seed)).Read(b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			data = data[:4096]
		}
		// Roughly one operation for each 16 bytes of input.
		modelRunWith(t, &byteSource{data}, len(data)/16+1, time.Now().Add(time.Minute), 0)
	})
}
