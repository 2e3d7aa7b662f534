package addrspace

import "github.com/mmsim/mmsim/hostarch"

// clearDirtyAll starts dirty tracking of the whole space afresh, for the
// next incremental Save.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) clearDirtyAll() error { return nil }

// dirtyLocked returns the pages of ar that may have been written since
// clearDirtyAll: without a dirty tracker, all of them (an increment then
// carries every backed page of the mappings it keeps, which is correct
// and as large as a full save).
//
// Preconditions: as.mu is held.
func (as *AddressSpace) dirtyLocked(ar hostarch.AddrRange) ([]hostarch.AddrRange, error) {
	return []hostarch.AddrRange{ar}, nil
}
