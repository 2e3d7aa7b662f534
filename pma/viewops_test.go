package pma

import (
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"golang.org/x/sys/unix"
)

// Direct view operations for the tests, through the same planning and
// accounting-free path the Table uses.

func Reserve(size uint64) (*View, error) { return reserve(size) }

func (v *View) set(off, length uint64, s hseg, protOnly bool) error {
	if off%hostarch.PageSize != 0 || length%hostarch.PageSize != 0 || off > v.size || length > v.size-off {
		panic("pma: range not page-aligned inside the view")
	}
	if length == 0 {
		return nil
	}
	p := v.plan(off, off+length, s, protOnly)
	return v.apply(p, off, off+length, s, protOnly)
}

func (v *View) MapFile(off, length uint64, fd int, fileOff uint64, prot int) error {
	if fd < 0 {
		if v.set(off, length, hseg{}, true); length == 0 { // the preconditions
			return nil
		}
		return unix.EBADF
	}
	return v.set(off, length, hseg{fd: fd, off: fileOff, prot: prot}, false)
}

func (v *View) Clear(off, length uint64) error {
	return v.set(off, length, reserveSeg(off, off+length), false)
}

func (v *View) Protect(off, length uint64, prot int) error {
	return v.set(off, length, hseg{prot: prot}, true)
}

func (v *View) Release() error { return v.release() }

// viewBlockAt returns the block of n bytes at host address addr (a view's).
func viewBlockAt(addr uintptr, n int) safemem.Block {
	// The view is not Go memory: convert without vet's unsafeptr check.
	return safemem.BlockFromUnsafePointer(*(*unsafe.Pointer)(unsafe.Pointer(&addr)), n)
}
