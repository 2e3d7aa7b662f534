package safemem

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/mmsim/mmsim/internal/safecopy"
	"golang.org/x/sys/unix"
)

// A Block is a range of contiguous bytes of host memory, similar to
// []byte, but with one more bit: whether the memory needs fault-safe access.
//
// Blocks are immutable and may be copied by value. The zero value of Block
// is an empty range.
type Block struct {
	// [start, start+length) is the host memory. Holding start as an
	// unsafe.Pointer keeps Go memory a block refers to alive.
	start  unsafe.Pointer
	length int

	// needSafecopy is true if the memory may fault when touched, and must
	// only be accessed through package safecopy.
	needSafecopy bool
}

// BlockFromSafeSlice returns a Block equivalent to slice, which is safe to
// access with ordinary loads and stores.
func BlockFromSafeSlice(slice []byte) Block {
	return blockFromSlice(slice, false)
}

// BlockFromUnsafeSlice returns a Block equivalent to slice, whose memory
// may fault when touched (it is only accessed fault-safely).
func BlockFromUnsafeSlice(slice []byte) Block {
	return blockFromSlice(slice, true)
}

func blockFromSlice(slice []byte, needSafecopy bool) Block {
	if len(slice) == 0 {
		return Block{}
	}
	return Block{
		start:        unsafe.Pointer(&slice[0]),
		length:       len(slice),
		needSafecopy: needSafecopy,
	}
}

// BlockFromSafePointer returns a Block of the length bytes at ptr, which are
// safe to access with ordinary loads and stores.
//
// Preconditions: ptr+length does not overflow, and length >= 0 (it panics
// otherwise).
func BlockFromSafePointer(ptr unsafe.Pointer, length int) Block {
	return blockFromPointer(ptr, length, false)
}

// BlockFromUnsafePointer returns a Block of the length bytes at ptr, which
// may fault when touched (it is only accessed fault-safely).
//
// Preconditions: as for BlockFromSafePointer.
func BlockFromUnsafePointer(ptr unsafe.Pointer, length int) Block {
	return blockFromPointer(ptr, length, true)
}

func blockFromPointer(ptr unsafe.Pointer, length int, needSafecopy bool) Block {
	if length < 0 {
		panic(fmt.Sprintf("safemem: negative block length %d", length))
	}
	if uptr := uintptr(ptr); uptr+uintptr(length) < uptr {
		panic(fmt.Sprintf("safemem: block %#x+%#x overflows", uptr, length))
	}
	if length == 0 {
		return Block{}
	}
	return Block{
		start:        ptr,
		length:       length,
		needSafecopy: needSafecopy,
	}
}

// DropFirst returns a Block equivalent to b, but with the first n bytes
// omitted. If n >= b.Len(), DropFirst returns an empty Block.
//
// Preconditions: n >= 0 (it panics otherwise).
func (b Block) DropFirst(n int) Block {
	if n < 0 {
		panic(fmt.Sprintf("safemem: DropFirst(%d)", n))
	}
	return b.DropFirst64(uint64(n))
}

// DropFirst64 is equivalent to DropFirst but takes a uint64.
func (b Block) DropFirst64(n uint64) Block {
	if n >= uint64(b.length) {
		return Block{}
	}
	return Block{
		start:        unsafe.Add(b.start, n),
		length:       b.length - int(n),
		needSafecopy: b.needSafecopy,
	}
}

// TakeFirst returns a Block equivalent to the first n bytes of b.
//
// Preconditions: n >= 0 (it panics otherwise).
func (b Block) TakeFirst(n int) Block {
	if n < 0 {
		panic(fmt.Sprintf("safemem: TakeFirst(%d)", n))
	}
	return b.TakeFirst64(uint64(n))
}

// TakeFirst64 is equivalent to TakeFirst but takes a uint64.
func (b Block) TakeFirst64(n uint64) Block {
	if n == 0 {
		return Block{}
	}
	if n >= uint64(b.length) {
		return b
	}
	b.length = int(n)
	return b
}

// ToSlice returns a []byte equivalent to b.
//
// The slice must be accessed with ordinary loads and stores only if
// !b.NeedSafecopy(); otherwise touching it may crash the process.
func (b Block) ToSlice() []byte {
	return unsafe.Slice((*byte)(b.start), b.length)
}

// Addr returns b's start address as a uintptr. It returns uintptr instead
// of unsafe.Pointer so that code using safemem cannot obtain unsafe.Pointers
// without importing the unsafe package explicitly.
//
// Note that a uintptr is not recognized as a pointer by the garbage
// collector, so if b refers to Go memory, b must be kept alive while the
// address is used.
func (b Block) Addr() uintptr {
	return uintptr(b.start)
}

// Len returns b's length in bytes.
func (b Block) Len() int {
	return b.length
}

// NeedSafecopy returns true if accessing b with ordinary loads and stores
// may fault.
func (b Block) NeedSafecopy() bool {
	return b.needSafecopy
}

// String implements fmt.Stringer.String: "[start-end)", with a "*" after an
// unsafe block, or "<nil>" for the zero Block.
func (b Block) String() string {
	if uintptr(b.start) == 0 && b.length == 0 {
		return "<nil>"
	}
	var suffix string
	if b.needSafecopy {
		suffix = "*"
	}
	return fmt.Sprintf("[%#x-%#x)%s", uintptr(b.start), uintptr(b.start)+uintptr(b.length), suffix)
}

// faultError converts the fault reported by package safecopy to an error.
func faultError(f safecopy.Fault) error {
	if f.Sig == unix.SIGBUS {
		return BusError{f.Addr}
	}
	return SegvError{f.Addr}
}

// Copy copies min(dst.Len(), src.Len()) bytes from src to dst and returns
// the number of bytes copied.
//
// If either block needs fault-safe access and a fault occurs, Copy returns
// the number of bytes copied before the first byte that could not be
// accessed, and a SegvError or BusError. Bytes of dst past that count may
// have been written. Overlapping blocks are copied as by memmove only if
// neither needs fault-safe access.
func Copy(dst, src Block) (int, error) {
	return copyBlocks(dst, src)
}

// copyBlocks is Copy. Copy is small enough to be inlined into its
// caller, and copyBlocks calls the copy routine itself rather than
// safecopy.Copy: two call frames fewer, which is most of an 8-byte copy's
// cost.
//
// (nosplit: its only callee on the fast path, the routine, has no frame;
// the linker checks that the chain fits the stack guard.)
//
//go:nosplit
func copyBlocks(dstb, srcb Block) (int, error) {
	if !dstb.needSafecopy && !srcb.needSafecopy {
		return copy(dstb.ToSlice(), srcb.ToSlice()), nil
	}
	dst, src, n := dstb.start, srcb.start, min(dstb.length, srcb.length)
	if n == 0 {
		return 0, nil
	}
	lb, fault, sig := safecopy.Memcpy(dst, src, uintptr(n))
	if sig == 0 {
		return n, nil
	}
	return copyFault(dst, src, n, lb, fault, sig)
}

// copyFault finishes a Copy whose first attempt faulted.
//
//go:noinline
func copyFault(dst, src unsafe.Pointer, n int, lb, fault uintptr, sig int32) (int, error) {
	done, f := safecopy.FinishCopy(dst, src, uintptr(n), lb, fault, sig)
	if f.Sig != 0 {
		return int(done), faultError(f)
	}
	return n, nil
}

// Zero sets all bytes in dst to 0 and returns the number of bytes zeroed.
//
// If dst needs fault-safe access and a fault occurs, Zero returns the number
// of bytes zeroed before the first byte that could not be accessed, and a
// SegvError or BusError.
func Zero(dst Block) (int, error) {
	if !dst.needSafecopy {
		clear(dst.ToSlice())
		return dst.length, nil
	}
	if dst.length == 0 {
		return 0, nil
	}
	done, f := safecopy.Zero(dst.start, uintptr(dst.length))
	if f.Sig != 0 {
		return int(done), faultError(f)
	}
	return dst.length, nil
}

// checkAtomic validates b for a 4-byte atomic access.
func checkAtomic(b Block) error {
	if b.length < 4 {
		panic(fmt.Sprintf("safemem: atomic access to a %d-byte block", b.length))
	}
	if addr := uintptr(b.start); addr&3 != 0 {
		return AlignmentError{Addr: addr, Alignment: 4}
	}
	return nil
}

// SwapUint32 atomically sets the uint32 at the start of b to new and returns
// its previous value.
//
// Preconditions: b.Len() >= 4 (it panics otherwise). A misaligned b returns
// an AlignmentError without touching memory; a fault returns a SegvError or
// BusError.
func SwapUint32(b Block, new uint32) (uint32, error) {
	if err := checkAtomic(b); err != nil {
		return 0, err
	}
	if !b.needSafecopy {
		return atomic.SwapUint32((*uint32)(b.start), new), nil
	}
	old, sig := safecopy.SwapUint32Raw(b.start, new)
	if sig != 0 {
		return 0, atomicFault(b, sig)
	}
	return old, nil
}

// CompareAndSwapUint32 atomically compares the uint32 at the start of b to
// old and, if they are equal, replaces it with new. In either case it
// returns the value that was in memory.
//
// Preconditions and errors: as for SwapUint32.
func CompareAndSwapUint32(b Block, old, new uint32) (uint32, error) {
	if err := checkAtomic(b); err != nil {
		return 0, err
	}
	if !b.needSafecopy {
		p := (*uint32)(b.start)
		for {
			if atomic.CompareAndSwapUint32(p, old, new) {
				return old, nil
			}
			if prev := atomic.LoadUint32(p); prev != old {
				return prev, nil
			}
		}
	}
	prev, sig := safecopy.CompareAndSwapUint32Raw(b.start, old, new)
	if sig != 0 {
		return 0, atomicFault(b, sig)
	}
	return prev, nil
}

// LoadUint32 atomically loads the uint32 at the start of b and returns it.
//
// Preconditions and errors: as for SwapUint32.
func LoadUint32(b Block) (uint32, error) {
	if err := checkAtomic(b); err != nil {
		return 0, err
	}
	if !b.needSafecopy {
		return atomic.LoadUint32((*uint32)(b.start)), nil
	}
	v, sig := safecopy.LoadUint32Raw(b.start)
	if sig != 0 {
		return 0, atomicFault(b, sig)
	}
	return v, nil
}

// atomicFault is the error of a 4-byte atomic at the start of b that raised
// signal sig (checkAtomic has checked the alignment the raw routines need).
//
//go:noinline
func atomicFault(b Block, sig int32) error {
	return faultError(safecopy.Fault{Addr: uintptr(b.start), Sig: unix.Signal(sig)})
}
