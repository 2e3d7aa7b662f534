//go:build linux && (amd64 || arm64)

package safecopy

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestIndexByteRaw compares IndexByteRaw with bytes.IndexByte for every
// start offset within a 16-byte block, lengths around the block sizes, and
// the sought byte before, at and after the range's ends (bytes outside the
// range must not count).
func TestIndexByteRaw(t *testing.T) {
	withStrategies(t, testIndexByteRaw)
}

func testIndexByteRaw(t *testing.T) {
	r := mapRegion(t, 1)
	b := r.b[:256]
	for off := 0; off < 48; off++ {
		for n := 0; n <= 140; n++ {
			for _, at := range []int{-2, -1, 0, 1, n / 2, n - 1, n, n + 1} {
				for i := range b {
					b[i] = 'x'
				}
				if at >= -1 && off+at >= 0 {
					b[off+at] = 0
				}
				want := bytes.IndexByte(b[off:off+n], 0)
				if want < 0 {
					want = n
				}
				got, sig := IndexByteRaw(unsafe.Pointer(&b[off]), uintptr(n), 0)
				if sig != 0 || got != uintptr(want) {
					t.Fatalf("off %d n %d NUL at %d: IndexByteRaw = %d, sig %d; want %d", off, n, at, got, sig, want)
				}
			}
		}
	}
}

// TestIndexByteRawPages checks that IndexByteRaw touches exactly the pages
// its range overlaps: a range ending at an inaccessible page does not fault,
// one reaching into it does, and one starting in it does at once.
func TestIndexByteRawPages(t *testing.T) {
	r := mapRegion(t, 2)
	for i := range pageSize {
		r.b[i] = 'y'
	}
	r.protect(t, 1, 1, unix.PROT_NONE)
	boundary := r.addr() + pageSize
	for _, tc := range []struct {
		name    string
		start   uintptr
		n       uintptr
		wantIdx uintptr
		wantSig unix.Signal
	}{
		{"ends at the bad page", boundary - 100, 100, 100, 0},
		{"ends at the bad page, 1 byte", boundary - 1, 1, 1, 0},
		{"ends at the bad page, unaligned 17", boundary - 17, 17, 17, 0},
		{"reaches 1 byte into it", boundary - 100, 101, 0, unix.SIGSEGV},
		{"starts in it", boundary, 1, 0, unix.SIGSEGV},
		{"starts mid-block in it", boundary + 5, 30, 0, unix.SIGSEGV},
		{"empty at the boundary", boundary, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx, sig := IndexByteRaw(ptr(tc.start), tc.n, 0)
			if unix.Signal(sig) != tc.wantSig || (sig == 0 && idx != tc.wantIdx) {
				t.Errorf("IndexByteRaw(page-%d, %d) = %d, sig %d; want %d, sig %d", boundary-tc.start, tc.n, idx, sig, tc.wantIdx, tc.wantSig)
			}
		})
	}
	// A NUL before the bad page ends the scan there: a range reaching into
	// the page does not fault.
	r.b[pageSize-50] = 0
	if idx, sig := IndexByteRaw(ptr(boundary-100), 200, 0); sig != 0 || idx != 50 {
		t.Errorf("NUL before the bad page: IndexByteRaw = %d, sig %d; want 50, 0", idx, sig)
	}
}
