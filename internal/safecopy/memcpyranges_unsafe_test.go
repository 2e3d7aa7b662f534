//go:build linux && (amd64 || arm64)

package safecopy

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rng is a hostarch.AddrRange's layout, as MemcpyRanges reads it.
type rng struct{ start, end uintptr }

// TestMemcpyRanges copies ranges of every size from 1 to VecMax, at
// offsets that vary within a 16-byte block, in both directions and in
// batches of several sizes, and compares with what copy() gives (bytes
// between the ranges included).
func TestMemcpyRanges(t *testing.T) {
	mem := mapRegion(t, 2)
	var ranges []rng
	total, at := 0, uintptr(3)
	for n := uintptr(1); n <= VecMax; n++ {
		ranges = append(ranges, rng{at, at + n})
		total += int(n)
		at += n + n%5
	}
	base := unsafe.Pointer(&mem.b[0])
	for _, out := range []bool{false, true} {
		for _, batch := range []int{1, 2, 16, len(ranges)} {
			for i := range mem.b {
				mem.b[i] = byte(i*7 + i>>8)
			}
			buf := make([]byte, total)
			for i := range buf {
				buf[i] = byte(200 - i)
			}
			wantMem := append([]byte(nil), mem.b...)
			wantBuf := append([]byte(nil), buf...)
			off := 0
			for _, r := range ranges {
				n := int(r.end - r.start)
				if out {
					copy(wantMem[r.start:r.end], wantBuf[off:off+n])
				} else {
					copy(wantBuf[off:off+n], wantMem[r.start:r.end])
				}
				off += n
			}
			off = 0
			for i := 0; i < len(ranges); i += batch {
				k := min(batch, len(ranges)-i)
				done, _, sig := MemcpyRanges(unsafe.Pointer(&buf[off]), base, unsafe.Pointer(&ranges[i]), uintptr(k), out)
				if sig != 0 || done != uintptr(k) {
					t.Fatalf("out %v batch %d at %d: MemcpyRanges = %d, sig %d; want %d, 0", out, batch, i, done, sig, k)
				}
				for _, r := range ranges[i : i+k] {
					off += int(r.end - r.start)
				}
			}
			if !bytes.Equal(buf, wantBuf) || !bytes.Equal(mem.b, wantMem) {
				t.Fatalf("out %v batch %d: bytes differ from copy()'s", out, batch)
			}
		}
	}
	if done, _, sig := MemcpyRanges(nil, base, unsafe.Pointer(&ranges[0]), 0, false); done != 0 || sig != 0 {
		t.Errorf("MemcpyRanges of no ranges = %d, sig %d", done, sig)
	}
}

// TestMemcpyRangesFault puts the fourth of five ranges across the start of
// an inaccessible page, for each direction and size: MemcpyRanges reports
// that range's index and an address in the page, and the ranges before it
// are complete.
func TestMemcpyRangesFault(t *testing.T) {
	r := mapRegion(t, 2)
	r.protect(t, 1, 1, unix.PROT_NONE)
	base := unsafe.Pointer(&r.b[0])
	for i := range pageSize {
		r.b[i] = byte(i)
	}
	for _, out := range []bool{false, true} {
		for _, n := range []uintptr{1, 3, 8, 13, 16, 31, 32, 64} {
			ranges := make([]rng, 5)
			for i := range ranges {
				ranges[i] = rng{uintptr(i) * 100, uintptr(i)*100 + n}
			}
			ranges[3] = rng{pageSize - n/2, pageSize - n/2 + n}
			buf := make([]byte, 5*n)
			for i := range buf {
				buf[i] = 0xee
			}
			done, fault, sig := MemcpyRanges(unsafe.Pointer(&buf[0]), base, unsafe.Pointer(&ranges[0]), 5, out)
			bad := r.addr() + pageSize
			if done != 3 || unix.Signal(sig) != unix.SIGSEGV || fault < bad || fault >= bad+pageSize {
				t.Errorf("out %v n %d: MemcpyRanges = %d, %#x, sig %d; want 3, an address in [%#x, +page), SIGSEGV", out, n, done, fault, sig, bad)
			}
			for i := range 3 {
				got, want := buf[uintptr(i)*n:uintptr(i+1)*n], r.b[i*100:uintptr(i*100)+n]
				if !bytes.Equal(got, want) {
					t.Errorf("out %v n %d: range %d not copied", out, n, i)
				}
			}
		}
	}
}
