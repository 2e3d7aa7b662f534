package addrspace

import (
	"errors"
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// FaultReason says why a simulated memory access failed.
type FaultReason int

const (
	// FaultUnmapped: no mapping covers the address, or it lies beyond the
	// address space's Size.
	FaultUnmapped FaultReason = iota + 1

	// FaultProtection: a mapping covers the address, but its permissions
	// (Perms, or MaxPerms with IOOpts.IgnorePermissions) forbid the access.
	FaultProtection

	// FaultBus: the mapping's file does not extend to the address (the file
	// was truncated under the mapping); the host raised SIGBUS.
	FaultBus

	// FaultHostMemory: the host refused the memory or the host mapping
	// needed to back the page (the memory file could not grow, under
	// RLIMIT_FSIZE say, or the max view could not be reserved) — where
	// Linux would have run out of memory.
	FaultHostMemory

	// FaultFill: the PageFiller of a lazily filled mapping (MmapOpts.Fill)
	// failed to fill the page; FaultError.Cause holds its error.
	FaultFill
)

// String returns "unmapped", "protection", "bus error", "host memory
// exhausted" or "fill failed".
func (r FaultReason) String() string {
	switch r {
	case FaultUnmapped:
		return "unmapped"
	case FaultProtection:
		return "protection"
	case FaultBus:
		return "bus error"
	case FaultHostMemory:
		return "host memory exhausted"
	case FaultFill:
		return "fill failed"
	default:
		return fmt.Sprintf("FaultReason(%d)", int(r))
	}
}

// A FaultError describes a simulated memory access that failed. It wraps
// unix.EFAULT, so errors.Is(err, unix.EFAULT) holds; use errors.As to get
// the detail.
type FaultError struct {
	// Addr is the simulated address of the first byte that could not be
	// accessed.
	Addr hostarch.Addr

	// Access is the access that failed (Read, Write, or ReadWrite for the
	// atomics that modify memory).
	Access hostarch.AccessType

	// Reason says why.
	Reason FaultReason

	// InSource is set by CopyBetween when the fault was in the source
	// address space (Addr is then the source's); it is false for a fault in
	// the destination, and for every other call.
	InSource bool

	// Cause is the PageFiller's error for Reason FaultFill, nil otherwise.
	Cause error
}

// Error implements error.Error.
func (e *FaultError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("addrspace: %s fault at %#x (%s: %v): %v", e.Access, e.Addr, e.Reason, e.Cause, unix.EFAULT)
	}
	return fmt.Sprintf("addrspace: %s fault at %#x (%s): %v", e.Access, e.Addr, e.Reason, unix.EFAULT)
}

// Unwrap returns unix.EFAULT, and Cause if it is set.
func (e *FaultError) Unwrap() []error {
	if e.Cause != nil {
		return []error{unix.EFAULT, e.Cause}
	}
	return []error{unix.EFAULT}
}

// ErrClosed is returned (wrapped) by every method of an AddressSpace that
// has been closed. Each such error also wraps the errno a caller
// translating to Linux errors should see: EFAULT from the usermem.IO
// methods, EBADF from a second Close, EINVAL from the others.
var ErrClosed = errors.New("addrspace: address space is closed")

// closedError is ErrClosed with the errno a caller translating to Linux
// errors should see.
type closedError struct{ errno unix.Errno }

func (e closedError) Error() string        { return ErrClosed.Error() + ": " + e.errno.Error() }
func (e closedError) Is(target error) bool { return target == ErrClosed || target == e.errno }

var (
	errClosedIO    error = closedError{unix.EFAULT}
	errClosedMgmt  error = closedError{unix.EINVAL}
	errClosedTwice error = closedError{unix.EBADF}
)

// errOutOfRange is the error for an access beyond the address space.
func errOutOfRange(addr hostarch.Addr, at hostarch.AccessType) error {
	return &FaultError{Addr: addr, Access: at, Reason: FaultUnmapped}
}

// errMisalignedIO is the error for a misaligned atomic access.
func errMisalignedIO(addr hostarch.Addr) error {
	return fmt.Errorf("addrspace: atomic access at %#x is not 4-byte aligned: %w", addr, unix.EINVAL)
}
