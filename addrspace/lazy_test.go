package addrspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

type fillFunc func(off uint64, dst []byte) error

func (f fillFunc) FillPages(_ context.Context, off uint64, dst []byte) error { return f(off, dst) }

// countingFiller fills page p (by offset) with bytes p%251+1, counts the
// fills of each page, and fails for pages in bad.
type countingFiller struct {
	mu    sync.Mutex
	calls int
	fills map[uint64]int
	bad   map[uint64]bool
}

func newCountingFiller() *countingFiller {
	return &countingFiller{fills: map[uint64]int{}, bad: map[uint64]bool{}}
}

var errFill = errors.New("filler: no such page")

func (c *countingFiller) FillPages(_ context.Context, off uint64, dst []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for p := off / pg; p < (off+uint64(len(dst)))/pg; p++ {
		if c.bad[p] {
			return errFill
		}
	}
	for p := off / pg; p < (off+uint64(len(dst)))/pg; p++ {
		c.fills[p]++
		b := dst[(p-off/pg)*pg : (p-off/pg+1)*pg]
		for i := range b {
			b[i] = byte(p%251 + 1)
		}
	}
	return nil
}

func (c *countingFiller) count(p uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fills[p]
}

func (c *countingFiller) onceEach(t *testing.T, want map[uint64]bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, n := range c.fills {
		if n != 1 {
			t.Errorf("page %d filled %d times", p, n)
		}
	}
	for p := range want {
		if c.fills[p] != 1 {
			t.Errorf("page %d filled %d times, want 1", p, c.fills[p])
		}
	}
}

func newLazy(t *testing.T, pages uint64, perms hostarch.AccessType) (*AddressSpace, hostarch.Addr, *countingFiller) {
	t.Helper()
	as, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { as.Close() })
	c := newCountingFiller()
	a := mustMmap(t, as, MmapOpts{Length: pages * pg, Perms: perms, Private: true, Fill: c})
	return as, a, c
}

func fillByte(p uint64) byte { return byte(p%251 + 1) }

// TestLazyFillEveryPath: the first access to a lazy page fills it exactly
// once, whichever path makes it, and the access sees the filled bytes (or
// changes them).
func TestLazyFillEveryPath(t *testing.T) {
	ign := usermem.IOOpts{IgnorePermissions: true}
	type path struct {
		name string
		// access touches page p (at address a) and returns the byte it
		// read there, or -1 if it wrote.
		access func(as *AddressSpace, a hostarch.Addr) (int, error)
	}
	paths := []path{
		{"CopyIn", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			b := make([]byte, 10)
			_, err := as.CopyIn(ctx, a+100, b, noOpt)
			return int(b[9]), err
		}},
		{"CopyIn ignoring permissions", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			b := make([]byte, 1)
			_, err := as.CopyIn(ctx, a, b, ign)
			return int(b[0]), err
		}},
		{"CopyOut", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			_, err := as.CopyOut(ctx, a+5, []byte{0xee}, noOpt)
			return -1, err
		}},
		{"ZeroOut", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			_, err := as.ZeroOut(ctx, a+5, 1, noOpt)
			return -1, err
		}},
		{"LoadUint32", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			v, err := as.LoadUint32(ctx, a+8, noOpt)
			return int(v & 0xff), err
		}},
		{"SwapUint32", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			v, err := as.SwapUint32(ctx, a+8, 0, noOpt)
			return int(v & 0xff), err
		}},
		{"CompareAndSwapUint32", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			v, err := as.CompareAndSwapUint32(ctx, a+8, 1, 2, noOpt)
			return int(v & 0xff), err
		}},
		{"CopyInTo", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			b := make([]byte, 1)
			_, err := as.CopyInTo(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a + 3, End: a + 4}), safemem.FromIOWriter{Writer: bytesWriter{b}}, noOpt)
			return int(b[0]), err
		}},
		{"CopyOutFrom", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			_, err := as.CopyOutFrom(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a + 3, End: a + 4}), safemem.FromIOReader{Reader: bytes.NewReader([]byte{7})}, noOpt)
			return -1, err
		}},
		{"CopyInSeq", func(as *AddressSpace, a hostarch.Addr) (int, error) {
			b := make([]byte, 1)
			_, err := as.CopyInSeq(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + 1}), b, noOpt)
			return int(b[0]), err
		}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			const pages = 40
			as, a, c := newLazy(t, pages, hostarch.ReadWrite)
			want := map[uint64]bool{}
			for _, k := range []uint64{0, 17, 39, 20} {
				got, err := p.access(as, a+hostarch.Addr(k*pg))
				if err != nil {
					t.Fatalf("page %d: %v", k, err)
				}
				if got >= 0 && got != int(fillByte(k)) {
					t.Fatalf("page %d read %#x, want %#x", k, got, fillByte(k))
				}
				want[k] = true
				if c.count(k) != 1 {
					t.Fatalf("page %d filled %d times after its first access", k, c.count(k))
				}
				// Again: no fill.
				if _, err := p.access(as, a+hostarch.Addr(k*pg)); err != nil {
					t.Fatal(err)
				}
			}
			c.onceEach(t, want)
			// Every page reads as filled (where not written), each once.
			buf := make([]byte, pages*pg)
			if n, err := as.CopyIn(ctx, a, buf, noOpt); n != len(buf) || err != nil {
				t.Fatalf("CopyIn of the whole mapping: %d, %v", n, err)
			}
			for k := uint64(0); k < pages; k++ {
				want[k] = true
				if buf[k*pg+pg-1] != fillByte(k) {
					t.Fatalf("page %d ends with %#x, want %#x", k, buf[k*pg+pg-1], fillByte(k))
				}
			}
			c.onceEach(t, want)
		})
	}
}

type bytesWriter struct{ b []byte }

func (w bytesWriter) Write(p []byte) (int, error) { return copy(w.b, p), nil }

// TestLazyFillRuns: a fault fills a bounded run of pages, and a sequential
// read of n pages calls the filler about n/LazyFillRun times.
func TestLazyFillRuns(t *testing.T) {
	const pages = 10 * LazyFillRun
	as, a, c := newLazy(t, pages, hostarch.Read)
	buf := make([]byte, pages*pg)
	if n, err := as.CopyIn(ctx, a, buf, noOpt); n != len(buf) || err != nil {
		t.Fatal(n, err)
	}
	if c.calls != pages/LazyFillRun {
		t.Fatalf("%d filler calls for %d pages, want %d", c.calls, pages, pages/LazyFillRun)
	}
}

// TestLazyFillError: a failing filler makes the access fail at the page,
// with every byte before it transferred; the page stays unfilled, and its
// neighbours that filled are kept.
func TestLazyFillError(t *testing.T) {
	as, a, c := newLazy(t, 8, hostarch.ReadWrite)
	c.bad[3] = true
	buf := make([]byte, 7*pg)
	n, err := as.CopyIn(ctx, a+100, buf, noOpt)
	var fe *FaultError
	if n != 3*pg-100 || !errors.Is(err, unix.EFAULT) || !errors.Is(err, errFill) || !errors.As(err, &fe) || fe.Reason != FaultFill || fe.Addr != a+3*pg {
		t.Fatalf("CopyIn across a failing page = %d, %v; want %d, EFAULT at %#x with the filler's error", n, err, 3*pg-100, a+3*pg)
	}
	for k := uint64(0); k < 3; k++ {
		if c.count(k) != 1 || buf[k*pg+pg-101] != fillByte(k) {
			t.Fatalf("page %d: filled %d times, byte %#x", k, c.count(k), buf[k*pg+pg-101])
		}
	}
	// Writes fail the same way, the atomics too.
	if n, err := as.CopyOut(ctx, a+3*pg-2, []byte{1, 2, 3, 4}, noOpt); n != 2 || !errors.Is(err, errFill) {
		t.Fatalf("CopyOut = %d, %v", n, err)
	}
	if _, err := as.SwapUint32(ctx, a+3*pg, 1, noOpt); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("SwapUint32 = %v", err)
	}
	// Once the filler succeeds, the page fills.
	c.mu.Lock()
	delete(c.bad, 3)
	c.mu.Unlock()
	if v, err := as.LoadUint32(ctx, a+3*pg, noOpt); err != nil || byte(v) != fillByte(3) {
		t.Fatalf("LoadUint32 = %#x, %v", v, err)
	}
	if c.count(3) != 1 {
		t.Fatalf("page 3 filled %d times", c.count(3))
	}
}

// TestLazyDontNeedMunmapMremap: DONTNEED makes pages missing again (they
// fill again on the next access, as with userfaultfd); Munmap'd pages
// fault with no fill; pages moved by Mremap keep their offsets.
func TestLazyDontNeedMunmapMremap(t *testing.T) {
	as, a, c := newLazy(t, 8, hostarch.ReadWrite)
	if _, err := as.CopyOut(ctx, a+pg, []byte("written"), noOpt); err != nil {
		t.Fatal(err)
	}
	if err := as.Madvise(a, 2*pg, unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 7)
	if _, err := as.CopyIn(ctx, a+pg, b, noOpt); err != nil || b[0] != fillByte(1) {
		t.Fatalf("after DONTNEED: %q, %v; want the filler's bytes", b, err)
	}
	if c.count(1) != 2 {
		t.Fatalf("page 1 filled %d times, want 2 (once more after DONTNEED)", c.count(1))
	}
	// Mremap moves pages 4..8 (not filled yet, except as a run did) away:
	// they fill with their offsets.
	calls := c.calls
	na, err := as.Mremap(a+4*pg, 4*pg, 8*pg, unix.MREMAP_MAYMOVE, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k := uint64(0); k < 8; k++ {
		if _, err := as.CopyIn(ctx, na+hostarch.Addr(k*pg), b[:1], noOpt); err != nil || b[0] != fillByte(4+k) {
			t.Fatalf("moved page %d: %#x, %v; want %#x", k, b[0], err, fillByte(4+k))
		}
	}
	for p := uint64(0); p < 12; p++ {
		if n := c.count(p); n > 1 && p != 1 {
			t.Fatalf("page %d filled %d times", p, n)
		}
	}
	if c.calls == calls {
		t.Fatal("no fill for the moved and grown pages")
	}
	if err := as.Munmap(a, 4*pg); err != nil {
		t.Fatal(err)
	}
	calls = c.calls
	if n, err := as.CopyIn(ctx, a+2*pg, b, noOpt); n != 0 || !errors.Is(err, unix.EFAULT) || c.calls != calls {
		t.Fatalf("after Munmap: %d, %v, %d new fills", n, err, c.calls-calls)
	}
}

// TestLazyClone: a clone shares the pages filled before it and fills the
// others itself.
func TestLazyClone(t *testing.T) {
	as, a, c := newLazy(t, 2*LazyFillRun, hostarch.ReadWrite)
	if _, err := as.CopyOut(ctx, a, []byte("parent"), noOpt); err != nil {
		t.Fatal(err)
	}
	child, err := as.Clone()
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	b := make([]byte, 6)
	if _, err := child.CopyIn(ctx, a, b, noOpt); err != nil || string(b) != "parent" {
		t.Fatalf("child reads %q, %v", b, err)
	}
	if c.count(0) != 1 {
		t.Fatalf("page 0 filled %d times", c.count(0))
	}
	last := a + hostarch.Addr((2*LazyFillRun-1)*pg)
	for _, s := range []*AddressSpace{child, as} {
		if _, err := s.CopyIn(ctx, last, b[:1], noOpt); err != nil || b[0] != fillByte(2*LazyFillRun-1) {
			t.Fatalf("last page: %#x, %v", b[0], err)
		}
	}
	if n := c.count(2*LazyFillRun - 1); n != 2 {
		t.Fatalf("last page filled %d times, want once in each space", n)
	}
}

// TestLazyConcurrent: many goroutines touching the same pages fill each
// exactly once; a filler that uses the space itself does not deadlock.
func TestLazyConcurrent(t *testing.T) {
	as, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	other := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	as.CopyOut(ctx, other, []byte{42}, noOpt)
	c := newCountingFiller()
	reentrant := fillFunc(func(off uint64, dst []byte) error {
		// The filler reads another mapping of the same space.
		b := make([]byte, 1)
		if _, err := as.CopyIn(ctx, other, b, noOpt); err != nil {
			return err
		}
		return c.FillPages(ctx, off, dst)
	})
	const pages = 64
	a := mustMmap(t, as, MmapOpts{Length: pages * pg, Perms: hostarch.ReadWrite, Private: true, Fill: reentrant})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			b := make([]byte, 1)
			for k := 0; k < pages; k++ {
				p := uint64((k*7 + g*13) % pages)
				if _, err := as.CopyIn(ctx, a+hostarch.Addr(p*pg+uint64(g)), b, noOpt); err != nil || b[0] != fillByte(p) {
					t.Errorf("page %d: %#x, %v", p, b[0], err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	want := map[uint64]bool{}
	for p := uint64(0); p < pages; p++ {
		want[p] = true
	}
	c.onceEach(t, want)
}

// TestLazyMmapErrors: Fill needs a private anonymous mapping.
func TestLazyMmapErrors(t *testing.T) {
	as, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	f := tempFile(t, pattern(pg, 1), 0)
	fill := fillFunc(func(uint64, []byte) error { return nil })
	for _, o := range []MmapOpts{
		{Length: pg, Perms: hostarch.Read, Fill: fill},
		{Length: pg, Perms: hostarch.Read, Private: true, File: f, Fill: fill},
	} {
		if _, err := as.Mmap(o); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Mmap(%+v) = %v, want EINVAL", o, err)
		}
	}
	if len(as.Mappings()) != 0 {
		t.Fatal("a failed Mmap left a mapping")
	}
}

// TestLazyFillDirty: a filled page's backing changed, so dirty tracking
// reports it (an incremental save or a Reset must see it); pages not
// filled stay clean.
func TestLazyFillDirty(t *testing.T) {
	as, a, _ := newLazy(t, 4*LazyFillRun, hostarch.ReadWrite)
	all := hostarch.AddrRange{Start: a, End: a + 4*LazyFillRun*pg}
	if err := as.ClearDirty(all); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := as.CopyIn(ctx, a+2*LazyFillRun*pg, b, noOpt); err != nil {
		t.Fatal(err)
	}
	d, err := as.Dirty(all)
	want := []hostarch.AddrRange{{Start: a + 2*LazyFillRun*pg, End: a + 3*LazyFillRun*pg}}
	if err != nil || fmt.Sprint(d) != fmt.Sprint(want) {
		t.Fatalf("Dirty after a read fault filled a run = %v, %v; want %v", d, err, want)
	}
}

// TestLazyFillerPanics: a filler's panic reaches the caller of the access
// and leaves the space usable (its lock free, the page fillable again).
func TestLazyFillerPanics(t *testing.T) {
	as, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	panicking := true
	a := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true, Fill: fillFunc(func(off uint64, dst []byte) error {
		if panicking {
			panic("filler bug")
		}
		for i := range dst {
			dst[i] = 7
		}
		return nil
	})})
	func() {
		defer func() {
			if r := recover(); r != "filler bug" {
				t.Fatalf("recovered %v, want the filler's panic", r)
			}
		}()
		as.CopyIn(ctx, a, make([]byte, 1), noOpt)
	}()
	panicking = false
	b := make([]byte, 1)
	if _, err := as.CopyIn(ctx, a, b, noOpt); err != nil || b[0] != 7 {
		t.Fatalf("after the panic: %v, %v", b, err)
	}
	if _, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.Read, Private: true}); err != nil {
		t.Fatal(err)
	}
}

// TestLazyReset: Reset to a snapshot taken before pages were filled makes
// them missing again (they fill again when touched), and keeps the ones
// the snapshot had.
func TestLazyReset(t *testing.T) {
	as, a, c := newLazy(t, 4*LazyFillRun, hostarch.ReadWrite)
	as.CopyOut(ctx, a, []byte("before"), noOpt) // fills run 0
	snap, err := as.Clone()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	far := a + 3*LazyFillRun*pg
	as.CopyOut(ctx, far, []byte("after"), noOpt) // fills run 3
	as.CopyOut(ctx, a, []byte("AFTER!"), noOpt)
	if err := as.Reset(snap); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	if _, err := as.CopyIn(ctx, a, b, noOpt); err != nil || string(b) != "before" {
		t.Fatalf("page 0 after Reset: %q, %v", b, err)
	}
	if _, err := as.CopyIn(ctx, far, b, noOpt); err != nil || b[0] != fillByte(3*LazyFillRun) {
		t.Fatalf("page filled after the snapshot, after Reset: %v, %v; want the filler's %#x", b, err, fillByte(3*LazyFillRun))
	}
	if n := c.count(3 * LazyFillRun); n != 2 {
		t.Fatalf("page filled after the snapshot filled %d times, want 2 (again after Reset)", n)
	}
}
