package addrspace

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/internal/safecopy"
)

// checkHost returns why this process cannot host an address space, or nil:
// New refuses (rather than misbehave later) on a host whose page size is not
// hostarch.PageSize (unix.ENOTSUP), and when another SIGSEGV or SIGBUS handler
// has replaced the one fault-safe copying needs without passing its faults
// on (unix.EBUSY; see safecopy.CheckHandlers): a C library that installs a
// handler of its own without chaining to the previous one would otherwise
// make the first faulting copy kill the process silently.
// A handler installed after New cannot be detected before it takes a fault.
func checkHost() error {
	if err := hostarch.CheckHostPageSize(); err != nil {
		return fmt.Errorf("addrspace: %w", err)
	}
	if err := safecopy.CheckHandlers(); err != nil {
		return fmt.Errorf("addrspace: %w", err)
	}
	return nil
}
