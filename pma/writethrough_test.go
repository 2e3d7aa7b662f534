package pma

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fill returns n bytes of seed, seed+1, ...
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// TestWriteThrough checks the run WriteThrough writes (its end, exactly)
// and what each table reads afterwards: the new bytes there, the old
// ones (or zeros) everywhere else.
func TestWriteThrough(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fileData := fill(5*pg+100, 7) // 6 pages in the views, the last one partial
	if _, err := f.Write(fileData); err != nil {
		t.Fatal(err)
	}
	file := Mapping{Start: 64 * pg, End: 80 * pg, Private: true, FD: int(f.Fd()), Prot: unix.PROT_READ | unix.PROT_WRITE, MaxProt: unix.PROT_READ | unix.PROT_WRITE}
	m := anon(16*pg, 64*pg)
	old := fill(int(m.End-m.Start), 100) // the parent's bytes in m, when set up so

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, tb *Table) *Table // returns the table written (tb or a child)
		mp    Mapping
		start uint64 // in pages
		pages int    // of src
		want  uint64 // end of the run written, in pages
	}{
		{"fresh anonymous", nil, m, 20, 8, 28},
		{"fresh anonymous, to the mapping's end", nil, m, 60, 4, 64},
		{"stops at a page already the table's own", func(t *testing.T, tb *Table) *Table {
			writeVia(t, tb, m, 33*pg, []byte{1}) // backs [32, 48)
			return tb
		}, m, 24, 16, 32},
		{"at a page already the table's own", func(t *testing.T, tb *Table) *Table {
			writeVia(t, tb, m, 33*pg, []byte{1})
			return tb
		}, m, 32, 4, 32},
		{"after Share, in the child", func(t *testing.T, tb *Table) *Table {
			writeVia(t, tb, m, m.Start, old)
			return shareWith(t, tb, m)
		}, m, 20, 8, 28},
		{"after Share, copy-on-write then unbacked pages", func(t *testing.T, tb *Table) *Table {
			writeVia(t, tb, m, m.Start, old[:16*pg]) // backs [16, 32) only
			return shareWith(t, tb, m)
		}, m, 28, 8, 36},
		{"after Share, in the parent", func(t *testing.T, tb *Table) *Table {
			writeVia(t, tb, m, m.Start, old)
			shareWith(t, tb, m)
			return tb
		}, m, 40, 3, 43},
		{"pages shared no more: Fault makes them writable without a copy", func(t *testing.T, tb *Table) *Table {
			writeVia(t, tb, m, m.Start, old)
			shareWith(t, tb, m).Close()()
			return tb
		}, m, 40, 3, 40},
		{"capped at the largest window", nil, anon(0, 1024*pg), 10, 600, 10 + maxWindow},
		{"private file pages", nil, file, 65, 4, 69},
		{"private file: stops at the end of the file", nil, file, 66, 8, 70},
		{"private file: beyond its end", nil, file, 70, 2, 70},
		{"shared mapping", nil, Mapping{Start: 16 * pg, End: 22 * pg, FD: int(f.Fd()), Prot: unix.PROT_READ | unix.PROT_WRITE, MaxProt: unix.PROT_READ | unix.PROT_WRITE}, 20, 2, 20},
		{"lazily filled mapping", nil, func() Mapping { l := m; l.Lazy = true; return l }(), 20, 2, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, 1024)
			w := tb
			if tc.setup != nil {
				w = tc.setup(t, tb)
			}
			// What each table reads before.
			mp := tc.mp
			before := peek(t, w, mp, min(mp.End, 70*pg))
			var parentBefore []byte
			if w != tb {
				parentBefore = peek(t, tb, mp, mp.End)
			}
			src := fill(tc.pages*pg, 200)
			end, err := w.WriteThrough(mp, tc.start*pg, src, false)
			if err != nil || end != tc.want*pg {
				t.Fatalf("WriteThrough(page %d, %d pages) = page %d, %v; want page %d, nil", tc.start, tc.pages, end/pg, err, tc.want)
			}
			want := bytes.Clone(before)
			copy(want[tc.start*pg-mp.Start:], src[:end-tc.start*pg])
			if got := peek(t, w, mp, mp.Start+uint64(len(want))); !bytes.Equal(got, want) {
				t.Fatalf("the table reads %d bytes that differ from the expected", countDiff(got, want))
			}
			if parentBefore != nil {
				if got := peek(t, tb, mp, mp.End); !bytes.Equal(got, parentBefore) {
					t.Fatalf("the other table reads %d changed bytes", countDiff(got, parentBefore))
				}
			}
			if end > tc.start*pg {
				e := w.entryAt(tc.start * pg)
				if e == nil || !e.owned || e.cow || e.end < end {
					t.Fatalf("entry %+v at the run's start: want its own writable pages to page %d", e, end/pg)
				}
			}
		})
	}
}

// peek returns what [mp.Start, end) of tb reads without backing anything:
// zeros where nothing backs private anonymous memory (a read through the
// view would back it), the pages' bytes elsewhere.
func peek(t *testing.T, tb *Table, mp Mapping, end uint64) []byte {
	t.Helper()
	out := make([]byte, 0, end-mp.Start)
	for p := mp.Start; p < end; p += pg {
		if mp.anonymous() && tb.entryAt(p) == nil {
			out = append(out, make([]byte, pg)...)
			continue
		}
		out = append(out, readVia(t, tb, mp, p, pg)...)
	}
	return out
}

func countDiff(a, b []byte) int {
	n := 0
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			n++
		}
	}
	return n + max(len(a), len(b)) - min(len(a), len(b))
}

// TestWriteThroughTracked: pages written through leave the write-tracking
// sets (they are dirty) and are writable afterwards; their neighbours stay
// clean and protected.
func TestWriteThroughTracked(t *testing.T) {
	tb := newTable(t, 256)
	m := anon(16*pg, 64*pg)
	writeVia(t, tb, m, m.Start, fill(int(m.End-m.Start), 1))
	child := shareWith(t, tb, m)
	child.ClearDirty(m.Start, m.End)
	if end, err := child.WriteThrough(m, 20*pg, fill(4*pg, 9), false); err != nil || end != 24*pg {
		t.Fatalf("WriteThrough = page %d, %v; want page 24", end/pg, err)
	}
	for _, c := range []struct {
		page  uint64
		clean bool
	}{{19, true}, {20, false}, {23, false}, {24, true}} {
		if got := child.cleanAny(c.page*pg, (c.page+1)*pg); got != c.clean {
			t.Errorf("page %d clean = %v, want %v", c.page, got, c.clean)
		}
		if e := child.entryAt(c.page * pg); e != nil && e.wp != c.clean {
			t.Errorf("page %d write-protected = %v, want %v", c.page, e.wp, c.clean)
		}
	}
}

// TestWriteThroughMemoryFileFull: with the memory file's every page
// allocated, WriteThrough fails with ENOMEM and changes nothing; once
// pages are free again it writes.
func TestWriteThroughMemoryFileFull(t *testing.T) {
	tb := newTable(t, 256)
	m := anon(16*pg, 64*pg)
	old := fill(int(m.End-m.Start), 1)
	writeVia(t, tb, m, m.Start, old[:16*pg]) // backs [16, 32)
	child := shareWith(t, tb, m)
	taken := fillMemoryFile(t, tb.mem)
	wantEntries := len(child.entriesIn(0, 256*pg))
	before := peek(t, child, m, m.End)
	for _, start := range []uint64{20, 40} { // copy-on-write pages; pages not backed
		end, err := child.WriteThrough(m, start*pg, fill(4*pg, 9), false)
		if !errors.Is(err, unix.ENOMEM) || end != start*pg {
			t.Fatalf("WriteThrough(page %d) on a full memory file = page %d, %v; want page %d, ENOMEM", start, end/pg, err, start)
		}
	}
	if got := len(child.entriesIn(0, 256*pg)); got != wantEntries {
		t.Fatalf("%d entries after the failures, want %d", got, wantEntries)
	}
	if got := peek(t, child, m, m.End); !bytes.Equal(got, before) {
		t.Fatalf("the failures changed %d bytes", countDiff(got, before))
	}
	// With one page free, a run shrinks to its first page.
	last := taken[len(taken)-1]
	if err := tb.mem.DecRef(last.end-pg, pg); err != nil {
		t.Fatal(err)
	}
	taken[len(taken)-1].end -= pg
	if end, err := child.WriteThrough(m, 20*pg, fill(4*pg, 9), false); err != nil || end != 21*pg {
		t.Fatalf("WriteThrough with one page free = page %d, %v; want page 21", end/pg, err)
	}
	want := bytes.Clone(before)
	copy(want[4*pg:], fill(pg, 9))
	if got := peek(t, child, m, m.End); !bytes.Equal(got, want) {
		t.Fatalf("after the one-page run, %d bytes differ", countDiff(got, want))
	}
	for _, e := range taken {
		if e.end > e.start {
			if err := tb.mem.DecRef(e.start, e.end-e.start); err != nil {
				t.Fatal(err)
			}
		}
	}
	if end, err := child.WriteThrough(m, 21*pg, fill(4*pg, 9), false); err != nil || end != 25*pg {
		t.Fatalf("WriteThrough once pages are free = page %d, %v; want page 25", end/pg, err)
	}
}

// TestZeroThrough: zeroing whole copy-on-write pages backs them with new
// pages of zeros (nothing copied or written), resident as after a write;
// the other table keeps its bytes.
func TestZeroThrough(t *testing.T) {
	tb := newTable(t, 256)
	m := anon(16*pg, 64*pg)
	old := fill(int(m.End-m.Start), 1)
	writeVia(t, tb, m, m.Start, old)
	child := shareWith(t, tb, m)
	for _, c := range []struct {
		start, pages, want uint64
	}{{20, 8, 28}, {28, 4, 32}, {24, 8, 24}} { // the last: pages the child owns now
		end, err := child.ZeroThrough(m, c.start*pg, c.pages*pg, false)
		if err != nil || end != c.want*pg {
			t.Fatalf("ZeroThrough(page %d, %d pages) = page %d, %v; want page %d", c.start, c.pages, end/pg, err, c.want)
		}
	}
	e := child.entryAt(20 * pg)
	if e == nil || !e.owned || e.cow || e.start > 20*pg || e.end < 32*pg {
		t.Fatalf("entry %+v: want the child's own pages over [20, 32)", e)
	}
	vec := make([]byte, 12)
	child.Resident(20*pg, 32*pg, vec)
	if !bytes.Equal(vec, bytes.Repeat([]byte{1}, 12)) && hostPopulates() {
		t.Fatalf("residency of the zeroed pages %v, want all resident", vec)
	}
	want := bytes.Clone(old)
	clear(want[4*pg : 16*pg])
	if got := peek(t, child, m, m.End); !bytes.Equal(got, want) {
		t.Fatalf("the child reads %d bytes that differ", countDiff(got, want))
	}
	if got := peek(t, tb, m, m.End); !bytes.Equal(got, old) {
		t.Fatalf("the parent reads %d changed bytes", countDiff(got, old))
	}
}

// hostPopulates reports whether the host makes a shared memfd page
// resident on MADV_POPULATE_READ (qemu-user takes the advice for a hint
// and ignores it).
func hostPopulates() bool {
	fd := memfdT(pg)
	if fd < 0 {
		return false
	}
	defer unix.Close(fd)
	b, err := unix.Mmap(fd, 0, pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return false
	}
	defer unix.Munmap(b)
	if unix.Madvise(b, unix.MADV_POPULATE_READ) != nil {
		return false
	}
	vec := make([]byte, 1)
	mincore(uintptr(unsafe.Pointer(&b[0])), pg, vec)
	return vec[0]&1 != 0
}

func memfdT(size int64) int {
	fd, err := unix.MemfdCreate("populate-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return -1
	}
	if unix.Ftruncate(fd, size) != nil {
		unix.Close(fd)
		return -1
	}
	return fd
}

// fillMemoryFile allocates every free extent of m and returns them.
func fillMemoryFile(t *testing.T, m *MemoryFile) []extent {
	t.Helper()
	var taken []extent
	for {
		m.mu.Lock()
		var e extent
		if len(m.free) > 0 {
			e = m.free[0]
		}
		m.mu.Unlock()
		if e.end == 0 {
			return taken
		}
		off, err := m.Allocate(e.end-e.start, e.start)
		if err != nil || off != e.start {
			t.Fatalf("Allocate(%#x, %#x) = %#x, %v", e.end-e.start, e.start, off, err)
		}
		taken = append(taken, e)
	}
}

// TestFaultMemoryFileFull: a copy-on-write fault whose window the memory
// file has no room for backs the faulting page alone; with no page free it
// fails with ENOMEM and changes nothing.
func TestFaultMemoryFileFull(t *testing.T) {
	tb := newTable(t, 256)
	m := anon(16*pg, 64*pg)
	old := fill(int(m.End-m.Start), 1)
	writeVia(t, tb, m, m.Start, old[:16*pg]) // backs [16, 32)
	child := shareWith(t, tb, m)
	taken := fillMemoryFile(t, tb.mem)
	entries := len(child.entriesIn(0, 256*pg))
	if err := child.Fault(m, 20*pg, true, false); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Fault with no page free = %v, want ENOMEM", err)
	}
	if got := len(child.entriesIn(0, 256*pg)); got != entries {
		t.Fatalf("%d entries after the failed fault, want %d", got, entries)
	}
	last := taken[len(taken)-1]
	if err := tb.mem.DecRef(last.end-pg, pg); err != nil {
		t.Fatal(err)
	}
	if err := child.Fault(m, 20*pg, true, false); err != nil {
		t.Fatalf("Fault with one page free: %v", err)
	}
	if e := child.entryAt(20 * pg); e == nil || e.start != 20*pg || e.end != 21*pg || !e.owned || e.cow {
		t.Fatalf("entry %+v at page 20: want the page alone, the child's own", e)
	}
	for _, p := range []uint64{19, 21} {
		if e := child.entryAt(p * pg); e == nil || !e.cow {
			t.Fatalf("entry %+v at page %d: want it still copy-on-write", e, p)
		}
	}
	want := bytes.Clone(old[:16*pg])
	if got := peek(t, child, m, 32*pg); !bytes.Equal(got, want) {
		t.Fatalf("the child reads %d bytes that differ", countDiff(got, want))
	}
	if got := peek(t, tb, m, 32*pg); !bytes.Equal(got, want) {
		t.Fatalf("the parent reads %d bytes that differ", countDiff(got, want))
	}
}

// shareWith returns a new table of 256 pages over tb's memory file with
// m's range shared with tb (as Clone shares it).
func shareWith(t *testing.T, tb *Table, m Mapping) *Table {
	t.Helper()
	child := newTableOn(t, 256, tb.mem.Share())
	if err := tb.Share(child, m.Start, m.End); err != nil {
		t.Fatal(err)
	}
	return child
}
