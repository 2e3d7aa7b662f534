package addrspace

import "unsafe"

// addrOf returns the address of b's first byte.
func addrOf(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }
