//go:build linux && arm64

package safecopy

import (
	"testing"

	"golang.org/x/sys/unix"
)

// withStrategies runs f once: memcpy and memclr have one strategy on arm64.
func withStrategies(t *testing.T, f func(t *testing.T)) {
	t.Run("default", f)
}

// TestStraddleFaultAddress records what the kernel (or the emulator) reports
// for an access that starts on a good page and ends on a bad one, for each
// access width the routines use, and checks that the wrappers' counts are
// exact regardless: arm64 may report any address inside a faulting access
// that crosses a page, which the wrappers do not rely on.
func TestStraddleFaultAddress(t *testing.T) {
	r := mapRegion(t, 3)
	r.protect(t, 2, 1, unix.PROT_NONE)
	other := mapRegion(t, 1)
	boundary := r.addr() + 2*pageSize
	// memcpy of n bytes starts with one w-byte access at its start: MOVH,
	// MOVW, MOVD, then LDP/STP of a register pair.
	for _, c := range []struct{ w, n uintptr }{{2, 2}, {4, 4}, {8, 8}, {16, 32}, {16, 100}} {
		src := boundary - c.w/2
		lb, f, s := Memcpy(ptr(other.addr()), ptr(src), c.n)
		t.Logf("%2d-byte load at page-%d: reports %s (done >= %d)", c.w, c.w/2, describe(f, boundary), lb)
		if s != int32(unix.SIGSEGV) || f < src || f >= src+c.w {
			t.Errorf("%d-byte straddling load: fault %#x sig %d", c.w, f, s)
		}
		lb, f, s = Memcpy(ptr(src), ptr(other.addr()), c.n)
		t.Logf("%2d-byte store at page-%d: reports %s (done >= %d)", c.w, c.w/2, describe(f, boundary), lb)
		if s != int32(unix.SIGSEGV) || f < src || f >= src+c.w {
			t.Errorf("%d-byte straddling store: fault %#x sig %d", c.w, f, s)
		}
		if done, fault, _ := uCopy(other.addr(), src, c.n); done != c.w/2 || fault != boundary {
			t.Errorf("Copy straddling %d: (%d, %#x)", c.w, done, fault)
		}
		if done, fault, _ := uCopy(src, other.addr(), c.n); done != c.w/2 || fault != boundary {
			t.Errorf("Copy straddling %d into the bad page: (%d, %#x)", c.w, done, fault)
		}
	}
}
