package addrspace

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// TestLazyModel runs random operations on a lazily filled mapping and, in
// step, on a control space whose same mapping holds the filler's bytes
// from the start (and gets them again where MADV_DONTNEED discards, as
// userfaultfd refills): every read of both agrees, byte for byte and
// count for count, and no page is filled twice without a discard between.
// Operations: copies of every kind (including across the mapping's ends),
// atomics, Mprotect, DONTNEED, Munmap of parts, and Clone (whose child is
// compared, then closed).
func TestLazyModel(t *testing.T) {
	seeds, ops := 20, 400
	if testing.Short() {
		seeds = 5
	}
	for seed := 0; seed < seeds; seed++ {
		lazyModelRun(t, int64(seed), ops)
	}
}

func lazyModelRun(t *testing.T, seed int64, ops int) {
	const pages = 48
	rng := rand.New(rand.NewSource(seed))
	newSpace := func() *AddressSpace {
		as, err := New(Options{Size: 1 << 24})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { as.Close() })
		return as
	}
	lazy, ctl := newSpace(), newSpace()
	c := newCountingFiller()
	a := mustMmap(t, lazy, MmapOpts{Length: pages * pg, Perms: hostarch.ReadWrite, Private: true, Fill: c})
	if b := mustMmap(t, ctl, MmapOpts{Addr: a, Fixed: true, Length: pages * pg, Perms: hostarch.ReadWrite, Private: true}); b != a {
		t.Fatal(b, a)
	}
	fillCtl := func(start, end uint64) { // pages [start, end) get the filler's bytes in ctl
		buf := make([]byte, (end-start)*pg)
		for p := start; p < end; p++ {
			for i := range buf[(p-start)*pg : (p-start+1)*pg] {
				buf[(p-start)*pg+uint64(i)] = fillByte(p)
			}
		}
		if n, err := ctl.CopyOut(ctx, a+hostarch.Addr(start*pg), buf, usermem.IOOpts{IgnorePermissions: true}); err != nil {
			t.Fatalf("control refill of pages %d-%d: %d, %v", start, end, n, err)
		}
	}
	fillCtl(0, pages)
	// allowed[p] is how many fills page p may have had: one, and one more
	// per discard.
	allowed := make([]int, pages)
	for i := range allowed {
		allowed[i] = 1
	}
	mapped := make([]bool, pages)
	for i := range mapped {
		mapped[i] = true
	}
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		tail := log
		if len(tail) > 12 {
			tail = tail[len(tail)-12:]
		}
		t.Fatalf("seed %d after %q: %s", seed, tail, fmt.Sprintf(format, args...))
	}
	compare := func(x, y *AddressSpace, addr hostarch.Addr, n int, opts usermem.IOOpts) {
		bx, by := make([]byte, n), make([]byte, n)
		kx, ex := x.CopyIn(ctx, addr, bx, opts)
		ky, ey := y.CopyIn(ctx, addr, by, opts)
		if kx != ky || (ex == nil) != (ey == nil) || !bytes.Equal(bx[:kx], by[:ky]) {
			d := 0
			for d < min(kx, ky) && bx[d] == by[d] {
				d++
			}
			fail("CopyIn(%#x, %d): lazy %d, %v; control %d, %v; first difference at %#x (page %d): %#x, control %#x",
				addr, n, kx, ex, ky, ey, int(addr)+d, (int(addr)+d-int(a))/pg, bx[min(d, kx-1)], by[min(d, ky-1)])
		}
		if ex != nil && !errors.Is(ex, unix.EFAULT) {
			fail("CopyIn error %v", ex)
		}
	}
	randRange := func() (hostarch.Addr, int) {
		start := a - 2*pg + hostarch.Addr(rng.Intn((pages+4)*pg))
		return start, 1 + rng.Intn(6*pg)
	}
	randPages := func() (uint64, uint64) {
		s := uint64(rng.Intn(pages))
		return s, min(s+1+uint64(rng.Intn(8)), pages)
	}
	for i := 0; i < ops; i++ {
		opts := usermem.IOOpts{IgnorePermissions: rng.Intn(4) == 0}
		switch op := rng.Intn(10); op {
		case 0, 1, 2:
			addr, n := randRange()
			log = append(log, fmt.Sprintf("CopyIn(%#x, %d, %v)", addr, n, opts.IgnorePermissions))
			compare(lazy, ctl, addr, n, opts)
		case 3, 4:
			addr, n := randRange()
			src := make([]byte, n)
			rng.Read(src)
			log = append(log, fmt.Sprintf("CopyOut(%#x, %d, %v)", addr, n, opts.IgnorePermissions))
			kx, ex := lazy.CopyOut(ctx, addr, src, opts)
			ky, ey := ctl.CopyOut(ctx, addr, src, opts)
			if kx != ky || (ex == nil) != (ey == nil) {
				fail("CopyOut: lazy %d, %v; control %d, %v", kx, ex, ky, ey)
			}
		case 5:
			addr := (a - pg + hostarch.Addr(rng.Intn((pages+2)*pg))) &^ 3
			log = append(log, fmt.Sprintf("SwapUint32(%#x)", addr))
			vx, ex := lazy.SwapUint32(ctx, addr, uint32(i), opts)
			vy, ey := ctl.SwapUint32(ctx, addr, uint32(i), opts)
			if vx != vy || (ex == nil) != (ey == nil) {
				fail("SwapUint32: lazy %#x, %v; control %#x, %v", vx, ex, vy, ey)
			}
		case 6:
			s, e := randPages()
			perms := []hostarch.AccessType{hostarch.NoAccess, hostarch.Read, hostarch.ReadWrite}[rng.Intn(3)]
			log = append(log, fmt.Sprintf("Mprotect(pages %d-%d, %v)", s, e, perms))
			ex := lazy.Mprotect(a+hostarch.Addr(s*pg), (e-s)*pg, perms)
			ey := ctl.Mprotect(a+hostarch.Addr(s*pg), (e-s)*pg, perms)
			if (ex == nil) != (ey == nil) {
				fail("Mprotect: lazy %v; control %v", ex, ey)
			}
		case 7:
			s, e := randPages()
			log = append(log, fmt.Sprintf("DONTNEED(pages %d-%d)", s, e))
			ex := lazy.Madvise(a+hostarch.Addr(s*pg), (e-s)*pg, unix.MADV_DONTNEED)
			ey := ctl.Madvise(a+hostarch.Addr(s*pg), (e-s)*pg, unix.MADV_DONTNEED)
			if (ex == nil) != (ey == nil) {
				fail("DONTNEED: lazy %v; control %v", ex, ey)
			}
			// Over a hole it fails with ENOMEM, as on Linux, having
			// discarded every mapped page of the range all the same.
			if ex == nil || errors.Is(ex, unix.ENOMEM) {
				for p := s; p < e; p++ {
					if mapped[p] {
						allowed[p]++
						fillCtl(p, p+1)
					}
				}
			}
		case 8:
			if rng.Intn(4) != 0 {
				continue
			}
			s, e := randPages()
			log = append(log, fmt.Sprintf("Munmap(pages %d-%d)", s, e))
			lazy.Munmap(a+hostarch.Addr(s*pg), (e-s)*pg)
			ctl.Munmap(a+hostarch.Addr(s*pg), (e-s)*pg)
			for p := s; p < e; p++ {
				mapped[p] = false
			}
		case 9:
			log = append(log, "Clone")
			cx, err := lazy.Clone()
			if err != nil {
				fail("Clone: %v", err)
			}
			cy, err := ctl.Clone()
			if err != nil {
				fail("Clone: %v", err)
			}
			if dbgLazy {
				compare(lazy, ctl, a, pages*pg, usermem.IOOpts{IgnorePermissions: true})
				compare(ctl, cy, a, pages*pg, usermem.IOOpts{IgnorePermissions: true})
				compare(lazy, cx, a, pages*pg, usermem.IOOpts{IgnorePermissions: true})
			}
			for k := 0; k < 3; k++ {
				addr, n := randRange()
				compare(cx, cy, addr, n, usermem.IOOpts{IgnorePermissions: true})
			}
			// The child's fills count against the same pages: allow them.
			for p := range allowed {
				allowed[p]++
			}
			cx.Close()
			cy.Close()
		}
		if dbgLazy {
			for p := 0; p < pages; p++ {
				if mapped[p] {
					compare(lazy, ctl, a+hostarch.Addr(p*pg), pg, usermem.IOOpts{IgnorePermissions: true})
				}
			}
		}
		c.mu.Lock()
		for p := 0; p < pages; p++ {
			if c.fills[uint64(p)] > allowed[p] {
				c.mu.Unlock()
				fail("page %d filled %d times, at most %d allowed", p, c.fills[uint64(p)], allowed[p])
			}
		}
		c.mu.Unlock()
	}
	compare(lazy, ctl, a, pages*pg, usermem.IOOpts{IgnorePermissions: true})
	if err := sameMappings(ctl.Mappings(), lazy.Mappings()); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
}

// dbgLazy makes TestLazyModel compare every page after every operation.
var dbgLazy = os.Getenv("MMSIM_LAZY_DEBUG") != ""
