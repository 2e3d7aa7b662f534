package pma

import (
	"fmt"

	"github.com/google/btree"
	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// A View is a reserved range of host address space in which host pages are
// mapped at fixed offsets: view offset o is host address Base()+o. Unmapped
// parts of a view are PROT_NONE, MAP_NORESERVE anonymous memory, so they use
// no memory and fault when touched, and the range is never reused by anything
// else while the view exists.
//
// A View mirrors the kernel's list of VMAs for its range: every change goes
// through it, and it merges neighbouring segments exactly where the kernel
// merges VMAs (the same file, contiguous offsets, the same protection; the
// PROT_NONE reservation with itself). So Mappings is the number of lines the
// view adds to /proc/self/maps, and every change knows beforehand how many
// host mappings it adds (Plan), which the host budget is checked against.
//
// Concurrency: a View is not safe for concurrent use; its Table's caller
// serializes changes.
type View struct {
	base uintptr
	size uint64
	segs *btree.BTreeG[hseg]
}

// hseg is one host mapping (kernel VMA) of a view: [start, end) in view
// offsets, mapping file fd from off with protection prot, or the PROT_NONE
// reservation (fd < 0).
type hseg struct {
	start, end uint64
	fd         int
	off        uint64
	prot       int
}

func (s hseg) reserved() bool { return s.fd < 0 }

// joins reports whether the kernel merges s with next, which starts where s
// ends.
func (s hseg) joins(next hseg) bool {
	if s.end != next.start || s.fd != next.fd || s.prot != next.prot {
		return false
	}
	return s.reserved() || s.off+(s.end-s.start) == next.off
}

// clip returns s restricted to [start, end), with its offset adjusted.
func (s hseg) clip(start, end uint64) hseg {
	start, end = max(s.start, start), min(s.end, end)
	if !s.reserved() {
		s.off += start - s.start
	}
	s.start, s.end = start, end
	return s
}

func reserveSeg(start, end uint64) hseg { return hseg{start: start, end: end, fd: -1} }

// reserve reserves size bytes of host address space, with nothing mapped.
func reserve(size uint64) (*View, error) {
	if size == 0 || size%hostarch.PageSize != 0 {
		panic(fmt.Sprintf("pma: reserve(%#x)", size))
	}
	addr, err := mmap(0, size, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE, -1, 0)
	if err != nil {
		return nil, fmt.Errorf("pma: reserving %#x bytes of host address space: %w", size, unix.ENOMEM)
	}
	v := &View{base: addr, size: size, segs: btree.NewG(16, func(a, b hseg) bool { return a.start < b.start })}
	v.segs.ReplaceOrInsert(reserveSeg(0, size))
	return v, nil
}

// Base returns the host address of view offset 0.
func (v *View) Base() uintptr { return v.base }

// Size returns the size of the view in bytes.
func (v *View) Size() uint64 { return v.size }

// Mappings returns the number of host mappings (kernel VMAs) the view
// consists of.
func (v *View) Mappings() int { return v.segs.Len() }

// viewPlan is a change to a view worked out before it is made: the
// segments it replaces and those that replace them.
type viewPlan struct {
	old, new []hseg
}

func (p *viewPlan) delta() int { return len(p.new) - len(p.old) }

// plan works out setting [start, end) to seg (whose start and end are
// ignored) or, if protOnly, changing only the protection of the mapped
// segments there to seg.prot.
func (v *View) plan(start, end uint64, seg hseg, protOnly bool) viewPlan {
	if start%hostarch.PageSize != 0 || end%hostarch.PageSize != 0 || start >= end || end > v.size {
		panic(fmt.Sprintf("pma: view range [%#x, %#x) is not page-aligned inside a view of %#x bytes", start, end, v.size))
	}
	var p viewPlan
	lo, hi := start, end
	if lo > 0 {
		lo--
	}
	if hi < v.size {
		hi++
	}
	v.forSegs(lo, hi, func(s hseg) bool { p.old = append(p.old, s); return true })
	out := make([]hseg, 0, len(p.old)+2)
	push := func(s hseg) {
		if s.start >= s.end {
			return
		}
		if n := len(out); n > 0 && out[n-1].joins(s) {
			out[n-1].end = s.end
			return
		}
		out = append(out, s)
	}
	placed := false
	for _, s := range p.old {
		push(s.clip(s.start, start))
		if s.start < end && s.end > start {
			if protOnly {
				m := s.clip(start, end)
				m.prot = seg.prot
				push(m)
			} else if !placed {
				placed = true
				push(seg.clip0(start, end))
			}
		}
		push(s.clip(end, s.end))
	}
	p.new = out
	return p
}

// clip0 places seg, whose offset is that of start, at [start, end).
func (s hseg) clip0(start, end uint64) hseg {
	s.start, s.end = start, end
	return s
}

// apply makes the host change that p describes over [start, end) and
// records it. protOnly: p was planned with protOnly.
func (v *View) apply(p viewPlan, start, end uint64, seg hseg, protOnly bool) error {
	var err error
	switch {
	case protOnly:
		if _, _, e := unix.Syscall(unix.SYS_MPROTECT, v.base+uintptr(start), uintptr(end-start), uintptr(seg.prot)); e != 0 {
			err = fmt.Errorf("pma: mprotect at view offset %#x: %w", start, hostLimitErr(e))
		}
	case seg.reserved():
		_, err = mmap(v.base+uintptr(start), end-start, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_FIXED, -1, 0)
	default:
		_, err = mmap(v.base+uintptr(start), end-start, seg.prot, unix.MAP_SHARED|unix.MAP_FIXED, seg.fd, seg.off)
	}
	if err != nil {
		if protOnly {
			return err
		}
		// A failed MAP_FIXED may have unmapped the old range: make it the
		// reservation again, so the model and the host agree.
		if _, rerr := mmap(v.base+uintptr(start), end-start, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_FIXED, -1, 0); rerr == nil && !seg.reserved() {
			q := v.plan(start, end, reserveSeg(start, end), false)
			v.commit(q)
		}
		return fmt.Errorf("pma: mapping view offset %#x: %w", start, err)
	}
	v.commit(p)
	return nil
}

func (v *View) commit(p viewPlan) {
	for _, s := range p.old {
		v.segs.Delete(s)
	}
	for _, s := range p.new {
		v.segs.ReplaceOrInsert(s)
	}
}

// segAt returns the segment containing off.
func (v *View) segAt(off uint64) hseg {
	var found hseg
	v.segs.DescendLessOrEqual(hseg{start: off}, func(s hseg) bool {
		found = s
		return false
	})
	return found
}

// forSegs calls f for each segment overlapping [start, end).
func (v *View) forSegs(start, end uint64, f func(hseg) bool) {
	s := v.segAt(start)
	if s.end > start && !f(s) {
		return
	}
	v.segs.AscendRange(hseg{start: start + 1}, hseg{start: end}, f)
}

// release unmaps the whole view. The View must not be used afterwards.
func (v *View) release() error {
	if v.size == 0 {
		return nil
	}
	if _, _, e := unix.Syscall(unix.SYS_MUNMAP, v.base, uintptr(v.size), 0); e != 0 {
		return fmt.Errorf("pma: releasing view: %w", e)
	}
	v.size = 0
	return nil
}

// HostProt returns the host protection that enforces perms. Execute is
// never granted on the host (simulated code is not run on host pages);
// write and execute imply read, as they do on x86.
func HostProt(perms hostarch.AccessType) int {
	return perms.Effective().Prot() &^ unix.PROT_EXEC
}

// mapCountError is the ENOMEM returned when the host refuses a mapping
// because the process has too many (vm.max_map_count): its message says so.
type mapCountError struct{ errno unix.Errno }

func (e mapCountError) Error() string {
	return "host mapping limit reached (too many host mappings; see vm.max_map_count): " + e.errno.Error()
}

func (e mapCountError) Unwrap() error { return e.errno }

// hostLimitErr explains an ENOMEM from mmap or mprotect on a reserved range:
// the range exists, so the only cause is the host's mapping count limit.
func hostLimitErr(e unix.Errno) error {
	if e == unix.ENOMEM {
		return mapCountError{e}
	}
	return e
}

func mmap(addr uintptr, length uint64, prot, flags, fd int, off uint64) (uintptr, error) {
	r, _, e := unix.Syscall6(unix.SYS_MMAP, addr, uintptr(length), uintptr(prot), uintptr(flags), uintptr(fd), uintptr(off))
	if e != 0 {
		if flags&unix.MAP_FIXED != 0 {
			return 0, hostLimitErr(e)
		}
		return 0, e
	}
	return r, nil
}
