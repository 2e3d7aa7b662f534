//go:build linux && (amd64 || arm64)

package safecopy

import (
	"fmt"
	"runtime"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"
)

// saSiginfo is SA_SIGINFO: the handler takes (signo, siginfo, ucontext).
const saSiginfo = 0x4

// kernelSigaction is the kernel's struct sigaction for rt_sigaction on amd64 and
// arm64 (the same layout on both).
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// ourHandler is sigHandler's address, as installed. Written only in init.
var ourHandler uintptr

func init() {
	setTuning()

	var routines, stubs [numRoutines]uintptr
	handler := routineAddrs(&routines, &stubs)
	for i := range routines {
		faultRanges[i] = faultRange{begin: routines[i], end: funcEnd(routines[i]), stub: stubs[i]}
	}
	ourHandler = handler
	if err := replaceHandler(unix.SIGSEGV, handler, &savedSIGSEGV); err != nil {
		panic(fmt.Sprintf("safecopy: cannot install the SIGSEGV handler: %v", err))
	}
	if err := replaceHandler(unix.SIGBUS, handler, &savedSIGBUS); err != nil {
		panic(fmt.Sprintf("safecopy: cannot install the SIGBUS handler: %v", err))
	}
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
