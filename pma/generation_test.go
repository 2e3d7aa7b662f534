package pma

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGeneration checks which page-table operations change the generation:
// every one that takes access away from a page the app view maps, or
// re-lays backing; none that only adds access.
func TestGeneration(t *testing.T) {
	const pages = 64
	m := anon(0, pages*pg)
	tests := []struct {
		name   string
		op     func(t *testing.T, tb *Table)
		change bool
	}{
		{"fault of a fresh page", func(t *testing.T, tb *Table) { writeVia(t, tb, m, 40*pg, []byte{1}) }, false},
		{"read fault of a fresh page", func(t *testing.T, tb *Table) { readVia(t, tb, m, 40*pg, 1) }, false},
		{"fault of a mapped page", func(t *testing.T, tb *Table) { writeVia(t, tb, m, 2*pg, []byte{1}) }, false},
		{"unmap", func(t *testing.T, tb *Table) { tb.Unmap(3*pg, 4*pg) }, true},
		{"protect to read-only", func(t *testing.T, tb *Table) { tb.Protect(0, 16*pg, unix.PROT_READ) }, true},
		{"protect to the same", func(t *testing.T, tb *Table) { tb.Protect(0, 16*pg, unix.PROT_READ|unix.PROT_WRITE) }, true},
		{"move", func(t *testing.T, tb *Table) { tb.Move(0, 4*pg, 32*pg) }, true},
		{"share", func(t *testing.T, tb *Table) {
			tb.Share(newTableOn(t, pages, tb.mem.Share()), 0, pages*pg)
		}, true},
		{"write after share breaks copy-on-write", func(t *testing.T, tb *Table) {
			child := newTableOn(t, pages, tb.mem.Share())
			tb.Share(child, 0, pages*pg)
			gen := tb.Generation()
			writeVia(t, tb, m, 5*pg, []byte{9})
			writeVia(t, child, m, 6*pg, []byte{9})
			if tb.Generation() != gen || child.Generation() != 0 {
				t.Errorf("copy-on-write changed the generation: parent %d to %d, child 0 to %d", gen, tb.Generation(), child.Generation())
			}
		}, true},
		{"close", func(t *testing.T, tb *Table) { tb.Close() }, true},
		{"invalidate", func(t *testing.T, tb *Table) { tb.Invalidate() }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, pages)
			writeVia(t, tb, m, 5*pg, []byte{7}) // maps [0, 16) writable
			gen := tb.Generation()
			tc.op(t, tb)
			if changed := tb.Generation() != gen; changed != tc.change {
				t.Errorf("generation %d -> %d: changed %v, want %v", gen, tb.Generation(), changed, tc.change)
			}
		})
	}
}

// TestGenerationEviction: faults that evict the table's mappings to stay
// within the budget change the generation.
func TestGenerationEviction(t *testing.T) {
	acct.init()
	oldLimit, oldHeadroom := acct.limit, acct.headroom
	acct.mu.Lock()
	used := acct.committed
	acct.mu.Unlock()
	acct.limit, acct.headroom = used+40, 0
	defer func() { acct.limit, acct.headroom = oldLimit, oldHeadroom }()

	tb := newTable(t, 4096)
	evictions := 0
	for i := 0; i < 100; i++ {
		a := uint64(i*32+1) * pg
		gen, before := tb.Generation(), tb.actual
		writeVia(t, tb, anon(a, a+pg), a, []byte{byte(i)})
		evicted := tb.actual < before
		if changed := tb.Generation() != gen; changed != evicted {
			t.Fatalf("page %d: host mappings %d -> %d, generation changed %v", i, before, tb.actual, changed)
		}
		if evicted {
			evictions++
		}
	}
	if evictions == 0 {
		t.Fatal("no fault evicted")
	}
}

// TestGenerationRelay: re-laying a fragmented mapping changes the
// generation.
func TestGenerationRelay(t *testing.T) {
	const pages = 4096
	tb := newTable(t, pages)
	m := anon(0, pages*pg)
	writeVia(t, tb, m, 0, make([]byte, pages*pg))
	child := newTableOn(t, pages, tb.mem.Share())
	tb.Share(child, 0, pages*pg)
	relaid := false
	for p := 0; p < pages; p += 32 {
		gen, before := child.Generation(), len(child.entriesIn(0, pages*pg))
		writeVia(t, child, m, uint64(p*pg+1), []byte{0xcc})
		after := len(child.entriesIn(0, pages*pg))
		if after < before {
			relaid = true
		}
		if changed := child.Generation() != gen; changed != (after < before) {
			t.Fatalf("window %d: entries %d -> %d, generation changed %v", p/32, before, after, changed)
		}
	}
	if !relaid {
		t.Fatal("nothing was re-laid")
	}
}

func TestAccessibleRun(t *testing.T) {
	data := make([]byte, 3*pg+100)
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(data)
	file := Mapping{Start: 64 * pg, End: 72 * pg, Private: true, FD: int(f.Fd()), Prot: unix.PROT_READ | unix.PROT_WRITE, MaxProt: unix.PROT_READ | unix.PROT_WRITE}

	tb := newTable(t, 512)
	m := anon(0, 64*pg)
	writeVia(t, tb, m, 5*pg, []byte{1})               // [0, 16) writable
	readVia(t, tb, m, 20*pg, 1)                       // [16, 32) writable (not where the last window ended: no doubling)
	readVia(t, tb, file, file.Start+pg, 1)            // the file's 4 pages, then 4 beyond its end
	writeVia(t, tb, file, file.Start+2*pg, []byte{1}) // a private copy of its third page
	// 200 entries of alternating protection.
	alt := anon(256*pg, 456*pg)
	readVia(t, tb, alt, alt.Start, int(alt.End-alt.Start))
	for p := uint64(0); p < 200; p += 2 {
		tb.Protect(alt.Start+p*pg, alt.Start+(p+1)*pg, unix.PROT_READ)
	}
	child := newTableOn(t, 512, tb.mem.Share())
	tb.Share(child, 8*pg, 16*pg)

	tests := []struct {
		addr, lo, hi uint64
		write        bool
		start, end   uint64
	}{
		{5*pg + 3, 0, 64 * pg, false, 0, 32 * pg},
		{5*pg + 3, 2 * pg, 8 * pg, false, 2 * pg, 8 * pg},
		{5 * pg, 0, 64 * pg, true, 0, 8 * pg},      // [8, 16) is copy-on-write
		{9 * pg, 0, 64 * pg, true, 9 * pg, 9 * pg}, // copy-on-write
		{20 * pg, 0, 64 * pg, true, 16 * pg, 32 * pg},
		{31*pg + pg - 1, 0, 64 * pg, false, 0, 32 * pg},
		{32 * pg, 0, 64 * pg, false, 32 * pg, 32 * pg}, // not backed
		{63 * pg, 0, 64 * pg, true, 63 * pg, 63 * pg},
		{file.Start, file.Start, file.End, false, file.Start, file.Start + 4*pg},
		{file.Start + 3*pg, file.Start, file.End, false, file.Start, file.Start + 4*pg},
		{file.Start + 4*pg, file.Start, file.End, false, file.Start + 4*pg, file.Start + 4*pg}, // beyond the end
		{file.Start + 7*pg, file.Start, file.End, false, file.Start + 7*pg, file.Start + 7*pg},
		{file.Start + 2*pg, file.Start, file.End, true, file.Start + 2*pg, file.Start + 3*pg},
		{file.Start + pg, file.Start, file.End, true, file.Start + pg, file.Start + pg},
		{alt.Start + 100*pg, alt.Start, alt.End, false, alt.Start + 36*pg, alt.Start + 165*pg}, // 64 entries each side
		{alt.Start + 101*pg, alt.Start, alt.End, true, alt.Start + 101*pg, alt.Start + 102*pg},
		{alt.Start + 100*pg, alt.Start, alt.End, true, alt.Start + 100*pg, alt.Start + 100*pg},
	}
	for _, tc := range tests {
		s, e := tb.AccessibleRun(tc.addr, tc.lo, tc.hi, tc.write)
		if s != tc.start || e != tc.end {
			t.Errorf("AccessibleRun(%#x, %#x, %#x, %v) = [%#x, %#x), want [%#x, %#x)", tc.addr, tc.lo, tc.hi, tc.write, s, e, tc.start, tc.end)
		}
	}
}
