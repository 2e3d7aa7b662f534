//go:build linux && (amd64 || arm64)

package safecopy

import "golang.org/x/sys/unix"

// The tests work with host addresses of mmap'ed memory (uintptrs outside the
// Go heap, which never move); these wrappers convert them (with ptr) for the
// pointer-typed API, and spread the Fault into address and signal for the
// tables' comparisons.

func uCopy(dst, src, n uintptr) (uintptr, uintptr, unix.Signal) {
	done, f := Copy(ptr(dst), ptr(src), n)
	return done, f.Addr, f.Sig
}
func uZero(dst, n uintptr) (uintptr, uintptr, unix.Signal) {
	done, f := Zero(ptr(dst), n)
	return done, f.Addr, f.Sig
}
func uSwapUint32(a uintptr, v uint32) (uint32, uintptr, unix.Signal) {
	old, f := SwapUint32(ptr(a), v)
	return old, f.Addr, f.Sig
}
func uSwapUint64(a uintptr, v uint64) (uint64, uintptr, unix.Signal) {
	old, f := SwapUint64(ptr(a), v)
	return old, f.Addr, f.Sig
}
func uCompareAndSwapUint32(a uintptr, o, n uint32) (uint32, uintptr, unix.Signal) {
	prev, f := CompareAndSwapUint32(ptr(a), o, n)
	return prev, f.Addr, f.Sig
}
func uCompareAndSwapUint64(a uintptr, o, n uint64) (uint64, uintptr, unix.Signal) {
	prev, f := CompareAndSwapUint64(ptr(a), o, n)
	return prev, f.Addr, f.Sig
}
func uLoadUint32(a uintptr) (uint32, uintptr, unix.Signal) {
	v, f := LoadUint32(ptr(a))
	return v, f.Addr, f.Sig
}
func uLoadUint64(a uintptr) (uint64, uintptr, unix.Signal) {
	v, f := LoadUint64(ptr(a))
	return v, f.Addr, f.Sig
}
func uStoreUint32(a uintptr, v uint32) (uintptr, unix.Signal) {
	f := StoreUint32(ptr(a), v)
	return f.Addr, f.Sig
}
func uStoreUint64(a uintptr, v uint64) (uintptr, unix.Signal) {
	f := StoreUint64(ptr(a), v)
	return f.Addr, f.Sig
}
