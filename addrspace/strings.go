package addrspace

import (
	"context"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/internal/safecopy"
	"github.com/mmsim/mmsim/usermem"
)

var _ usermem.StringIO = (*AddressSpace)(nil)

// shortString is the size of the stack buffer CopyStringIn's fast path
// tries first.
const shortString = 128

// CopyStringIn implements usermem.StringIO: usermem.CopyStringIn with the
// same results, by its rules (chunks that never cross a page, no byte read
// at or past addr+maxlen, a fault before the NUL returns the bytes before
// it and EFAULT).
//
// Its fast path reads the application view directly. A string shorter
// than 128 bytes is copied into a stack buffer and searched for its NUL in
// the same pass (safecopy.CopyToByte), then converted; a longer one is
// found in place (safecopy.IndexByteRaw, up to the end of addr's page or
// maxlen) and copied once, into its result, by CopyToByte again. Either way
// what it returns is exactly what it read, even if another thread writes
// the string meanwhile. CopyIn then a search, usermem's way, copies a
// whole chunk before searching it.
// A fault (a page not yet backed included), an IgnorePermissions access, or
// a string that runs past addr's page goes to usermem's general loop over
// CopyIn, which resolves faults and reports the exact count and error.
//
// Preconditions: maxlen >= 0 (it panics otherwise, as usermem's does).
func (as *AddressSpace) CopyStringIn(ctx context.Context, addr hostarch.Addr, maxlen int, opts usermem.IOOpts) (string, error) {
	if maxlen <= 0 || opts.IgnorePermissions || uint64(addr) >= as.limit.Load() {
		return as.copyStringInSlow(ctx, addr, maxlen, opts)
	}
	// addr is below Size, a page multiple: its page is inside the space.
	src := unsafe.Add(as.appBase, addr)
	n := min(hostarch.PageSize-int(addr.PageOffset()), maxlen)
	// A short string (most paths and names): copied and searched in one
	// pass into a small buffer, then converted.
	var short [shortString]byte
	idx, sig := safecopy.CopyToByte(unsafe.Pointer(&short[0]), src, uintptr(min(n, shortString)), 0)
	if sig != 0 {
		return as.copyStringInSlow(ctx, addr, maxlen, opts)
	}
	if int(idx) < min(n, shortString) {
		return string(short[:idx]), nil
	}
	// A longer one: found in place, then copied once into its result.
	idx, sig = safecopy.IndexByteRaw(src, uintptr(n), 0)
	if sig != 0 || int(idx) >= n {
		return as.copyStringInSlow(ctx, addr, maxlen, opts)
	}
	if idx == 0 {
		return "", nil
	}
	buf := make([]byte, idx)
	got, sig := safecopy.CopyToByte(unsafe.Pointer(&buf[0]), src, idx, 0)
	if sig != 0 {
		return as.copyStringInSlow(ctx, addr, maxlen, opts)
	}
	// got < idx if another thread wrote a NUL in between: the string ends
	// there, as a copy-then-search would have seen it.
	return unsafe.String(&buf[0], got), nil
}

// copyStringInSlow is CopyStringIn through usermem's general loop.
//
//go:noinline
func (as *AddressSpace) copyStringInSlow(ctx context.Context, addr hostarch.Addr, maxlen int, opts usermem.IOOpts) (string, error) {
	return usermem.CopyStringIn(ctx, plainIO{as}, addr, maxlen, opts)
}

// plainIO hides an AddressSpace's optional usermem interfaces (StringIO,
// VecIO), so that usermem's general loops run over its IO methods: the
// fallback of CopyStringIn, and the reference the fast paths' tests compare
// with.
type plainIO struct{ usermem.IO }
