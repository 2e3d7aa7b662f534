package pma

import (
	"bytes"
	"testing"
)

// fragment writes every other 16-page window of m in child, a clone of tb
// over m, as TestRelay does, and returns the bytes the child should hold.
func fragment(t *testing.T, tb, child *Table, m Mapping, pages uint64) []byte {
	t.Helper()
	want := make([]byte, pages*pg)
	for p := uint64(0); p < pages; p += 16 {
		want[p*pg] = byte(p/16 + 1)
	}
	writeVia(t, tb, m, 0, want)
	tb.Share(child, 0, pages*pg)
	for p := uint64(0); p < pages; p += 32 {
		want[p*pg+1] = 0xcc
		writeVia(t, child, m, p*pg+1, []byte{0xcc})
	}
	return want
}

// TestRelayWhilePinned: a zero-copy transfer in progress (Pin) may be
// storing through host addresses that cannot wait in the fault handler,
// so no mapping is re-laid under it; the first fault after Unpin re-lays.
func TestRelayWhilePinned(t *testing.T) {
	const pages = 4096
	tb := newTable(t, pages)
	m := anon(0, pages*pg)
	child := newTableOn(t, pages, tb.mem.Share())
	child.Pin()
	want := fragment(t, tb, child, m, pages)
	if n := len(child.entriesIn(0, pages*pg)); n <= relayBound(pages) {
		t.Fatalf("pinned: %d entries, re-laid (bound %d)", n, relayBound(pages))
	}
	child.Unpin()
	// A copy-on-write page left: the next write fault re-lays.
	want[16*pg+2] = 0xdd
	writeVia(t, child, m, 16*pg+2, []byte{0xdd})
	if n := len(child.entriesIn(0, pages*pg)); n > relayBound(pages) {
		t.Fatalf("unpinned: %d entries, bound %d", n, relayBound(pages))
	}
	if got := readVia(t, child, m, 0, pages*pg); !bytes.Equal(got, want) {
		t.Fatal("the child's bytes changed")
	}
}

// TestRelayWithinBudget: with the process's host budget nearly spent, the
// faults that fragment a mapping and the re-lay that takes it out of the
// views (which may split the views at its edges) stay within the budget,
// evicting where they must, and no byte is lost.
func TestRelayWithinBudget(t *testing.T) {
	const pages = 4096
	acct.init()
	oldLimit, oldHeadroom := acct.limit, acct.headroom
	defer func() { acct.limit, acct.headroom = oldLimit, oldHeadroom }()
	tb := newTable(t, pages)
	child := newTableOn(t, pages, tb.mem.Share())
	acct.mu.Lock()
	used := acct.committed
	acct.mu.Unlock()
	const room = 24
	acct.limit, acct.headroom = used+room, 0
	m := anon(0, pages*pg)
	want := fragment(t, tb, child, m, pages)
	if n := len(child.entriesIn(0, pages*pg)); n > relayBound(pages) {
		t.Fatalf("%d entries, bound %d: not re-laid", n, relayBound(pages))
	}
	if st := ReadHostStats(); st.Committed > acct.limit || st.Mappings > acct.limit {
		t.Fatalf("committed %d host mappings, budget %d", st.Committed, acct.limit)
	}
	if got := readVia(t, child, m, 0, pages*pg); !bytes.Equal(got, want) {
		t.Fatal("the child's bytes changed")
	}
	for _, tab := range []*Table{tb, child} {
		if got := hostLinesIn(t, tab.AppBase(), pages*pg); got != tab.app.Mappings() {
			t.Fatalf("host %d mappings, view %d", got, tab.app.Mappings())
		}
	}
}
