package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
)

// checkRefs verifies that the memory file's reference counts equal the
// number of pages of the family's address spaces that refer to each
// memory-file page, and that it has exactly those pages allocated.
func checkRefs(fam []*AddressSpace) error {
	if len(fam) == 0 {
		return nil
	}
	count := map[uint64]int{}
	for _, as := range fam {
		as.mu.Lock()
		as.vmas.Ascend(func(v *vma) bool {
			add := func(off, length uint64) {
				for p := off; p < off+length; p += hostarch.PageSize {
					count[p]++
				}
			}
			as.pt.Owned(uint64(v.start), uint64(v.end), add)
			return true
		})
		as.mu.Unlock()
	}
	mem := fam[0].mem
	for off, n := range count {
		if got := mem.Refs(off); got != n {
			return fmt.Errorf("memory-file page %#x: %d references, %d pages refer to it", off, got, n)
		}
	}
	if got, want := mem.InUse(), uint64(len(count))*hostarch.PageSize; got != want {
		return fmt.Errorf("memory file has %#x bytes allocated, the spaces use %#x", got, want)
	}
	return nil
}
