package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// The model of the advice of the kernel-extras issue (see Madvise), page
// by page: Linux walks VMAs, and a VMA that refuses the advice refuses it at
// its first page, so walking pages stops at the same place.

// madviseMore drives a random Madvise with the new advice against the
// model.
func (r *modelRun) madviseMore() {
	rng := r.rng
	addr := r.randAddr()
	if rng.Intn(6) != 0 {
		addr = addr.RoundDown()
	}
	length := uint64(rng.Intn(5*pg + 1))
	advice := []int{unix.MADV_FREE, unix.MADV_FREE, unix.MADV_REMOVE, unix.MADV_DONTFORK, unix.MADV_DOFORK,
		unix.MADV_WIPEONFORK, unix.MADV_WIPEONFORK, unix.MADV_KEEPONFORK, unix.MADV_HUGEPAGE, unix.MADV_NOHUGEPAGE}[rng.Intn(10)]
	r.log = append(r.log, fmt.Sprintf("Madvise(%#x, %#x, %d)", addr, length, advice))
	err := r.as.Madvise(addr, length, advice)
	if werr := r.m.adviseMore(addr, length, advice); errnoOf(err) != werr {
		r.fail("Madvise(%#x, %#x, %d) = %v; want %v", addr, length, advice, err, werr)
	}
}

// adviseMore applies advice to the model: pages in address order, holes
// (the end of the space included) giving ENOMEM once every mapped page is
// advised, a page that refuses the advice stopping the walk with its error.
func (m *refModel) adviseMore(addr hostarch.Addr, length uint64, advice int) unix.Errno {
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
		privAnon := p.private && p.file == nil
		switch advice {
		case unix.MADV_FREE:
			if !privAnon {
				return unix.EINVAL
			}
			p.data = make([]byte, pg)
		case unix.MADV_REMOVE:
			switch {
			case privAnon:
				return unix.EINVAL
			case p.private || !p.maxPerms.Write:
				return unix.EACCES
			}
			// Punch the page out of the file or shared-memory object:
			// every mapping of it that has not copied it reads zero.
			if c := p.file.cache; p.off < uint64(len(c)) {
				clear(c[p.off:min(p.off+pg, uint64(len(c)))])
			}
		case unix.MADV_DONTFORK:
			p.dontFork = true
		case unix.MADV_DOFORK:
			p.dontFork = false
		case unix.MADV_WIPEONFORK:
			if !privAnon {
				return unix.EINVAL
			}
			p.wipeOnFork = true
		case unix.MADV_KEEPONFORK:
			p.wipeOnFork = false
		}
	}
	return e
}

// mremapDontUnmap drives a random Mremap with MREMAP_DONTUNMAP against the
// model.
func (r *modelRun) mremapDontUnmap() {
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
		if rng.Intn(8) == 0 {
			oldLen += pg // into the next mapping or a hole
		}
	} else {
		old = r.randAddr().RoundDown()
		oldLen = uint64(rng.Intn(4)+1) * pg
	}
	newLen := oldLen
	if rng.Intn(10) == 0 {
		newLen = uint64(rng.Intn(6)+1) * pg
	}
	flags := unix.MREMAP_MAYMOVE | unix.MREMAP_DONTUNMAP
	switch rng.Intn(10) {
	case 0:
		flags = unix.MREMAP_DONTUNMAP
	case 1, 2, 3:
		flags |= unix.MREMAP_FIXED
	}
	newAddr := r.randAddr()
	if rng.Intn(8) != 0 {
		newAddr = newAddr.RoundDown()
	}
	r.log = append(r.log, fmt.Sprintf("Mremap(%#x, %#x, %#x, %#x, %#x)", old, oldLen, newLen, flags, newAddr))
	got, err := r.as.Mremap(old, oldLen, newLen, flags, newAddr)
	want, werr := r.m.mremapDontUnmap(old, oldLen, newLen, flags, newAddr, ms)
	if errnoOf(err) != werr || (werr == 0 && got != want) {
		r.fail("Mremap = %#x, %v; want %#x, %v", got, err, want, werr)
	}
}

// mremapDontUnmap is Linux's mremap with MREMAP_DONTUNMAP over the model's
// pages: the pages move, and the old range keeps pages of the same
// attributes that read fresh (zero for private anonymous memory, the file
// or shared-memory object otherwise). ms, the AddressSpace's Mappings
// before the call, says where mappings (Linux's VMAs) begin and end, as
// for mremap.
func (m *refModel) mremapDontUnmap(old hostarch.Addr, oldLen, newLen uint64, flags int, newAddr hostarch.Addr, ms []Mapping) (hostarch.Addr, unix.Errno) {
	mayMove, fixed := flags&unix.MREMAP_MAYMOVE != 0, flags&unix.MREMAP_FIXED != 0
	if flags&^(unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED|unix.MREMAP_DONTUNMAP) != 0 || !old.IsPageAligned() {
		return 0, unix.EINVAL
	}
	oldLen = (oldLen + pg - 1) &^ (pg - 1)
	newLen = (newLen + pg - 1) &^ (pg - 1)
	size := m.size
	if newLen == 0 || newLen > size {
		return 0, unix.EINVAL
	}
	if uint64(newAddr) > size-newLen || !newAddr.IsPageAligned() || !mayMove || oldLen != newLen {
		return 0, unix.EINVAL
	}
	if uint64(old)+oldLen > uint64(newAddr) && uint64(newAddr)+newLen > uint64(old) {
		return 0, unix.EINVAL
	}
	mapped := func(a uint64) bool { return a < size && m.pages[a/pg] != nil }
	// moveKeep moves the pages of [from, from+n) to to, leaving fresh
	// pages of the same attributes behind.
	moveKeep := func(from, to, n uint64) {
		for k := uint64(0); k < n/pg; k++ {
			delete(m.pages, to/pg+k)
		}
		for k := uint64(0); k < n/pg; k++ {
			p := m.pages[from/pg+k]
			if p == nil {
				continue
			}
			fresh := *p
			fresh.data = nil // a file's or shared-memory object's page
			if p.private && p.file == nil {
				fresh.data = make([]byte, pg)
			}
			m.pages[to/pg+k] = p
			m.pages[from/pg+k] = &fresh
		}
	}
	if !mapped(uint64(old)) {
		return 0, unix.EFAULT
	}
	if fixed {
		// Every mapping in the range moves, gaps and all (Linux 6.17's
		// remap_move, each piece with DONTUNMAP).
		end := min(uint64(old)+oldLen, size)
		for a := uint64(old); a < end; {
			mp, ok := mappingOf(ms, hostarch.Addr(a))
			if !ok {
				a += pg
				continue
			}
			pe := min(uint64(mp.End), end)
			dst := uint64(newAddr) + (a - uint64(old))
			for i := dst / pg; i < (dst+pe-a)/pg; i++ {
				delete(m.pages, i)
			}
			if dst < MinAddr {
				return 0, unix.EPERM
			}
			moveKeep(a, dst, pe-a)
			a = pe
		}
		return newAddr, 0
	}
	mp, _ := mappingOf(ms, old)
	if oldLen > uint64(mp.End-old) {
		return 0, unix.EFAULT
	}
	n := newLen / pg
	total := size / pg
	dst := uint64(0)
	if hint := uint64(newAddr) / pg; hint >= 1 && hint+n <= total && m.free(hint, n) {
		dst = hint * pg
	} else {
		for s := total - n; s >= 1; s-- {
			if m.free(s, n) {
				dst = s * pg
				break
			}
		}
		if dst == 0 {
			return 0, unix.ENOMEM
		}
	}
	moveKeep(uint64(old), dst, oldLen)
	return hostarch.Addr(dst), 0
}
