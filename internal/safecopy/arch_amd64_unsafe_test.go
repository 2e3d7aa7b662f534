//go:build linux && amd64

package safecopy

import (
	"testing"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
)

// strategy forces one of memcpy's and memclr's large-size paths.
type strategy struct {
	name                             string
	avx2                             bool
	copyRep, copyNT, zeroRep, zeroNT uintptr
}

// currentTuning returns the tuning in force, for apply to restore.
func currentTuning() strategy {
	return strategy{avx2: useAVX2, copyRep: copyRepMin, copyNT: copyNTMin, zeroRep: zeroRepMin, zeroNT: zeroNTMin}
}

// apply sets the tuning to s.
func (s strategy) apply() {
	useAVX2, copyRepMin, copyNTMin, zeroRepMin, zeroNTMin = s.avx2, s.copyRep, s.copyNT, s.zeroRep, s.zeroNT
}

const never = ^uintptr(0)

// strategies returns every large-size path this CPU can run. The small-size
// paths (n <= 256) are the same in all of them.
func strategies() []strategy {
	s := []strategy{{name: "sse", copyRep: never, copyNT: never, zeroRep: never, zeroNT: never}}
	if cpu.X86.HasAVX2 {
		s = append(s,
			strategy{name: "avx2", avx2: true, copyRep: never, copyNT: never, zeroRep: never, zeroNT: never},
			strategy{name: "avx2-nt", avx2: true, copyRep: never, copyNT: 0, zeroRep: never, zeroNT: 0})
	}
	return append(s, strategy{name: "rep", avx2: cpu.X86.HasAVX2, copyRep: 0, copyNT: never, zeroRep: 0, zeroNT: never})
}

// withStrategies runs f once per strategy, then restores the tuning. Tests
// using it must not run in parallel with others.
func withStrategies(t *testing.T, f func(t *testing.T)) {
	defer currentTuning().apply()
	t.Run("default", f)
	for _, s := range strategies() {
		s.apply()
		t.Run(s.name, f)
	}
}

// TestStraddleFaultAddress records what the kernel reports for an access
// that starts on a good page and ends on a bad one, for each access width the
// routines use, and checks that the wrappers' counts are exact regardless.
func TestStraddleFaultAddress(t *testing.T) {
	r := mapRegion(t, 3)
	r.protect(t, 2, 1, unix.PROT_NONE)
	other := mapRegion(t, 1)
	boundary := r.addr() + 2*pageSize
	for _, w := range []uintptr{2, 4, 8, 16, 32} {
		// memcpy of exactly w bytes (or a >256-byte copy for 32) starts with
		// one w-byte access at its start.
		n := w
		if w == 32 {
			n = 300
		}
		if w == 32 && !useAVX2 {
			continue
		}
		src := boundary - w/2
		lb, f, s := Memcpy(ptr(other.addr()), ptr(src), n)
		t.Logf("%2d-byte load at page-%d: kernel reports %s (done >= %d)", w, w/2, describe(f, boundary), lb)
		if s != int32(unix.SIGSEGV) || f < boundary {
			t.Errorf("%d-byte straddling load: fault %#x sig %d", w, f, s)
		}
		lb, f, s = Memcpy(ptr(src), ptr(other.addr()), n)
		t.Logf("%2d-byte store at page-%d: kernel reports %s (done >= %d)", w, w/2, describe(f, boundary), lb)
		if s != int32(unix.SIGSEGV) || f < boundary {
			t.Errorf("%d-byte straddling store: fault %#x sig %d", w, f, s)
		}
		if done, fault, _ := uCopy(other.addr(), src, n); done != w/2 || fault != boundary {
			t.Errorf("Copy straddling %d: (%d, %#x)", w, done, fault)
		}
	}
	if cpu.X86.HasERMS {
		saved := currentTuning()
		copyRepMin = 0
		lb, f, _ := Memcpy(ptr(other.addr()), ptr(boundary-150), 300)
		t.Logf("REP MOVSB reading into the bad page: kernel reports %s (done >= %d)", describe(f, boundary), lb)
		lb, f, _ = Memcpy(ptr(boundary-150), ptr(other.addr()), 300)
		t.Logf("REP MOVSB writing into the bad page: kernel reports %s (done >= %d)", describe(f, boundary), lb)
		saved.apply()
	}
}
