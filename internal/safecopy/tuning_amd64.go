//go:build linux && amd64

package safecopy

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/cpu"
)

// Tuning knobs read by the assembly, set in init from the CPU's features.
var (
	useAVX2    bool    // AVX2 loops for n > 256; else SSE loops or REP
	copyRepMin uintptr // memcpy uses REP MOVSB from this size
	copyNTMin  uintptr // memcpy uses non-temporal stores from this size (below copyRepMin)
	zeroRepMin uintptr // memclr uses REP STOSB from this size
	zeroNTMin  uintptr // memclr uses non-temporal stores from this size
)

// setTuning picks the copy and zero strategies for this CPU. The reasons are
// measurements (BenchmarkStrategies) on an AMD EPYC with AVX2, ERMS, FSRM and
// a 32 MiB L3.
func setTuning() {
	const never = ^uintptr(0)
	copyRepMin, copyNTMin, zeroRepMin, zeroNTMin = never, never, never, never
	useAVX2 = cpu.X86.HasAVX2 // includes the OS saving YMM state
	if useAVX2 {
		// Non-temporal stores from 3/8 of the LLC: below, ordinary stores win
		// (8 MiB: copy +14%, zero +11%), they tie near 10 MiB, and NT wins above
		// (16 MiB: copy +25%, zero +14%; 64 MiB: copy +60%, zero 3x).
		copyNTMin = ntThreshold()
		zeroNTMin = copyNTMin
		// REP MOVSB/STOSB stay off: never faster than the AVX2 loop at any size
		// from 1 KiB to 64 MiB on the EPYC (256 KiB copy: -34%, 64 MiB: -17%
		// vs NT). On a Xeon with fast short REP MOVSB (FSRM), which the
		// runtime's memmove uses from 2 KiB, REP beat the 128-byte loop on
		// copies that stay in L1 (4 KiB: +28%) but lost 10-13% where the data
		// came from L2 (16 copies of 4 KiB out of 64 KiB; 32 KiB and up):
		// up to 16 KiB the loop now moves 256 bytes an iteration, which
		// takes most of the L1 gain (4 KiB: +11%); beyond, the 128-byte
		// loop stays (3-5% ahead from L2).
		return
	}
	if cpu.X86.HasERMS {
		// Without AVX2, REP MOVSB/STOSB beat the SSE loop from 2 KiB (+25% at
		// 2 KiB, +60% at 16 KiB); at 1 KiB they tie.
		copyRepMin, zeroRepMin = 2048, 2048
	}
}

// ntThreshold returns the size from which copies and zeroes bypass the cache:
// 3/8 of the last-level cache, or 12 MiB if sysfs does not say.
func ntThreshold() uintptr {
	size := uintptr(32 << 20)
	for i := 4; i >= 0; i-- {
		b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/cpu/cpu0/cache/index%d/size", i))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		mult := uintptr(1)
		switch {
		case strings.HasSuffix(s, "K"):
			mult, s = 1<<10, strings.TrimSuffix(s, "K")
		case strings.HasSuffix(s, "M"):
			mult, s = 1<<20, strings.TrimSuffix(s, "M")
		}
		if v, err := strconv.ParseUint(s, 10, 32); err == nil && v > 0 {
			size = uintptr(v) * mult
			break
		}
	}
	return max(size/8*3, 1<<20)
}
