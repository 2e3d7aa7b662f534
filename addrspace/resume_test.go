package addrspace

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
)

// TestLazyFaultExactCounts: copies and zeroing that fault on pages never
// touched (resolved at once from the fault's reported address, one host
// signal each) and then stop at an inaccessible page still report the
// exact count, the exact faulting address, and move exactly the bytes
// before it, for sizes around every width the copy routines switch at and
// starts at every offset near the page boundaries.
//
// Layout, from a: page 0 backed and patterned, page 1 never touched
// (read-write), page 2 never touched and read-only, page 3 a hole. A read
// stops at page 3, a write at page 2.
func TestLazyFaultExactCounts(t *testing.T) {
	sizes := []int{1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 300, 1000, pg, pg + 1, 2*pg + 100, 3 * pg}
	var offsets []int
	for _, edge := range []int{pg, 2 * pg, 3 * pg} {
		for d := -40; d <= 8; d++ {
			offsets = append(offsets, edge+d)
		}
	}
	as := newAS(t, 1<<30)
	const a = hostarch.Addr(0x200000)
	orig := pattern(pg, 7)
	layout := func() {
		mustMmap(t, as, MmapOpts{Addr: a, Fixed: true, Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true})
		mustMmap(t, as, MmapOpts{Addr: a + 2*pg, Fixed: true, Length: pg, Perms: hostarch.Read, Private: true})
		if err := as.Munmap(a+3*pg, pg); err != nil {
			t.Fatal(err)
		}
		writeAt(t, as, a, string(orig))
	}
	// content returns pages 0-2 as they read.
	content := func() []byte {
		b := make([]byte, 3*pg)
		if n, err := as.CopyIn(ctx, a, b, noOpt); n != len(b) || err != nil {
			t.Fatalf("CopyIn of the layout = %d, %v", n, err)
		}
		return b
	}
	before := append(append([]byte(nil), orig...), make([]byte, 2*pg)...)
	for _, op := range []string{"CopyIn", "CopyOut", "ZeroOut"} {
		for _, n := range sizes {
			for _, off := range offsets {
				name := fmt.Sprintf("%s of %d at +%#x", op, n, off)
				if off+n <= pg {
					continue // faults on nothing
				}
				layout()
				stop := 3 * pg
				if op != "CopyIn" {
					stop = 2 * pg
				}
				want := max(0, min(n, stop-off))
				addr := a + hostarch.Addr(off)
				src := pattern(n, 99)
				var (
					got int
					err error
					buf = make([]byte, n)
				)
				switch op {
				case "CopyIn":
					got, err = as.CopyIn(ctx, addr, buf, noOpt)
				case "CopyOut":
					got, err = as.CopyOut(ctx, addr, src, noOpt)
				case "ZeroOut":
					var g int64
					g, err = as.ZeroOut(ctx, addr, int64(n), noOpt)
					got = int(g)
				}
				if got != want {
					t.Fatalf("%s: %d bytes, want %d (%v)", name, got, want, err)
				}
				var fe *FaultError
				if want == n {
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
				} else if !errors.As(err, &fe) || fe.Addr != addr+hostarch.Addr(want) {
					t.Fatalf("%s: error %v, want a fault at %#x", name, err, addr+hostarch.Addr(want))
				}
				after := content()
				exp := append([]byte(nil), before...)
				switch {
				case want == 0:
				case op == "CopyIn":
					if !bytes.Equal(buf[:want], exp[off:off+want]) {
						t.Fatalf("%s: wrong bytes copied", name)
					}
				case op == "CopyOut":
					copy(exp[off:off+want], src)
				case op == "ZeroOut":
					clear(exp[off : off+want])
				}
				if !bytes.Equal(after, exp) {
					t.Fatalf("%s: the layout's bytes are wrong afterwards", name)
				}
			}
		}
	}
}
