package addrspace

import (
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestLockedGrowthPopulatesOutsideLock: growing a locked mapping (Mremap)
// or the heap under Mlockall(MCL_FUTURE) (Brk) populates the new pages, as
// Linux does, but as Linux's mm_populate runs after mmap_write_unlock, the
// address space's lock is not held for the whole populate, whose size the
// guest chooses: it is taken a chunk at a time, so another goroutine's Mmap
// is not held up for the whole populate.
func TestLockedGrowthPopulatesOutsideLock(t *testing.T) {
	const grow = 512 << 20
	cases := []struct {
		name string
		// setup returns the call that grows by grow bytes, and the range it
		// must have populated.
		setup func(t *testing.T, as *AddressSpace) (func() error, hostarch.AddrRange)
	}{
		{"Mremap in place", func(t *testing.T, as *AddressSpace) (func() error, hostarch.AddrRange) {
			a := mustMmap(t, as, MmapOpts{Length: 2*grow + pg, Perms: hostarch.ReadWrite, Private: true})
			if err := as.Munmap(a+pg, 2*grow); err != nil {
				t.Fatal(err)
			}
			if err := as.Mlock(a, pg, false); err != nil {
				t.Fatal(err)
			}
			return func() error {
				_, err := as.Mremap(a, pg, pg+grow, 0, 0)
				return err
			}, hostarch.AddrRange{Start: a + pg, End: a + pg + grow}
		}},
		{"Mremap moving", func(t *testing.T, as *AddressSpace) (func() error, hostarch.AddrRange) {
			a := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true})
			if err := as.Munmap(a+pg, pg); err != nil {
				t.Fatal(err)
			}
			mustMmap(t, as, MmapOpts{Addr: a + pg, Fixed: true, Length: pg, Perms: hostarch.Read, Private: true})
			if err := as.Mlock(a, pg, false); err != nil {
				t.Fatal(err)
			}
			var got hostarch.Addr
			call := func() error {
				var err error
				got, err = as.Mremap(a, pg, pg+grow, unix.MREMAP_MAYMOVE, 0)
				return err
			}
			return func() error {
				err := call()
				if err == nil && got == a {
					t.Errorf("Mremap did not move")
				}
				return err
			}, hostarch.AddrRange{}
		}},
		{"Brk under MCL_FUTURE", func(t *testing.T, as *AddressSpace) (func() error, hostarch.AddrRange) {
			b, _ := as.Brk(0)
			if err := as.Mlockall(unix.MCL_FUTURE); err != nil {
				t.Fatal(err)
			}
			return func() error {
				_, err := as.Brk(b + grow)
				return err
			}, hostarch.AddrRange{Start: b, End: b + grow}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			as, err := New(Options{Size: 4 << 30})
			if err != nil {
				t.Fatal(err)
			}
			defer as.Close()
			call, want := c.setup(t, as)
			before := as.populateHolds
			if err := call(); err != nil {
				t.Fatal(err)
			}
			// The lock was taken once for each 4 MiB populated, not held
			// through the whole growth (counted, not timed: the machines
			// are shared).
			if holds := as.populateHolds - before; want.Length() > 0 && holds < grow/(4<<20) {
				t.Errorf("populating %d MiB took the lock %d times, want at least %d", grow>>20, holds, grow/(4<<20))
			}
			if os.Getenv("MMSIM_TEST_EXEC") != "" {
				return // qemu-user ignores MADV_POPULATE_*: see TestMmapPopulate
			}
			if want.Length() > 0 {
				vec := make([]byte, want.Length()/pg)
				if err := as.MincoreInto(want.Start, uint64(want.Length()), vec); err != nil {
					t.Fatal(err)
				}
				for i, v := range vec {
					if v&1 == 0 {
						t.Fatalf("page %#x of the growth is not resident", want.Start+hostarch.Addr(i)*pg)
					}
				}
			}
		})
	}
}
