//go:build linux && (amd64 || arm64)

package safecopy

import "testing"

func TestAccessesInPage(t *testing.T) {
	const p = 0x10000 // a page boundary, pages of 4 KiB, accesses of 16 bytes
	tests := []struct {
		addr, lo, hi uintptr
		want         bool
	}{
		{p, p, p + 8, true},            // the first byte of a copy that starts a page
		{p, p - 8, p + 8, false},       // an access from the page below may contain it
		{p + 14, p - 8, p + 64, false}, // so may one starting at p-1
		{p + 15, p - 8, p + 64, true},  // none starting below p reaches it
		{p - 1, p - 64, p + 64, false}, // an access containing it may cross
		{p - 16, p - 64, p + 64, true}, // ends at p at most
		{p - 15, p - 64, p + 64, false},
		{p - 1, p - 64, p, true},     // the range ends at the boundary
		{p + 100, p, p + 200, true},  // well inside
		{p + 300, p, p + 200, false}, // outside [lo, hi)
		{p - 1, p, p + 200, false},
	}
	for _, tc := range tests {
		if got := accessesInPage(tc.addr, tc.lo, tc.hi, 16, 4096); got != tc.want {
			t.Errorf("accessesInPage(%#x, [%#x, %#x)) = %v, want %v", tc.addr, tc.lo, tc.hi, got, tc.want)
		}
	}
}
