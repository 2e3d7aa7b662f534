package addrspace

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// Copies that overwrite whole pages needing a page of their own (after
// Clone, on first touch, of private file pages) write their bytes through
// (pma.Table.WriteThrough) instead of copying or zero-filling the pages
// first: these tests check that every byte lands where CopyOut says, the
// bytes around it and the other spaces' stay, and counts stay exact.

// wtPages is the length of the mapping the write-through tests write in:
// more than the largest fault-around window (512 pages), so that long
// writes take several runs.
const wtPages = 1100

// wtSpace is the size of the spaces they make: small, because qemu-user
// (the arm64 tests) keeps tens of bytes for every page of a space's views
// for as long as the process lives, and these tests make hundreds.
const wtSpace = 8 << 20

// wtSetup returns the space to write in, the mapping's address, the bytes
// it reads before the write, and the other spaces whose bytes must not
// change (with theirs).
type wtSetup func(t *testing.T) (w *AddressSpace, a hostarch.Addr, before []byte, others map[*AddressSpace][]byte)

func wtSetups(t *testing.T) map[string]wtSetup {
	old := pattern(wtPages*pg, 3)
	cloned := func(inChild bool) wtSetup {
		return func(t *testing.T) (*AddressSpace, hostarch.Addr, []byte, map[*AddressSpace][]byte) {
			p := newAS(t, wtSpace)
			a := mustMmap(t, p, MmapOpts{Length: wtPages * pg, Perms: hostarch.ReadWrite, Private: true})
			writeAt(t, p, a, string(old))
			c := mustClone(t, p)
			if inChild {
				return c, a, old, map[*AddressSpace][]byte{p: old}
			}
			return p, a, old, map[*AddressSpace][]byte{c: old}
		}
	}
	fileData := pattern(wtPages*pg, 9)
	return map[string]wtSetup{
		"after Clone, in the child":  cloned(true),
		"after Clone, in the parent": cloned(false),
		"fresh anonymous memory": func(t *testing.T) (*AddressSpace, hostarch.Addr, []byte, map[*AddressSpace][]byte) {
			as := newAS(t, wtSpace)
			a := mustMmap(t, as, MmapOpts{Length: wtPages * pg, Perms: hostarch.ReadWrite, Private: true})
			return as, a, make([]byte, wtPages*pg), nil
		},
		"private file mapping": func(t *testing.T) (*AddressSpace, hostarch.Addr, []byte, map[*AddressSpace][]byte) {
			as := newAS(t, wtSpace)
			f := tempFile(t, fileData, os.O_RDWR)
			a := mustMmap(t, as, MmapOpts{Length: wtPages * pg, Perms: hostarch.ReadWrite, Private: true, File: f})
			return as, a, fileData, nil
		},
	}
}

// wtWrite writes src at addr with CopyOut, or, if zero, zeros len(src)
// bytes there with ZeroOut (then src must be zeros).
func wtWrite(as *AddressSpace, addr hostarch.Addr, src []byte, zero bool, opts usermem.IOOpts) (int, error) {
	if zero {
		n, err := as.ZeroOut(ctx, addr, int64(len(src)), opts)
		return int(n), err
	}
	return as.CopyOut(ctx, addr, src, opts)
}

func TestWriteThroughCopyOut(t *testing.T) {
	for name, setup := range wtSetups(t) {
		for _, w := range []struct {
			off, n int
		}{
			{0, pg}, {0, 8 * pg}, {1, 8*pg - 2}, {pg - 1, 3*pg + 2}, {pg, 2*pg - 1},
			{5, 600*pg + 77}, // more than one run
			{0, wtPages * pg}, {3 * pg, (wtPages - 3) * pg},
		} {
			for _, c := range []struct{ ignore, zero bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
				ignore := c.ignore
				t.Run(fmt.Sprintf("%s/at %d, %d bytes, IgnorePermissions %v, ZeroOut %v", name, w.off, w.n, ignore, c.zero), func(t *testing.T) {
					as, a, before, others := setup(t)
					src := pattern(w.n, 77)
					if c.zero {
						src = make([]byte, w.n)
					}
					if ignore {
						// Through the max view, of a mapping that is
						// read-only in the app view.
						if err := as.Mprotect(a, wtPages*pg, hostarch.Read); err != nil {
							t.Fatal(err)
						}
					}
					n, err := wtWrite(as, a+hostarch.Addr(w.off), src, c.zero, usermem.IOOpts{IgnorePermissions: ignore})
					if n != w.n || err != nil {
						t.Fatalf("write = %d, %v; want %d, nil", n, err, w.n)
					}
					// Every page written is resident, as on Linux (a
					// zeroed page too, where the host populates: not
					// under qemu-user, see hostPopulates), before
					// anything reads it.
					first := (a + hostarch.Addr(w.off)).RoundDown()
					last, _ := (a + hostarch.Addr(w.off+w.n)).RoundUp()
					res, err := as.Mincore(first, uint64(last-first))
					if err != nil {
						t.Fatal(err)
					}
					for i, r := range res {
						if !r && (hostPopulates() || !c.zero) {
							t.Fatalf("page %d of the write is not resident", i)
						}
					}
					want := bytes.Clone(before)
					copy(want[w.off:], src)
					got := make([]byte, len(want))
					if k, err := as.CopyIn(ctx, a, got, usermem.IOOpts{IgnorePermissions: true}); k != len(got) || err != nil {
						t.Fatalf("CopyIn = %d, %v", k, err)
					}
					if !bytes.Equal(got, want) {
						i := firstDiff(got, want)
						t.Fatalf("byte %d (page %d) reads %#x, want %#x", i, i/pg, got[i], want[i])
					}
					for o, ob := range others {
						if got := readAt(t, o, a, len(ob)); !bytes.Equal(got, ob) {
							t.Fatalf("the other space's byte %d changed", firstDiff(got, ob))
						}
					}
				})
			}
		}
	}
}

// TestWriteThroughFaults: a write that pages it cannot write stop
// (read-only, unmapped, beyond the end of the file) copies exactly up to
// the first such byte, whether the pages before it were written through
// or not, and leaves every byte from there on as it was.
func TestWriteThroughFaults(t *testing.T) {
	for name, setup := range wtSetups(t) {
		for _, tc := range []struct {
			name   string
			off, n int
			block  func(t *testing.T, as *AddressSpace, a hostarch.Addr) // makes a page unwritable
			stop   int                                                   // the first byte not written
		}{
			{"read-only page", pg, 8 * pg, func(t *testing.T, as *AddressSpace, a hostarch.Addr) {
				if err := as.Mprotect(a+5*pg, pg, hostarch.Read); err != nil {
					t.Fatal(err)
				}
			}, 5 * pg},
			{"read-only page, unaligned start", pg + 3, 8 * pg, func(t *testing.T, as *AddressSpace, a hostarch.Addr) {
				if err := as.Mprotect(a+5*pg, pg, hostarch.Read); err != nil {
					t.Fatal(err)
				}
			}, 5 * pg},
			{"read-only first page", 2 * pg, 8 * pg, func(t *testing.T, as *AddressSpace, a hostarch.Addr) {
				if err := as.Mprotect(a+2*pg, pg, hostarch.Read); err != nil {
					t.Fatal(err)
				}
			}, 2 * pg},
			{"unmapped page beyond a run", 0, 700 * pg, func(t *testing.T, as *AddressSpace, a hostarch.Addr) {
				if err := as.Munmap(a+600*pg, pg); err != nil {
					t.Fatal(err)
				}
			}, 600 * pg},
		} {
			for _, zero := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/ZeroOut %v", name, tc.name, zero), func(t *testing.T) {
					as, a, before, others := setup(t)
					tc.block(t, as, a)
					src := pattern(tc.n, 77)
					if zero {
						src = make([]byte, tc.n)
					}
					n, err := wtWrite(as, a+hostarch.Addr(tc.off), src, zero, noOpt)
					if wantN := tc.stop - tc.off; n != wantN || !errors.Is(err, unix.EFAULT) {
						t.Fatalf("write = %d, %v; want %d, EFAULT", n, err, wantN)
					}
					var fe *FaultError
					if !errors.As(err, &fe) || fe.Addr != a+hostarch.Addr(tc.stop) {
						t.Fatalf("error %v: want a FaultError at %#x", err, a+hostarch.Addr(tc.stop))
					}
					want := bytes.Clone(before)
					copy(want[tc.off:tc.stop], src)
					got := make([]byte, len(want))
					k, _ := as.CopyIn(ctx, a, got, usermem.IOOpts{IgnorePermissions: true})
					for _, r := range []struct{ lo, hi int }{{0, min(k, len(want))}} {
						for i := r.lo; i < r.hi; i++ {
							if i >= 600*pg && i < 601*pg && tc.name == "unmapped page beyond a run" {
								continue
							}
							if got[i] != want[i] {
								t.Fatalf("byte %d (page %d) reads %#x, want %#x", i, i/pg, got[i], want[i])
							}
						}
					}
					for o, ob := range others {
						if got := readAt(t, o, a, len(ob)); !bytes.Equal(got, ob) {
							t.Fatalf("the other space's byte %d changed", firstDiff(got, ob))
						}
					}
				})
			}
		}
	}
}

// TestWriteThroughBeyondEOF: a private file mapping's pages beyond the end
// of the file are not written through: the copy stops at the end of the
// file's last page with EFAULT (the host's SIGBUS).
func TestWriteThroughBeyondEOF(t *testing.T) {
	as := newAS(t, wtSpace)
	data := pattern(5*pg+100, 1)
	f := tempFile(t, data, os.O_RDWR)
	a := mustMmap(t, as, MmapOpts{Length: 16 * pg, Perms: hostarch.ReadWrite, Private: true, File: f})
	src := pattern(12*pg, 50)
	n, err := as.CopyOut(ctx, a+pg, src, noOpt)
	var fe *FaultError
	if n != 5*pg || !errors.As(err, &fe) || fe.Reason != FaultBus || fe.Addr != a+6*pg {
		t.Fatalf("CopyOut = %d, %v; want %d, a bus fault at %#x", n, err, 5*pg, a+6*pg)
	}
	want := append(bytes.Clone(data[:pg]), src[:5*pg]...)
	if got := readAt(t, as, a, 6*pg); !bytes.Equal(got, want) {
		t.Fatalf("byte %d differs", firstDiff(got, want))
	}
	if got, _ := os.ReadFile(f.Name()); !bytes.Equal(got, data) {
		t.Fatal("the file changed")
	}
}

// TestWriteThroughDirty: pages written through are dirty, and only they
// (and the partial pages at the ends, copied on write as before).
func TestWriteThroughDirty(t *testing.T) {
	for name, setup := range wtSetups(t) {
		t.Run(name, func(t *testing.T) {
			as, a, _, _ := setup(t)
			ar := hostarch.AddrRange{Start: a, End: a + wtPages*pg}
			if err := as.ClearDirty(ar); err != nil {
				t.Fatal(err)
			}
			if _, err := as.CopyOut(ctx, a+10*pg, pattern(20*pg, 1), noOpt); err != nil {
				t.Fatal(err)
			}
			if _, err := as.CopyOut(ctx, a+100*pg+1, pattern(3*pg, 1), noOpt); err != nil {
				t.Fatal(err)
			}
			got, err := as.Dirty(ar)
			if err != nil {
				t.Fatal(err)
			}
			want := []hostarch.AddrRange{{Start: a + 10*pg, End: a + 30*pg}, {Start: a + 100*pg, End: a + 104*pg}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("Dirty = %v, want %v", got, want)
			}
		})
	}
}

// TestWriteThroughRace: goroutines write whole pages of a cloned mapping,
// each its own range, while others read it and one changes the protection
// of a page outside every range: every write lands, nothing else changes.
func TestWriteThroughRace(t *testing.T) {
	const writers, per = 4, 64
	p := newAS(t, wtSpace)
	a := mustMmap(t, p, MmapOpts{Length: (writers*per + 1) * pg, Perms: hostarch.ReadWrite, Private: true})
	old := pattern((writers*per+1)*pg, 5)
	writeAt(t, p, a, string(old))
	for round := range 3 {
		c, err := p.Clone()
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*writers+1)
		for w := range writers {
			wg.Add(2)
			go func() {
				defer wg.Done()
				at := a + hostarch.Addr(w*per*pg)
				for i := range per / 8 {
					if _, err := c.CopyOut(ctx, at+hostarch.Addr(i*8*pg), pattern(8*pg, byte(w+round)), noOpt); err != nil {
						errs <- err
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, per*pg)
				if _, err := c.CopyIn(ctx, a+hostarch.Addr(w*per*pg), buf, noOpt); err != nil {
					errs <- err
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := a + hostarch.Addr(writers*per*pg)
			for range 20 {
				c.Mprotect(last, pg, hostarch.Read)
				c.Mprotect(last, pg, hostarch.ReadWrite)
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for w := range writers {
			at := w * per * pg
			got := readAt(t, c, a+hostarch.Addr(at), per*pg)
			for i := range per / 8 {
				if want := pattern(8*pg, byte(w+round)); !bytes.Equal(got[i*8*pg:(i+1)*8*pg], want) {
					t.Fatalf("round %d: writer %d's pages %d.. differ", round, w, i*8)
				}
			}
		}
		if got := readAt(t, p, a, len(old)); !bytes.Equal(got, old) {
			t.Fatalf("round %d: the parent's byte %d changed", round, firstDiff(got, old))
		}
		c.Close()
	}
}

// TestWriteThroughCopiesOnlyWritten: after Clone, a write of whole pages
// gives the writer those pages alone (no fault-around window of copies),
// and no memory-file page for a page that only the write's bytes fill.
func TestWriteThroughCopiesOnlyWritten(t *testing.T) {
	for _, tc := range []struct {
		name   string
		off, n int
		copies int  // the child's pages of its own afterwards
		window bool // and the rest of page 40's fault-around window
	}{
		{"one page", 32 * pg, pg, 1, false},
		{"8 pages", 32 * pg, 8 * pg, 8, false},
		{"a run of 512 and 88 more", 0, 600 * pg, 600, false},
		// A partial page at an end is copied on write as before, with the
		// shared pages of its fault-around window (the 16-page-aligned
		// run of simulated pages around it) from it on.
		{"8 pages and a byte", 32 * pg, 8*pg + 1, 8, true},
		// A byte, the last of its page's window, then 8 whole pages: the
		// fault on the first of them comes after a partial page (on arm64
		// its page is not certain from the raw copy: the exact count's
		// path writes it through).
		{"a byte, then 8 pages", -1, 8*pg + 1, 16 + 8, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newAS(t, wtSpace)
			a := mustMmap(t, p, MmapOpts{Length: wtPages * pg, Perms: hostarch.ReadWrite, Private: true})
			if tc.off < 0 {
				// The last byte of the page that ends a 16-page window.
				page := 31 - int(uint64(a)/pg%16)
				tc.off = page*pg + pg - 1
			}
			writeAt(t, p, a, string(pattern(wtPages*pg, 1)))
			c := mustClone(t, p)
			before := mustStats(t, c)
			if n, err := c.CopyOut(ctx, a+hostarch.Addr(tc.off), pattern(tc.n, 2), noOpt); n != tc.n || err != nil {
				t.Fatalf("CopyOut = %d, %v", n, err)
			}
			if tc.window {
				tc.copies += 16 - int(uint64(a)/pg+40)%16
			}
			st := mustStats(t, c)
			if st.PrivateCopies != tc.copies || st.SharedPages != uint64(wtPages-tc.copies) ||
				st.MemoryFileBytes-before.MemoryFileBytes != uint64(tc.copies*pg) {
				t.Fatalf("PrivateCopies %d, SharedPages %d, memory-file pages added %d; want %d, %d, %d",
					st.PrivateCopies, st.SharedPages, (st.MemoryFileBytes-before.MemoryFileBytes)/pg, tc.copies, wtPages-tc.copies, tc.copies)
			}
			// And ZeroOut, of the same pages, in a second clone.
			z := mustClone(t, p)
			if n, err := z.ZeroOut(ctx, a+hostarch.Addr(tc.off), int64(tc.n), noOpt); n != int64(tc.n) || err != nil {
				t.Fatalf("ZeroOut = %d, %v", n, err)
			}
			if zs := mustStats(t, z); zs.PrivateCopies != tc.copies {
				t.Fatalf("after ZeroOut: PrivateCopies %d", zs.PrivateCopies)
			}
		})
	}
}

// TestWriteThroughDoesNotStallMapping: a long write through copy-on-write
// pages holds the mapping lock one run (2 MiB) at a time, so an Mmap on
// another goroutine completes while the write is still going (as
// TestTransferDoesNotStallMapping shows for CopyOutFrom).
func TestWriteThroughDoesNotStallMapping(t *testing.T) {
	const n = 64 << 20
	p := newAS(t, 128<<20)
	a := mustMmap(t, p, MmapOpts{Length: n, Perms: hostarch.ReadWrite, Private: true})
	chunk := pattern(1<<20, 1)
	for off := hostarch.Addr(0); off < n; off += 1 << 20 {
		if _, err := p.CopyOut(ctx, a+off, chunk, noOpt); err != nil {
			t.Fatal(err)
		}
	}
	c := mustClone(t, p)
	src := pattern(n, 2)
	writeDone, mmapDone, started := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writeDone)
		close(started)
		if got, err := c.CopyOut(ctx, a, src, noOpt); got != n || err != nil {
			t.Errorf("CopyOut = %d, %v; want %d, nil", got, err, n)
		}
	}()
	<-started
	time.Sleep(2 * time.Millisecond)
	go func() {
		defer close(mmapDone)
		if _, err := c.Mmap(MmapOpts{Length: pg, Perms: hostarch.Read, Private: true}); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-mmapDone:
	case <-writeDone:
		<-mmapDone
		t.Fatal("Mmap waited for the whole write")
	}
	<-writeDone
	if got := readAt(t, c, a, n); !bytes.Equal(got, src) {
		t.Fatalf("byte %d differs", firstDiff(got, src))
	}
}

// TestWriteThroughEdges feeds the write-through path a guest's edge
// arguments, after Clone, over a mapping of the whole space but its first
// page (below the first mappable address): writes from the mapping's start
// and up to Size are written through whole; ranges that start at 0 (not
// mapped), end past Size, wrap, or start at 2^64-1 fail with EFAULT and
// change nothing, whatever their length.
func TestWriteThroughEdges(t *testing.T) {
	const size = 16 * pg
	p := newAS(t, size)
	a := mustMmap(t, p, MmapOpts{Addr: pg, Fixed: true, Length: size - pg, Perms: hostarch.ReadWrite, Private: true})
	old := pattern(size-pg, 4)
	writeAt(t, p, a, string(old))
	for _, tc := range []struct {
		name string
		addr hostarch.Addr
		n    uint64 // bytes to write (ZeroOut takes int64(n))
		want int64  // bytes written; -1: EFAULT, nothing written
	}{
		{"the whole mapping", pg, size - pg, size - pg},
		{"up to Size", size - 3*pg, 3 * pg, 3 * pg},
		{"from a byte in to Size", pg + 1, size - pg - 1, size - pg - 1},
		{"from 0, not mapped", 0, 2 * pg, -1},
		{"one byte past Size", size - 3*pg, 3*pg + 1, -1},
		{"at Size", size, pg, -1},
		{"at 2^64-1", math.MaxUint64, 1, -1},
		{"at 2^64-page, a page", math.MaxUint64 - pg + 1, pg, -1},
		{"wrapping past 2^64", size - pg, math.MaxUint64 - 2*pg, -1},
		{"a huge length", pg, math.MaxInt64, -1},
	} {
		for _, zero := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ZeroOut %v", tc.name, zero), func(t *testing.T) {
				c := mustClone(t, p)
				var got int64
				var err error
				var src []byte
				if zero {
					got, err = c.ZeroOut(ctx, tc.addr, int64(min(tc.n, math.MaxInt64)), noOpt)
				} else {
					// A slice cannot be as long as the longest lengths:
					// one a byte longer than the space fails the same way.
					src = pattern(int(min(tc.n, size+1)), 9)
					var k int
					k, err = c.CopyOut(ctx, tc.addr, src, noOpt)
					got = int64(k)
				}
				want := bytes.Clone(old)
				if tc.want < 0 {
					if got != 0 || !errors.Is(err, unix.EFAULT) {
						t.Fatalf("write = %d, %v; want 0, EFAULT", got, err)
					}
				} else {
					if got != tc.want || err != nil {
						t.Fatalf("write = %d, %v; want %d, nil", got, err, tc.want)
					}
					w := want[tc.addr-pg : uint64(tc.addr-pg)+tc.n]
					if zero {
						clear(w)
					} else {
						copy(w, src)
					}
				}
				if got := readAt(t, c, a, size-pg); !bytes.Equal(got, want) {
					i := firstDiff(got, want)
					t.Fatalf("byte %d reads %#x, want %#x", i, got[i], want[i])
				}
				if got := readAt(t, p, a, size-pg); !bytes.Equal(got, old) {
					t.Fatalf("the parent's byte %d changed", firstDiff(got, old))
				}
			})
		}
	}
}
