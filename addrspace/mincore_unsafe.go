package addrspace

import (
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// hostMincore is mincore(2) of the host range [addr, addr+len(vec) pages),
// which must be mapped (or reserved), into vec.
func hostMincore(addr uintptr, vec []byte) error {
	if len(vec) == 0 {
		return nil
	}
	length := uintptr(len(vec)) << hostarch.PageShift
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, addr, length, uintptr(unsafe.Pointer(unsafe.SliceData(vec)))); e != 0 {
		return e
	}
	return nil
}
