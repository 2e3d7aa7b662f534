package addrspace

import (
	"testing"

	"github.com/mmsim/mmsim/hostarch"
)

// TestStatsSparseShared checks Stats' resident bytes over a shared mapping
// far larger than what it holds — a TiB of shared anonymous memory —
// exactly: the pages written, no more. Residency is read only
// where the backing holds data (the holes of a tmpfs object are skipped
// whole), so the call's time, under the mapping lock, follows the data and
// not the mapping's size (2.5 s for the TiB before, measured by FuzzHostile).
func TestStatsSparseShared(t *testing.T) {
	as := newAS(t, 1<<42)
	shm := mustMmap(t, as, MmapOpts{Length: 1 << 40, Perms: hostarch.ReadWrite})
	written := map[hostarch.Addr]bool{}
	for _, a := range []hostarch.Addr{shm, shm + 1<<39, shm + 1<<40 - pg} {
		if _, err := as.CopyOut(ctx, a, []byte{1}, noOpt); err != nil {
			t.Fatal(err)
		}
		written[a] = true
	}
	st := mustStats(t, as)
	if st.ResidentBytes != uint64(len(written))*pg {
		t.Errorf("ResidentBytes = %d pages, want %d", st.ResidentBytes/pg, len(written))
	}
	if st.MappedBytes != 1<<40 {
		t.Errorf("MappedBytes = %#x", st.MappedBytes)
	}
}
