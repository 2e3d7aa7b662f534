package pma

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// OwnedRuns calls f for each run of [start, end) that the table backs with
// memory-file pages of its own (private anonymous memory, and the private
// copies of a private file mapping), in address order: the run's simulated
// start, its offset in the memory file (MemoryFile.FD) and its length. It
// stops early if f returns false. Pages not backed, and pages that show a
// file or a shared-memory object, are not reported.
func (t *Table) OwnedRuns(start, end uint64, f func(addr, off, length uint64) bool) {
	for _, e := range t.entriesIn(start, end) {
		if !e.owned {
			continue
		}
		s, en := max(e.start, start), min(e.end, end)
		if s < en && !f(s, e.off+(s-e.start), en-s) {
			return
		}
	}
}

// MissingUpTo returns the end of the longest prefix of [start, end) that
// nothing backs (no entry: pages never touched, or discarded), at most
// end; start if the page at start is backed.
func (t *Table) MissingUpTo(start, end uint64) uint64 {
	if t.entryAt(start) != nil {
		return start
	}
	stop := end
	t.ents.AscendRange(&entry{start: start}, &entry{start: end}, func(e *entry) bool {
		stop = e.start
		return false
	})
	return stop
}

// Install backs [start, start+len(data)), pages of private mapping m that
// nothing backs (MissingUpTo reaches its end), with new memory-file pages
// of this table's own holding data. The pages are writable and mapped in
// neither view: the next access maps them as a fault would. It is how a
// restored or lazily filled page comes to exist. The pages are dirty
// (their backing changed; see ClearDirty).
//
// Preconditions: start and len(data) are page-aligned, len(data) > 0; the
// range lies inside m, which is private.
//
// Errors wrap ENOMEM if the memory file cannot provide the pages, or are
// the host's error writing them; the table is unchanged then.
func (t *Table) Install(m Mapping, start uint64, data []byte) error {
	n := uint64(len(data))
	if n == 0 || n%hostarch.PageSize != 0 || start%hostarch.PageSize != 0 || !m.Private ||
		start < m.Start || start+n > m.End || start+n < start {
		panic(fmt.Sprintf("pma: Install(%#x, %#x bytes) in mapping [%#x, %#x) private=%v", start, n, m.Start, m.End, m.Private))
	}
	if t.closed {
		return fmt.Errorf("pma: install in a closed table: %w", unix.EFAULT)
	}
	if t.MissingUpTo(start, start+n) != start+n {
		panic(fmt.Sprintf("pma: Install over backed pages in [%#x, %#x)", start, start+n))
	}
	off, err := t.mem.Allocate(n, t.hint(start, start+n))
	if err != nil {
		return err
	}
	if err := pwriteFull(t.mem.FD(), data, off); err != nil {
		t.mem.DecRef(off, n)
		return err
	}
	t.ents.ReplaceOrInsert(&entry{start: start, end: start + n, fd: t.mem.FD(), off: off, owned: true, prot: m.Prot, maxProt: m.MaxProt})
	// What backs the pages changed: they are dirty (and not write-protected
	// for tracking, as the new entry is not).
	t.untrack(start, start+n)
	t.mergeAround(start, start+n)
	return nil
}

// pwriteFull writes all of data to fd at off.
func pwriteFull(fd int, data []byte, off uint64) error {
	for len(data) > 0 {
		k, err := unix.Pwrite(fd, data, int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("pma: writing pages to the memory file: %v: %w", err, unix.ENOMEM)
		}
		data, off = data[k:], off+uint64(k)
	}
	return nil
}
