//go:build linux && (amd64 || arm64)

package safecopy

import (
	"os"
	"runtime/debug"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recoverFault runs f with debug.SetPanicOnFault and returns the address of
// the fault it raised, if it raised one.
func recoverFault(f func()) (addr uintptr, faulted bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			re, ok := e.(interface{ Addr() uintptr })
			if !ok {
				panic(e)
			}
			addr, faulted = re.Addr(), true
		}
	}()
	f()
	return 0, false
}

// TestGoFaultsReachRuntime checks that faults in ordinary Go code, outside
// this package's routines, reach the Go runtime with their context, for
// SIGSEGV and SIGBUS alike: under SetPanicOnFault each is a recoverable
// panic naming the address (how an emulator's direct access to guest
// memory recovers), and a copy routine's fault in between is still this
// package's.
func TestGoFaultsReachRuntime(t *testing.T) {
	// SIGBUS: the second page of a shared mapping of a one-page file.
	f, err := os.CreateTemp(t.TempDir(), "bus")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(pageSize); err != nil {
		t.Fatal(err)
	}
	bus, err := unix.Mmap(int(f.Fd()), 0, 2*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(bus)
	busAddr := uintptr(unsafe.Pointer(&bus[0])) + pageSize + 24

	segv := mapRegion(t, 2)
	segv.protect(t, 1, 1, unix.PROT_NONE)
	segvAddr := segv.addr() + pageSize + 8

	for _, tc := range []struct {
		name  string
		addr  uintptr
		sig   unix.Signal
		touch func()
	}{
		{"SIGSEGV load", segvAddr, unix.SIGSEGV, func() { sink = *(*byte)(ptr(segvAddr)) }},
		{"SIGSEGV store", segvAddr, unix.SIGSEGV, func() { *(*uint64)(ptr(segvAddr)) = 1 }},
		{"SIGBUS load", busAddr, unix.SIGBUS, func() { sink = *(*byte)(ptr(busAddr)) }},
		{"SIGBUS store", busAddr, unix.SIGBUS, func() { *(*uint64)(ptr(busAddr)) = 1 }},
	} {
		for round := 0; round < 3; round++ {
			addr, faulted := recoverFault(tc.touch)
			if !faulted {
				t.Fatalf("%s: no fault", tc.name)
			}
			if addr != tc.addr {
				if tc.sig == unix.SIGBUS && os.Getenv(execEnv) != "" {
					// qemu-user 7.2 gives a SIGBUS it raises for a guest
					// the address of the guest's last SIGSEGV.
					t.Logf("%s: recovered at %#x, want %#x (under %s)", tc.name, addr, tc.addr, os.Getenv(execEnv))
				} else {
					t.Fatalf("%s: recovered a fault at %#x, want %#x", tc.name, addr, tc.addr)
				}
			}
			// The package's own routines still claim their faults.
			var b [8]byte
			if _, flt := Copy(unsafe.Pointer(&b[0]), ptr(tc.addr), 8); flt != (Fault{tc.addr, tc.sig}) {
				t.Fatalf("%s: Copy after the recovered fault = %+v, want %#x %v", tc.name, flt, tc.addr, tc.sig)
			}
		}
	}
}

var sink byte
