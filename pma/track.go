package pma

import (
	"sync/atomic"

	"github.com/mmsim/mmsim/hostarch"
)

// Write tracking: soft-dirty pages and reset to a snapshot.
//
// A Table watches writes to a set of pages by write-protecting them in
// both views (entry.wp) whatever their mapping allows: the first write to
// such a page, through any path that reaches the views (a copy, an atomic,
// a zero-copy transfer, a caller's own access to the host view), faults,
// and the fault handler (Fault) takes the page out of the set and makes it
// writable before the access is retried. Pages are watched one by one, so
// a page written among watched neighbours splits their host mapping (two
// more); the budget holds as for any other change (host evicts the
// table's mappings when it would not), and faults map them back.
//
// Two sets share the mechanism: soft (pages ClearDirty cleared and nothing
// wrote since: soft-dirty clear) and rclean (pages whose contents are the
// snapshot's since the last reset).
//
// Why write-protection in the fault path, measured on this machine (Linux
// 6.18, x86-64, 256 MiB of private memory, 16 scattered pages written):
//
//	                          fault path (this)   userfaultfd WP_ASYNC + PAGEMAP_SCAN
//	first write to a page     ~8 µs (signal,      ~0.6 µs (in the kernel)
//	                            mprotect)
//	which pages were written  ~1 µs (the sets)    ~45 µs (a scan of the range;
//	                                                grows with the range)
//	clear again               ~65 µs              ~46 µs (scan and re-protect)
//	protect 256 MiB           ~6 ms               ~7 ms
//	host mappings             +2 per page among   none (per-page bits)
//	                            clean ones
//
// userfaultfd is faster per write and costs no host mappings, but every
// query walks the whole range (a reset could not stay below 50 µs on
// 256 MiB, let alone 64 GiB), it needs Linux 6.7 (absent from older
// kernels and from qemu-user, where mmsim's arm64 tests run), and the
// host's own soft-dirty bits (clear_refs) clear the whole process at once.
// The fault path works wherever the page table does, and a reset consults
// only the pages written. (A hybrid, userfaultfd where the host has it for
// the writes and these sets for the queries, is future work.)

var tableIDs atomic.Uint64

// ID returns a number that names t among every Table the process has made.
func (t *Table) ID() uint64 { return t.id }

// tracking reports whether any page is watched.
func (t *Table) tracking() bool { return !t.soft.empty() || !t.rclean.empty() }

// cleanAny reports whether any page of [start, end) is watched.
func (t *Table) cleanAny(start, end uint64) bool {
	return t.soft.overlaps(start, end) || t.rclean.overlaps(start, end)
}

// cleanSpans returns the watched runs of [start, end), merged, in order.
func (t *Table) cleanSpans(start, end uint64) []span {
	a, b := t.soft.spans(start, end), t.rclean.spans(start, end)
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]span, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		var x span
		if len(b) == 0 || (len(a) > 0 && a[0].start <= b[0].start) {
			x, a = a[0], a[1:]
		} else {
			x, b = b[0], b[1:]
		}
		if n := len(out); n > 0 && x.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, x.end)
		} else {
			out = append(out, x)
		}
	}
	return out
}

// written records a write to page (a write fault): its contents change,
// so it leaves both sets and becomes writable (as its mapping allows).
func (t *Table) written(page uint64) {
	t.writtenRange(page, page+hostarch.PageSize)
}

// writtenRange is written for each page of [start, end).
func (t *Table) writtenRange(start, end uint64) {
	t.changes++
	if t.cleanAny(start, end) {
		t.soft.remove(start, end)
		t.rclean.remove(start, end)
	} else if !t.anyWP(start, end) {
		return
	}
	// (A page may stay protected after leaving the sets, as restoreRun
	// leaves it: lift that here.)
	t.syncWP(start, end)
}

// anyWP reports whether an entry overlapping [start, end) is write-protected.
func (t *Table) anyWP(start, end uint64) bool {
	for _, e := range t.entriesIn(start, end) {
		if e.wp {
			return true
		}
	}
	return false
}

// untrack takes [start, end) out of both sets, for a change of what backs
// it (its contents may change without a write).
func (t *Table) untrack(start, end uint64) {
	t.changes++
	t.soft.remove(start, end)
	t.rclean.remove(start, end)
}

// syncWP makes the entries of [start, end) write-protected exactly where
// a set watches their pages, splitting them where that changes, and
// changes their host protection to match.
func (t *Table) syncWP(start, end uint64) {
	if start >= end {
		return
	}
	var es []*entry
	if !t.tracking() {
		// Only entries still protected need a change.
		for _, e := range t.entriesIn(start, end) {
			if e.wp {
				es = append(es, e)
			}
		}
		if len(es) == 0 {
			return
		}
	}
	t.splitAt(start)
	t.splitAt(end)
	if es == nil {
		es = t.entriesIn(start, end)
	}
	for _, e := range es {
		s, en := e.start, e.end
		cs := t.cleanSpans(s, en)
		switch {
		case len(cs) == 0 && !e.wp:
			continue
		case len(cs) == 1 && cs[0] == span{s, en}:
			t.setWP(e, true)
			continue
		case len(cs) == 0:
			t.setWP(e, false)
			continue
		}
		for _, c := range cs {
			t.splitAt(c.start)
			t.splitAt(c.end)
		}
		for _, p := range t.entriesIn(s, en) {
			t.setWP(p, t.cleanAny(p.start, p.end))
		}
	}
	t.mergeAround(start, end)
}

// setWP sets e.wp and the host protection of e where the views map it.
func (t *Table) setWP(e *entry, wp bool) {
	if e.wp == wp {
		return
	}
	oldApp, oldMax := e.hostProt(false), e.hostProt(true)
	e.wp = wp
	for _, mx := range []bool{false, true} {
		old := oldApp
		if mx {
			old = oldMax
		}
		if !e.mapped(mx) || e.hostProt(mx) == old {
			continue
		}
		ev, err := t.host(mx, e.start, e.end, hseg{prot: e.hostProt(mx)}, true)
		if err != nil {
			// The page must not stay writable: unmap it (it faults back
			// in with the right protection).
			t.clearView(mx, e.start, e.end)
			e.setMapped(mx, false)
			continue
		}
		if ev {
			return // nothing is mapped any more
		}
	}
}

// ClearDirty starts watching [start, end) for writes, or restarts: the
// pages are clean until written (soft-dirty clear, clear_refs 4).
//
// Preconditions: start and end are page-aligned; the range is mapped (a
// caller clears only mapped pages: unmapping takes pages out of the set).
func (t *Table) ClearDirty(start, end uint64) {
	if start >= end {
		return
	}
	t.soft.add(start, end)
	t.syncWP(start, end)
}

// Clean calls f, in order, for each run of [start, end) that ClearDirty
// cleared and that nothing has written or changed since.
func (t *Table) Clean(start, end uint64, f func(start, end uint64)) {
	t.soft.each(start, end, func(s span) bool { f(s.start, s.end); return true })
}

// ResetIncremental reports whether t's record of the pages that changed
// since its last reset is relative to snap as snap is now: Reset then
// needs to restore only those (see ResetRange).
func (t *Table) ResetIncremental(snap *Table) bool {
	return t.resetBase != 0 && t.resetBase == snap.id && t.resetGen == snap.changes && !snap.closed
}

// ResetBegin forgets t's reset record until ResetDone (a reset that fails
// half-way restores everything the next time).
func (t *Table) ResetBegin() { t.resetBase = 0 }

// ResetDone records that every private mapping of t now holds snap's
// contents (the ranges ResetRange and ResetAdopt were given).
func (t *Table) ResetDone(snap *Table) { t.resetBase, t.resetGen = snap.id, snap.changes }

// ResetAdopt gives t snap's pages of [start, end), a private mapping that
// t has just re-created as snap has it (nothing backs the range in t), and
// records them as equal to snap's.
func (t *Table) ResetAdopt(snap *Table, start, end uint64) error {
	if start >= end {
		return nil
	}
	if err := snap.Share(t, start, end); err != nil {
		return err
	}
	t.changes++
	t.rclean.add(start, end)
	t.soft.remove(start, end)
	t.syncWP(start, end)
	return nil
}

// ResetRange makes the contents of [start, end), a private mapping that t
// and snap (tables over the same memory file) have alike, equal to snap's.
// If incremental (ResetIncremental), only the pages written or changed
// since the last reset are restored: where t's own pages back them, by
// copying snap's bytes (or zeroes) into them; elsewhere by dropping t's
// backing and sharing snap's pages (as Clone shares them). Otherwise the
// whole range is dropped and shared. anonymous says whether the mapping is
// anonymous (a page that nothing backs reads as zero). The pages restored
// are soft-dirty (their contents changed) and are watched again for the
// next reset.
//
// Errors are the host's (copying pages, changing mappings); t's contents
// in the range are then undefined until the next non-incremental reset.
func (t *Table) ResetRange(snap *Table, start, end uint64, anonymous, incremental bool) error {
	if start >= end {
		return nil
	}
	if snap.mem != t.mem {
		panic("pma: ResetRange from a table over another memory file")
	}
	var runs []span
	if !incremental {
		runs = []span{{start, end}}
	} else {
		cur := start
		t.rclean.each(start, end, func(s span) bool {
			if s.start > cur {
				runs = append(runs, span{cur, s.start})
			}
			cur = s.end
			return true
		})
		if cur < end {
			runs = append(runs, span{cur, end})
		}
	}
	if len(runs) == 0 {
		return nil
	}
	t.changes++
	for _, r := range runs {
		if incremental && t.copyable(snap, r, anonymous) {
			if err := t.restoreRun(snap, r); err != nil {
				return err
			}
			continue
		}
		if err := t.Unmap(r.start, r.end); err != nil {
			return err
		}
		if err := t.ResetAdopt(snap, r.start, r.end); err != nil {
			return err
		}
	}
	return nil
}

// A pagePair is a page of t's own (dst, a memory-file offset) and the
// snapshot's page it must equal (src; -1 for zeroes).
type pagePair struct {
	addr, dst uint64
	src       int64
}

// restoreRun restores run r, which t's own pages back (copyable), from
// snap by comparing and copying pages through the memory file's window.
// A page that differed (it was written since the last reset) is copied
// back and left writable and unwatched: the next reset compares it again,
// which costs less than write-protecting it and taking its next write
// fault (a fuzzer writes the same pages every time). A page found equal
// is watched (write-protected) and compared once more, so that a write
// racing with the first comparison is not missed.
func (t *Table) restoreRun(snap *Table, r span) error {
	var pairs []pagePair
	var end uint64
	for _, e := range t.entriesIn(r.start, r.end) {
		for a := max(e.start, r.start); a < min(e.end, r.end); a += hostarch.PageSize {
			p := pagePair{addr: a, dst: e.off + (a - e.start), src: -1}
			if se := snap.entryAt(a); se != nil {
				p.src = int64(se.off + (a - se.start))
				end = max(end, uint64(p.src)+hostarch.PageSize)
			}
			end = max(end, p.dst+hostarch.PageSize)
			pairs = append(pairs, p)
		}
	}
	var same []pagePair
	err := t.mem.withWindow(end, func(base uintptr) {
		for _, p := range pairs {
			if restorePage(base, p.dst, p.src) {
				t.soft.remove(p.addr, p.addr+hostarch.PageSize)
			} else {
				same = append(same, p)
			}
		}
	})
	if err != nil || len(same) == 0 {
		return err
	}
	for _, p := range same {
		t.rclean.add(p.addr, p.addr+hostarch.PageSize)
	}
	// The pages restored above stay writable (syncWP leaves pages outside
	// both sets as they are).
	for _, p := range same {
		if e := t.entryAt(p.addr); e != nil && !e.wp {
			t.syncWP(p.addr, p.addr+hostarch.PageSize)
		}
	}
	return t.mem.withWindow(end, func(base uintptr) {
		for _, p := range same {
			if restorePage(base, p.dst, p.src) {
				t.soft.remove(p.addr, p.addr+hostarch.PageSize)
			}
		}
	})
}

// copyable reports whether run r can be restored by copying snap's bytes
// into t's pages: t's own pages (referenced by t alone) back all of it, and
// snap's pages or, for anonymous memory, nothing (zeroes) back it in snap.
func (t *Table) copyable(snap *Table, r span, anonymous bool) bool {
	cur := r.start
	for _, e := range t.entriesIn(r.start, r.end) {
		s, en := max(e.start, r.start), min(e.end, r.end)
		if e.start > cur || !e.owned || t.mem.SharedBytes(e.off+(s-e.start), en-s) != 0 {
			return false
		}
		cur = en
	}
	if cur < r.end {
		return false
	}
	for _, e := range snap.entriesIn(r.start, r.end) {
		if !e.owned {
			return false
		}
	}
	return anonymous || snap.covered(r)
}

// covered reports whether t's entries back every page of r.
func (t *Table) covered(r span) bool {
	cur := r.start
	for _, e := range t.entriesIn(r.start, r.end) {
		if e.start > cur {
			return false
		}
		cur = min(e.end, r.end)
	}
	return cur >= r.end
}
