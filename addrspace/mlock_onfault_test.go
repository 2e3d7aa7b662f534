package addrspace

import (
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestLockOnFaultHugeMapping: locking a huge mapping on fault populates
// nothing, so it costs the same however large the mapping is. Mlock with
// onFault, Mlockall(MCL_CURRENT|MCL_ONFAULT), Mmap under
// Mlockall(MCL_FUTURE|MCL_ONFAULT) and Mlockall(MCL_CURRENT) of a
// PROT_NONE mapping walked the mapping 4 MiB at a time, taking the lock
// each time (a guest's 2^45-byte mapping: seconds; a larger space's: no
// end). The test counts the lock holds (2,048 for this mapping before),
// not the time.
func TestLockOnFaultHugeMapping(t *testing.T) {
	const length = 1 << 33
	cases := []struct {
		name string
		call func(as *AddressSpace, a hostarch.Addr) error
		// perms of the mapping; locked and onFault are what it must be
		// after the call.
		perms           hostarch.AccessType
		locked, onFault bool
	}{
		{"Mlock on fault", func(as *AddressSpace, a hostarch.Addr) error { return as.Mlock(a, length, true) }, hostarch.ReadWrite, true, true},
		{"Mlockall(MCL_CURRENT|MCL_ONFAULT)", func(as *AddressSpace, a hostarch.Addr) error {
			return as.Mlockall(unix.MCL_CURRENT | unix.MCL_ONFAULT)
		}, hostarch.ReadWrite, true, true},
		{"Mlockall(MCL_CURRENT) of PROT_NONE", func(as *AddressSpace, a hostarch.Addr) error {
			return as.Mlockall(unix.MCL_CURRENT)
		}, hostarch.NoAccess, true, false},
		{"Mmap under MCL_FUTURE|MCL_ONFAULT", func(as *AddressSpace, a hostarch.Addr) error {
			if err := as.Munmap(a, length); err != nil {
				return err
			}
			if err := as.Mlockall(unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
				return err
			}
			_, err := as.Mmap(MmapOpts{Addr: a, Length: length, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
			return err
		}, hostarch.ReadWrite, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			as := newAS(t, 1<<34)
			a := mustMmap(t, as, MmapOpts{Addr: lockBase, Length: length, Fixed: true, Perms: c.perms, Private: true})
			before := as.populateHolds
			if err := c.call(as, a); err != nil {
				t.Fatal(err)
			}
			if holds := as.populateHolds - before; holds > 2 { // the mapping, and the hole after it
				t.Fatalf("%s of a 2^33-byte mapping took the lock %d times to populate nothing", c.name, holds)
			}
			m, _ := lockLookup(as, a+length-pg)
			if m.Locked != c.locked || m.LockOnFault != c.onFault || m.Range.Start != a || m.Range.End != a+length {
				t.Fatalf("after %s: %+v", c.name, m)
			}
			if res, _ := as.Mincore(a+length-pg, pg); res[0] {
				t.Fatalf("after %s, the last page is resident", c.name)
			}
		})
	}
}
