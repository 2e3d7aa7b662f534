package usermem

import (
	"context"

	"github.com/mmsim/mmsim/hostarch"
)

// IOCopyContext wraps an object implementing IO to implement the CopyContext
// interface of marshalling code (gVisor's marshal.CopyContext): a fixed
// context, IO and options for single-address copies.
//
// Concurrency: an IOCopyContext is never modified by its methods and is safe
// for concurrent use as far as its IO is.
type IOCopyContext struct {
	Ctx  context.Context
	IO   IO
	Opts IOOpts
}

// CopyScratchBuffer returns a new, zeroed buffer of size bytes that the
// caller owns (marshal.CopyContext.CopyScratchBuffer).
//
// Preconditions: size >= 0.
func (i *IOCopyContext) CopyScratchBuffer(size int) []byte {
	return make([]byte, size)
}

// CopyOutBytes copies src to the memory at addr
// (marshal.CopyContext.CopyOutBytes): it is i.IO.CopyOut with i's context
// and options, with the same contract (n < len(src) iff err != nil; src not
// retained).
func (i *IOCopyContext) CopyOutBytes(addr hostarch.Addr, src []byte) (int, error) {
	return i.IO.CopyOut(i.Ctx, addr, src, i.Opts)
}

// CopyInBytes copies the memory at addr to dst
// (marshal.CopyContext.CopyInBytes): it is i.IO.CopyIn with i's context and
// options, with the same contract (n < len(dst) iff err != nil; dst not
// retained).
func (i *IOCopyContext) CopyInBytes(addr hostarch.Addr, dst []byte) (int, error) {
	return i.IO.CopyIn(i.Ctx, addr, dst, i.Opts)
}
