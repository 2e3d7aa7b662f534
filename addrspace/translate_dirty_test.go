package addrspace

import (
	"runtime/debug"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
)

// TestDirtyThroughDirectAccess checks that writes through a Translation's Mem
// count for dirty tracking: ClearDirty changes the generation, and a stale
// direct write faults, resolves through ResolveFault and is reported.
func TestDirtyThroughDirectAccess(t *testing.T) {
	as := newAS(t, 64*pg)
	a := mustMmap(t, as, MmapOpts{Length: 8 * pg, Perms: hostarch.ReadWrite, Private: true})
	tr, err := as.Translate(a, hostarch.Write)
	if err != nil {
		t.Fatal(err)
	}
	tr.Mem[0] = 1
	g := as.Generation()
	if err := as.ClearDirty(hostarch.AddrRange{Start: a, End: a + 8*pg}); err != nil {
		t.Fatal(err)
	}
	if as.Generation() == g {
		t.Errorf("ClearDirty did not change the generation")
	}
	// A stale direct write must fault, resolve, and count.
	debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(false)
	write := func(off int) (faulted bool) {
		defer func() {
			if r := recover(); r != nil {
				faulted = true
			}
		}()
		tr.Mem[off] = 2
		return false
	}
	if write(3 * pg) {
		if err := as.ResolveFault(a+3*pg, hostarch.Write); err != nil {
			t.Fatal(err)
		}
		if write(3 * pg) {
			t.Fatal("faulted again")
		}
	} else {
		t.Errorf("stale write did not fault")
	}
	d, err := as.Dirty(hostarch.AddrRange{Start: a, End: a + 8*pg})
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || d[0] != (hostarch.AddrRange{Start: a + 3*pg, End: a + 4*pg}) {
		t.Errorf("Dirty = %v", d)
	}
}
