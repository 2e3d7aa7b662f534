package addrspace

import "unsafe"

// hostPointer converts the host address of a view, which is outside the Go
// heap and never moves, to a pointer for the fault-safe copy routines.
func hostPointer(addr uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}
