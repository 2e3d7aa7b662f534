package pma

import (
	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// ResidentEach calls f, in address order, for each page of [start, end)
// that Resident reports resident: with owned set if the page is one of the
// memory-file pages the table holds references to (private anonymous
// memory and private copies), and off its memory-file offset. It reads the
// host's residency a chunk at a time, in memory bounded whatever the range,
// and only where the backing holds data, in time that follows the data.
//
// Preconditions: start and end are page-aligned.
func (t *Table) ResidentEach(start, end uint64, f func(addr uint64, owned bool, off uint64)) {
	var buf [256]byte
	const chunk = uint64(len(buf)) * hostarch.PageSize
	for _, e := range t.entriesIn(start, end) {
		if !e.inApp && !e.owned {
			continue
		}
		s, en := max(e.start, start), min(e.end, end)
		// On tmpfs (memfds: the memory file, shared-memory objects) only
		// the parts of the backing that hold data can be resident: the
		// holes (most of a sparse shared object of a TiB, say) are skipped
		// without visiting their pages, so the time follows the data, not
		// the range. (A disk file's hole read through a mapping may be
		// resident as a page of zeros: those are visited whole.)
		base := e.off + (s - e.start)
		runs := dataRuns
		if !onTmpfs(e.fd) {
			runs = wholeRun
		}
		runs(e.fd, base, en-s, func(doff, dlen uint64) {
			ds := s + (doff - base)
			de := ds + dlen
			for cur := ds; cur < de; cur += min(chunk, de-cur) {
				k := min(chunk, de-cur)
				vec := buf[:k/hostarch.PageSize]
				clear(vec)
				if e.inApp {
					mincore(t.app.Base()+uintptr(cur), k, vec)
				} else {
					fileResident(e.fd, e.off+(cur-e.start), k, vec)
				}
				for i, b := range vec {
					if b&1 != 0 {
						a := cur + uint64(i)*hostarch.PageSize
						f(a, e.owned, e.off+(a-e.start))
					}
				}
			}
		})
	}
}

// wholeRun is dataRuns for a file whose holes may be resident: one run.
func wholeRun(_ int, off, length uint64, f func(off, length uint64)) { f(off, length) }

// onTmpfs reports whether fd is a file of tmpfs (a memfd, say), whose
// holes are never resident.
func onTmpfs(fd int) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && st.Type == unix.TMPFS_MAGIC
}
