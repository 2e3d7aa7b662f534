package addrspace

import (
	"fmt"
	"slices"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// Dirty tracking and reset to a snapshot.
//
// Soft-dirty semantics (ClearDirty, Dirty), as Linux's clear_refs "4" and
// pagemap bit 55, per address space and per range:
//
//   - A mapped page is dirty unless ClearDirty cleared it and nothing has
//     written it or changed it since. A page never cleared is dirty, as
//     Linux marks new mappings soft-dirty (VM_SOFTDIRTY).
//   - Writes through every path of this address space count: CopyOut and
//     the vectored copies, ZeroOut, the atomics, CopyOutFrom's zero-copy
//     blocks, CopyBetween into it, IgnorePermissions writes, and any direct
//     write to the host view that the fault path resolves. Writes by
//     another address space to a shared mapping do not count (as another
//     process's writes do not set this one's soft-dirty bits), nor do
//     writes to a mapped file by the host. A page counts once a write to
//     it is allowed to proceed: a write that fails (EFAULT, SIGBUS past a
//     file's end) dirties nothing, and CopyOutFrom counts every page it
//     hands its reader writable, since it cannot see which bytes the
//     reader fills.
//   - A change of what backs a page makes it dirty: Munmap and a new
//     Mmap over it, Mremap (source and target), MADV_DONTNEED and
//     MADV_REMOVE, and Reset where it restores the page. (Linux reports a
//     page that MADV_DONTNEED discarded as clean; mmsim reports it dirty,
//     since its contents changed, which is what an incremental save needs.)
//     Mprotect keeps pages as they are, as on Linux.
//   - Holes (unmapped pages) are neither dirty nor an error: Dirty skips
//     them, and ClearDirty clears only the mapped pages of its range (a
//     mapping made there later starts dirty).
//
// The mechanism is write protection: a clean page is mapped without write
// access in the host views, its first write faults and the fault handler
// marks it dirty (see pma's track.go for why not the host's soft-dirty
// bits or userfaultfd). A written page among clean ones splits their host
// mapping; where that would exceed the host budget the page table drops
// its host mappings and faults them back in, so tracking never fails for
// want of host mappings and never exhausts vm.max_map_count.

// ClearDirty starts (or restarts) dirty tracking on ar: clear_refs "4" for
// the range. Every mapped page of ar is clean afterwards, until it is
// written or its backing changes (see Dirty); unmapped pages of ar are
// ignored. ClearDirty waits for CopyOutFrom and CopyInTo calls in
// progress, as Mprotect does.
//
// Errors: EINVAL (wrapped) if ar is not well-formed, not page-aligned, or
// does not lie inside [0, Size); ErrClosed after Close. On error nothing
// changes.
func (as *AddressSpace) ClearDirty(ar hostarch.AddrRange) error {
	if err := as.trackRange("ClearDirty", ar); err != nil {
		return err
	}
	as.activeMu.Lock()
	defer as.activeMu.Unlock()
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	as.visit(ar, func(v *vma) bool {
		r := v.ar().Intersect(ar)
		as.pt.ClearDirty(uint64(r.Start), uint64(r.End))
		return true
	})
	return nil
}

// Dirty returns the pages in ar written since the last ClearDirty covering
// them, as sorted, merged page-aligned ranges: every mapped page of ar
// that is not clean (see ClearDirty and the package's soft-dirty rules:
// pages never cleared, and pages whose backing changed, are dirty too).
// Unmapped pages are never in the result. The result is nil if no page
// is dirty.
//
// Errors: EINVAL (wrapped) if ar is not well-formed, not page-aligned, or
// does not lie inside [0, Size); ErrClosed after Close.
func (as *AddressSpace) Dirty(ar hostarch.AddrRange) ([]hostarch.AddrRange, error) {
	if err := as.trackRange("Dirty", ar); err != nil {
		return nil, err
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return nil, errClosedMgmt
	}
	var out []hostarch.AddrRange
	add := func(s, e hostarch.Addr) {
		if s >= e {
			return
		}
		if n := len(out); n > 0 && out[n-1].End == s {
			out[n-1].End = e
			return
		}
		out = append(out, hostarch.AddrRange{Start: s, End: e})
	}
	as.visit(ar, func(v *vma) bool {
		r := v.ar().Intersect(ar)
		cur := r.Start
		as.pt.Clean(uint64(r.Start), uint64(r.End), func(s, e uint64) {
			add(cur, hostarch.Addr(s))
			cur = hostarch.Addr(e)
		})
		add(cur, r.End)
		return true
	})
	return out, nil
}

// trackRange validates the range of ClearDirty and Dirty.
func (as *AddressSpace) trackRange(op string, ar hostarch.AddrRange) error {
	if !ar.WellFormed() || !ar.Start.IsPageAligned() || !ar.End.IsPageAligned() || uint64(ar.End) > as.size {
		return fmt.Errorf("addrspace: %s of [%#x, %#x): not a page-aligned range inside the address space of %#x bytes: %w", op, ar.Start, ar.End, as.size, unix.EINVAL)
	}
	return nil
}

// Reset makes as's memory and mappings identical to snap's (a Clone taken
// earlier): every mapping snap has, with its permissions, name, advice
// and flags, and no other; the contents of every private page; and the
// heap's bounds (Brk). Shared mappings are the same objects in both (as
// fork shares them), so their contents are the same already and Reset
// leaves them be. snap is not changed (beyond its pages becoming shared
// with as again, copy-on-write) and stays usable for the next Reset: a
// fuzzer takes one snapshot and resets to it over and over.
//
// Cost: Reset compares the two mapping lists (one step per mapping), and
// then restores only what changed since as was last reset to snap as snap
// is now: pages written since (copying snap's bytes back into as's own
// pages, or sharing snap's pages again), mappings created, removed or
// changed since. The first Reset to a snapshot, or one after snap itself
// changed, shares all of snap's private pages again: its cost grows with
// the number of runs of pages backed, not with their bytes.
//
// Pages that Reset restores are dirty afterwards (see Dirty); the others
// keep their state. Reset waits for CopyOutFrom and CopyInTo calls in
// progress on either space. A copy racing with Reset may see a page
// before, during or after its restoration; a write racing with Reset is
// either undone by it or seen by the next Reset, never lost to it. snap
// must not be written while Reset runs (it reads snap's pages); changes to
// snap between resets are fine: the next Reset notices them and restores
// everything.
//
// Errors (wrapped): EINVAL if snap is nil, as itself, closed, of another
// Size, or does not share as's memory (it is not a Clone of as, of a
// Clone of as, or an address space as was cloned from); then nothing
// changes. ENOMEM if the mappings would exceed MaxMapCount or the host
// budget (nothing changes). ErrClosed after Close. Another host error
// leaves as partially reset; a later Reset restores it whole.
//
// Lock order: when two address spaces' locks are held, each kind (activeMu,
// then mu) is taken in the order the spaces were created.
func (as *AddressSpace) Reset(snap *AddressSpace) error {
	if snap == nil {
		return fmt.Errorf("addrspace: reset to a nil snapshot: %w", unix.EINVAL)
	}
	if snap == as {
		return fmt.Errorf("addrspace: reset of an address space to itself: %w", unix.EINVAL)
	}
	if snap.size != as.size {
		return fmt.Errorf("addrspace: reset of an address space of %#x bytes to a snapshot of %#x bytes: %w", as.size, snap.size, unix.EINVAL)
	}
	if snap.mem != as.mem {
		return fmt.Errorf("addrspace: reset to a snapshot that does not share the address space's memory (not a clone): %w", unix.EINVAL)
	}
	first, second := as, snap
	if snap.pt.ID() < as.pt.ID() {
		first, second = snap, as
	}
	first.activeMu.Lock()
	defer first.activeMu.Unlock()
	second.activeMu.Lock()
	defer second.activeMu.Unlock()
	first.mu.Lock()
	defer first.mu.Unlock()
	second.mu.Lock()
	defer second.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	if snap.closed.Load() {
		return fmt.Errorf("addrspace: reset to a closed snapshot: %w", unix.EINVAL)
	}
	return as.resetLocked(snap)
}

// resetLocked is Reset once both spaces are locked.
//
// It cuts the address space at every mapping boundary of either space and
// compares the two spaces piece by piece: where both map the same thing
// (the same attributes, backing and offset at that address, whatever the
// mapping boundaries), the page table restores only the private pages
// that changed; elsewhere it drops as's pages and, for a private mapping
// of snap's, shares snap's. The mapping list is then made a copy of
// snap's if it differs.
//
// Preconditions: as.mu and snap.mu are held (and both activeMu); both are
// open, of one size, over one memory file.
func (as *AddressSpace) resetLocked(snap *AddressSpace) error {
	var mine, theirs []*vma
	as.vmas.Ascend(func(v *vma) bool { mine = append(mine, v); return true })
	snap.vmas.Ascend(func(v *vma) bool { theirs = append(theirs, v); return true })
	sameList := len(mine) == len(theirs)
	for k := 0; sameList && k < len(mine); k++ {
		sameList = sameVMA(mine[k], theirs[k])
	}
	if n := len(theirs); n > len(mine) {
		if err := as.admit(n - len(mine)); err != nil {
			return fmt.Errorf("addrspace: reset: %w", err)
		}
	}
	defer as.settle()

	incremental := as.pt.ResetIncremental(snap.pt)
	as.pt.ResetBegin()
	var first error
	keepErr := func(err error) {
		if err != nil && first == nil {
			first = fmt.Errorf("addrspace: reset: %w", err)
		}
	}
	pieces := cut(mine, theirs)
	for _, p := range pieces {
		switch {
		case p.a == nil && p.b == nil:
		case p.a != nil && p.b != nil && sameAt(p.a, p.b, p.start):
			if p.a.private {
				keepErr(as.pt.ResetRange(snap.pt, uint64(p.start), uint64(p.end), p.a.file == nil, incremental))
			}
		case p.a != nil:
			keepErr(as.pt.Unmap(uint64(p.start), uint64(p.end)))
		}
	}
	if !sameList {
		// Copy snap's list: adopt its files first, so that a file both
		// map keeps its descriptor.
		fresh := make([]*vma, 0, len(theirs))
		for _, sv := range theirs {
			cv := *sv
			if sv.file != nil {
				r, err := as.adoptFile(sv.file)
				if err != nil {
					keepErr(err)
					continue
				}
				cv.file = r
			}
			fresh = append(fresh, &cv)
		}
		for _, v := range mine {
			as.delete(v)
			if v.file != nil {
				as.dropFile(v.file)
			}
		}
		for _, v := range fresh {
			as.insert(v)
		}
	} else {
		for k, v := range mine {
			v.anonID = theirs[k].anonID // the same mappings; merging follows snap's
		}
	}
	for _, p := range pieces {
		if p.b != nil && p.b.private && (p.a == nil || !sameAt(p.a, p.b, p.start)) {
			keepErr(as.pt.ResetAdopt(snap.pt, uint64(p.start), uint64(p.end)))
		}
	}
	as.brkStart, as.brk = snap.brkStart, snap.brk
	as.nextAnonID = max(as.nextAnonID, snap.nextAnonID)
	if first != nil {
		return first
	}
	as.pt.ResetDone(snap.pt)
	return nil
}

// A piece is a range in which neither space's mappings begin or end: a
// is as's mapping there and b snap's (nil for none).
type piece struct {
	start, end hostarch.Addr
	a, b       *vma
}

// cut returns the pieces of the address space between every boundary of
// the mappings mine and theirs (each sorted and disjoint), in order,
// leaving out the ranges neither maps.
func cut(mine, theirs []*vma) []piece {
	var pts []hostarch.Addr
	for _, vs := range [][]*vma{mine, theirs} {
		for _, v := range vs {
			pts = append(pts, v.start, v.end)
		}
	}
	slices.Sort(pts)
	pts = slices.Compact(pts)
	var out []piece
	i, j := 0, 0
	for k := 0; k+1 < len(pts); k++ {
		s, e := pts[k], pts[k+1]
		for i < len(mine) && mine[i].end <= s {
			i++
		}
		for j < len(theirs) && theirs[j].end <= s {
			j++
		}
		p := piece{start: s, end: e}
		if i < len(mine) && mine[i].start <= s {
			p.a = mine[i]
		}
		if j < len(theirs) && theirs[j].start <= s {
			p.b = theirs[j]
		}
		if p.a != nil || p.b != nil {
			out = append(out, p)
		}
	}
	return out
}

// sameAt reports whether a and b map the same thing at addr (inside
// both): the same attributes and backing, at the same offset.
func sameAt(a, b *vma, addr hostarch.Addr) bool {
	ac, bc := *a, *b
	ac.start, ac.end, ac.off, ac.pgoff = addr, addr+1, a.offAt(addr), a.pgoffAt(addr)
	bc.start, bc.end, bc.off, bc.pgoff = addr, addr+1, b.offAt(addr), b.pgoffAt(addr)
	return sameVMA(&ac, &bc)
}

// sameVMA reports whether a (of one space) and b (of another) are the same
// mapping: the same range, permissions, sharing, backing (the same file or
// shared-memory object at the same offset) and attributes. anonID is the
// identity of an anon_vma, which differs between spaces by construction.
func sameVMA(a, b *vma) bool {
	if a.start != b.start || a.end != b.end || a.perms != b.perms || a.maxPerms != b.maxPerms ||
		a.private != b.private || a.off != b.off || a.name != b.name || a.pgoff != b.pgoff ||
		a.account != b.account || a.advice != b.advice || a.flags != b.flags {
		return false
	}
	if (a.file == nil) != (b.file == nil) {
		return false
	}
	if a.file == nil {
		return true
	}
	return a.file.dev == b.file.dev && a.file.ino == b.file.ino && a.file.writable == b.file.writable && a.file.shm == b.file.shm
}
