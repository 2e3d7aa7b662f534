package safemem

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SegvError is returned when a fault-safe access receives SIGSEGV: the memory
// at Addr is not mapped, or not mapped with the access needed.
//
// errors.Is(err, unix.EFAULT) holds for a SegvError.
type SegvError struct {
	// Addr is the host address at which the SIGSEGV occurred.
	Addr uintptr
}

// Error implements error.Error.
func (e SegvError) Error() string {
	return fmt.Sprintf("SIGSEGV at %#x", e.Addr)
}

// Unwrap returns unix.EFAULT, so that errors.Is(err, unix.EFAULT) holds.
func (e SegvError) Unwrap() error {
	return unix.EFAULT
}

// BusError is returned when a fault-safe access receives SIGBUS: typically
// the memory at Addr maps a file beyond its end.
//
// errors.Is(err, unix.EFAULT) holds for a BusError.
type BusError struct {
	// Addr is the host address at which the SIGBUS occurred.
	Addr uintptr
}

// Error implements error.Error.
func (e BusError) Error() string {
	return fmt.Sprintf("SIGBUS at %#x", e.Addr)
}

// Unwrap returns unix.EFAULT, so that errors.Is(err, unix.EFAULT) holds.
func (e BusError) Unwrap() error {
	return unix.EFAULT
}

// AlignmentError is returned by the atomics when given an address that does
// not meet their alignment requirement. No memory is accessed.
//
// errors.Is(err, unix.EINVAL) holds for an AlignmentError.
type AlignmentError struct {
	// Addr is the misaligned address.
	Addr uintptr

	// Alignment is the required alignment.
	Alignment uintptr
}

// Error implements error.Error.
func (e AlignmentError) Error() string {
	return fmt.Sprintf("address %#x is not aligned to a %d-byte boundary", e.Addr, e.Alignment)
}

// Unwrap returns unix.EINVAL, so that errors.Is(err, unix.EINVAL) holds.
func (e AlignmentError) Unwrap() error {
	return unix.EINVAL
}
