package addrspace

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
	"unsafe"
)

// Adversarial tests: concurrency across clone families, copy-on-write
// corner cases, and accounting.

var ignorePerms = usermem.IOOpts{IgnorePermissions: true}

func advFill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// wantFault checks a transfer that must stop after want bytes with EFAULT.
func wantFault(t *testing.T, what string, n int64, err error, want int64) {
	t.Helper()
	if n != want || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("%s = %d, %v; want %d, EFAULT", what, n, err, want)
	}
}

func mustStats(t *testing.T, as *AddressSpace) Stats {
	t.Helper()
	st, err := as.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type statsWant struct {
	shared, copies, memPages uint64
}

func checkStats(t *testing.T, what string, as *AddressSpace, w statsWant) {
	t.Helper()
	st := mustStats(t, as)
	if st.SharedPages != w.shared || uint64(st.PrivateCopies) != w.copies || st.MemoryFileBytes != w.memPages*pg {
		t.Fatalf("%s: SharedPages %d PrivateCopies %d MemoryFileBytes %d pages; want %d %d %d",
			what, st.SharedPages, st.PrivateCopies, st.MemoryFileBytes/pg, w.shared, w.copies, w.memPages)
	}
}

// TestAdvCloneFamilyConcurrent clones, writes, reads and closes a family of
// address spaces from several goroutines while the root keeps writing its
// own private memory and all of them increment a shared counter.
func TestAdvCloneFamilyConcurrent(t *testing.T) {
	root := newAS(t, 1<<30)
	priv := mustMmap(t, root, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	shared := mustMmap(t, root, MmapOpts{Length: pg, Perms: hostarch.ReadWrite})
	writeAt(t, root, priv, string(advFill(4*pg, 'r')))

	const workers, rounds = 3, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	incr := func(as *AddressSpace) error {
		for {
			old, err := as.LoadUint32(ctx, shared, noOpt)
			if err != nil {
				return err
			}
			prev, err := as.CompareAndSwapUint32(ctx, shared, old, old+1, noOpt)
			if err != nil {
				return err
			}
			if prev == old {
				return nil
			}
		}
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				parent := root
				c1, err := parent.Clone()
				if err != nil {
					errs <- err
					return
				}
				// A grandchild, so that pages have up to 3+ references.
				c2, err := c1.Clone()
				if err != nil {
					errs <- err
					return
				}
				for j, c := range []*AddressSpace{c1, c2} {
					mine := advFill(pg, byte('a'+w*2+j))
					page := priv + hostarch.Addr((i+j)%4)*pg
					if n, err := c.CopyOut(ctx, page, mine, noOpt); n != pg || err != nil {
						errs <- fmt.Errorf("worker %d CopyOut: %d, %v", w, n, err)
						return
					}
					buf := make([]byte, 4*pg)
					if n, err := c.CopyIn(ctx, priv, buf, noOpt); n != len(buf) || err != nil {
						errs <- fmt.Errorf("worker %d CopyIn: %d, %v", w, n, err)
						return
					}
					if !bytes.Equal(buf[(i+j)%4*pg:][:pg], mine) {
						errs <- fmt.Errorf("worker %d: clone %d lost its write", w, j)
						return
					}
					if err := incr(c); err != nil {
						errs <- err
						return
					}
				}
				// Close in either order.
				first, second := c1, c2
				if i%2 == 1 {
					first, second = c2, c1
				}
				if err := first.Close(); err != nil {
					errs <- err
					return
				}
				if err := second.Close(); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100; i++ {
			data := advFill(4*pg, byte('R'+i%3))
			if n, err := root.CopyOut(ctx, priv, data, noOpt); n != len(data) || err != nil {
				errs <- fmt.Errorf("root CopyOut: %d, %v", n, err)
				return
			}
			buf := make([]byte, 4*pg)
			if n, err := root.CopyIn(ctx, priv, buf, noOpt); n != len(buf) || err != nil || !bytes.Equal(buf, data) {
				errs <- fmt.Errorf("root reads back %d, %v (clone write leaked: %v)", n, err, !bytes.Equal(buf, data))
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v, err := root.LoadUint32(ctx, shared, noOpt); err != nil || v != workers*rounds*2 {
		t.Fatalf("shared counter = %d, %v; want %d", v, err, workers*rounds*2)
	}
	// Every clone is gone: the root holds its 4 private pages alone (the
	// shared page is in a shared-memory object of its own, not in the
	// memory file).
	checkStats(t, "root after the family closed", root, statsWant{0, root.statsCopies(t), 4})
}

// statsCopies returns the root's PrivateCopies (which depend on timing).
func (as *AddressSpace) statsCopies(t *testing.T) uint64 {
	return uint64(mustStats(t, as).PrivateCopies)
}

// TestAdvCOWWriteRace writes the same copy-on-write page from the parent
// and the child at the same time: each must end with its own bytes.
func TestAdvCOWWriteRace(t *testing.T) {
	p := newAS(t, 1<<30)
	for round := 0; round < 40; round++ {
		a := mustMmap(t, p, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true})
		writeAt(t, p, a, string(advFill(2*pg, 'o')))
		c, err := p.Clone()
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		res := make([]error, 4)
		write := func(i int, as *AddressSpace, addr hostarch.Addr, b byte, n int) {
			defer wg.Done()
			got, err := as.CopyOut(ctx, addr, advFill(n, b), noOpt)
			if got != n || err != nil {
				res[i] = fmt.Errorf("CopyOut %c: %d, %v", b, got, err)
			}
		}
		wg.Add(4)
		// Parent and child write the whole first page; two goroutines of
		// the parent write halves of the second page while the child's
		// copy of it stays untouched.
		go write(0, p, a, 'P', pg)
		go write(1, c, a, 'C', pg)
		go write(2, p, a+pg, 'x', pg/2)
		go write(3, p, a+pg+pg/2, 'y', pg/2)
		wg.Wait()
		for _, err := range res {
			if err != nil {
				t.Fatal(err)
			}
		}
		want := map[*AddressSpace]string{
			p: string(advFill(pg, 'P')) + string(advFill(pg/2, 'x')) + string(advFill(pg/2, 'y')),
			c: string(advFill(pg, 'C')) + string(advFill(pg, 'o')),
		}
		for as, w := range want {
			if got := readAt(t, as, a, 2*pg); string(got) != w {
				t.Fatalf("round %d: %s has %q...", round, map[bool]string{true: "parent", false: "child"}[as == p], got[:8])
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.Munmap(a, 2*pg); err != nil {
			t.Fatal(err)
		}
	}
	checkStats(t, "parent after all rounds", p, statsWant{0, 0, 0})
}

// TestAdvMremapCOWCloneDontneed moves a mapping that has copy-on-write
// overrides, clones it and discards pages in each space.
func TestAdvMremapCOWCloneDontneed(t *testing.T) {
	p := newAS(t, 1<<30)
	a := mustMmap(t, p, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	orig := pattern(4*pg, 1)
	writeAt(t, p, a, string(orig))
	c1 := mustClone(t, p)
	// A write of a whole page copies nothing: its bytes go to a new page
	// (pma.Table.WriteThrough), and the other 3 stay shared, as on Linux.
	writeAt(t, p, a+pg, string(advFill(pg, 'p')))
	checkStats(t, "p after one COW", p, statsWant{3, 1, 5})

	b, err := p.Mremap(a, 4*pg, 6*pg, unix.MREMAP_MAYMOVE, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b == a {
		t.Fatalf("Mremap did not move (the pages after a are free?)")
	}
	want := append(append(append([]byte{}, orig[:pg]...), advFill(pg, 'p')...), orig[2*pg:]...)
	want = append(want, make([]byte, 2*pg)...)
	if got := readAt(t, p, b, 6*pg); !bytes.Equal(got, want) {
		t.Fatal("contents changed by Mremap")
	}
	if _, err := p.CopyIn(ctx, a, make([]byte, 1), noOpt); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("old address still mapped: %v", err)
	}
	// The read of the grown part backed its 2 pages.
	checkStats(t, "p after Mremap", p, statsWant{3, 3, 7})

	c2 := mustClone(t, p)
	writeAt(t, c2, b+pg, "c2") // copies p's override page
	writeAt(t, c2, b+5*pg, "tail")
	if err := p.Madvise(b, 6*pg, unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, p, b, 6*pg); !bytes.Equal(got, make([]byte, 6*pg)) {
		t.Fatal("p does not read zero after DONTNEED")
	}
	want2 := append([]byte{}, want...)
	copy(want2[pg:], "c2")
	copy(want2[5*pg:], "tail")
	if got := readAt(t, c2, b, 6*pg); !bytes.Equal(got, want2) {
		t.Fatal("c2 changed by p's DONTNEED")
	}
	if got := readAt(t, c1, a, 4*pg); !bytes.Equal(got, orig) {
		t.Fatal("c1 changed")
	}
	// p writes again after DONTNEED: c2 must not see it.
	writeAt(t, p, b, "again")
	if got := readAt(t, c2, b, 5); string(got) != string(orig[:5]) {
		t.Fatalf("c2 sees %q", got)
	}
	// DONTNEED in c2 after the clone, then Clone c2 and write.
	if err := c2.Madvise(b+5*pg, pg, unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	c3 := mustClone(t, c2)
	writeAt(t, c3, b+5*pg, "c3")
	if got := readAt(t, c2, b+5*pg, 4); !bytes.Equal(got, make([]byte, 4)) {
		t.Fatalf("c2 tail reads %q after DONTNEED", got)
	}
	for _, as := range []*AddressSpace{c3, c2, c1} {
		if err := as.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// p alone: 6 pages, none shared.
	st := mustStats(t, p)
	if st.SharedPages != 0 || st.MemoryFileBytes != 6*pg {
		t.Fatalf("p alone: %+v", st)
	}
}

// TestAdvPrivateFileTruncateClone writes a private file mapping, truncates
// the file, clones, and writes in the clone.
func TestAdvPrivateFileTruncateClone(t *testing.T) {
	data := pattern(3*pg, 7)
	f := tempFile(t, data, os.O_RDWR)
	p := newAS(t, 1<<30)
	a := mustMmap(t, p, MmapOpts{Length: 3 * pg, Perms: hostarch.ReadWrite, Private: true, File: f})
	writeAt(t, p, a+10, "parent")
	if err := f.Truncate(pg + 100); err != nil {
		t.Fatal(err)
	}
	c := mustClone(t, p)
	// Page 0 has a private copy in both; page 1 is partly inside the file;
	// page 2 is wholly beyond it (SIGBUS on Linux: EFAULT here).
	writeAt(t, c, a+10, "child!")
	if got := readAt(t, p, a+10, 6); string(got) != "parent" {
		t.Fatalf("parent reads %q", got)
	}
	n, err := c.CopyOut(ctx, a+pg, advFill(50, 'c'), noOpt)
	if n != 50 || err != nil {
		t.Fatalf("write to the page partly inside the file = %d, %v", n, err)
	}
	got := readAt(t, c, a+pg, pg)
	wantPage := append(advFill(50, 'c'), data[pg+50:pg+100]...)
	wantPage = append(wantPage, make([]byte, pg-100)...)
	if !bytes.Equal(got, wantPage) {
		t.Fatal("child's copy of the partial page is wrong")
	}
	n, err = c.CopyOut(ctx, a+2*pg-8, advFill(16, 'z'), noOpt)
	wantFault(t, "write across EOF page", int64(n), err, 8)
	var fe *FaultError
	if !errors.As(err, &fe) || fe.Addr != a+2*pg || fe.Reason != FaultBus {
		t.Fatalf("fault = %#v", err)
	}
	n, err = p.CopyIn(ctx, a+2*pg, make([]byte, 4), noOpt)
	wantFault(t, "parent read beyond EOF", int64(n), err, 0)
	// The file is untouched by private writes.
	fb := make([]byte, pg+100)
	if _, err := f.ReadAt(fb, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fb, data[:pg+100]) {
		t.Fatal("private writes reached the file")
	}
	// The parent still reads the file's bytes in page 1 (not the child's).
	if got := readAt(t, p, a+pg, 100); !bytes.Equal(got, data[pg:pg+100]) {
		t.Fatal("parent sees the child's copy")
	}
}

// TestAdvAtomicsCOW runs atomics on copy-on-write pages in parent and child.
func TestAdvAtomicsCOW(t *testing.T) {
	p2 := newAS(t, 1<<30)
	b := mustMmap(t, p2, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	if _, err := p2.SwapUint32(ctx, b, 5, noOpt); err != nil {
		t.Fatal(err)
	}
	k := mustClone(t, p2)
	type st struct {
		as      *AddressSpace
		op      string
		arg, a2 uint32
		want    uint32
	}
	for i, s := range []st{
		{p2, "cas", 5, 6, 5},
		{k, "load", 0, 0, 5},
		{k, "cas", 6, 7, 5},
		{k, "swap", 9, 0, 5},
		{p2, "load", 0, 0, 6},
		{k, "load", 0, 0, 9},
		{p2, "swap", 1, 0, 6},
		{k, "cas", 9, 10, 9},
		{p2, "load", 0, 0, 1},
		{k, "load", 0, 0, 10},
	} {
		var got uint32
		var err error
		switch s.op {
		case "cas":
			got, err = s.as.CompareAndSwapUint32(ctx, b, s.arg, s.a2, noOpt)
		case "swap":
			got, err = s.as.SwapUint32(ctx, b, s.arg, noOpt)
		case "load":
			got, err = s.as.LoadUint32(ctx, b, noOpt)
		}
		if err != nil || got != s.want {
			t.Fatalf("step %d %s = %d, %v; want %d", i, s.op, got, err, s.want)
		}
	}

	// Concurrent increments in both, starting on a freshly shared page.
	p3 := newAS(t, 1<<30)
	d := mustMmap(t, p3, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	if _, err := p3.SwapUint32(ctx, d, 100, noOpt); err != nil {
		t.Fatal(err)
	}
	k3 := mustClone(t, p3)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, as := range []*AddressSpace{p3, p3, k3, k3} {
		wg.Add(1)
		go func(as *AddressSpace) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				for {
					old, err := as.LoadUint32(ctx, d, noOpt)
					if err != nil {
						errs <- err
						return
					}
					prev, err := as.CompareAndSwapUint32(ctx, d, old, old+1, noOpt)
					if err != nil {
						errs <- err
						return
					}
					if prev == old {
						break
					}
				}
			}
		}(as)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, as := range []*AddressSpace{p3, k3} {
		if v, err := as.LoadUint32(ctx, d, noOpt); v != 100+2*n || err != nil {
			t.Fatalf("counter = %d, %v; want %d", v, err, 100+2*n)
		}
	}
}

// advRanges returns count non-overlapping ranges in [base, base+count*480),
// some of them empty, many crossing page boundaries.
func advRanges(base hostarch.Addr, count int) []hostarch.AddrRange {
	ars := make([]hostarch.AddrRange, count)
	for i := range ars {
		start := base + hostarch.Addr(i*480+i%7)
		length := hostarch.Addr((i*37)%460 + 1)
		if i%5 == 0 {
			length = 0
		}
		ars[i] = hostarch.AddrRange{Start: start, End: start + length}
	}
	return ars
}

// TestAdvVectoredCOW runs CopyOutFrom and CopyInTo over 100 ranges (some
// empty) spread over copy-on-write pages of a clone.
func TestAdvVectoredCOW(t *testing.T) {
	p := newAS(t, 1<<30)
	const size = 12 * pg
	a := mustMmap(t, p, MmapOpts{Addr: 0x100000, Fixed: true, Length: size, Perms: hostarch.ReadWrite, Private: true})
	orig := pattern(size, 3)
	writeAt(t, p, a, string(orig))
	for _, tc := range []struct {
		name string
		file bool
	}{{"anonymous", false}, {"private file", true}} {
		t.Run(tc.name, func(t *testing.T) {
			base := a
			src := p
			if tc.file {
				f := tempFile(t, orig, os.O_RDONLY)
				base = mustMmap(t, p, MmapOpts{Addr: 0x200000, Fixed: true, Length: size, Perms: hostarch.ReadWrite, Private: true, File: f})
			}
			c := mustClone(t, src)
			ars := advRanges(base, 100)
			// A zero-length range in an unmapped page must not fault.
			ars = append(ars, hostarch.AddrRange{Start: base + size + 5, End: base + size + 5})
			seq := hostarch.AddrRangeSeqFromSlice(ars)
			total := seq.NumBytes()
			data := pattern(int(total), 99)
			r := &safemem.BlockSeqReader{Blocks: safemem.BlockSeqOf(safemem.BlockFromSafeSlice(data))}
			n, err := c.CopyOutFrom(ctx, seq, r, noOpt)
			if n != total || err != nil {
				t.Fatalf("CopyOutFrom = %d, %v; want %d", n, err, total)
			}
			model := append([]byte{}, orig...)
			off := 0
			for _, ar := range ars {
				if ar.Length() == 0 {
					continue
				}
				off += copy(model[ar.Start-base:ar.End-base], data[off:])
			}
			if got := readAt(t, c, base, size); !bytes.Equal(got, model) {
				t.Fatal("clone's memory does not match the model")
			}
			if got := readAt(t, p, base, size); !bytes.Equal(got, orig) {
				t.Fatal("parent's memory changed")
			}
			back := make([]byte, total)
			w := &safemem.BlockSeqWriter{Blocks: safemem.BlockSeqOf(safemem.BlockFromSafeSlice(back))}
			if n, err := c.CopyInTo(ctx, seq, w, noOpt); n != total || err != nil || !bytes.Equal(back, data) {
				t.Fatalf("CopyInTo = %d, %v (equal %v)", n, err, bytes.Equal(back, data))
			}
			// Every page was touched by some range: all copied in the clone.
			if st := mustStats(t, c); st.PrivateCopies != size/pg {
				t.Fatalf("clone PrivateCopies = %d, want %d", st.PrivateCopies, size/pg)
			}
		})
	}
}

// TestAdvVectoredFaultPrefix checks the exact prefix of a vectored transfer
// that meets an unmapped page after many ranges.
func TestAdvVectoredFaultPrefix(t *testing.T) {
	p := newAS(t, 1<<30)
	a := mustMmap(t, p, MmapOpts{Addr: 0x100000, Fixed: true, Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	c := mustClone(t, p) // every page copy-on-write in both
	var ars []hostarch.AddrRange
	for i := 0; i < 70; i++ {
		s := a + hostarch.Addr(i*40)
		ars = append(ars, hostarch.AddrRange{Start: s, End: s + 16})
		ars = append(ars, hostarch.AddrRange{Start: s + 20, End: s + 20})
	}
	ars = append(ars, hostarch.AddrRange{Start: a + 4*pg - 8, End: a + 4*pg + 8})
	ars = append(ars, hostarch.AddrRange{Start: a, End: a + 4})
	seq := hostarch.AddrRangeSeqFromSlice(ars)
	for _, as := range []*AddressSpace{p, c} {
		data := advFill(int(seq.NumBytes()), 'v')
		r := &safemem.BlockSeqReader{Blocks: safemem.BlockSeqOf(safemem.BlockFromSafeSlice(data))}
		n, err := as.CopyOutFrom(ctx, seq, r, noOpt)
		wantFault(t, "CopyOutFrom", n, err, 70*16+8)
		if got := readAt(t, as, a+4*pg-8, 8); string(got) != "vvvvvvvv" {
			t.Fatalf("last bytes %q", got)
		}
		back := make([]byte, seq.NumBytes())
		w := &safemem.BlockSeqWriter{Blocks: safemem.BlockSeqOf(safemem.BlockFromSafeSlice(back))}
		n, err = as.CopyInTo(ctx, seq, w, noOpt)
		wantFault(t, "CopyInTo", n, err, 70*16+8)
		if !bytes.Equal(back[:n], data[:n]) {
			t.Fatal("CopyInTo read wrong bytes")
		}
	}
}

// TestAdvIgnorePermissionsCOW writes with IgnorePermissions to PROT_NONE
// private file pages after Clone.
func TestAdvIgnorePermissionsCOW(t *testing.T) {
	data := pattern(2*pg, 11)
	f := tempFile(t, data, os.O_RDONLY)
	p := newAS(t, 1<<30)
	a := mustMmap(t, p, MmapOpts{Length: 2 * pg, Perms: hostarch.NoAccess, Private: true, File: f})
	c := mustClone(t, p)
	for _, as := range []*AddressSpace{p, c} {
		if n, err := as.CopyIn(ctx, a, make([]byte, 1), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
			t.Fatalf("PROT_NONE read = %d, %v", n, err)
		}
	}
	if n, err := c.CopyOut(ctx, a+pg-3, []byte("forced"), ignorePerms); n != 6 || err != nil {
		t.Fatalf("forced write = %d, %v", n, err)
	}
	if n, err := c.CopyOut(ctx, a, []byte("x"), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("normal write to PROT_NONE = %d, %v", n, err)
	}
	buf := make([]byte, 2*pg)
	if n, err := c.CopyIn(ctx, a, buf, ignorePerms); n != len(buf) || err != nil {
		t.Fatal(n, err)
	}
	want := append([]byte{}, data...)
	copy(want[pg-3:], "forced")
	if !bytes.Equal(buf, want) {
		t.Fatal("child reads wrong bytes")
	}
	if n, err := p.CopyIn(ctx, a, buf, ignorePerms); n != len(buf) || err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("parent reads %d, %v, equal %v", n, err, bytes.Equal(buf, data))
	}
	// The file is unchanged; Mprotect of the child to read shows its copy.
	fb := make([]byte, 2*pg)
	if _, err := f.ReadAt(fb, 0); err != nil || !bytes.Equal(fb, data) {
		t.Fatal("file changed")
	}
	if err := c.Mprotect(a, 2*pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, c, a+pg-3, 6); string(got) != "forced" {
		t.Fatalf("child reads %q", got)
	}
	if n, err := c.CopyOut(ctx, a+pg-3, []byte("y"), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("write to read-only page = %d, %v", n, err)
	}
	checkStats(t, "child", c, statsWant{0, 2, 2})
}

// TestAdvMprotectCOW changes the protection of parts of copy-on-write
// mappings, then writes.
func TestAdvMprotectCOW(t *testing.T) {
	p := newAS(t, 1<<30)
	a := mustMmap(t, p, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	orig := pattern(4*pg, 2)
	writeAt(t, p, a, string(orig))
	c := mustClone(t, p)
	if err := p.Mprotect(a+pg, pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	// A write from page 0 into read-only page 1 stops at the boundary.
	n, err := p.CopyOut(ctx, a+pg-10, advFill(20, 'P'), noOpt)
	wantFault(t, "write into read-only page", int64(n), err, 10)
	writeAt(t, p, a+2*pg, "page2")
	writeAt(t, c, a+pg, "child page 1")
	if err := c.Mprotect(a+2*pg, 2*pg, hostarch.NoAccess); err != nil {
		t.Fatal(err)
	}
	if n, err := c.CopyOut(ctx, a+3*pg, []byte("z"), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("write to PROT_NONE = %d, %v", n, err)
	}
	if n, err := c.CopyOut(ctx, a+3*pg, []byte("forced"), ignorePerms); n != 6 || err != nil {
		t.Fatalf("forced write = %d, %v", n, err)
	}
	if err := p.Mprotect(a, 4*pg, hostarch.ReadWrite); err != nil {
		t.Fatal(err)
	}
	writeAt(t, p, a+pg, "parent page 1")

	wantP := append([]byte{}, orig...)
	copy(wantP[pg-10:], advFill(10, 'P'))
	copy(wantP[2*pg:], "page2")
	copy(wantP[pg:], "parent page 1")
	wantC := append([]byte{}, orig...)
	copy(wantC[pg:], "child page 1")
	copy(wantC[3*pg:], "forced")
	if got := readAt(t, p, a, 4*pg); !bytes.Equal(got, wantP) {
		t.Fatal("parent contents wrong")
	}
	buf := make([]byte, 4*pg)
	if n, err := c.CopyIn(ctx, a, buf, ignorePerms); n != len(buf) || err != nil || !bytes.Equal(buf, wantC) {
		t.Fatalf("child contents wrong: %d, %v", n, err)
	}
	// The parent copied page 0 (alone in its VMA then) and pages 2-3, and
	// wrote page 1 in place (the child had copied it already); the child's
	// write copied its whole 4-page run of copy-on-write pages. Each space
	// holds 4 pages of its own: 8 in the memory file.
	checkStats(t, "parent", p, statsWant{0, 4, 8})
	checkStats(t, "child", c, statsWant{0, 4, 8})
	if ms := p.Mappings(); len(ms) != 1 {
		t.Fatalf("parent has %d mappings after restoring protections: %+v", len(ms), ms)
	}
}

// TestAdvBrkClone grows and shrinks the heap across Clone.
func TestAdvBrkClone(t *testing.T) {
	p := newAS(t, 1<<30)
	start, err := p.Brk(0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.Brk(start + 3*pg + 5); err != nil || got != start+3*pg+5 {
		t.Fatalf("Brk = %#x, %v", got, err)
	}
	heap := pattern(4*pg, 4)
	writeAt(t, p, start, string(heap))
	c := mustClone(t, p)
	if got, _ := c.Brk(0); got != start+3*pg+5 {
		t.Fatalf("child brk %#x", got)
	}
	if got, err := c.Brk(start + 6*pg); err != nil || got != start+6*pg {
		t.Fatalf("child Brk grow = %#x, %v", got, err)
	}
	writeAt(t, c, start+5*pg, "child heap")
	if got, err := p.Brk(start + pg); err != nil || got != start+pg {
		t.Fatalf("parent Brk shrink = %#x, %v", got, err)
	}
	if n, err := p.CopyIn(ctx, start+pg, make([]byte, 1), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("parent reads above its break: %d, %v", n, err)
	}
	if got := readAt(t, c, start, 4*pg); !bytes.Equal(got, heap) {
		t.Fatal("child heap changed by parent's shrink")
	}
	// Regrowing gives zero pages.
	if got, err := p.Brk(start + 4*pg); err != nil || got != start+4*pg {
		t.Fatalf("parent regrow = %#x, %v", got, err)
	}
	want := append(append([]byte{}, heap[:pg]...), make([]byte, 3*pg)...)
	if got := readAt(t, p, start, 4*pg); !bytes.Equal(got, want) {
		t.Fatal("regrown heap not zero")
	}
	// The heap's pages: parent 4 (1 shared), child 6 (1 shared).
	st := mustStats(t, p)
	if st.SharedPages != 1 || st.MemoryFileBytes != 9*pg {
		t.Fatalf("parent stats %+v", st)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	checkStats(t, "parent after child closed", p, statsWant{0, 4, 4})
}

// TestAdvHugeSize uses a 1 TiB address space with mappings at its top.
func TestAdvHugeSize(t *testing.T) {
	const size = 1 << 40
	as := newAS(t, size)
	top := hostarch.Addr(size)
	a := mustMmap(t, as, MmapOpts{Addr: top - 2*pg, Fixed: true, Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true})
	if b := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite}); b != top-3*pg {
		t.Fatalf("top-down placement at %#x", b)
	}
	writeAt(t, as, top-2*pg, string(advFill(2*pg, 'h')))
	for _, tc := range []struct {
		addr hostarch.Addr
		n    int
		ok   bool
	}{
		{top - 1, 1, true},
		{top - 2*pg, 2 * pg, true},
		{top - pg, 2 * pg, false},
		{top - 4, 8, false},
		{top, 1, false},
		{top + pg, 1, false},
		{^hostarch.Addr(0) - 2, 8, false},
		{^hostarch.Addr(0), 1, false},
	} {
		what := fmt.Sprintf("[%#x, +%d)", tc.addr, tc.n)
		buf := advFill(tc.n, 'w')
		n, err := as.CopyOut(ctx, tc.addr, buf, noOpt)
		if tc.ok {
			if n != tc.n || err != nil {
				t.Fatalf("CopyOut %s = %d, %v", what, n, err)
			}
			continue
		}
		wantFault(t, "CopyOut "+what, int64(n), err, 0)
		n, err = as.CopyIn(ctx, tc.addr, buf, noOpt)
		wantFault(t, "CopyIn "+what, int64(n), err, 0)
		z, err := as.ZeroOut(ctx, tc.addr, int64(tc.n), noOpt)
		wantFault(t, "ZeroOut "+what, z, err, 0)
		end := tc.addr + hostarch.Addr(tc.n)
		if end < tc.addr {
			end = ^hostarch.Addr(0)
		}
		seq := hostarch.AddrRangeSeqFromSlice([]hostarch.AddrRange{{Start: a, End: a + 4}, {Start: tc.addr, End: end}})
		r := &safemem.BlockSeqReader{Blocks: safemem.BlockSeqOf(safemem.BlockFromSafeSlice(advFill(int(min(seq.NumBytes(), 1<<20)), 'q')))}
		v, err := as.CopyOutFrom(ctx, seq, r, noOpt)
		wantFault(t, "CopyOutFrom "+what, v, err, 0)
		if got := readAt(t, as, a, 4); string(got) != "wwww" && string(got) != "hhhh" {
			t.Fatalf("CopyOutFrom wrote the first range: %q", got)
		}
	}
	if _, err := as.LoadUint32(ctx, top-4, noOpt); err != nil {
		t.Fatal(err)
	}
	if _, err := as.SwapUint32(ctx, top, 1, noOpt); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("Swap at Size: %v", err)
	}
	if err := as.Munmap(top-pg, 2*pg); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Munmap beyond Size: %v", err)
	}
	if _, err := as.Mmap(MmapOpts{Addr: top - pg, Fixed: true, Length: 2 * pg, Perms: hostarch.Read}); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Mmap beyond Size: %v", err)
	}
	c := mustClone(t, as)
	writeAt(t, c, top-1, "c")
	if got := readAt(t, as, top-1, 1); string(got) != "w" {
		t.Fatalf("parent top byte %q", got)
	}
}

// TestAdvMunmapRacingCopyIn unmaps a range while another goroutine copies
// it in: the count ends on a page boundary and every byte before it is
// right.
func TestAdvMunmapRacingCopyIn(t *testing.T) {
	as := newAS(t, 1<<30)
	const pages = 16
	data := pattern(pages*pg, 9)
	for iter := 0; iter < 60; iter++ {
		a := mustMmap(t, as, MmapOpts{Length: pages * pg, Perms: hostarch.ReadWrite, Private: iter%2 == 0})
		writeAt(t, as, a, string(data))
		skew := (iter * 97) % pg
		var wg sync.WaitGroup
		var n int
		var err error
		buf := make([]byte, pages*pg-skew)
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err = as.CopyIn(ctx, a+hostarch.Addr(skew), buf, noOpt)
		}()
		// Unmap from the end backwards, a page range at a time.
		for p := pages; p > 0; p -= 4 {
			if err := as.Munmap(a+hostarch.Addr(p-4)*pg, 4*pg); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		if n == len(buf) {
			if err != nil {
				t.Fatalf("full copy with error %v", err)
			}
		} else {
			if !errors.Is(err, unix.EFAULT) {
				t.Fatalf("CopyIn = %d, %v", n, err)
			}
			// The count usually ends on a page boundary, but need not: a page
			// unmapped while the copy is inside it faults mid-page, as it can
			// on Linux (munmap's TLB shootdown can land mid-copy). The fault
			// is reported at the first byte not copied, in that page.
			var fe *FaultError
			if !errors.As(err, &fe) || fe.Addr != a+hostarch.Addr(skew+n) {
				t.Fatalf("fault %v, want at %#x", err, a+hostarch.Addr(skew+n))
			}
		}
		if !bytes.Equal(buf[:n], data[skew:skew+n]) {
			t.Fatalf("iter %d: bytes before the count differ", iter)
		}
	}
}

// TestAdvClosedCallerFile closes the caller's file right after Mmap, then
// clones and writes.
func TestAdvClosedCallerFile(t *testing.T) {
	dir := t.TempDir()
	name := dir + "/f"
	data := pattern(2*pg, 21)
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fds := countFDs(t)
	p, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for _, private := range []bool{false, true} {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Mmap(MmapOpts{Addr: 0x10000 + hostarch.Addr(btoi(private))*0x10000, Fixed: true, Length: 2 * pg, Perms: hostarch.ReadWrite, Private: private, File: f}); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	shared, priv := hostarch.Addr(0x10000), hostarch.Addr(0x20000)
	c, err := p.Clone()
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, c, shared+5, "shared by child")
	writeAt(t, c, priv+5, "private child")
	writeAt(t, p, priv+pg, "private parent")
	if got := readAt(t, p, shared+5, 15); string(got) != "shared by child" {
		t.Fatalf("parent sees %q in the shared mapping", got)
	}
	if got := readAt(t, p, priv+5, 13); !bytes.Equal(got, []byte("shared by chi")) {
		// The private mapping is of the same file: it shows the shared
		// write (it was never written in the parent at that page).
		t.Fatalf("parent private page 0 reads %q", got)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	writeAt(t, c, shared+pg, "after parent closed")
	fb, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{}, data...)
	copy(want[5:], "shared by child")
	copy(want[pg:], "after parent closed")
	if !bytes.Equal(fb, want) {
		t.Fatal("file contents wrong")
	}
	if got := readAt(t, c, priv+5, 13); string(got) != "private child" {
		t.Fatalf("child private reads %q", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := countFDs(t); got != fds {
		t.Fatalf("%d descriptors open, %d before", got, fds)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAdvStats follows SharedPages, PrivateCopies and MemoryFileBytes
// through clones, copy-on-write and Close.
func TestAdvStats(t *testing.T) {
	// PrivateCopies counts pages of private mappings backed by a page that
	// no other space shares; a write fault copies the run of shared pages
	// around it (here the whole 4-page mapping).
	t.Run("private anonymous", func(t *testing.T) {
		p := newAS(t, 1<<30)
		a := mustMmap(t, p, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
		writeAt(t, p, a, string(advFill(4*pg, 1)))
		checkStats(t, "fresh", p, statsWant{0, 4, 4})
		c, err := p.Clone()
		if err != nil {
			t.Fatal(err)
		}
		checkStats(t, "parent after clone", p, statsWant{4, 0, 4})
		checkStats(t, "child after clone", c, statsWant{4, 0, 4})
		writeAt(t, p, a, "p")
		checkStats(t, "parent after write", p, statsWant{0, 4, 8})
		checkStats(t, "child after parent's write", c, statsWant{0, 4, 8})
		writeAt(t, c, a, "c") // the child's pages are its own: no copy
		checkStats(t, "child after write", c, statsWant{0, 4, 8})
		g, err := c.Clone()
		if err != nil {
			t.Fatal(err)
		}
		checkStats(t, "grandchild", g, statsWant{4, 0, 8})
		checkStats(t, "parent with grandchild", p, statsWant{0, 4, 8})
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		checkStats(t, "parent after child closed", p, statsWant{0, 4, 8})
		checkStats(t, "grandchild after child closed", g, statsWant{0, 4, 8})
		if got := string(readAt(t, g, a, 2)); got != "c"+string(advFill(4*pg, 1)[1:2]) {
			t.Fatalf("grandchild reads %q", got)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		checkStats(t, "parent alone", p, statsWant{0, 4, 4})
	})
	t.Run("parent closed first", func(t *testing.T) {
		p, err := New(Options{Size: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		a := mustMmap(t, p, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
		mustMmap(t, p, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite})
		c := mustClone(t, p)
		// The private mapping was never touched: the parent's write backs
		// it (4 fresh pages), the child has none of them.
		writeAt(t, p, a+pg, "p")
		// The 2 shared pages are a shared-memory object's, not the memory
		// file's.
		checkStats(t, "child", c, statsWant{0, 0, 4})
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		checkStats(t, "child alone", c, statsWant{0, 0, 0})
		writeAt(t, c, a, string(advFill(4*pg, 'c')))
		checkStats(t, "child alone after writes", c, statsWant{0, 4, 4})
	})
	t.Run("shared and private file", func(t *testing.T) {
		f := tempFile(t, pattern(2*pg, 0), os.O_RDWR)
		p := newAS(t, 1<<30)
		mustMmap(t, p, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite})
		b := mustMmap(t, p, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true, File: f})
		writeAt(t, p, b, "x")
		// The shared anonymous pages are a shared-memory object's, not the
		// memory file's: only the private copies count.
		checkStats(t, "parent", p, statsWant{0, 1, 1})
		c := mustClone(t, p)
		checkStats(t, "parent after clone", p, statsWant{1, 0, 1})
		writeAt(t, c, b, "y")
		writeAt(t, c, b+pg, "y")
		checkStats(t, "child after writes", c, statsWant{0, 2, 3})
		checkStats(t, "parent after child's writes", p, statsWant{0, 1, 3})
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		checkStats(t, "parent alone", p, statsWant{0, 1, 1})
	})
}

// TestAdvCopyOutFromRacingClone writes with CopyOutFrom into private memory
// while another goroutine clones the address space (and closes the clones).
// Linux's copy_to_user resolves the copy-on-write fault that a concurrent
// fork causes; the write must succeed in full.
func TestAdvCopyOutFromRacingClone(t *testing.T) {
	p := newAS(t, 1<<30)
	a := mustMmap(t, p, MmapOpts{Length: 8 * pg, Perms: hostarch.ReadWrite, Private: true})
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := p.Clone()
			if err != nil {
				done <- err
				return
			}
			c.Close()
		}
	}()
	data := advFill(8*pg, 'd')
	seq := hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + 8*pg})
	var failures int
	var first error
	for i := 0; i < 300; i++ {
		r := &safemem.BlockSeqReader{Blocks: safemem.BlockSeqOf(safemem.BlockFromSafeSlice(data))}
		n, err := p.CopyOutFrom(ctx, seq, r, noOpt)
		if n != int64(len(data)) || err != nil {
			failures++
			if first == nil {
				first = fmt.Errorf("CopyOutFrom = %d, %v", n, err)
			}
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if failures > 0 {
		// The deterministic form is TestAdvCopyOutFromCloneDuringRead.
		t.Fatalf("%d of 300 CopyOutFrom calls racing with Clone failed; first: %v", failures, first)
	}
}

// TestAdvMremapUnmappedShrink compares Mremap of an unmapped range with the
// host's mremap(2).
func TestAdvMremapUnmappedShrink(t *testing.T) {
	// The host: map 2 pages, unmap them, and shrink the hole.
	hb, err := unix.Mmap(-1, 0, 2*pg, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	haddr := uintptr(unsafe.Pointer(&hb[0]))
	if err := unix.Munmap(hb); err != nil {
		t.Fatal(err)
	}
	_, _, hostErr := unix.Syscall6(unix.SYS_MREMAP, haddr, 2*pg, pg, 0, 0, 0)

	as := newAS(t, 1<<30)
	a := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.Read})
	if err := as.Munmap(a, 2*pg); err != nil {
		t.Fatal(err)
	}
	_, err = as.Mremap(a, 2*pg, pg, 0, 0)
	if hostErr == 0 {
		if err != nil {
			t.Fatalf("host succeeds, Mremap = %v", err)
		}
		return
	}
	if !errors.Is(err, hostErr) {
		t.Fatalf("Mremap shrinking an unmapped range = %v; the host's mremap(2) returns %v", err, hostErr)
	}
}

// cloningReader is a safemem.Reader that, before filling the blocks, clones
// the address space (as another thread's fork(2) may while read(2) waits
// for data) and closes the clone again.
type cloningReader struct {
	as     *AddressSpace
	data   []byte
	clone  bool
	cloned chan error
}

func (r *cloningReader) ReadToBlocks(dsts safemem.BlockSeq) (uint64, error) {
	if r.clone {
		// Another goroutine forks while the read waits for data. (The
		// reader itself must not call Clone: CopyOutFrom's precondition.)
		r.cloned = make(chan error, 1)
		go func() {
			c, err := r.as.Clone()
			if err == nil {
				err = c.Close()
			}
			r.cloned <- err
		}()
		time.Sleep(20 * time.Millisecond)
	}
	return safemem.CopySeq(dsts, safemem.BlockSeqOf(safemem.BlockFromSafeSlice(r.data)))
}

// TestAdvCopyOutFromCloneDuringRead clones the address space while
// CopyOutFrom's reader runs, deterministically: the write protection that
// Clone adds lands between CopyOutFrom's pre-faulting and the reader's
// writes. On Linux a copy_to_user racing with fork resolves the
// copy-on-write fault and completes; here the write must complete too.
func TestAdvCopyOutFromCloneDuringRead(t *testing.T) {
	f := tempFile(t, pattern(4*pg, 0), os.O_RDONLY)
	for _, tc := range []struct {
		name  string
		opts  MmapOpts
		other bool // map a private file too, so that CopyOutFrom pre-faults
	}{
		{"private anonymous", MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true}, false},
		{"private anonymous, pre-faulted", MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true}, true},
		{"private file", MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true, File: f}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newAS(t, 1<<30)
			a := mustMmap(t, p, tc.opts)
			if tc.other {
				mustMmap(t, p, MmapOpts{Length: pg, Perms: hostarch.Read, Private: true, File: f})
			}
			data := advFill(4*pg, 'd')
			// Without a clone the write completes.
			seq := hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + 4*pg})
			n, err := p.CopyOutFrom(ctx, seq, &cloningReader{as: p, data: data}, noOpt)
			if n != int64(len(data)) || err != nil {
				t.Fatalf("CopyOutFrom without clone = %d, %v", n, err)
			}
			data = advFill(4*pg, 'e')
			r := &cloningReader{as: p, data: data, clone: true}
			n, err = p.CopyOutFrom(ctx, seq, r, noOpt)
			if cerr := <-r.cloned; cerr != nil {
				t.Fatal(cerr)
			}
			if n != int64(len(data)) || err != nil {
				t.Fatalf("CopyOutFrom with a clone during the read: %d, %v (want %d, nil)", n, err, len(data))
			}
			if got := readAt(t, p, a, 4*pg); !bytes.Equal(got, data) {
				t.Fatal("contents wrong")
			}
		})
	}
}

// TestAdvMremapDuplicateOverlappingSource duplicates a shared anonymous
// mapping (old length 0) onto part of itself with MREMAP_FIXED. Linux
// allows it (the target does not overlap [old, old+0)): the shared object's
// pages stay alive and [A+pg, A+3pg) shows its pages 0 and 1.
func TestAdvMremapDuplicateOverlappingSource(t *testing.T) {
	as := newAS(t, 1<<30)
	A := hostarch.Addr(MinAddr)
	mustMmap(t, as, MmapOpts{Addr: A, Fixed: true, Length: 4 * pg, Perms: hostarch.ReadWrite})
	for i := 0; i < 4; i++ {
		writeAt(t, as, A+hostarch.Addr(i)*pg, fmt.Sprintf("page%d", i))
	}
	got, err := as.Mremap(A, 0, 2*pg, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, A+pg)
	if err != nil || got != A+pg {
		t.Fatalf("Mremap = %#x, %v; want %#x", got, err, A+pg)
	}
	// Push the allocator: copies on write of an unrelated mapping must not
	// reuse pages that are still mapped.
	b := mustMmap(t, as, MmapOpts{Addr: 0x100000, Fixed: true, Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	mustClone(t, as)
	for i := 0; i < 4; i++ {
		writeAt(t, as, b+hostarch.Addr(i)*pg, "XXXXX")
	}
	var pages []string
	for i := 0; i < 4; i++ {
		pages = append(pages, string(readAt(t, as, A+hostarch.Addr(i)*pg, 5)))
	}
	want := []string{"page0", "page0", "page1", "page3"}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Fatalf("Mremap(old, 0, 2 pages, MAYMOVE|FIXED, old+pg) of a shared anonymous mapping: pages read %q, want %q", pages, want)
	}
	// A write through the duplicate shows at the original.
	writeAt(t, as, A+pg, "alias")
	if got := readAt(t, as, A, 5); string(got) != "alias" {
		t.Fatalf("original page 0 reads %q", got)
	}
}

// TestAdvMremapFixedWithinCloned moves part of a cloned private mapping to
// another part of the same mapping, then unmaps and replaces pages in the
// child: the parent's pages are unaffected and become its own again.
func TestAdvMremapFixedWithinCloned(t *testing.T) {
	p := newAS(t, 1<<30)
	A := hostarch.Addr(0x100000)
	mustMmap(t, p, MmapOpts{Addr: A, Fixed: true, Length: 8 * pg, Perms: hostarch.ReadWrite, Private: true})
	orig := pattern(8*pg, 5)
	writeAt(t, p, A, string(orig))
	c := mustClone(t, p)
	writeAt(t, c, A+pg, "child1") // an override in the moved part
	got, err := c.Mremap(A, 2*pg, 3*pg, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, A+4*pg)
	if err != nil || got != A+4*pg {
		t.Fatalf("Mremap = %#x, %v", got, err)
	}
	want := append([]byte{}, orig...)
	copy(want[4*pg:], orig[:2*pg])
	copy(want[5*pg:], "child1")
	clear(want[6*pg : 7*pg]) // the grown page
	if n, err := c.CopyIn(ctx, A, make([]byte, 1), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("old range still mapped: %d, %v", n, err)
	}
	if got := readAt(t, c, A+2*pg, 6*pg); !bytes.Equal(got, want[2*pg:]) {
		t.Fatal("child contents wrong after Mremap")
	}
	// The child replaces page 3 with a fresh mapping and unmaps page 2.
	mustMmap(t, c, MmapOpts{Addr: A + 3*pg, Fixed: true, Length: pg, Perms: hostarch.ReadWrite, Private: true})
	if err := c.Munmap(A+2*pg, pg); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, p, A, 8*pg); !bytes.Equal(got, orig) {
		t.Fatal("parent changed")
	}
	// The child's first write copied its whole 8-page run, so the parent's
	// pages are its alone: written in place, no copy. The child holds its
	// copies of pages 0, 1 (moved to 4, 5) and 7, and the page its read
	// backed at 6 (the grown page): 12 pages in the memory file.
	writeAt(t, p, A+2*pg, "p2")
	writeAt(t, p, A+3*pg, "p3")
	writeAt(t, p, A+7*pg, "p7")
	checkStats(t, "parent", p, statsWant{0, 8, 12})
	checkStats(t, "child", c, statsWant{0, 4, 12})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The parent alone: its 8 pages.
	checkStats(t, "parent alone", p, statsWant{0, 8, 8})
}
