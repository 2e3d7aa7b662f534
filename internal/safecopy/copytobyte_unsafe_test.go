//go:build linux && (amd64 || arm64)

package safecopy

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestCopyToByte compares CopyToByte with bytes.IndexByte and copy() for
// every start offset within a 16-byte block, lengths around the block
// sizes, and the sought byte before, at and after the range's ends (bytes
// outside the range must be neither read as c nor written).
func TestCopyToByte(t *testing.T) {
	withStrategies(t, testCopyToByte)
}

func testCopyToByte(t *testing.T) {
	r := mapRegion(t, 1)
	src := r.b[:256]
	dst := make([]byte, 300)
	for off := 0; off < 40; off++ {
		for n := 0; n <= 140; n++ {
			for _, at := range []int{-2, -1, 0, 1, n / 2, n - 1, n, n + 1} {
				for i := range src {
					src[i] = byte('a' + i%26)
				}
				if at >= -1 && off+at >= 0 {
					src[off+at] = 0
				}
				for i := range dst {
					dst[i] = '#'
				}
				want := bytes.IndexByte(src[off:off+n], 0)
				if want < 0 {
					want = n
				}
				got, sig := CopyToByte(unsafe.Pointer(&dst[10]), unsafe.Pointer(&src[off]), uintptr(n), 0)
				if sig != 0 || got != uintptr(want) {
					t.Fatalf("off %d n %d NUL at %d: CopyToByte = %d, sig %d; want %d", off, n, at, got, sig, want)
				}
				if !bytes.Equal(dst[10:10+want], src[off:off+want]) {
					t.Fatalf("off %d n %d: copied %q, want %q", off, n, dst[10:10+want], src[off:off+want])
				}
				if !bytes.Equal(dst[:10], bytes.Repeat([]byte("#"), 10)) || !bytes.Equal(dst[10+n:], bytes.Repeat([]byte("#"), len(dst)-10-n)) {
					t.Fatalf("off %d n %d: wrote outside dst[:n]", off, n)
				}
			}
		}
	}
}

// TestCopyToByteFaults checks that CopyToByte touches only its ranges: a
// source ending at an inaccessible page does not fault, one reaching into
// it does, as does a destination that does.
func TestCopyToByteFaults(t *testing.T) {
	r := mapRegion(t, 2)
	for i := range pageSize {
		r.b[i] = 'y'
	}
	r.protect(t, 1, 1, unix.PROT_NONE)
	boundary := r.addr() + pageSize
	other := mapRegion(t, 1)
	for i := range other.b {
		other.b[i] = 'z'
	}
	for _, tc := range []struct {
		name     string
		dst, src uintptr
		n        uintptr
		wantIdx  uintptr
		wantSig  unix.Signal
	}{
		{"source ends at the bad page", other.addr(), boundary - 100, 100, 100, 0},
		{"source ends at it, 1 byte", other.addr(), boundary - 1, 1, 1, 0},
		{"source ends at it, 17 bytes", other.addr(), boundary - 17, 17, 17, 0},
		{"source reaches 1 byte in", other.addr(), boundary - 100, 101, 0, unix.SIGSEGV},
		{"source reaches 1 byte in, small", other.addr(), boundary - 5, 6, 0, unix.SIGSEGV},
		{"source starts in it", other.addr(), boundary, 1, 0, unix.SIGSEGV},
		{"destination reaches in", boundary - 20, other.addr() + 100, 40, 0, unix.SIGSEGV},
		{"empty at the boundary", other.addr(), boundary, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx, sig := CopyToByte(ptr(tc.dst), ptr(tc.src), tc.n, 0)
			if unix.Signal(sig) != tc.wantSig || (sig == 0 && idx != tc.wantIdx) {
				t.Errorf("CopyToByte = %d, sig %d; want %d, sig %d", idx, sig, tc.wantIdx, tc.wantSig)
			}
		})
	}
	// A NUL before the bad page ends the copy there: a range reaching into
	// the page does not fault.
	r.b[pageSize-50] = 0
	if idx, sig := CopyToByte(ptr(other.addr()), ptr(boundary-100), 200, 0); sig != 0 || idx != 50 {
		t.Errorf("NUL before the bad page: CopyToByte = %d, sig %d; want 50, 0", idx, sig)
	}
}
