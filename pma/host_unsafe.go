package pma

import (
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// mincore sets out[i] to 1 for each resident page of the host range [addr,
// addr+length), which is mapped.
func mincore(addr uintptr, length uint64, out []byte) {
	var buf [256]byte
	for length > 0 {
		n := min(length/hostarch.PageSize, uint64(len(buf)))
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, addr, uintptr(n*hostarch.PageSize), uintptr(unsafe.Pointer(&buf[0]))); e == 0 {
			for i := uint64(0); i < n; i++ {
				out[i] |= buf[i] & 1
			}
		}
		out = out[n:]
		addr += uintptr(n * hostarch.PageSize)
		length -= n * hostarch.PageSize
	}
}

// fileResident sets out[i] to 1 for each page of [off, off+length) of fd
// that holds data (SEEK_DATA), for memory-file pages no view maps.
func fileResident(fd int, off, length uint64, out []byte) {
	end := off + length
	for cur := off; cur < end; {
		data, err := unix.Seek(fd, int64(cur), unix.SEEK_DATA)
		if err != nil || uint64(data) >= end {
			return
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = int64(end)
		}
		stop := min(uint64(hole), end)
		for p := uint64(data) &^ (hostarch.PageSize - 1); p < stop; p += hostarch.PageSize {
			if p >= off {
				out[(p-off)/hostarch.PageSize] = 1
			}
		}
		cur = stop
	}
}

// populateHost prefaults the host range [addr, addr+length) of a view
// (MADV_POPULATE_WRITE or _READ, Linux 5.14): the pages are allocated and
// their page-table entries filled. Best effort.
func populateHost(addr uintptr, length uint64, write bool) {
	advice := unix.MADV_POPULATE_READ
	if write {
		advice = unix.MADV_POPULATE_WRITE
	}
	unix.Syscall(unix.SYS_MADVISE, addr, uintptr(length), uintptr(advice))
}
