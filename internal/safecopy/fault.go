package safecopy

import "syscall"

// A Fault is the first byte a routine could not access: its host address
// and the signal the host raised there (SIGSEGV or SIGBUS). The zero Fault
// means the routine met none.
type Fault struct {
	Addr uintptr
	Sig  syscall.Signal
}
