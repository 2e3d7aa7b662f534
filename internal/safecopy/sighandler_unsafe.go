//go:build linux && amd64

package safecopy

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
)

// saSiginfo is SA_SIGINFO: the handler takes (signo, siginfo, ucontext).
const saSiginfo = 0x4

// kernelSigaction is the kernel's struct sigaction for rt_sigaction on amd64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

func init() {
	setTuning()

	var routines, stubs [numRoutines]uintptr
	handler := routineAddrs(&routines, &stubs)
	for i := range routines {
		faultRanges[i] = faultRange{begin: routines[i], end: funcEnd(routines[i]), stub: stubs[i]}
	}
	if err := replaceHandler(unix.SIGSEGV, handler, &savedSIGSEGV); err != nil {
		panic(fmt.Sprintf("safecopy: cannot install the SIGSEGV handler: %v", err))
	}
	if err := replaceHandler(unix.SIGBUS, handler, &savedSIGBUS); err != nil {
		panic(fmt.Sprintf("safecopy: cannot install the SIGBUS handler: %v", err))
	}
}

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
		// from 1 KiB to 64 MiB (256 KiB copy: -34%, 64 MiB: -17% vs NT).
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

// funcEnd returns the end of the function whose entry is begin: the first
// address past it that the runtime's function table maps to another function.
func funcEnd(begin uintptr) uintptr {
	f := runtime.FuncForPC(begin)
	if f == nil || f.Entry() != begin {
		panic(fmt.Sprintf("safecopy: no function at %#x", begin))
	}
	const limit = 1 << 16 // far larger than any routine here
	n := sort.Search(limit, func(i int) bool {
		g := runtime.FuncForPC(begin + uintptr(i))
		return g == nil || g.Entry() != begin
	})
	if n == limit {
		panic(fmt.Sprintf("safecopy: cannot find the end of %s", f.Name()))
	}
	return begin + uintptr(n)
}

// replaceHandler installs handler for sig, keeping the flags, mask and
// restorer of the current handler, whose address it stores in *saved.
func replaceHandler(sig unix.Signal, handler uintptr, saved *uintptr) error {
	const maskSize = 8
	var sa kernelSigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&sa)), maskSize, 0, 0); e != 0 {
		return e
	}
	// SIG_DFL (0) and SIG_IGN (1) cannot be jumped to.
	if sa.handler <= 1 || sa.flags&saSiginfo == 0 {
		return fmt.Errorf("the current handler %#x (flags %#x) is not a Go runtime handler", sa.handler, sa.flags)
	}
	*saved = sa.handler
	sa.handler = handler
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, maskSize, 0, 0); e != 0 {
		return e
	}
	return nil
}
