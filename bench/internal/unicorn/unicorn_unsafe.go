//go:build unicorn && cgo

package unicorn

/*
#cgo pkg-config: unicorn
#include <unicorn/unicorn.h>

// Wrappers with size_t lengths, whatever integer type the installed
// unicorn.h declares.
static uc_err mm_read(uc_engine *uc, uint64_t addr, void *dst, size_t n) {
	return uc_mem_read(uc, addr, dst, n);
}
static uc_err mm_write(uc_engine *uc, uint64_t addr, const void *src, size_t n) {
	return uc_mem_write(uc, addr, src, n);
}
static uc_err mm_map_ptr(uc_engine *uc, uint64_t addr, size_t n, void *ptr) {
	return uc_mem_map_ptr(uc, addr, n, UC_PROT_ALL, ptr);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Available reports whether the package was built with Unicorn.
const Available = true

// An Engine is one x86-64 Unicorn instance. It is not safe for concurrent
// use.
type Engine struct {
	uc *C.uc_engine
}

func ucErr(op string, e C.uc_err) error {
	if e == C.UC_ERR_OK {
		return nil
	}
	return fmt.Errorf("unicorn: %s: %s", op, C.GoString(C.uc_strerror(e)))
}

// Version returns the library's version, "major.minor".
func Version() string {
	var major, minor C.uint
	C.uc_version(&major, &minor)
	return fmt.Sprintf("%d.%d", major, minor)
}

// New opens an x86-64 engine.
func New() (*Engine, error) {
	var e Engine
	if err := ucErr("uc_open", C.uc_open(C.UC_ARCH_X86, C.UC_MODE_64, &e.uc)); err != nil {
		return nil, err
	}
	return &e, nil
}

// Close releases the engine.
func (e *Engine) Close() error {
	return ucErr("uc_close", C.uc_close(e.uc))
}

// MapPtr maps n bytes of host memory at mem (not Go memory; n a multiple of
// 4 KiB) at guest address addr, read-write-execute, with uc_mem_map_ptr: the
// guest then reads and writes those very host bytes.
func (e *Engine) MapPtr(addr uint64, mem unsafe.Pointer, n uintptr) error {
	return ucErr("uc_mem_map_ptr", C.mm_map_ptr(e.uc, C.uint64_t(addr), C.size_t(n), mem))
}

// Read copies n bytes at guest address addr to dst with uc_mem_read.
func (e *Engine) Read(addr uint64, dst unsafe.Pointer, n uintptr) error {
	return ucErr("uc_mem_read", C.mm_read(e.uc, C.uint64_t(addr), dst, C.size_t(n)))
}

// Write copies n bytes from src to guest address addr with uc_mem_write.
func (e *Engine) Write(addr uint64, src unsafe.Pointer, n uintptr) error {
	return ucErr("uc_mem_write", C.mm_write(e.uc, C.uint64_t(addr), src, C.size_t(n)))
}
