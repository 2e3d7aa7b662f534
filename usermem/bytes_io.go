package usermem

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
)

// BytesIO implements IO using a byte slice. Addresses are interpreted as
// offsets into the slice. Reads and writes beyond the end of the slice return
// EFAULT.
//
// In detail: an access of n > 0 bytes at addr transfers the bytes of
// [addr, addr+n) that lie within Bytes; if that is fewer than n it returns
// the partial count and unix.EFAULT. An access whose end overflows the
// address space transfers nothing and returns EFAULT. A zero-length access
// succeeds at any address. IOOpts are ignored: a byte slice has no
// protections.
//
// The atomics require addr to be a multiple of 4 and &Bytes[addr] to be
// 4-byte aligned in host memory (true for every such addr when Bytes starts
// at the beginning of a Go allocation); otherwise they return, without
// touching memory, an error for which errors.Is(err, unix.EINVAL) holds.
//
// Concurrency: a *BytesIO may be used by many goroutines at once (it is
// never modified); accesses to Bytes race as plain memory accesses would,
// except that the atomics are atomic with respect to each other.
type BytesIO struct {
	Bytes []byte
}

var _ IO = (*BytesIO)(nil)

// rangeCheck returns how many bytes of [addr, addr+length) lie within
// b.Bytes, and EFAULT if that is fewer than length. A range whose end
// overflows yields 0 and EFAULT, like Linux's access_ok.
func (b *BytesIO) rangeCheck(addr hostarch.Addr, length uint64) (int, error) {
	if length == 0 {
		return 0, nil
	}
	if _, ok := addr.AddLength(length); !ok {
		return 0, unix.EFAULT
	}
	size := uint64(len(b.Bytes))
	if uint64(addr) >= size {
		return 0, unix.EFAULT
	}
	if avail := size - uint64(addr); length > avail {
		return int(avail), unix.EFAULT
	}
	return int(length), nil
}

// CopyOut implements IO.CopyOut.
func (b *BytesIO) CopyOut(ctx context.Context, addr hostarch.Addr, src []byte, opts IOOpts) (int, error) {
	n, err := b.rangeCheck(addr, uint64(len(src)))
	if n == 0 {
		return 0, err
	}
	return copy(b.Bytes[addr:], src[:n]), err
}

// CopyIn implements IO.CopyIn.
func (b *BytesIO) CopyIn(ctx context.Context, addr hostarch.Addr, dst []byte, opts IOOpts) (int, error) {
	n, err := b.rangeCheck(addr, uint64(len(dst)))
	if n == 0 {
		return 0, err
	}
	return copy(dst[:n], b.Bytes[addr:]), err
}

// ZeroOut implements IO.ZeroOut. A negative toZero (a precondition
// violation) returns 0 and EINVAL, as in gVisor.
func (b *BytesIO) ZeroOut(ctx context.Context, addr hostarch.Addr, toZero int64, opts IOOpts) (int64, error) {
	if toZero < 0 {
		return 0, unix.EINVAL
	}
	n, err := b.rangeCheck(addr, uint64(toZero))
	if n == 0 {
		return 0, err
	}
	clear(b.Bytes[addr : int(addr)+n])
	return int64(n), err
}

// CopyOutFrom implements IO.CopyOutFrom. The blocks handed to src are
// those of ars up to the first byte beyond the end of b.Bytes; if there is
// such a byte, the result carries EFAULT unless src itself failed. If not a
// single byte of a non-empty ars is within b.Bytes, src is not called.
func (b *BytesIO) CopyOutFrom(ctx context.Context, ars hostarch.AddrRangeSeq, src safemem.Reader, opts IOOpts) (int64, error) {
	dsts, rngErr := b.blocksFromAddrRanges(ars)
	if rngErr != nil && dsts.NumBytes() == 0 {
		return 0, rngErr
	}
	n, err := src.ReadToBlocks(dsts)
	if err != nil {
		return int64(n), err
	}
	return int64(n), rngErr
}

// CopyInTo implements IO.CopyInTo. The blocks handed to dst are those of
// ars up to the first byte beyond the end of b.Bytes; if there is such a
// byte, the result carries EFAULT unless dst itself failed. If not a single
// byte of a non-empty ars is within b.Bytes, dst is not called.
func (b *BytesIO) CopyInTo(ctx context.Context, ars hostarch.AddrRangeSeq, dst safemem.Writer, opts IOOpts) (int64, error) {
	srcs, rngErr := b.blocksFromAddrRanges(ars)
	if rngErr != nil && srcs.NumBytes() == 0 {
		return 0, rngErr
	}
	n, err := dst.WriteFromBlocks(srcs)
	if err != nil {
		return int64(n), err
	}
	return int64(n), rngErr
}

// blocksFromAddrRanges returns the blocks of b.Bytes that ars covers, up to
// the first byte outside b.Bytes, and EFAULT if there is such a byte.
// Zero-length ranges are left out.
func (b *BytesIO) blocksFromAddrRanges(ars hostarch.AddrRangeSeq) (safemem.BlockSeq, error) {
	switch ars.NumRanges() {
	case 0:
		return safemem.BlockSeq{}, nil
	case 1:
		// Avoid allocating a slice for the common single-range case.
		block, err := b.blockFromAddrRange(ars.Head())
		return safemem.BlockSeqOf(block), err
	default:
		blocks := make([]safemem.Block, 0, ars.NumRanges())
		for ; !ars.IsEmpty(); ars = ars.Tail() {
			block, err := b.blockFromAddrRange(ars.Head())
			if block.Len() != 0 {
				blocks = append(blocks, block)
			}
			if err != nil {
				return safemem.BlockSeqFromSlice(blocks), err
			}
		}
		return safemem.BlockSeqFromSlice(blocks), nil
	}
}

func (b *BytesIO) blockFromAddrRange(ar hostarch.AddrRange) (safemem.Block, error) {
	n, err := b.rangeCheck(ar.Start, uint64(ar.Length()))
	if n == 0 {
		return safemem.Block{}, err
	}
	return safemem.BlockFromSafeSlice(b.Bytes[ar.Start : int(ar.Start)+n]), err
}

// atomicBlock returns the 4-byte block at addr for an atomic access: an
// error for which errors.Is(err, unix.EINVAL) holds if addr is misaligned,
// EFAULT if any of the 4 bytes is outside b.Bytes.
func (b *BytesIO) atomicBlock(addr hostarch.Addr) (safemem.Block, error) {
	if addr&3 != 0 {
		return safemem.Block{}, fmt.Errorf("usermem: atomic access at %#x: %w", addr,
			safemem.AlignmentError{Addr: uintptr(addr), Alignment: 4})
	}
	if _, err := b.rangeCheck(addr, 4); err != nil {
		return safemem.Block{}, err
	}
	return safemem.BlockFromSafeSlice(b.Bytes[addr : addr+4]), nil
}

// atomicError adds the simulated address to an error from safemem's
// atomics (an AlignmentError, if the host address of b.Bytes[addr] is
// misaligned).
func atomicError(addr hostarch.Addr, err error) error {
	return fmt.Errorf("usermem: atomic access at %#x: %w", addr, err)
}

// SwapUint32 implements IO.SwapUint32.
func (b *BytesIO) SwapUint32(ctx context.Context, addr hostarch.Addr, new uint32, opts IOOpts) (uint32, error) {
	block, err := b.atomicBlock(addr)
	if err != nil {
		return 0, err
	}
	old, err := safemem.SwapUint32(block, new)
	if err != nil {
		return 0, atomicError(addr, err)
	}
	return old, nil
}

// CompareAndSwapUint32 implements IO.CompareAndSwapUint32.
func (b *BytesIO) CompareAndSwapUint32(ctx context.Context, addr hostarch.Addr, old, new uint32, opts IOOpts) (uint32, error) {
	block, err := b.atomicBlock(addr)
	if err != nil {
		return 0, err
	}
	prev, err := safemem.CompareAndSwapUint32(block, old, new)
	if err != nil {
		return 0, atomicError(addr, err)
	}
	return prev, nil
}

// LoadUint32 implements IO.LoadUint32.
func (b *BytesIO) LoadUint32(ctx context.Context, addr hostarch.Addr, opts IOOpts) (uint32, error) {
	block, err := b.atomicBlock(addr)
	if err != nil {
		return 0, err
	}
	v, err := safemem.LoadUint32(block)
	if err != nil {
		return 0, atomicError(addr, err)
	}
	return v, nil
}

// BytesIOSequence returns an IOSequence representing the given byte slice:
// a BytesIO over buf, with one range covering all of it and zero IOOpts.
// The result refers to buf (it does not copy it).
func BytesIOSequence(buf []byte) IOSequence {
	return IOSequence{
		IO:    &BytesIO{buf},
		Addrs: hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: 0, End: hostarch.Addr(len(buf))}),
	}
}
