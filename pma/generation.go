package pma

import (
	"sync/atomic"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// Generation returns the table's generation: a number that changes
// whenever the app view may have stopped showing, with the same access,
// something it showed before — a page unmapped, its host protection
// reduced, its backing re-laid, every mapping evicted, the table closed —
// and whenever the caller says so (Invalidate). It does not change when a
// fault only adds access (backs a page, or makes a copy-on-write page
// writable). A caller that cached what the app view showed at generation g
// may keep using it while Generation returns g. Safe for concurrent use.
func (t *Table) Generation() uint64 { return t.gen.Load() }

// UseGeneration makes g the table's generation counter, continuing from
// the current generation: the owner of the table may keep the counter
// where its readers load it with fewer indirections. Call it before the
// table is shared.
func (t *Table) UseGeneration(g *atomic.Uint64) {
	g.Store(t.gen.Load())
	t.gen = g
}

// Invalidate changes the generation, for a change that the host views do
// not show (an Execute permission removed, say). Safe for concurrent use.
func (t *Table) Invalidate() { t.gen.Add(1) }

// downgrades reports whether the change p to [start, end) of a view (to
// seg, or only its protection if protOnly) takes access away from a page
// that the view maps: unmaps it, or maps it with less protection.
func downgrades(p *viewPlan, start, end uint64, seg hseg, protOnly bool) bool {
	for _, s := range p.old {
		if s.reserved() || s.end <= start || s.start >= end {
			continue
		}
		if !protOnly && seg.reserved() {
			return true
		}
		if s.prot&^seg.prot != 0 {
			return true
		}
	}
	return false
}

// maxRunEntries bounds the entries AccessibleRun looks at on each side of
// the address, so that a translation costs the same however fragmented
// the mapping is.
const maxRunEntries = 64

// AccessibleRun returns the run of pages [start, end) around the page of
// addr, inside [lo, hi), that the app view maps for an access (a write, if
// write): each page mapped, readable (and writable, if write), and not
// wholly beyond the end of the file it shows. It returns an empty run
// (start == end) if the page of addr itself is not so mapped. The run may
// be shorter than the longest such run: it looks at no more than
// maxRunEntries entries on each side.
//
// Preconditions: lo <= addr < hi, lo and hi page-aligned.
func (t *Table) AccessibleRun(addr, lo, hi uint64, write bool) (start, end uint64) {
	page := addr &^ (hostarch.PageSize - 1)
	e := t.entryAt(page)
	eofs := eofCache{fd: -1}
	if e == nil || !eofs.accessible(e, page, write) {
		return page, page
	}
	start, end = max(e.start, lo), min(eofs.end(e), hi)
	n := 0
	t.ents.DescendLessOrEqual(&entry{start: e.start - 1}, func(p *entry) bool {
		if e.start == 0 || p == e || p.end != start || start <= lo || n >= maxRunEntries || !eofs.accessible(p, p.start, write) {
			return false
		}
		if eofs.end(p) != p.end {
			return false
		}
		start, n = max(p.start, lo), n+1
		return true
	})
	n = 0
	if end == e.end {
		t.ents.AscendGreaterOrEqual(&entry{start: e.end}, func(q *entry) bool {
			if q.start != end || end >= hi || n >= maxRunEntries || !eofs.accessible(q, q.start, write) {
				return false
			}
			end, n = min(eofs.end(q), hi), n+1
			return end == q.end
		})
	}
	return start, end
}

// eofCache remembers the end of the last file AccessibleRun looked at, so
// that a run of entries of one file costs one fstat.
type eofCache struct {
	fd   int
	size uint64
	ok   bool
}

// fileSize returns the size of file fd, or false if it cannot be read.
func (c *eofCache) fileSize(fd int) (uint64, bool) {
	if fd != c.fd {
		var st unix.Stat_t
		c.fd, c.ok = fd, unix.Fstat(fd, &st) == nil
		c.size = uint64(st.Size)
	}
	return c.size, c.ok
}

// end returns where the pages of e that the host shows end: e.end, or
// for an entry caching a file's pages, the first page wholly beyond the
// file's end (rounded up to a page), if that is inside e.
func (c *eofCache) end(e *entry) uint64 {
	if e.owned {
		return e.end
	}
	size, ok := c.fileSize(e.fd)
	if !ok {
		return e.end
	}
	if size <= e.off {
		return e.start
	}
	rounded := (size - e.off + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
	if rounded >= e.length() {
		return e.end
	}
	return e.start + rounded
}

// accessible reports whether the app view maps page (in e) for an access.
func (c *eofCache) accessible(e *entry, page uint64, write bool) bool {
	p := e.hostProt(false)
	if !e.inApp || p&unix.PROT_READ == 0 || (write && p&unix.PROT_WRITE == 0) {
		return false
	}
	return page < c.end(e)
}
