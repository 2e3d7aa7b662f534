package addrspace

import "github.com/mmsim/mmsim/hostarch"

// clearDirtyAll starts dirty tracking of every mapped page afresh, for
// the next incremental Save (ClearDirty over the whole space).
//
// Preconditions: as.activeMu and as.mu are held.
func (as *AddressSpace) clearDirtyAll() error {
	as.vmas.Ascend(func(v *vma) bool {
		as.pt.ClearDirty(uint64(v.start), uint64(v.end))
		return true
	})
	return nil
}

// dirtyLocked returns the pages of ar, part of one mapping, written or
// changed since clearDirtyAll (Dirty without the locking), sorted and
// merged.
//
// Preconditions: as.mu is held; ar lies inside one VMA.
func (as *AddressSpace) dirtyLocked(ar hostarch.AddrRange) ([]hostarch.AddrRange, error) {
	var out []hostarch.AddrRange
	cur := ar.Start
	as.pt.Clean(uint64(ar.Start), uint64(ar.End), func(s, e uint64) {
		if hostarch.Addr(s) > cur {
			out = append(out, hostarch.AddrRange{Start: cur, End: hostarch.Addr(s)})
		}
		cur = hostarch.Addr(e)
	})
	if cur < ar.End {
		out = append(out, hostarch.AddrRange{Start: cur, End: ar.End})
	}
	return out, nil
}
