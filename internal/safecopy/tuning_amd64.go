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
	copyRepMin uintptr // memcpy uses REP MOVSB from this size...
	copyRepMax uintptr // ...up to this one
	copyNTMin  uintptr // memcpy uses non-temporal stores from this size (below copyRepMin)
	zeroRepMin uintptr // memclr uses REP STOSB from this size
	zeroNTMin  uintptr // memclr uses non-temporal stores from this size
)

// setTuning picks the copy and zero strategies for this CPU. The reasons are
// measurements (BenchmarkStrategies) on an AMD EPYC with AVX2, ERMS, FSRM and
// a 32 MiB L3.
func setTuning() {
	const never = ^uintptr(0)
	copyRepMin, copyRepMax, copyNTMin, zeroRepMin, zeroNTMin = never, never, never, never, never
	useAVX2 = cpu.X86.HasAVX2 // includes the OS saving YMM state
	if useAVX2 {
		// Non-temporal stores from 3/8 of the LLC: below, ordinary stores win
		// (8 MiB: copy +14%, zero +11%), they tie near 10 MiB, and NT wins above
		// (16 MiB: copy +25%, zero +14%; 64 MiB: copy +60%, zero 3x).
		copyNTMin = ntThreshold()
		zeroNTMin = copyNTMin
		// REP MOVSB/STOSB stay off on the EPYC: never faster than the AVX2
		// loop at any size from 1 KiB to 64 MiB (256 KiB copy: -34%, 64 MiB:
		// -17% vs NT). An Intel core with fast short REP MOVSB (FSRM; the
		// runtime's memmove uses REP there from 2 KiB) is different: on a
		// Xeon with AVX-512 and a 48 KiB L1d, REP MOVSB beats the loop while
		// source and destination fit in L1 (3 KiB +5%, 4 KiB +28%, 8 KiB
		// +23%, 16 KiB +21%), loses below (2 KiB -15%) and beyond (32 KiB
		// and up: -10%).
		if isIntel() && cpu.X86.HasERMS && hasFSRM() {
			copyRepMin, copyRepMax = 3<<10, l1dSize()/2
		}
		return
	}
	if cpu.X86.HasERMS {
		// Without AVX2, REP MOVSB/STOSB beat the SSE loop from 2 KiB (+25% at
		// 2 KiB, +60% at 16 KiB); at 1 KiB they tie.
		copyRepMin, zeroRepMin = 2048, 2048
	}
}

// cpuid executes CPUID with EAX = leaf and ECX = sub.
func cpuid(leaf, sub uint32) (a, b, c, d uint32)

// isIntel reports whether the CPU's vendor is "GenuineIntel", as the
// runtime's memmove asks before it trusts REP MOVSB.
func isIntel() bool {
	_, b, c, d := cpuid(0, 0)
	return b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e // "Genu" "ineI" "ntel"
}

// hasFSRM reports fast short REP MOV (CPUID.(EAX=7,ECX=0):EDX bit 4), which
// golang.org/x/sys/cpu does not report.
func hasFSRM() bool {
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 7 {
		return false
	}
	_, _, _, d := cpuid(7, 0)
	return d&(1<<4) != 0
}

// l1dSize returns the size of the first-level data cache, or 32 KiB if
// sysfs does not say.
func l1dSize() uintptr {
	for i := range 4 {
		if t, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/cpu/cpu0/cache/index%d/type", i)); err == nil && strings.TrimSpace(string(t)) == "Data" {
			if s, ok := cacheSize(i); ok {
				return s
			}
		}
	}
	return 32 << 10
}

// cacheSize returns the size of cpu0's cache with the given sysfs index.
func cacheSize(index int) (uintptr, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/cpu/cpu0/cache/index%d/size", index))
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	mult := uintptr(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return 0, false
	}
	return uintptr(v) * mult, true
}

// ntThreshold returns the size from which copies and zeroes bypass the cache:
// 3/8 of the last-level cache, or 12 MiB if sysfs does not say.
func ntThreshold() uintptr {
	size := uintptr(32 << 20)
	for i := 4; i >= 0; i-- {
		if s, ok := cacheSize(i); ok {
			size = s
			break
		}
	}
	return max(size/8*3, 1<<20)
}
