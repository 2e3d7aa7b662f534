package pma

import "github.com/mmsim/mmsim/hostarch"

// ResidentEach calls f, in address order, for each page of [start, end)
// that Resident reports resident: with owned set if the page is one of the
// memory-file pages the table holds references to (private anonymous
// memory and private copies), and off its memory-file offset. It reads the
// host's residency a chunk at a time, in memory bounded whatever the range.
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
		for cur := s; cur < en; cur += min(chunk, en-cur) {
			k := min(chunk, en-cur)
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
	}
}
