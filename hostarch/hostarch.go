package hostarch

import (
	"encoding/binary"
	"os"
)

const (
	// PageShift is the binary log of the host page size.
	PageShift = 12

	// PageSize is the host page size in bytes.
	PageSize = 1 << PageShift
)

// ByteOrder is the host's byte order.
var ByteOrder = binary.LittleEndian

func init() {
	// The constants above are what every amd64 and 4K-page arm64 Linux host
	// uses; refuse to run silently wrong anywhere else.
	if os.Getpagesize() != PageSize {
		panic("hostarch: host page size is not 4096 bytes")
	}
}
