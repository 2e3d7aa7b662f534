//go:build linux && (amd64 || arm64)

package safecopy

import "golang.org/x/sys/unix"

// The tests work with host addresses of mmap'ed memory (uintptrs outside the
// Go heap, which never move); these wrappers convert them (with ptr) for the
// pointer-typed API.

func uCopy(dst, src, n uintptr) (uintptr, uintptr, unix.Signal) { return Copy(ptr(dst), ptr(src), n) }
func uZero(dst, n uintptr) (uintptr, uintptr, unix.Signal)      { return Zero(ptr(dst), n) }
func uSwapUint32(a uintptr, v uint32) (uint32, uintptr, unix.Signal) {
	return SwapUint32(ptr(a), v)
}
func uSwapUint64(a uintptr, v uint64) (uint64, uintptr, unix.Signal) {
	return SwapUint64(ptr(a), v)
}
func uCompareAndSwapUint32(a uintptr, o, n uint32) (uint32, uintptr, unix.Signal) {
	return CompareAndSwapUint32(ptr(a), o, n)
}
func uCompareAndSwapUint64(a uintptr, o, n uint64) (uint64, uintptr, unix.Signal) {
	return CompareAndSwapUint64(ptr(a), o, n)
}
func uLoadUint32(a uintptr) (uint32, uintptr, unix.Signal) { return LoadUint32(ptr(a)) }
func uLoadUint64(a uintptr) (uint64, uintptr, unix.Signal) { return LoadUint64(ptr(a)) }
func uStoreUint32(a uintptr, v uint32) (uintptr, unix.Signal) {
	return StoreUint32(ptr(a), v)
}
func uStoreUint64(a uintptr, v uint64) (uintptr, unix.Signal) {
	return StoreUint64(ptr(a), v)
}
