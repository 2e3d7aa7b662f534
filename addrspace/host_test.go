package addrspace

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestNewRefusesReplacedHandler replaces the SIGBUS handler for the length
// of one New, as a C library installing its own handler would, and checks
// that New refuses with a clear error instead of leaving the first faulting
// copy to kill the process. No test in this package runs in parallel, so no
// SIGBUS is raised meanwhile.
func TestNewRefusesReplacedHandler(t *testing.T) {
	// The kernel's struct sigaction on amd64 and arm64.
	type sigaction struct {
		handler, flags, restorer, mask uint64
	}
	get := func() sigaction {
		var sa sigaction
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGBUS), 0, uintptr(unsafe.Pointer(&sa)), 8, 0, 0); e != 0 {
			t.Fatal(e)
		}
		return sa
	}
	set := func(sa sigaction) {
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGBUS), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); e != 0 {
			t.Fatal(e)
		}
	}
	ours := get()
	foreign := ours
	foreign.handler = 0 // SIG_DFL: a fault would kill the process
	set(foreign)
	as, err := New(Options{Size: 64 * pg})
	set(ours)
	if err == nil {
		as.Close()
		t.Fatal("New succeeded with the SIGBUS handler replaced")
	}
	if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "SIGBUS") {
		t.Errorf("New with the SIGBUS handler replaced: %v; want an EBUSY error naming SIGBUS", err)
	}
	if as, err := New(Options{Size: 64 * pg}); err != nil {
		t.Errorf("New once the handler is restored: %v", err)
	} else {
		as.Close()
	}
}
