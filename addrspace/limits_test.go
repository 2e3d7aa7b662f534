package addrspace

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestLimitsExhausted checks each limit: the call that would cross it fails
// with Linux's errno and changes no mapping or byte, the calls within it
// succeed, and the space works afterwards.
func TestLimitsExhausted(t *testing.T) {
	const base = hostarch.Addr(0x100_0000)
	rw := hostarch.ReadWrite
	for _, tc := range []struct {
		name   string
		limits Limits
		// setup maps what the space holds (8 private writable pages at
		// base, unless it says otherwise).
		setup func(t *testing.T, as *AddressSpace)
		op    func(as *AddressSpace) error
		want  unix.Errno
	}{
		{"AS: Mmap within", Limits{AS: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Length: 2 * pg, Perms: rw, Private: true})
			return err
		}, 0},
		{"AS: Mmap beyond", Limits{AS: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Length: 3 * pg, Perms: hostarch.Read})
			return err
		}, unix.ENOMEM},
		{"AS: AS rounds down to pages", Limits{AS: 11*pg - 1}, nil, func(as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Length: 3 * pg, Perms: hostarch.Read})
			return err
		}, unix.ENOMEM},
		{"AS: fixed Mmap counts what it replaces", Limits{AS: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Addr: base + 4*pg, Length: 6 * pg, Fixed: true, Perms: hostarch.Read, Private: true})
			return err
		}, 0},
		{"AS: fixed Mmap beyond", Limits{AS: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Addr: base + 4*pg, Length: 7 * pg, Fixed: true, Perms: hostarch.Read, Private: true})
			return err
		}, unix.ENOMEM},
		{"AS: Mremap growth beyond", Limits{AS: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mremap(base, 8*pg, 11*pg, unix.MREMAP_MAYMOVE, 0)
			return err
		}, unix.ENOMEM},
		{"AS: Mremap growth within", Limits{AS: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mremap(base, 8*pg, 10*pg, unix.MREMAP_MAYMOVE, 0)
			return err
		}, 0},
		{"AS: Mremap FIXED growth beyond unmaps nothing", Limits{AS: 10 * pg}, func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: base, Length: 8 * pg, Fixed: true, Perms: rw, Private: true})
			mustMmap(t, as, MmapOpts{Addr: base + 20*pg, Length: pg, Fixed: true, Perms: rw, Private: true})
		}, func(as *AddressSpace) error {
			_, err := as.Mremap(base, 8*pg, 11*pg, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, base+20*pg)
			return err
		}, unix.ENOMEM},
		{"AS: Brk beyond", Limits{AS: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Brk(as.brkStart + 3*pg)
			return err
		}, unix.ENOMEM},
		{"AS: Brk within", Limits{AS: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Brk(as.brkStart + 2*pg)
			return err
		}, 0},
		{"Data: private writable Mmap beyond", Limits{Data: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Length: 3 * pg, Perms: rw, Private: true})
			return err
		}, unix.ENOMEM},
		{"Data: shared writable Mmap does not count", Limits{Data: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Length: 30 * pg, Perms: rw})
			return err
		}, 0},
		{"Data: read-only private Mmap does not count", Limits{Data: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Length: 30 * pg, Perms: hostarch.Read, Private: true})
			return err
		}, 0},
		{"Data: a stack does not count", Limits{Data: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Length: 30 * pg, Perms: rw, Private: true, GrowsDown: true})
			return err
		}, 0},
		{"Data: Mprotect making private memory writable beyond", Limits{Data: 10 * pg}, func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: base, Length: 8 * pg, Fixed: true, Perms: rw, Private: true})
			mustMmap(t, as, MmapOpts{Addr: base + 10*pg, Length: 3 * pg, Fixed: true, Perms: hostarch.Read, Private: true})
		}, func(as *AddressSpace) error {
			return as.Mprotect(base+10*pg, 3*pg, rw)
		}, unix.ENOMEM},
		{"Data: Mprotect within", Limits{Data: 10 * pg}, func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: base, Length: 8 * pg, Fixed: true, Perms: rw, Private: true})
			mustMmap(t, as, MmapOpts{Addr: base + 10*pg, Length: 3 * pg, Fixed: true, Perms: hostarch.Read, Private: true})
		}, func(as *AddressSpace) error {
			return as.Mprotect(base+10*pg, 2*pg, rw)
		}, 0},
		{"Data: Mprotect of a shared mapping does not count", Limits{Data: 10 * pg}, func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: base, Length: 8 * pg, Fixed: true, Perms: rw, Private: true})
			mustMmap(t, as, MmapOpts{Addr: base + 10*pg, Length: 3 * pg, Fixed: true, Perms: hostarch.Read})
		}, func(as *AddressSpace) error {
			return as.Mprotect(base+10*pg, 3*pg, rw)
		}, 0},
		{"Data: Mremap growth beyond", Limits{Data: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Mremap(base, 8*pg, 11*pg, unix.MREMAP_MAYMOVE, 0)
			return err
		}, unix.ENOMEM},
		{"Data: Brk beyond the heap's own limit", Limits{Data: 2 * pg}, func(t *testing.T, as *AddressSpace) {}, func(as *AddressSpace) error {
			_, err := as.Brk(as.brkStart + 2*pg + 1)
			return err
		}, unix.ENOMEM},
		{"Data: Brk beyond with the other data", Limits{Data: 10 * pg}, nil, func(as *AddressSpace) error {
			_, err := as.Brk(as.brkStart + 3*pg)
			return err
		}, unix.ENOMEM},
		{"Memlock: Mremap growth of a locked mapping beyond", Limits{Memlock: 9 * pg}, func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: base, Length: 8 * pg, Fixed: true, Perms: rw, Private: true, Locked: true})
		}, func(as *AddressSpace) error {
			_, err := as.Mremap(base, 8*pg, 10*pg, unix.MREMAP_MAYMOVE, 0)
			return err
		}, unix.EAGAIN},
		{"Memlock: Mremap growth of a locked mapping within", Limits{Memlock: 10 * pg}, func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: base, Length: 8 * pg, Fixed: true, Perms: rw, Private: true, Locked: true})
		}, func(as *AddressSpace) error {
			a, err := as.Mremap(base, 8*pg, 10*pg, unix.MREMAP_MAYMOVE, 0)
			if err != nil {
				return err
			}
			// The new pages are locked and resident, as Linux populates them.
			res, _ := as.Mincore(a, 10*pg)
			for i, r := range res {
				if !r && hostPopulates() {
					return fmt.Errorf("page %d of the grown locked mapping is not resident", i)
				}
			}
			return nil
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as, err := New(Options{Size: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			defer as.Close()
			if tc.setup != nil {
				tc.setup(t, as)
			} else {
				mustMmap(t, as, MmapOpts{Addr: base, Length: 8 * pg, Fixed: true, Perms: rw, Private: true})
			}
			if ms := as.Mappings(); len(ms) > 0 {
				writeAt(t, as, ms[0].Range.Start, "data")
			}
			// Limits set after the setup, below what it uses if need be.
			if err := as.SetLimits(tc.limits); err != nil {
				t.Fatal(err)
			}
			if as.Limits() != tc.limits {
				t.Fatalf("Limits() = %+v", as.Limits())
			}
			before := snapshot(t, as)
			err = tc.op(as)
			if errnoOf(err) != tc.want {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want != 0 {
				if after := snapshot(t, as); after != before {
					t.Fatalf("a failed call changed the space:\n%s\nwas\n%s", after, before)
				}
			}
			// Healthy afterwards: raise the limits, map and use a page.
			if err := as.SetLimits(Limits{}); err != nil {
				t.Fatal(err)
			}
			a := mustMmap(t, as, MmapOpts{Length: pg, Perms: rw, Private: true})
			writeAt(t, as, a, "ok")
			if got := string(readAt(t, as, a, 2)); got != "ok" {
				t.Fatalf("afterwards a new page reads %q", got)
			}
		})
	}
}

// TestSetLimitsBelowUsage checks setrlimit's rule: a limit below what the
// space uses is accepted, nothing is taken away, and only further use
// fails; Options.Limits starts a space with limits.
func TestSetLimitsBelowUsage(t *testing.T) {
	lim := Limits{AS: 4 * pg, Data: 4 * pg, Stack: 4 * pg, Memlock: 4 * pg}
	as, err := New(Options{Size: 1 << 30, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	if as.Limits() != lim {
		t.Fatalf("Limits() = %+v, want %+v", as.Limits(), lim)
	}
	if err := as.SetLimits(Limits{}); err != nil {
		t.Fatal(err)
	}
	a := mustMmap(t, as, MmapOpts{Length: 8 * pg, Perms: hostarch.ReadWrite, Private: true, Locked: true})
	if err := as.SetLimits(lim); err != nil {
		t.Fatalf("SetLimits below usage: %v", err)
	}
	if m, _ := lockLookup(as, a); !m.Locked || m.Range.Length() != 8*pg {
		t.Fatalf("lowering the limits changed the mapping: %+v", m)
	}
	for name, op := range map[string]func() error{
		"Mmap":    func() error { _, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.Read}); return err },
		"Mlock":   func() error { return as.Mlock(a, pg, false) },
		"Munlock": func() error { return as.Munlock(a, pg) },
	} {
		err := op()
		if name == "Munlock" {
			// Unlocking needs no room.
			if err != nil {
				t.Fatalf("Munlock under a lowered limit: %v", err)
			}
			continue
		}
		if !errors.Is(err, unix.ENOMEM) {
			t.Fatalf("%s under a lowered limit = %v, want ENOMEM", name, err)
		}
	}
	if as.Close() != nil || !errors.Is(as.SetLimits(lim), ErrClosed) || as.Limits() != (Limits{}) {
		t.Fatal("SetLimits or Limits after Close")
	}
}

// TestGrowsDownRace grows one stack from many goroutines at once, each
// writing its own page below it, under -race: every write lands and the
// stack ends up one mapping over all of them.
func TestGrowsDownRace(t *testing.T) {
	as := newAS(t, 1<<30)
	newStack(t, as, MmapOpts{})
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := stackTop - hostarch.Addr((5+i)*pg)
			if _, err := as.CopyOut(ctx, a, []byte{byte(i + 1)}, noOpt); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ms := as.Mappings()
	if len(ms) != 1 || ms[0].Range.Start != stackTop-(5+n-1)*pg {
		t.Fatalf("mappings %+v", ms)
	}
	for i := range n {
		if b := readAt(t, as, stackTop-hostarch.Addr((5+i)*pg), 1); b[0] != byte(i+1) {
			t.Fatalf("page %d reads %d", i, b[0])
		}
	}
}

// TestMlockRace runs Mlock, Munlock, Mlockall, Munmap, Mmap and copies
// over the same pages at once under -race: every call returns nil or the
// errno Linux could (ENOMEM for a range unmapped meanwhile, EFAULT for a
// copy of one), and the space stays whole.
func TestMlockRace(t *testing.T) {
	as := newAS(t, 1<<30)
	const base = hostarch.Addr(0x100_0000)
	mustMmap(t, as, MmapOpts{Addr: base, Length: 64 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	allow := func(err error, ok ...unix.Errno) error {
		for _, e := range ok {
			if errors.Is(err, e) {
				return nil
			}
		}
		return err
	}
	run(func(i int) error { return allow(as.Mlock(base+hostarch.Addr(i%60)*pg, 4*pg, i%3 == 0), unix.ENOMEM) })
	run(func(i int) error { return allow(as.Munlock(base+hostarch.Addr(i%50)*pg, 8*pg), unix.ENOMEM) })
	run(func(i int) error {
		if i%2 == 0 {
			return as.Mlockall(unix.MCL_CURRENT | unix.MCL_ONFAULT)
		}
		return as.Munlockall()
	})
	run(func(i int) error {
		a := base + hostarch.Addr(i%64)*pg
		if err := as.Munmap(a, pg); err != nil {
			return err
		}
		_, err := as.Mmap(MmapOpts{Addr: a, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
		return err
	})
	run(func(i int) error {
		_, err := as.CopyOut(ctx, base+hostarch.Addr(i*977%(64*pg)), []byte("abcdefgh"), noOpt)
		return allow(err, unix.EFAULT)
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := as.Munlockall(); err != nil {
		t.Fatal(err)
	}
	// The pages stay mapped, contiguously, unlocked. (They need not be one
	// mapping: a page mapped again between locked neighbours gets an
	// anon_vma of its own, as on Linux, where anon_vma_compatible compares
	// VM_LOCKED.)
	cur := base
	for _, m := range as.Mappings() {
		if m.Range.Start != cur || m.Locked || m.LockOnFault || m.Perms != hostarch.ReadWrite {
			t.Fatalf("after the race: %+v", as.Mappings())
		}
		cur = m.Range.End
	}
	if cur != base+64*pg {
		t.Fatalf("after the race the mappings end at %#x: %+v", cur, as.Mappings())
	}
}

// BenchmarkMmapLimits measures what the limits cost Mmap+Munmap of a page
// in a space of 1,000 mappings: none set (no walk of the mappings), AS set
// (the usage is added up from the mappings on each Mmap), and a locked
// mapping under Memlock (added up too, and the page faulted in).
func BenchmarkMmapLimits(b *testing.B) {
	for _, bc := range []struct {
		name   string
		limits Limits
		locked bool
	}{
		{"limits=none", Limits{}, false},
		{"limits=AS", Limits{AS: 1 << 40}, false},
		{"limits=Memlock,locked", Limits{Memlock: 1 << 40}, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			as := newAS(b, 0)
			for i := range 1000 {
				// Alternate permissions so that they stay 1,000 mappings.
				perms := hostarch.Read
				if i%2 == 0 {
					perms = hostarch.ReadWrite
				}
				if _, err := as.Mmap(MmapOpts{Addr: hostarch.Addr(0x100000 + i*pg), Length: pg, Fixed: true, Perms: perms, Private: true}); err != nil {
					b.Fatal(err)
				}
			}
			if err := as.SetLimits(bc.limits); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				a, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true, Locked: bc.locked})
				if err != nil {
					b.Fatal(err)
				}
				if err := as.Munmap(a, pg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStackGrowth measures a one-byte write to a fresh page: below a
// stack (growing it by a page) against inside a mapping never touched.
func BenchmarkStackGrowth(b *testing.B) {
	for _, grow := range []bool{false, true} {
		b.Run(fmt.Sprintf("grow=%v", grow), func(b *testing.B) {
			as := newAS(b, 0)
			top := hostarch.Addr(DefaultSize - pg)
			n := b.N + 1
			if grow {
				mustMmap(b, as, MmapOpts{Addr: top - pg, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, GrowsDown: true})
			} else {
				mustMmap(b, as, MmapOpts{Addr: top - hostarch.Addr(n)*pg, Length: uint64(n) * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := as.CopyOut(ctx, top-hostarch.Addr(i+2)*pg, []byte{1}, noOpt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
