package hostarch

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const (
	// PageShift is the binary log of the page size.
	PageShift = 12

	// PageSize is the page size in bytes: the host's on every host mmsim
	// runs on. It is a constant, so that page arithmetic compiles to
	// shifts and masks; a host whose pages differ (arm64 kernels built for
	// 16 KiB or 64 KiB pages) is refused by CheckHostPageSize, which
	// addrspace.New calls.
	PageSize = 1 << PageShift
)

// ByteOrder is the host's byte order.
var ByteOrder = binary.LittleEndian

// CheckHostPageSize returns nil if the host's page size is PageSize, and
// otherwise an error wrapping unix.ENOTSUP that names both sizes. Simulated
// pages are host pages (each is mapped and protected on its own), so a host
// with larger pages cannot hold them.
func CheckHostPageSize() error {
	if host := os.Getpagesize(); host != PageSize {
		return fmt.Errorf("hostarch: the host's page size is %d bytes; mmsim needs %d-byte pages (on arm64, a kernel built for 4 KiB pages): %w", host, PageSize, unix.ENOTSUP)
	}
	return nil
}
