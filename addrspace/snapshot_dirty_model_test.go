package addrspace

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// TestModelDirty runs random mapping changes, ClearDirty calls and writes
// through every write path (at random places, partly failing where
// protections or holes stop them) and compares Dirty over the whole space
// with a model: a mapped page is dirty unless cleared and neither written
// (by the bytes a write reports it wrote) nor re-backed since.
func TestModelDirty(t *testing.T) {
	ops := 3000
	if testing.Short() {
		ops = 800
	}
	for seed := int64(1); seed <= 2; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { modelDirtyRun(t, seed, ops) })
	}
}

func modelDirtyRun(t *testing.T, seed int64, ops int) {
	const pages = 64
	size := uint64(pages * pg)
	as, err := New(Options{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	// ctl gets the same operations but ClearDirty: every call must return
	// the same in both (tracking changes no result).
	ctl, err := New(Options{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(seed))
	mapped := map[uint64]bool{}  // page number -> mapped
	private := map[uint64]bool{} // page number -> private mapping
	clean := map[uint64]bool{}   // page number -> clean
	all := hostarch.AddrRange{Start: 0, End: hostarch.Addr(size)}
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		if len(log) > 20 {
			log = log[len(log)-20:]
		}
		t.Fatalf("after %v: %s", log, fmt.Sprintf(format, args...))
	}
	wrote := func(addr hostarch.Addr, n int) {
		if n <= 0 {
			return
		}
		for p := uint64(addr) / pg; p <= (uint64(addr)+uint64(n)-1)/pg; p++ {
			delete(clean, p)
		}
	}
	for i := 0; i < ops; i++ {
		switch k := rng.Intn(20); {
		case k < 3: // Mmap, fixed, of a random kind
			p := uint64(1 + rng.Intn(pages-4))
			n := uint64(1 + rng.Intn(4))
			n = min(n, pages-p)
			o := MmapOpts{Addr: hostarch.Addr(p * pg), Fixed: true, Length: n * pg, Perms: hostarch.AccessType{Read: rng.Intn(4) != 0, Write: rng.Intn(4) != 0}, Private: rng.Intn(3) != 0}
			if rng.Intn(3) == 0 {
				o.File, o.Offset = f, uint64(rng.Intn(pages-4))*pg
			}
			log = append(log, fmt.Sprintf("Mmap(%+v)", o))
			if _, err := as.Mmap(o); err != nil {
				fail("Mmap: %v", err)
			}
			if _, err := ctl.Mmap(o); err != nil {
				fail("Mmap: %v", err)
			}
			for q := p; q < p+n; q++ {
				mapped[q], private[q] = true, o.Private
				delete(clean, q)
			}
		case k < 4: // Munmap
			p := uint64(1 + rng.Intn(pages-2))
			n := min(uint64(1+rng.Intn(3)), pages-p)
			log = append(log, fmt.Sprintf("Munmap(%#x, %d pages)", p*pg, n))
			if err := as.Munmap(hostarch.Addr(p*pg), n*pg); err != nil {
				fail("Munmap: %v", err)
			}
			ctl.Munmap(hostarch.Addr(p*pg), n*pg)
			for q := p; q < p+n; q++ {
				delete(mapped, q)
				delete(clean, q)
			}
		case k < 5: // Mprotect (keeps pages clean)
			p := uint64(1 + rng.Intn(pages-2))
			perms := hostarch.AccessType{Read: rng.Intn(2) == 0, Write: rng.Intn(2) == 0}
			log = append(log, fmt.Sprintf("Mprotect(%#x, %v)", p*pg, perms))
			if e1, e2 := as.Mprotect(hostarch.Addr(p*pg), pg, perms), ctl.Mprotect(hostarch.Addr(p*pg), pg, perms); errnoOf(e1) != errnoOf(e2) {
				fail("Mprotect = %v, control %v", e1, e2)
			}
		case k < 6: // MADV_DONTNEED of one mapped page
			p := uint64(1 + rng.Intn(pages-2))
			if !mapped[p] {
				continue
			}
			log = append(log, fmt.Sprintf("DONTNEED(%#x)", p*pg))
			if err := as.Madvise(hostarch.Addr(p*pg), pg, unix.MADV_DONTNEED); err != nil {
				fail("Madvise: %v", err)
			}
			ctl.Madvise(hostarch.Addr(p*pg), pg, unix.MADV_DONTNEED)
			if private[p] {
				delete(clean, p)
			}
		case k < 8: // ClearDirty of a random range
			s := uint64(rng.Intn(pages))
			e := s + uint64(rng.Intn(int(pages-s)+1))
			log = append(log, fmt.Sprintf("ClearDirty(%#x, %#x)", s*pg, e*pg))
			if err := as.ClearDirty(hostarch.AddrRange{Start: hostarch.Addr(s * pg), End: hostarch.Addr(e * pg)}); err != nil {
				fail("ClearDirty: %v", err)
			}
			for q := s; q < e; q++ {
				if mapped[q] {
					clean[q] = true
				}
			}
		case k < 9: // reads never dirty
			addr := hostarch.Addr(rng.Intn(int(size) - 64))
			as.CopyIn(context.Background(), addr, make([]byte, 1+rng.Intn(64)), usermem.IOOpts{IgnorePermissions: rng.Intn(2) == 0})
		default: // a write through a random path
			wp := writePaths[rng.Intn(len(writePaths))]
			n := 1 + rng.Intn(3*pg)
			if wp.name == "SwapUint32" || wp.name == "CompareAndSwapUint32" {
				n = 4
			}
			addr := hostarch.Addr(rng.Intn(int(size) - n))
			if n == 4 {
				addr &^= 3
			}
			got, err := wp.write(as, addr, n, byte(i))
			log = append(log, fmt.Sprintf("%s(%#x, %d) = %d, %v", wp.name, addr, n, got, err))
			if (got < n) != (err != nil) {
				fail("%s(%#x, %d) = %d, %v", wp.name, addr, n, got, err)
			}
			if cgot, cerr := wp.write(ctl, addr, n, byte(i)); cgot != got || errnoOf(cerr) != errnoOf(err) {
				fail("%s(%#x, %d) = %d, %v; the untracked control: %d, %v", wp.name, addr, n, got, err, cgot, cerr)
			}
			if n == 4 && got == 4 {
				wrote(addr&^3, 4)
			} else {
				wrote(addr, got)
			}
		}
		if rng.Intn(4) == 0 || i == ops-1 {
			want := map[uint64]bool{}
			for p := range mapped {
				if !clean[p] {
					want[p] = true
				}
			}
			d, err := as.Dirty(all)
			if err != nil || !sameRanges(d, pageRanges(want)) {
				fail("Dirty = %v, %v; want %v", d, err, pageRanges(want))
			}
		}
	}
	if err := checkViews(as); err != nil {
		t.Fatal(err)
	}
}
