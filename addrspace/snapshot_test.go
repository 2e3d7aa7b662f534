package addrspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"sync"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// ranges turns a set of page numbers into sorted, merged ranges.
func pageRanges(pages map[uint64]bool) []hostarch.AddrRange {
	var ns []uint64
	for n := range pages {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	var out []hostarch.AddrRange
	for _, n := range ns {
		a := hostarch.Addr(n * pg)
		if k := len(out); k > 0 && out[k-1].End == a {
			out[k-1].End += pg
			continue
		}
		out = append(out, hostarch.AddrRange{Start: a, End: a + pg})
	}
	return out
}

func sameRanges(a, b []hostarch.AddrRange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A writePath writes n bytes of val at addr of as through one of the
// address space's write paths, and returns what the path returned.
type writePath struct {
	name  string
	write func(as *AddressSpace, addr hostarch.Addr, n int, val byte) (int, error)
}

var writePaths = []writePath{
	{"CopyOut", func(as *AddressSpace, addr hostarch.Addr, n int, val byte) (int, error) {
		return as.CopyOut(context.Background(), addr, bytes.Repeat([]byte{val}, n), usermem.IOOpts{})
	}},
	{"CopyOutIgnorePermissions", func(as *AddressSpace, addr hostarch.Addr, n int, val byte) (int, error) {
		return as.CopyOut(context.Background(), addr, bytes.Repeat([]byte{val}, n), usermem.IOOpts{IgnorePermissions: true})
	}},
	{"CopyOutSeq", func(as *AddressSpace, addr hostarch.Addr, n int, val byte) (int, error) {
		h := n / 2
		ars := hostarch.AddrRangeSeqFromSlice([]hostarch.AddrRange{{Start: addr, End: addr + hostarch.Addr(h)}, {Start: addr + hostarch.Addr(h), End: addr + hostarch.Addr(n)}})
		return as.CopyOutSeq(context.Background(), ars, bytes.Repeat([]byte{val}, n), usermem.IOOpts{})
	}},
	{"ZeroOut", func(as *AddressSpace, addr hostarch.Addr, n int, val byte) (int, error) {
		k, err := as.ZeroOut(context.Background(), addr, int64(n), usermem.IOOpts{})
		return int(k), err
	}},
	{"SwapUint32", func(as *AddressSpace, addr hostarch.Addr, n int, val byte) (int, error) {
		_, err := as.SwapUint32(context.Background(), addr&^3, uint32(val), usermem.IOOpts{})
		if err != nil {
			return 0, err
		}
		return n, nil
	}},
	{"CompareAndSwapUint32", func(as *AddressSpace, addr hostarch.Addr, n int, val byte) (int, error) {
		a := addr &^ 3
		old, err := as.LoadUint32(context.Background(), a, usermem.IOOpts{})
		if err != nil {
			return 0, err
		}
		if _, err := as.CompareAndSwapUint32(context.Background(), a, old, old+1, usermem.IOOpts{}); err != nil {
			return 0, err
		}
		return n, nil
	}},
	{"CopyOutFrom", func(as *AddressSpace, addr hostarch.Addr, n int, val byte) (int, error) {
		src := safemem.FromIOReader{Reader: bytes.NewReader(bytes.Repeat([]byte{val}, n))}
		k, err := as.CopyOutFrom(context.Background(), hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(n)}), src, usermem.IOOpts{})
		return int(k), err
	}},
	{"CopyBetween", func(as *AddressSpace, addr hostarch.Addr, n int, val byte) (int, error) {
		src, err := New(Options{Size: 1 << 20})
		if err != nil {
			return 0, err
		}
		defer src.Close()
		a, err := src.Mmap(MmapOpts{Length: uint64(n), Perms: hostarch.ReadWrite, Private: true})
		if err != nil {
			return 0, err
		}
		src.CopyOut(context.Background(), a, bytes.Repeat([]byte{val}, n), usermem.IOOpts{})
		k, err := CopyBetween(context.Background(), as, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(n)}),
			src, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + hostarch.Addr(n)}))
		return int(k), err
	}},
}

// TestDirtyWritePaths clears a mapping of each kind, writes scattered
// pages through each write path and expects exactly the written pages
// dirty, and the rest clean.
func TestDirtyWritePaths(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(64 * pg); err != nil {
		t.Fatal(err)
	}
	kinds := []struct {
		name string
		opts MmapOpts
	}{
		{"private anonymous", MmapOpts{Private: true}},
		{"shared anonymous", MmapOpts{}},
		{"private file", MmapOpts{Private: true, File: f}},
		{"shared file", MmapOpts{File: f}},
	}
	for _, k := range kinds {
		for _, wp := range writePaths {
			t.Run(k.name+"/"+wp.name, func(t *testing.T) {
				as, err := New(Options{Size: 1 << 30})
				if err != nil {
					t.Fatal(err)
				}
				defer as.Close()
				o := k.opts
				o.Length, o.Perms = 64*pg, hostarch.ReadWrite
				if wp.name == "CopyOutIgnorePermissions" {
					o.Perms = hostarch.Read
				}
				addr, err := as.Mmap(o)
				if err != nil {
					t.Fatal(err)
				}
				ar := hostarch.AddrRange{Start: addr, End: addr + 64*pg}
				// Touch half the pages first (backed and mapped, or not).
				for i := 0; i < 64; i += 2 {
					as.CopyIn(context.Background(), addr+hostarch.Addr(i)*pg, make([]byte, 1), usermem.IOOpts{IgnorePermissions: true})
				}
				if d, err := as.Dirty(ar); err != nil || !sameRanges(d, []hostarch.AddrRange{ar}) {
					t.Fatalf("before ClearDirty: Dirty = %v, %v; want every page", d, err)
				}
				if err := as.ClearDirty(ar); err != nil {
					t.Fatal(err)
				}
				if d, err := as.Dirty(ar); err != nil || d != nil {
					t.Fatalf("after ClearDirty: Dirty = %v, %v; want none", d, err)
				}
				want := map[uint64]bool{}
				rng := rand.New(rand.NewSource(1))
				for i := 0; i < 12; i++ {
					p := uint64(rng.Intn(64))
					off := uint64(rng.Intn(pg - 8))
					n := 8
					a := addr + hostarch.Addr(p*pg+off)
					if got, err := wp.write(as, a, n, byte(i+1)); got != n || err != nil {
						t.Fatalf("write at %#x = %d, %v", a, got, err)
					}
					want[uint64(addr)/pg+p] = true
					if wp.name == "CopyOutSeq" || wp.name == "CopyOut" {
						// A write across a page boundary dirties both.
						b := a + hostarch.Addr(pg-off)
						if got, err := wp.write(as, b-2, 4, byte(i)); got != 4 || err != nil {
							t.Fatalf("write at %#x = %d, %v", b-2, got, err)
						}
						want[uint64(b)/pg-1] = true
						if uint64(b) < uint64(ar.End) {
							want[uint64(b)/pg] = true
						}
					}
				}
				d, err := as.Dirty(ar)
				if err != nil || !sameRanges(d, pageRanges(want)) {
					t.Fatalf("Dirty = %v, %v; want %v", d, err, pageRanges(want))
				}
				// Reads do not dirty; ClearDirty of part clears that part.
				for i := 0; i < 64; i++ {
					as.CopyIn(context.Background(), addr+hostarch.Addr(i)*pg, make([]byte, 16), usermem.IOOpts{IgnorePermissions: true})
				}
				half := hostarch.AddrRange{Start: addr, End: addr + 32*pg}
				if err := as.ClearDirty(half); err != nil {
					t.Fatal(err)
				}
				for n := range want {
					if n < uint64(half.End)/pg {
						delete(want, n)
					}
				}
				if d, err := as.Dirty(ar); err != nil || !sameRanges(d, pageRanges(want)) {
					t.Fatalf("after a partial ClearDirty: Dirty = %v, %v; want %v", d, err, pageRanges(want))
				}
				if err := checkViews(as); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestDirtyMappingChanges: a change of what backs a page dirties it, a
// hole is never dirty, and Mprotect keeps pages clean.
func TestDirtyMappingChanges(t *testing.T) {
	as, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	ctx := context.Background()
	addr, err := as.Mmap(MmapOpts{Length: 16 * pg, Perms: hostarch.ReadWrite, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	as.CopyOut(ctx, addr, make([]byte, 16*pg), usermem.IOOpts{})
	all := hostarch.AddrRange{Start: 0, End: hostarch.Addr(as.Size())}
	if err := as.ClearDirty(all); err != nil {
		t.Fatal(err)
	}
	page := func(i int) hostarch.Addr { return addr + hostarch.Addr(i)*pg }
	if err := as.Mprotect(page(0), 2*pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	if err := as.Madvise(page(4), pg, unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if err := as.Munmap(page(8), 2*pg); err != nil {
		t.Fatal(err)
	}
	if _, err := as.Mmap(MmapOpts{Addr: page(9), Fixed: true, Length: pg, Perms: hostarch.ReadWrite, Private: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := as.Mmap(MmapOpts{Addr: page(12), Fixed: true, Length: pg, Perms: hostarch.ReadWrite, Private: true}); err != nil {
		t.Fatal(err)
	}
	want := []hostarch.AddrRange{
		{Start: page(4), End: page(5)},  // DONTNEED
		{Start: page(9), End: page(10)}, // a new mapping in the hole
		{Start: page(12), End: page(13)},
	}
	if d, err := as.Dirty(all); err != nil || !sameRanges(d, want) {
		t.Fatalf("Dirty = %v, %v; want %v", d, err, want)
	}
	// Mremap moves pages: both ends are dirty (the source is a hole now).
	if err := as.ClearDirty(all); err != nil {
		t.Fatal(err)
	}
	dst, err := as.Mremap(page(14), 2*pg, 2*pg, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, addr-20*pg)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := as.Dirty(all); err != nil || !sameRanges(d, []hostarch.AddrRange{{Start: dst, End: dst + 2*pg}}) {
		t.Fatalf("after Mremap: Dirty = %v, %v; want the target", d, err)
	}
}

// TestDirtyErrors: bad ranges are EINVAL and change nothing; a closed
// space is ErrClosed.
func TestDirtyErrors(t *testing.T) {
	as, err := New(Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := as.Mmap(MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	all := hostarch.AddrRange{Start: 0, End: hostarch.Addr(as.Size())}
	for _, ar := range []hostarch.AddrRange{
		{Start: 1, End: pg},
		{Start: 0, End: pg + 1},
		{Start: 2 * pg, End: pg},
		{Start: 0, End: hostarch.Addr(as.Size()) + pg},
		{Start: ^hostarch.Addr(0) &^ (pg - 1), End: ^hostarch.Addr(0) &^ (pg - 1)},
		{Start: pg, End: ^hostarch.Addr(0) &^ (pg - 1)},
	} {
		if err := as.ClearDirty(ar); !errors.Is(err, unix.EINVAL) {
			t.Errorf("ClearDirty(%v) = %v; want EINVAL", ar, err)
		}
		if d, err := as.Dirty(ar); !errors.Is(err, unix.EINVAL) || d != nil {
			t.Errorf("Dirty(%v) = %v, %v; want EINVAL", ar, d, err)
		}
	}
	// Nothing was cleared by the failed calls.
	if d, err := as.Dirty(all); err != nil || !sameRanges(d, []hostarch.AddrRange{{Start: addr, End: addr + 4*pg}}) {
		t.Fatalf("Dirty = %v, %v", d, err)
	}
	// An empty range is fine.
	if d, err := as.Dirty(hostarch.AddrRange{Start: pg, End: pg}); err != nil || d != nil {
		t.Fatalf("Dirty(empty) = %v, %v", d, err)
	}
	as.Close()
	if err := as.ClearDirty(all); !errors.Is(err, ErrClosed) {
		t.Errorf("ClearDirty after Close = %v", err)
	}
	if _, err := as.Dirty(all); !errors.Is(err, ErrClosed) {
		t.Errorf("Dirty after Close = %v", err)
	}
}

// TestResetBasic resets a space to a snapshot after writes, new mappings,
// unmaps and mprotects, many times, and checks bytes and mappings.
func TestResetBasic(t *testing.T) {
	as, err := New(Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	ctx := context.Background()
	addr, err := as.Mmap(MmapOpts{Length: 256 * pg, Perms: hostarch.ReadWrite, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	orig := make([]byte, 256*pg)
	rand.New(rand.NewSource(2)).Read(orig[:128*pg])
	as.CopyOut(ctx, addr, orig, usermem.IOOpts{})
	snap, err := as.Clone()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	maps := snap.Mappings()
	rng := rand.New(rand.NewSource(3))
	for round := 0; round < 20; round++ {
		for i := 0; i < 8; i++ {
			p := rng.Intn(256)
			as.CopyOut(ctx, addr+hostarch.Addr(p*pg+rng.Intn(pg-4)), []byte{1, 2, 3, 4}, usermem.IOOpts{})
		}
		switch round % 4 {
		case 1:
			as.Mmap(MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
		case 2:
			as.Munmap(addr+100*pg, 3*pg)
		case 3:
			as.Mprotect(addr+10*pg, pg, hostarch.Read)
		}
		if err := as.Reset(snap); err != nil {
			t.Fatalf("round %d: Reset: %v", round, err)
		}
		got := make([]byte, len(orig))
		if n, err := as.CopyIn(ctx, addr, got, usermem.IOOpts{}); n != len(got) || err != nil || !bytes.Equal(got, orig) {
			t.Fatalf("round %d: CopyIn = %d, %v, equal %v", round, n, err, bytes.Equal(got, orig))
		}
		if m := as.Mappings(); fmt.Sprint(m) != fmt.Sprint(maps) {
			t.Fatalf("round %d: Mappings = %v; want %v", round, m, maps)
		}
		if err := checkViews(as); err != nil {
			t.Fatal(err)
		}
	}
	// The snapshot itself is unchanged.
	got := make([]byte, len(orig))
	if n, err := snap.CopyIn(ctx, addr, got, usermem.IOOpts{}); n != len(got) || err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("snapshot: CopyIn = %d, %v, equal %v", n, err, bytes.Equal(got, orig))
	}
}

// TestResetErrors: snapshots that cannot be are EINVAL and change nothing.
func TestResetErrors(t *testing.T) {
	as, err := New(Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	addr, _ := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	as.CopyOut(context.Background(), addr, []byte("x"), usermem.IOOpts{})
	other, _ := New(Options{Size: 1 << 20})
	defer other.Close()
	bigger, _ := New(Options{Size: 2 << 20})
	defer bigger.Close()
	closed, _ := as.Clone()
	closed.Close()
	for name, snap := range map[string]*AddressSpace{"nil": nil, "itself": as, "unrelated": other, "other size": bigger, "closed": closed} {
		if err := as.Reset(snap); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Reset(%s) = %v; want EINVAL", name, err)
		}
	}
	b := make([]byte, 1)
	if n, err := as.CopyIn(context.Background(), addr, b, usermem.IOOpts{}); n != 1 || err != nil || b[0] != 'x' {
		t.Fatalf("after failed resets: %d, %v, %q", n, err, b)
	}
	snap, _ := as.Clone()
	defer snap.Close()
	done, _ := as.Clone()
	done.Close()
	if err := done.Reset(snap); !errors.Is(err, ErrClosed) {
		t.Errorf("Reset of a closed space = %v; want ErrClosed", err)
	}
}

// TestResetConcurrentReaders resets while readers copy from the space
// (under -race): every read sees the snapshot's bytes or a write's.
func TestResetConcurrentReaders(t *testing.T) {
	as, err := New(Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	ctx := context.Background()
	addr, _ := as.Mmap(MmapOpts{Length: 64 * pg, Perms: hostarch.ReadWrite, Private: true})
	as.CopyOut(ctx, addr, bytes.Repeat([]byte{7}, 64*pg), usermem.IOOpts{})
	snap, err := as.Clone()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 64)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := addr + hostarch.Addr((i*7+g)%64)*pg
				if n, err := as.CopyIn(ctx, a, buf, usermem.IOOpts{}); n != len(buf) || err != nil {
					errs <- fmt.Errorf("CopyIn(%#x) = %d, %v", a, n, err)
					return
				}
				for _, c := range buf {
					if c != 7 && c != 9 {
						errs <- fmt.Errorf("CopyIn(%#x) read %d", a, c)
						return
					}
				}
				if _, err := as.Dirty(hostarch.AddrRange{Start: addr, End: addr + 64*pg}); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	for round := 0; round < 300; round++ {
		for i := 0; i < 4; i++ {
			as.CopyOut(ctx, addr+hostarch.Addr((round*5+i*11)%64)*pg, bytes.Repeat([]byte{9}, 64), usermem.IOOpts{})
		}
		if round%3 == 0 {
			as.ClearDirty(hostarch.AddrRange{Start: addr, End: addr + 64*pg})
		}
		if err := as.Reset(snap); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestResetSnapshotChanges: a snapshot written, unmapped or mapped between
// resets (it should not be, but may) is what the next Reset restores, in
// full; so is a snapshot that is itself reset to another.
func TestResetSnapshotChanges(t *testing.T) {
	ctx := context.Background()
	as, err := New(Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	addr, _ := as.Mmap(MmapOpts{Length: 64 * pg, Perms: hostarch.ReadWrite, Private: true})
	as.CopyOut(ctx, addr, bytes.Repeat([]byte{1}, 64*pg), usermem.IOOpts{})
	snap, err := as.Clone()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	other, err := as.Clone()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.CopyOut(ctx, addr, bytes.Repeat([]byte{5}, 64*pg), usermem.IOOpts{})
	check := func(step string) {
		t.Helper()
		if err := as.Reset(snap); err != nil {
			t.Fatalf("%s: Reset: %v", step, err)
		}
		if fmt.Sprint(as.Mappings()) != fmt.Sprint(snap.Mappings()) {
			t.Fatalf("%s: mappings %v, snapshot %v", step, as.Mappings(), snap.Mappings())
		}
		a, b := make([]byte, 64*pg), make([]byte, 64*pg)
		na, ea := as.CopyIn(ctx, addr, a, usermem.IOOpts{IgnorePermissions: true})
		nb, eb := snap.CopyIn(ctx, addr, b, usermem.IOOpts{IgnorePermissions: true})
		if na != nb || errnoOf(ea) != errnoOf(eb) || !bytes.Equal(a[:na], b[:nb]) {
			t.Fatalf("%s: the space reads %d, %v, the snapshot %d, %v (equal %v)", step, na, ea, nb, eb, bytes.Equal(a[:na], b[:nb]))
		}
	}
	check("first")
	for i := 0; i < 3; i++ {
		as.CopyOut(ctx, addr+hostarch.Addr(i)*pg, []byte{9}, usermem.IOOpts{})
		check("after writes")
		// Written twice: the second write to a page of its own does not
		// fault in the snapshot.
		snap.CopyOut(ctx, addr+hostarch.Addr(i)*pg, []byte{byte(20 + i)}, usermem.IOOpts{})
		check("after a snapshot write")
		snap.CopyOut(ctx, addr+hostarch.Addr(i)*pg+1, []byte{byte(30 + i)}, usermem.IOOpts{})
		check("after a second snapshot write")
	}
	if err := snap.Munmap(addr+10*pg, pg); err != nil {
		t.Fatal(err)
	}
	check("after a snapshot munmap")
	if _, err := snap.Mmap(MmapOpts{Addr: addr + 10*pg, Fixed: true, Length: pg, Perms: hostarch.Read, Private: true}); err != nil {
		t.Fatal(err)
	}
	check("after a snapshot mmap")
	if err := snap.Reset(other); err != nil {
		t.Fatal(err)
	}
	check("after the snapshot's own reset")
	if err := snap.Mprotect(addr, pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	check("after a snapshot mprotect")
}

// TestDirtyConcurrentWriters clears dirty bits while writers run (under
// -race); once they stop, a last ClearDirty and one write by each leave
// exactly those pages dirty.
func TestDirtyConcurrentWriters(t *testing.T) {
	as, err := New(Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	ctx := context.Background()
	addr, _ := as.Mmap(MmapOpts{Length: 64 * pg, Perms: hostarch.ReadWrite, Private: true})
	ar := hostarch.AddrRange{Start: addr, End: addr + 64*pg}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := addr + hostarch.Addr((i*13+g*16)%64)*pg + hostarch.Addr(g*8)
				if _, err := as.SwapUint32(ctx, a, uint32(i), usermem.IOOpts{}); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	for i := 0; i < 200; i++ {
		if err := as.ClearDirty(ar); err != nil {
			t.Fatal(err)
		}
		if _, err := as.Dirty(ar); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if err := as.ClearDirty(ar); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]bool{}
	for g := 0; g < 4; g++ {
		a := addr + hostarch.Addr(g*5)*pg
		if _, err := as.CopyOut(ctx, a, []byte{1}, usermem.IOOpts{}); err != nil {
			t.Fatal(err)
		}
		want[uint64(a)/pg] = true
	}
	if d, err := as.Dirty(ar); err != nil || !sameRanges(d, pageRanges(want)) {
		t.Fatalf("Dirty = %v, %v; want %v", d, err, pageRanges(want))
	}
	if err := checkViews(as); err != nil {
		t.Fatal(err)
	}
}

// checkViews is checkHostAccount where the host's mappings are the
// kernel's: under qemu-user (make arm64 sets MMSIM_TEST_EXEC) they are
// qemu's own layout of guest memory, as TestModelHostAccount's skip says.
func checkViews(as *AddressSpace) error {
	if os.Getenv("MMSIM_TEST_EXEC") != "" {
		return nil
	}
	return checkHostAccount(as)
}
