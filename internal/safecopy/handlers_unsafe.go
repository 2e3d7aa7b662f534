//go:build linux && (amd64 || arm64)

package safecopy

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CheckHandlers returns nil if every fault raised in this package's routines
// still reaches this package's SIGSEGV and SIGBUS handler, and otherwise an
// error wrapping unix.EBUSY that names the signal and the handler found.
//
// Every fault-safe routine relies on that handler. Code that installs its own
// SIGSEGV or SIGBUS handler later (typically a C library, through
// sigaction(3)) takes every fault from then on; unless it chains to the
// handler it replaced, the first fault in a copy kills the process, often
// with no message at all. Whether a handler chains cannot be read from it, so
// when the installed handlers are not this package's, CheckHandlers tries
// them: a forked child process (stdout and stderr on /dev/null) touches a
// PROT_NONE page and a page past the end of a file with this package's own
// routines and reports whether both faults came back to them. The answer is
// kept for that pair of handlers, so the fork happens once per replacement.
//
// Cost: two rt_sigaction calls when our handlers are installed.
//
// A fault that reaches this package's slow path was delivered through
// whatever handler is installed, so checking there would only ever see
// handlers that work: the check belongs before faults are expected
// (addrspace.New calls it). A handler installed after that cannot be detected
// before it takes a fault.
func CheckHandlers() error {
	segv, err := installedHandler(unix.SIGSEGV)
	if err != nil {
		return err
	}
	bus, err := installedHandler(unix.SIGBUS)
	if err != nil {
		return err
	}
	if segv.handler == ourHandler && bus.handler == ourHandler {
		return nil
	}
	probeMu.Lock()
	defer probeMu.Unlock()
	key := [2]uintptr{segv.handler, bus.handler}
	if key == probed {
		return probedErr
	}
	probedErr = probeHandlers(segv, bus)
	probed = key
	return probedErr
}

// The last pair of foreign handlers probed, and the verdict.
var (
	probeMu   sync.Mutex
	probed    [2]uintptr
	probedErr error
)

func installedHandler(sig unix.Signal) (kernelSigaction, error) {
	var sa kernelSigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&sa)), 8, 0, 0); e != 0 {
		return sa, fmt.Errorf("safecopy: querying the %v handler: %w", sig, e)
	}
	return sa, nil
}

// probeHandlers checks in child processes that a SIGSEGV and a SIGBUS in
// LoadUint32Raw come back to it through the installed handlers.
func probeHandlers(segv, bus kernelSigaction) error {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("safecopy: probing the fault handlers: %w", err)
	}
	defer unix.Close(null)
	none, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("safecopy: probing the fault handlers: %w", err)
	}
	defer unix.Munmap(none)
	// A page of an empty file: touching it raises SIGBUS.
	fd, err := unix.MemfdCreate("safecopy-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("safecopy: probing the fault handlers: %w", err)
	}
	defer unix.Close(fd)
	past, err := unix.Mmap(fd, 0, unix.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("safecopy: probing the fault handlers: %w", err)
	}
	defer unix.Munmap(past)
	for _, p := range []struct {
		name string
		sa   kernelSigaction
		sig  unix.Signal
		addr unsafe.Pointer
	}{
		{"SIGSEGV", segv, unix.SIGSEGV, unsafe.Pointer(&none[0])},
		{"SIGBUS", bus, unix.SIGBUS, unsafe.Pointer(&past[0])},
	} {
		if p.sa.handler == ourHandler {
			continue
		}
		pid, e := forkProbe(p.addr, int32(p.sig), uintptr(null))
		if e != 0 {
			return fmt.Errorf("safecopy: probing the %s handler: fork: %w", p.name, e)
		}
		var ws unix.WaitStatus
		for {
			_, err = unix.Wait4(int(pid), &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("safecopy: probing the %s handler: wait: %w", p.name, err)
		}
		if ws.Exited() && ws.ExitStatus() == 0 {
			continue
		}
		how := fmt.Sprintf("exit status %d", ws.ExitStatus())
		if ws.Signaled() {
			how = "killed by " + ws.Signal().String()
		}
		return fmt.Errorf("safecopy: the %s handler is no longer mmsim's (%#x is installed, flags %#x, in place of %#x) "+
			"and does not pass on faults in mmsim's copy routines (a child process probing it: %s): "+
			"some code, typically a C library, installed its own handler without chaining to the previous one, "+
			"and a fault in a fault-safe copy would kill the process: %w",
			p.name, p.sa.handler, p.sa.flags, ourHandler, how, unix.EBUSY)
	}
	return nil
}

// forkProbe forks; the child points its stdout and stderr at null, loads
// from addr with LoadUint32Raw and exits 0 if the load came back with signal
// want, 3 otherwise. Everything the child runs is nosplit and touches no
// Go runtime state.
//
//go:nosplit
//go:norace
func forkProbe(addr unsafe.Pointer, want int32, null uintptr) (uintptr, syscall.Errno) {
	pid, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 || pid != 0 {
		return pid, e
	}
	syscall.RawSyscall(syscall.SYS_DUP3, null, 1, 0)
	syscall.RawSyscall(syscall.SYS_DUP3, null, 2, 0)
	code := uintptr(3)
	if _, sig := LoadUint32Raw(addr); sig == want {
		code = 0
	}
	for {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, code, 0, 0)
	}
}
