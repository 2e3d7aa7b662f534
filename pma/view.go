package pma

import (
	"fmt"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// A View is a reserved range of host address space in which host pages are
// mapped at fixed offsets: view offset o is host address Base()+o. Unmapped
// parts of a view are PROT_NONE, MAP_NORESERVE anonymous memory, so they use
// no memory and fault when touched, and the range is never reused by anything
// else while the view exists.
//
// Concurrency: the methods that change mappings may be called concurrently
// for disjoint ranges; the caller serializes changes to the same range.
type View struct {
	base uintptr
	size uint64
}

// Reserve reserves size bytes of host address space, with nothing mapped.
//
// Preconditions: size is a non-zero multiple of the page size.
//
// It returns an error wrapping ENOMEM if the host cannot reserve that much
// address space.
func Reserve(size uint64) (*View, error) {
	if size == 0 || size%hostarch.PageSize != 0 {
		panic(fmt.Sprintf("pma: Reserve(%#x)", size))
	}
	addr, err := mmap(0, size, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE, -1, 0)
	if err != nil {
		return nil, fmt.Errorf("pma: reserving %#x bytes of host address space: %w", size, err)
	}
	return &View{base: addr, size: size}, nil
}

// Base returns the host address of view offset 0.
func (v *View) Base() uintptr { return v.base }

// Size returns the size of the view in bytes.
func (v *View) Size() uint64 { return v.size }

func (v *View) check(off, length uint64) {
	if off%hostarch.PageSize != 0 || length%hostarch.PageSize != 0 || off > v.size || length > v.size-off {
		panic(fmt.Sprintf("pma: range [%#x, +%#x) is not page-aligned inside a view of %#x bytes", off, length, v.size))
	}
}

// HostProt returns the host protection that enforces perms. Execute is
// never granted on the host (simulated code is not run on host pages);
// write and execute imply read, as they do on x86.
func HostProt(perms hostarch.AccessType) int {
	return perms.Effective().Prot() &^ unix.PROT_EXEC
}

// MapFile maps length bytes of the file fd, from fileOff, shared, at view
// offset off with protection prot (PROT_* bits), replacing whatever was
// mapped there.
//
// Preconditions: off, length and fileOff are page-aligned and the range lies
// inside the view.
func (v *View) MapFile(off, length uint64, fd int, fileOff uint64, prot int) error {
	v.check(off, length)
	if length == 0 {
		return nil
	}
	if _, err := mmap(v.base+uintptr(off), length, prot, unix.MAP_SHARED|unix.MAP_FIXED, fd, fileOff); err != nil {
		return fmt.Errorf("pma: mapping file at view offset %#x: %w", off, err)
	}
	return nil
}

// Clear unmaps [off, off+length) of the view, leaving it reserved and
// inaccessible.
//
// Preconditions: as for MapFile.
func (v *View) Clear(off, length uint64) error {
	v.check(off, length)
	if length == 0 {
		return nil
	}
	if _, err := mmap(v.base+uintptr(off), length, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_FIXED, -1, 0); err != nil {
		return fmt.Errorf("pma: clearing view offset %#x: %w", off, err)
	}
	return nil
}

// Protect changes the protection of [off, off+length) of the view to prot
// (PROT_* bits).
//
// Preconditions: as for MapFile.
func (v *View) Protect(off, length uint64, prot int) error {
	v.check(off, length)
	if length == 0 {
		return nil
	}
	if _, _, e := unix.Syscall(unix.SYS_MPROTECT, v.base+uintptr(off), uintptr(length), uintptr(prot)); e != 0 {
		return fmt.Errorf("pma: mprotect at view offset %#x: %w", off, hostLimitErr(e))
	}
	return nil
}

// Release unmaps the whole view. The View must not be used afterwards.
func (v *View) Release() error {
	if v.size == 0 {
		return nil
	}
	if _, _, e := unix.Syscall(unix.SYS_MUNMAP, v.base, uintptr(v.size), 0); e != 0 {
		return fmt.Errorf("pma: releasing view: %w", e)
	}
	v.size = 0
	return nil
}

// mapCountError is the ENOMEM returned when the host refuses a mapping
// because the process has too many (vm.max_map_count): its message says so.
type mapCountError struct{ errno unix.Errno }

func (e mapCountError) Error() string {
	return "host mapping limit reached (too many host mappings; see vm.max_map_count): " + e.errno.Error()
}

func (e mapCountError) Unwrap() error { return e.errno }

// hostLimitErr explains an ENOMEM from mmap or mprotect on a reserved range:
// the range exists, so the only cause is the host's mapping count limit.
func hostLimitErr(e unix.Errno) error {
	if e == unix.ENOMEM {
		return mapCountError{e}
	}
	return e
}

func mmap(addr uintptr, length uint64, prot, flags, fd int, off uint64) (uintptr, error) {
	r, _, e := unix.Syscall6(unix.SYS_MMAP, addr, uintptr(length), uintptr(prot), uintptr(flags), uintptr(fd), uintptr(off))
	if e != 0 {
		if flags&unix.MAP_FIXED != 0 {
			return 0, hostLimitErr(e)
		}
		return 0, e
	}
	return r, nil
}
