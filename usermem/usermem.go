package usermem

import (
	"context"
	"errors"
	"io"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
)

// IO provides access to the contents of a virtual memory space.
//
// Every method that copies follows io's contract: the returned count is in
// [0, requested], it is less than requested if and only if the error is
// non-nil (the exceptions are spelled out on CopyOutFrom and CopyInTo), and
// the caller's buffer is never retained. An access to memory that is not
// mapped, or not accessible with the access needed, returns an error for
// which errors.Is(err, unix.EFAULT) holds.
//
// Concurrency: implementations must be safe for concurrent use by multiple
// goroutines. Concurrent copies to overlapping memory race as plain memory
// accesses would; the three atomics are atomic with respect to each other.
type IO interface {
	// CopyOut copies len(src) bytes from src to the memory mapped at addr. It
	// returns the number of bytes copied. If the number of bytes copied is <
	// len(src), it returns a non-nil error explaining why.
	//
	// Preconditions: The caller must not hold the IO's own locks.
	//
	// Postconditions: CopyOut does not retain src.
	CopyOut(ctx context.Context, addr hostarch.Addr, src []byte, opts IOOpts) (int, error)

	// CopyIn copies len(dst) bytes from the memory mapped at addr to dst.
	// It returns the number of bytes copied. If the number of bytes copied is
	// < len(dst), it returns a non-nil error explaining why. Bytes of dst past
	// the returned count may have been written.
	//
	// Preconditions: The caller must not hold the IO's own locks.
	//
	// Postconditions: CopyIn does not retain dst.
	CopyIn(ctx context.Context, addr hostarch.Addr, dst []byte, opts IOOpts) (int, error)

	// ZeroOut sets toZero bytes to 0, starting at addr. It returns the number
	// of bytes zeroed. If the number of bytes zeroed is < toZero, it returns a
	// non-nil error explaining why.
	//
	// Preconditions:
	//   - The caller must not hold the IO's own locks.
	//   - toZero >= 0.
	ZeroOut(ctx context.Context, addr hostarch.Addr, toZero int64, opts IOOpts) (int64, error)

	// CopyOutFrom copies ars.NumBytes() bytes from src to the memory mapped at
	// ars. It returns the number of bytes copied, which may be less than the
	// number of bytes read from src if copying fails. CopyOutFrom may return a
	// partial copy without an error iff src.ReadToBlocks returns a partial
	// read without an error.
	//
	// CopyOutFrom calls src.ReadToBlocks at most once.
	//
	// Preconditions:
	//   - The caller must not hold the IO's own locks.
	//   - src.ReadToBlocks must not block on the IO's own locks.
	CopyOutFrom(ctx context.Context, ars hostarch.AddrRangeSeq, src safemem.Reader, opts IOOpts) (int64, error)

	// CopyInTo copies ars.NumBytes() bytes from the memory mapped at ars to
	// dst. It returns the number of bytes copied. CopyInTo may return a
	// partial copy without an error iff dst.WriteFromBlocks returns a partial
	// write without an error.
	//
	// CopyInTo calls dst.WriteFromBlocks at most once.
	//
	// Preconditions:
	//   - The caller must not hold the IO's own locks.
	//   - dst.WriteFromBlocks must not block on the IO's own locks.
	CopyInTo(ctx context.Context, ars hostarch.AddrRangeSeq, dst safemem.Writer, opts IOOpts) (int64, error)

	// SwapUint32 atomically sets the uint32 value at addr to new and
	// returns the previous value.
	//
	// Preconditions:
	//   - The caller must not hold the IO's own locks.
	//   - addr must be aligned to a 4-byte boundary.
	SwapUint32(ctx context.Context, addr hostarch.Addr, new uint32, opts IOOpts) (uint32, error)

	// CompareAndSwapUint32 atomically compares the uint32 value at addr to
	// old; if they are equal, the value in memory is replaced by new. In
	// either case, the previous value stored in memory is returned.
	//
	// Preconditions:
	//   - The caller must not hold the IO's own locks.
	//   - addr must be aligned to a 4-byte boundary.
	CompareAndSwapUint32(ctx context.Context, addr hostarch.Addr, old, new uint32, opts IOOpts) (uint32, error)

	// LoadUint32 atomically loads the uint32 value at addr and returns it.
	//
	// Preconditions:
	//   - The caller must not hold the IO's own locks.
	//   - addr must be aligned to a 4-byte boundary.
	LoadUint32(ctx context.Context, addr hostarch.Addr, opts IOOpts) (uint32, error)
}

// IOOpts contains options applicable to all IO methods. The zero value asks
// for an ordinary access that honours every protection.
//
// Concurrency: IOOpts is a plain value, safe for concurrent use.
type IOOpts struct {
	// If IgnorePermissions is true, application-defined memory protections set
	// by mmap(2) or mprotect(2) will be ignored. (Memory protections required
	// by the target of the mapping are never ignored.)
	IgnorePermissions bool

	// If AddressSpaceActive is true, the IO implementation may assume that it
	// has an active address space and can therefore copy through it without
	// performing activation. Implementations that have no notion of
	// activation (BytesIO, for one) ignore it.
	AddressSpaceActive bool
}

// IOReadWriter is an io.ReadWriter that reads from / writes to addresses
// starting at Addr in IO. The preconditions that apply to IO.CopyIn and
// IO.CopyOut also apply to IOReadWriter.Read and IOReadWriter.Write
// respectively.
//
// Each Read or Write advances Addr by the number of bytes transferred; an
// advance that would wrap past the top of the address space leaves Addr at
// the highest address and turns any error into EFAULT.
//
// Concurrency: an IOReadWriter is stateful (Addr) and not safe for
// concurrent use; the zero value is not usable (IO must be set).
type IOReadWriter struct {
	Ctx  context.Context
	IO   IO
	Addr hostarch.Addr
	Opts IOOpts
}

// Read implements io.Reader.Read: it copies up to len(dst) bytes from the
// memory at rw.Addr to dst and advances rw.Addr by the count. It returns
// n < len(dst) iff err != nil, and does not retain dst.
//
// Note that an address space does not have an "end of file", so Read can only
// return io.EOF if IO.CopyIn returns io.EOF. Attempts to read unmapped or
// unreadable memory, or beyond the end of the address space, should return
// EFAULT.
func (rw *IOReadWriter) Read(dst []byte) (int, error) {
	n, err := rw.IO.CopyIn(rw.Ctx, rw.Addr, dst, rw.Opts)
	rw.advance(n, &err)
	return n, err
}

// Write implements io.Writer.Write: it copies len(src) bytes from src to the
// memory at rw.Addr and advances rw.Addr by the count. It returns
// n < len(src) iff err != nil, and does not retain src.
func (rw *IOReadWriter) Write(src []byte) (int, error) {
	n, err := rw.IO.CopyOut(rw.Ctx, rw.Addr, src, rw.Opts)
	rw.advance(n, &err)
	return n, err
}

func (rw *IOReadWriter) advance(n int, err *error) {
	end, ok := rw.Addr.AddLength(uint64(n))
	if ok {
		rw.Addr = end
		return
	}
	// Disallow wraparound.
	rw.Addr = ^hostarch.Addr(0)
	if *err != nil {
		*err = unix.EFAULT
	}
}

// CopyOutVec copies bytes from src to the memory mapped at ars in uio. The
// maximum number of bytes copied is ars.NumBytes() or len(src), whichever is
// less. CopyOutVec returns the number of bytes copied; if this is less than
// the maximum, it returns a non-nil error explaining why. It stops at the
// first range that fails. Zero-length ranges are skipped.
//
// Preconditions: Same as IO.CopyOut.
//
// Postconditions: CopyOutVec does not retain src.
func CopyOutVec(ctx context.Context, uio IO, ars hostarch.AddrRangeSeq, src []byte, opts IOOpts) (int, error) {
	if v, ok := uio.(VecIO); ok {
		return v.CopyOutSeq(ctx, ars, src, opts)
	}
	var done int
	for !ars.IsEmpty() && done < len(src) {
		ar := ars.Head()
		cplen := len(src) - done
		if uint64(cplen) > uint64(ar.Length()) {
			cplen = int(ar.Length())
		}
		n, err := uio.CopyOut(ctx, ar.Start, src[done:done+cplen], opts)
		done += n
		if err != nil {
			return done, err
		}
		ars = ars.DropFirst(n)
	}
	return done, nil
}

// A VecIO is an IO that also copies to and from a whole sequence of ranges
// in one call, faster than a call per range. CopyOutVec and CopyInVec (and
// so IOSequence.CopyOut and CopyIn) use these methods when uio has them, as
// io.Copy uses an io.WriterTo; IOs without them (BytesIO, say) get the
// per-range loop.
//
// CopyOutSeq and CopyInSeq must return exactly what CopyOutVec and
// CopyInVec would return for the same IO without them: the bytes of each
// range in order, zero-length ranges skipped, stopping at the first range
// that fails with the count of every byte moved before the failure. A type
// that embeds a VecIO and overrides CopyIn or CopyOut gets the embedded
// CopyInSeq and CopyOutSeq too, which bypass the override: such a wrapper
// must hide them (embed the IO in a struct field of interface type IO, for
// instance).
type VecIO interface {
	IO

	// CopyOutSeq copies min(ars.NumBytes(), len(src)) bytes of src to the
	// memory mapped at ars, as CopyOutVec does.
	CopyOutSeq(ctx context.Context, ars hostarch.AddrRangeSeq, src []byte, opts IOOpts) (int, error)

	// CopyInSeq copies min(ars.NumBytes(), len(dst)) bytes from the memory
	// mapped at ars to dst, as CopyInVec does.
	CopyInSeq(ctx context.Context, ars hostarch.AddrRangeSeq, dst []byte, opts IOOpts) (int, error)
}

// CopyInVec copies bytes from the memory mapped at ars in uio to dst. The
// maximum number of bytes copied is ars.NumBytes() or len(dst), whichever is
// less. CopyInVec returns the number of bytes copied; if this is less than the
// maximum, it returns a non-nil error explaining why. It stops at the first
// range that fails. Zero-length ranges are skipped.
//
// Preconditions: Same as IO.CopyIn.
//
// Postconditions: CopyInVec does not retain dst. Bytes of dst past the
// returned count may have been written.
func CopyInVec(ctx context.Context, uio IO, ars hostarch.AddrRangeSeq, dst []byte, opts IOOpts) (int, error) {
	if v, ok := uio.(VecIO); ok {
		return v.CopyInSeq(ctx, ars, dst, opts)
	}
	var done int
	for !ars.IsEmpty() && done < len(dst) {
		ar := ars.Head()
		cplen := len(dst) - done
		if uint64(cplen) > uint64(ar.Length()) {
			cplen = int(ar.Length())
		}
		n, err := uio.CopyIn(ctx, ar.Start, dst[done:done+cplen], opts)
		done += n
		if err != nil {
			return done, err
		}
		ars = ars.DropFirst(n)
	}
	return done, nil
}

// ZeroOutVec writes zeroes to the memory mapped at ars in uio. The maximum
// number of bytes written is ars.NumBytes() or toZero, whichever is less.
// ZeroOutVec returns the number of bytes written; if this is less than the
// maximum, it returns a non-nil error explaining why. It stops at the first
// range that fails. Zero-length ranges are skipped; toZero <= 0 writes
// nothing and returns 0, nil.
//
// Preconditions: Same as IO.ZeroOut.
func ZeroOutVec(ctx context.Context, uio IO, ars hostarch.AddrRangeSeq, toZero int64, opts IOOpts) (int64, error) {
	var done int64
	for !ars.IsEmpty() && done < toZero {
		ar := ars.Head()
		cplen := toZero - done
		if uint64(cplen) > uint64(ar.Length()) {
			cplen = int64(ar.Length())
		}
		n, err := uio.ZeroOut(ctx, ar.Start, cplen, opts)
		done += n
		if err != nil {
			return done, err
		}
		ars = ars.DropFirst64(n)
	}
	return done, nil
}

// IOSequence holds arguments to IO methods: the IO, the address ranges to
// access and the options.
//
// Concurrency: IOSequence is an immutable value; its methods return
// modified copies. It is safe for concurrent use as far as its IO is (and as
// long as the slice behind Addrs, if any, is not modified).
type IOSequence struct {
	IO    IO
	Addrs hostarch.AddrRangeSeq
	Opts  IOOpts
}

// NumBytes returns s.Addrs.NumBytes().
//
// Note that NumBytes() may return 0 even if !s.Addrs.IsEmpty(), since
// s.Addrs may contain a non-zero number of zero-length AddrRanges.
// Many clients of IOSequence currently do something like:
//
//	if ioseq.NumBytes() == 0 {
//	  return 0, nil
//	}
//	if f.availableBytes == 0 {
//	  return 0, linuxerr.ErrWouldBlock
//	}
//	return ioseq.CopyOutFrom(..., reader)
//
// In such cases, using s.Addrs.IsEmpty() will cause them to have the wrong
// behavior for zero-length I/O. However, using s.NumBytes() == 0 instead means
// that we will return success for zero-length I/O in cases where Linux would
// return EFAULT due to a failed access_ok() check, so in the long term we
// should move checks for ErrWouldBlock etc. into the body of
// reader.ReadToBlocks and use s.Addrs.IsEmpty() instead.
func (s IOSequence) NumBytes() int64 {
	return s.Addrs.NumBytes()
}

// DropFirst returns a copy of s with s.Addrs.DropFirst(n).
//
// Preconditions: Same as hostarch.AddrRangeSeq.DropFirst.
func (s IOSequence) DropFirst(n int) IOSequence {
	return IOSequence{s.IO, s.Addrs.DropFirst(n), s.Opts}
}

// DropFirst64 returns a copy of s with s.Addrs.DropFirst64(n).
//
// Preconditions: Same as hostarch.AddrRangeSeq.DropFirst64.
func (s IOSequence) DropFirst64(n int64) IOSequence {
	return IOSequence{s.IO, s.Addrs.DropFirst64(n), s.Opts}
}

// TakeFirst returns a copy of s with s.Addrs.TakeFirst(n).
//
// Preconditions: Same as hostarch.AddrRangeSeq.TakeFirst.
func (s IOSequence) TakeFirst(n int) IOSequence {
	return IOSequence{s.IO, s.Addrs.TakeFirst(n), s.Opts}
}

// TakeFirst64 returns a copy of s with s.Addrs.TakeFirst64(n).
//
// Preconditions: Same as hostarch.AddrRangeSeq.TakeFirst64.
func (s IOSequence) TakeFirst64(n int64) IOSequence {
	return IOSequence{s.IO, s.Addrs.TakeFirst64(n), s.Opts}
}

// CopyOut invokes CopyOutVec over s.Addrs.
//
// As with CopyOutVec, if s.NumBytes() < len(src), the copy will be truncated
// to s.NumBytes(), and a nil error will be returned.
//
// Preconditions: Same as CopyOutVec.
func (s IOSequence) CopyOut(ctx context.Context, src []byte) (int, error) {
	return CopyOutVec(ctx, s.IO, s.Addrs, src, s.Opts)
}

// CopyIn invokes CopyInVec over s.Addrs.
//
// As with CopyInVec, if s.NumBytes() < len(dst), the copy will be truncated to
// s.NumBytes(), and a nil error will be returned.
//
// Preconditions: Same as CopyInVec.
func (s IOSequence) CopyIn(ctx context.Context, dst []byte) (int, error) {
	return CopyInVec(ctx, s.IO, s.Addrs, dst, s.Opts)
}

// ZeroOut invokes ZeroOutVec over s.Addrs.
//
// As with ZeroOutVec, if s.NumBytes() < toZero, the write will be truncated
// to s.NumBytes(), and a nil error will be returned.
//
// Preconditions: Same as ZeroOutVec.
func (s IOSequence) ZeroOut(ctx context.Context, toZero int64) (int64, error) {
	return ZeroOutVec(ctx, s.IO, s.Addrs, toZero, s.Opts)
}

// CopyOutFrom invokes s.IO.CopyOutFrom over s.Addrs.
//
// Preconditions: Same as IO.CopyOutFrom.
func (s IOSequence) CopyOutFrom(ctx context.Context, src safemem.Reader) (int64, error) {
	return s.IO.CopyOutFrom(ctx, s.Addrs, src, s.Opts)
}

// CopyInTo invokes s.IO.CopyInTo over s.Addrs.
//
// Preconditions: Same as IO.CopyInTo.
func (s IOSequence) CopyInTo(ctx context.Context, dst safemem.Writer) (int64, error) {
	return s.IO.CopyInTo(ctx, s.Addrs, dst, s.Opts)
}

// Reader returns an io.Reader that reads from s. Reads beyond the end of s
// return io.EOF. The preconditions that apply to s.CopyIn also apply to the
// returned io.Reader.Read.
func (s IOSequence) Reader(ctx context.Context) *IOSequenceReadWriter {
	return &IOSequenceReadWriter{ctx, s}
}

// Writer returns an io.Writer that writes to s. Writes beyond the end of s
// return ErrEndOfIOSequence. The preconditions that apply to s.CopyOut also
// apply to the returned io.Writer.Write.
func (s IOSequence) Writer(ctx context.Context) *IOSequenceReadWriter {
	return &IOSequenceReadWriter{ctx, s}
}

// ErrEndOfIOSequence is returned by IOSequence.Writer().Write() when
// attempting to write beyond the end of the IOSequence.
var ErrEndOfIOSequence = errors.New("write beyond end of IOSequence")

// IOSequenceReadWriter implements io.Reader and io.Writer for an IOSequence,
// consuming the sequence as it goes. Obtain one from IOSequence.Reader or
// IOSequence.Writer; the zero value is not usable.
//
// Concurrency: an IOSequenceReadWriter is stateful and not safe for
// concurrent use.
type IOSequenceReadWriter struct {
	ctx context.Context
	s   IOSequence
}

// Read implements io.Reader.Read. It copies up to len(dst) bytes from the
// front of the remaining sequence and consumes them. It returns
// n < len(dst) with a non-nil error: the IO's error, or io.EOF once the
// sequence is exhausted (which may come with the last bytes, n > 0). It does
// not retain dst.
func (rw *IOSequenceReadWriter) Read(dst []byte) (int, error) {
	n, err := rw.s.CopyIn(rw.ctx, dst)
	rw.s = rw.s.DropFirst(n)
	if err == nil && rw.s.NumBytes() == 0 {
		err = io.EOF
	}
	return n, err
}

// Len returns the number of bytes left in the sequence (tcpip.Payloader in
// gVisor).
func (rw *IOSequenceReadWriter) Len() int {
	return int(rw.s.NumBytes())
}

// Write implements io.Writer.Write. It copies up to len(src) bytes to the
// front of the remaining sequence and consumes them. It returns
// n < len(src) iff err != nil: the IO's error, or ErrEndOfIOSequence when
// the sequence ran out. It does not retain src.
func (rw *IOSequenceReadWriter) Write(src []byte) (int, error) {
	n, err := rw.s.CopyOut(rw.ctx, src)
	rw.s = rw.s.DropFirst(n)
	if err == nil && n < len(src) {
		err = ErrEndOfIOSequence
	}
	return n, err
}
