package addrspace

import (
	"testing"

	"github.com/mmsim/mmsim/hostarch"
)

// TestDefaultBrkStart: every size New accepts has a default heap start
// inside the space, the smallest (two pages) included.
func TestDefaultBrkStart(t *testing.T) {
	for _, tc := range []struct {
		size uint64
		want hostarch.Addr
	}{
		{2 * pg, MinAddr},
		{8 * pg, MinAddr},
		{15 * pg, MinAddr},
		{16 * pg, 2 * pg},
		{1 << 30, 1 << 27},
		{0, DefaultSize / 8},
	} {
		as, err := New(Options{Size: tc.size})
		if err != nil {
			t.Errorf("New(%#x): %v", tc.size, err)
			continue
		}
		if brk, err := as.Brk(0); brk != tc.want || err != nil {
			t.Errorf("New(%#x): Brk(0) = %#x, %v; want %#x", tc.size, brk, err, tc.want)
		}
		as.Close()
	}
}
