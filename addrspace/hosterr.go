package addrspace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The host resources an address space takes for itself — its memory file,
// its own descriptor of each mapped file, address space for its views — are
// kernel memory to the simulated process: when the host refuses one, the
// call fails as Linux fails for want of kernel memory, with ENOMEM, whatever
// the host's errno (EMFILE and ENFILE when descriptors run out). The host's
// error stays in the message.

// dupError is the error for a host descriptor the address space could not
// duplicate for itself (the file name is the caller's to add).
func dupError(name string, err error) error {
	return fmt.Errorf("cannot keep a descriptor of %s (%v): %w", name, err, unix.ENOMEM)
}

// memoryFileError is New's error when the host refuses the memory file.
func memoryFileError(err error) error {
	return fmt.Errorf("addrspace: cannot create the memory file (%v): %w", err, unix.ENOMEM)
}
