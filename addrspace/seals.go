package addrspace

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// writeSeals are the memfd seals that forbid new writable shared mappings
// (fcntl(2) F_ADD_SEALS).
const writeSeals = unix.F_SEAL_WRITE | unix.F_SEAL_FUTURE_WRITE

// fileSeals returns the seals of the file open as fd (F_GET_SEALS), or 0 for
// a file that cannot be sealed.
func fileSeals(fd uintptr) int {
	seals, err := unix.FcntlInt(fd, unix.F_GET_SEALS, 0)
	if err != nil {
		return 0
	}
	return seals
}

// mapsWritable reports whether a file open with flags (F_GETFL) and sealed
// with seals allows a shared mapping to be written, now or after Mprotect:
// open for reading and writing and not write-sealed. Linux clears
// VM_MAYWRITE on shared mappings of a write-sealed memfd, so their MaxPerms
// never include write.
func mapsWritable(flags, seals int) bool {
	return flags&unix.O_ACCMODE == unix.O_RDWR && seals&writeSeals == 0
}

// checkSeals returns the error Linux's mmap returns for a writable shared
// mapping of a write-sealed file open for writing: EPERM (a file not open
// for writing fails with EACCES instead, as Perms exceed what it allows).
func checkSeals(f *os.File, flags, seals int, sharedWrite bool) error {
	if sharedWrite && flags&unix.O_ACCMODE == unix.O_RDWR && seals&writeSeals != 0 {
		return fmt.Errorf("addrspace: mmap of %s: writable shared mapping of a write-sealed file: %w", f.Name(), unix.EPERM)
	}
	return nil
}
