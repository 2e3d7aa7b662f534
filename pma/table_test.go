package pma

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"testing"

	"github.com/mmsim/mmsim/safemem"
	"golang.org/x/sys/unix"
)

// hostLinesIn counts the lines of /proc/self/maps overlapping [base,
// base+size).
func hostLinesIn(t *testing.T, base uintptr, size uint64) int {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var lo, hi uintptr
		fmt.Sscanf(sc.Text(), "%x-%x", &lo, &hi)
		if lo < base+uintptr(size) && hi > base {
			n++
		}
	}
	return n
}

// TestViewMirrorsHost makes random changes to a view and checks after each
// that the view's mirror of the kernel's VMAs has exactly as many as the
// host shows, and that each change's plan predicted the count.
func TestViewMirrorsHost(t *testing.T) {
	const pages = 64
	v := reserveT(t, pages*pg)
	fds := []int{memfd(t, 2*pages*pg), memfd(t, 2*pages*pg)}
	prots := []int{unix.PROT_READ, unix.PROT_READ | unix.PROT_WRITE}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 3000; i++ {
		start := uint64(rng.Intn(pages)) * pg
		end := start + uint64(1+rng.Intn(min(8, pages-int(start/pg))))*pg
		var seg hseg
		protOnly := false
		switch op := rng.Intn(10); {
		case op < 4:
			// Map a file, often at the offset that continues a neighbour.
			seg = hseg{fd: fds[rng.Intn(2)], off: start + uint64(rng.Intn(2))*pg, prot: prots[rng.Intn(2)]}
		case op < 7:
			seg = reserveSeg(start, end)
		default:
			// Change the protection of a range that is wholly mapped.
			mapped := true
			v.forSegs(start, end, func(s hseg) bool { mapped = !s.reserved(); return mapped })
			if !mapped {
				continue
			}
			seg, protOnly = hseg{prot: prots[rng.Intn(2)]}, true
		}
		p := v.plan(start, end, seg, protOnly)
		before := v.Mappings()
		if err := v.apply(p, start, end, seg, protOnly); err != nil {
			t.Fatal(err)
		}
		if v.Mappings() != before+p.delta() {
			t.Fatalf("op %d: %d mappings, the plan said %d%+d", i, v.Mappings(), before, p.delta())
		}
		if got := hostLinesIn(t, v.Base(), v.Size()); got != v.Mappings() {
			t.Fatalf("op %d (set [%#x, %#x) to %+v, protOnly %v): the host shows %d mappings, the view %d",
				i, start, end, seg, protOnly, got, v.Mappings())
		}
	}
}

// newTable returns a table of pages pages over a fresh memory file.
func newTable(t *testing.T, pages uint64) *Table {
	t.Helper()
	return newTableOn(t, pages, newMF(t))
}

// newTableOn returns a table of pages pages over m (a child's).
func newTableOn(t *testing.T, pages uint64, m *MemoryFile) *Table {
	t.Helper()
	tb, err := NewTable(pages*pg, m, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close()() })
	return tb
}

func anon(start, end uint64) Mapping {
	return Mapping{Start: start, End: end, Private: true, FD: -1, Prot: unix.PROT_READ | unix.PROT_WRITE, MaxProt: unix.PROT_READ | unix.PROT_WRITE}
}

func tableBlock(tb *Table, addr uint64, n int) safemem.Block {
	return viewBlockAt(tb.AppBase()+uintptr(addr), n)
}

// writeVia writes data at addr through the app view, resolving faults with
// Fault as the address space does.
func writeVia(t *testing.T, tb *Table, m Mapping, addr uint64, data []byte) {
	t.Helper()
	for done := 0; done < len(data); {
		n, err := safemem.Copy(tableBlock(tb, addr+uint64(done), len(data)-done), safemem.BlockFromSafeSlice(data[done:]))
		done += n
		if err == nil {
			break
		}
		if ferr := tb.Fault(m, addr+uint64(done), true, false); ferr != nil {
			t.Fatalf("Fault(%#x): %v", addr+uint64(done), ferr)
		}
	}
}

func readVia(t *testing.T, tb *Table, m Mapping, addr uint64, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	for done := 0; done < n; {
		k, err := safemem.Copy(safemem.BlockFromSafeSlice(buf[done:]), tableBlock(tb, addr+uint64(done), n-done))
		done += k
		if err == nil {
			break
		}
		if ferr := tb.Fault(m, addr+uint64(done), false, false); ferr != nil {
			t.Fatalf("Fault(%#x): %v", addr+uint64(done), ferr)
		}
	}
	return buf
}

// TestFaultAround checks the windows that faults back and copy.
func TestFaultAround(t *testing.T) {
	tb := newTable(t, 256)
	m := anon(16*pg, 256*pg)
	// A first touch backs the aligned 16-page window, one host mapping.
	writeVia(t, tb, m, 20*pg, []byte("a"))
	if got := len(tb.entriesIn(0, 256*pg)); got != 1 {
		t.Fatalf("%d entries after one touch", got)
	}
	if e := tb.entryAt(20 * pg); e.start != 16*pg || e.end != 32*pg || !e.owned || e.cow {
		t.Fatalf("entry %+v, want [16, 32) pages owned", *e)
	}
	// A touch where that window ended doubles the window, and its pages
	// continue the first window's in the memory file: one entry.
	writeVia(t, tb, m, 32*pg, []byte("b"))
	if e := tb.entryAt(32 * pg); e.start != 16*pg || e.end != 64*pg {
		t.Fatalf("entry %+v, want [16, 64) pages", *e)
	}
	if n := tb.HostMappings(); n != 3 {
		t.Fatalf("%d host mappings, want 3 (reservation, pages, reservation)", n)
	}
	// Share with a child: a write in the child copies its run of shared
	// pages within the aligned window; the parent's stay.
	child := newTableOn(t, 256, tb.mem.Share())
	if err := tb.Share(child, m.Start, m.End); err != nil {
		t.Fatal(err)
	}
	writeVia(t, child, m, 40*pg, []byte("c"))
	if e := child.entryAt(40 * pg); e.start != 32*pg || e.end != 48*pg || e.cow {
		t.Fatalf("child entry %+v, want [32, 48) pages its own", *e)
	}
	if got := readVia(t, tb, m, 40*pg, 1); got[0] != 0 {
		t.Fatalf("the parent sees the child's write: %q", got)
	}
	if got := readVia(t, child, m, 32*pg, 1); got[0] != 'b' {
		t.Fatalf("the child lost the shared bytes: %q", got)
	}
	// The parent's pages in that window are its own again: its write makes
	// them writable without a copy.
	pageOff := func() uint64 { e := tb.entryAt(40 * pg); return e.off + (40*pg - e.start) }
	off := pageOff()
	writeVia(t, tb, m, 40*pg, []byte("p"))
	if e := tb.entryAt(40 * pg); e.cow || pageOff() != off {
		t.Fatalf("parent entry %+v: copied, or still copy-on-write", *e)
	}
}

// TestEvictionWithinBudget shrinks the budget and touches isolated pages:
// faults evict the table's own mappings instead of exceeding it, and no
// byte is lost.
func TestEvictionWithinBudget(t *testing.T) {
	acct.init()
	oldLimit, oldHeadroom := acct.limit, acct.headroom
	acct.mu.Lock()
	used := acct.committed
	acct.mu.Unlock()
	acct.limit, acct.headroom = used+40, 0
	defer func() { acct.limit, acct.headroom = oldLimit, oldHeadroom }()

	tb := newTable(t, 4096)
	const n = 100
	ms := make([]Mapping, n)
	for i := range ms {
		a := uint64(i*32+1) * pg
		ms[i] = anon(a, a+pg)
		writeVia(t, tb, ms[i], a, []byte{byte(i)})
		if tb.actual > 40 {
			t.Fatalf("after page %d: %d host mappings, budget 40", i, tb.actual)
		}
	}
	for i, m := range ms {
		if got := readVia(t, tb, m, m.Start, 1); got[0] != byte(i) {
			t.Fatalf("page %d reads %d", i, got[0])
		}
	}
	if got := hostLinesIn(t, tb.AppBase(), 4096*pg); got != tb.app.Mappings() {
		t.Fatalf("host %d, view %d", got, tb.app.Mappings())
	}
}

// TestRelay fragments a mapping's copies beyond relayBound and checks that
// it is re-laid into one run with its bytes.
func TestRelay(t *testing.T) {
	const pages = 4096
	tb := newTable(t, pages)
	m := anon(0, pages*pg)
	want := make([]byte, pages*pg)
	for p := 0; p < pages; p += 16 {
		want[p*pg] = byte(p/16 + 1)
	}
	writeVia(t, tb, m, 0, want)
	child := newTableOn(t, pages, tb.mem.Share())
	tb.Share(child, 0, pages*pg)
	// Write every other 16-page window in the child: each copy is its own
	// run until the re-lay.
	for p := 0; p < pages; p += 32 {
		want[p*pg+1] = 0xcc
		writeVia(t, child, m, uint64(p*pg+1), []byte{0xcc})
	}
	if n := len(child.entriesIn(0, pages*pg)); n > relayBound(pages) {
		t.Fatalf("%d entries, bound %d", n, relayBound(pages))
	}
	if got := readVia(t, child, m, 0, pages*pg); !bytes.Equal(got, want) {
		t.Fatal("the child's bytes changed")
	}
	if got := readVia(t, tb, m, pg*32, 2); got[1] != 0 {
		t.Fatal("the parent sees the child's writes")
	}
}
