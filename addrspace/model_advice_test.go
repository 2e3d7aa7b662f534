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
