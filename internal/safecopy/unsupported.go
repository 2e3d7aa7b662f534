//go:build !(linux && (amd64 || arm64))

package safecopy

import (
	"unsafe"
)

// Fault-safe routines exist only on linux/amd64 and linux/arm64. These
// stand-ins keep package safemem, and so usermem's BytesIO, building on other
// Unix systems: safemem reaches them only for memory that needs fault-safe
// access (its BlockFromUnsafe* blocks), and they panic there. The packages
// that create such memory (pma, addrspace) do not build on those systems.

const unsupported = "safecopy: fault-safe memory access needs linux/amd64 or linux/arm64"

// Copy panics: see above.
func Copy(dst, src unsafe.Pointer, n uintptr) (done uintptr, f Fault) {
	panic(unsupported)
}

// Zero panics: see above.
func Zero(dst unsafe.Pointer, n uintptr) (done uintptr, f Fault) {
	panic(unsupported)
}

// SwapUint32 panics: see above.
func SwapUint32(p unsafe.Pointer, new uint32) (old uint32, f Fault) {
	panic(unsupported)
}

// CompareAndSwapUint32 panics: see above.
func CompareAndSwapUint32(p unsafe.Pointer, old, new uint32) (prev uint32, f Fault) {
	panic(unsupported)
}

// LoadUint32 panics: see above.
func LoadUint32(p unsafe.Pointer) (val uint32, f Fault) {
	panic(unsupported)
}

// Memcpy panics: see above.
func Memcpy(dst, src unsafe.Pointer, n uintptr) (done, fault uintptr, sig int32) {
	panic(unsupported)
}

// FinishCopy panics: see above.
func FinishCopy(dst, src unsafe.Pointer, n, done, fault uintptr, sig int32) (uintptr, Fault) {
	panic(unsupported)
}

// SwapUint32Raw panics: see above.
func SwapUint32Raw(p unsafe.Pointer, new uint32) (old uint32, sig int32) {
	panic(unsupported)
}

// CompareAndSwapUint32Raw panics: see above.
func CompareAndSwapUint32Raw(p unsafe.Pointer, old, new uint32) (prev uint32, sig int32) {
	panic(unsupported)
}

// LoadUint32Raw panics: see above.
func LoadUint32Raw(p unsafe.Pointer) (val uint32, sig int32) {
	panic(unsupported)
}

// CopyToByte panics: see above.
func CopyToByte(dst, src unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32) {
	panic(unsupported)
}

// IndexByteRaw panics: see above.
func IndexByteRaw(p unsafe.Pointer, n uintptr, c byte) (idx uintptr, sig int32) {
	panic(unsupported)
}

// VecMax is the longest range MemcpyRanges takes.
const VecMax = 64

// MemcpyRanges panics: see above.
func MemcpyRanges(buf, base, ranges unsafe.Pointer, n uintptr, out bool) (done, fault uintptr, sig int32) {
	panic(unsupported)
}
