package addrspace

import (
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
)

// viewBytes returns the n bytes of the view at base from simulated address
// start on, as a slice (of memory outside the Go heap).
func viewBytes(base unsafe.Pointer, start, n uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(base, start)), n)
}

// GuestAddr returns the guest address that host address hostAddr shows in
// the app view (the view a Translation's Mem lies in), and whether
// hostAddr lies in it at all: for the address of a fault that a direct
// access raised (see ResolveFault). It is valid after Close too, while the
// AddressSpace is reachable.
func (as *AddressSpace) GuestAddr(hostAddr uintptr) (hostarch.Addr, bool) {
	off := hostAddr - uintptr(as.appBase)
	if uint64(off) >= as.size {
		return 0, false
	}
	return hostarch.Addr(off), true
}
