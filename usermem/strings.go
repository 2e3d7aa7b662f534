package usermem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/hostarch"
)

// scratchLen is the size of the pooled buffer that CopyStringIn reads its
// first chunk into and CopyInt32StringsInVec reads every chunk into.
const scratchLen = 256

// scratchPool holds *[scratchLen]byte. A stack array would escape anyway:
// it is passed to IO.CopyIn, an interface method the compiler cannot see
// through, so a pool is what keeps the common case allocation-free. (A
// noescape trick would be unsound: an IO may legitimately hand the buffer
// to another goroutine for the duration of the call.)
var scratchPool = sync.Pool{New: func() any { return new([scratchLen]byte) }}

// pageChunk returns how many bytes to read at addr: at most limit, and never
// past the end of addr's page, so that a read never touches a page it may
// not need. ok is false if addr plus that count overflows.
func pageChunk(addr hostarch.Addr, limit int) (n int, ok bool) {
	n = hostarch.PageSize - int(addr.PageOffset())
	if n > limit {
		n = limit
	}
	_, ok = addr.AddLength(uint64(n))
	return n, ok
}

// checkProgress turns a short read without an error, which breaks IO's
// contract, into io.ErrNoProgress rather than looping on it.
func checkProgress(n, want int, err error) error {
	if err == nil && n < want {
		return io.ErrNoProgress
	}
	return err
}

// A StringIO is an IO that copies NUL-terminated strings itself, faster
// than CopyStringIn can through IO.CopyIn (an AddressSpace finds the NUL in
// place and copies the string once, where CopyIn must copy a chunk first and
// then search it). CopyStringIn uses the method when uio has it, once
// maxlen is checked, as io.Copy uses an io.WriterTo.
//
// The method must return exactly what CopyStringIn returns for the same IO
// without it, following the rules documented there; it is called only with
// maxlen > 0. A type that embeds a StringIO (an *addrspace.AddressSpace,
// say) and overrides CopyIn gets the embedded CopyStringIn too, which
// bypasses the override: such a wrapper must hide it, as it hides VecIO's
// methods.
type StringIO interface {
	IO

	// CopyStringIn copies the NUL-terminated string at addr, as the
	// package's CopyStringIn does.
	CopyStringIn(ctx context.Context, addr hostarch.Addr, maxlen int, opts IOOpts) (string, error)
}

// CopyStringIn copies a NUL-terminated string of unknown length from the
// memory mapped at addr in uio and returns it as a string (not including the
// trailing NUL). If the length of the string, including the terminating NUL,
// would exceed maxlen, CopyStringIn returns the string truncated to maxlen and
// ENAMETOOLONG.
//
// The result is at most maxlen bytes long, and err is nil if and only if a
// NUL was found within the first maxlen bytes.
//
// In detail (these are the rules of Linux's strncpy_from_user as gVisor
// applies them):
//   - Memory is read in chunks that never cross a page boundary: first at
//     most 256 bytes, up to the end of addr's page at the furthest, then up
//     to the end of each page in turn. So a string whose NUL is the last
//     byte before an inaccessible page is returned successfully, and no
//     byte at or beyond addr+maxlen is ever read.
//   - A fault before the NUL returns the bytes read so far and the IO's
//     error (EFAULT). An address range that would wrap past the top of the
//     address space fails the same way with EFAULT.
//   - maxlen == 0 returns "" and ENAMETOOLONG without reading anything.
//   - A string that fits in the first chunk costs one allocation: the
//     returned string.
//
// Preconditions: Same as IO.CopyIn, plus:
//   - maxlen >= 0 (CopyStringIn panics otherwise, as gVisor's does).
func CopyStringIn(ctx context.Context, uio IO, addr hostarch.Addr, maxlen int, opts IOOpts) (string, error) {
	// Kept small, so that a StringIO's call costs little more than the
	// assertion: the general loop, with its frame, is copyStringIn.
	if sio, ok := uio.(StringIO); ok && maxlen > 0 {
		return sio.CopyStringIn(ctx, addr, maxlen, opts)
	}
	return copyStringIn(ctx, uio, addr, maxlen, opts)
}

// copyStringIn is CopyStringIn through uio.CopyIn.
func copyStringIn(ctx context.Context, uio IO, addr hostarch.Addr, maxlen int, opts IOOpts) (string, error) {
	if maxlen < 0 {
		panic(fmt.Sprintf("usermem.CopyStringIn: maxlen %d < 0", maxlen))
	}
	if maxlen == 0 {
		return "", unix.ENAMETOOLONG
	}

	// First chunk: into pooled scratch, so that a short string allocates
	// only itself.
	readlen, ok := pageChunk(addr, min(maxlen, scratchLen))
	if !ok {
		return "", unix.EFAULT
	}
	scratch := scratchPool.Get().(*[scratchLen]byte)
	n, err := uio.CopyIn(ctx, addr, scratch[:readlen], opts)
	err = checkProgress(n, readlen, err)
	if i := bytes.IndexByte(scratch[:n], 0); i >= 0 {
		// The NUL may have been read before hitting err.
		s := string(scratch[:i])
		scratchPool.Put(scratch)
		return s, nil
	}
	if err != nil || n == maxlen {
		s := string(scratch[:n])
		scratchPool.Put(scratch)
		if err == nil {
			err = unix.ENAMETOOLONG
		}
		return s, err
	}

	// Longer strings: page by page into a growing buffer.
	// Room for the next read (at most a page) without growing.
	buf := append(make([]byte, 0, min(maxlen, n+hostarch.PageSize)), scratch[:n]...)
	scratchPool.Put(scratch)
	addr += hostarch.Addr(n)
	for len(buf) < maxlen {
		readlen, ok := pageChunk(addr, maxlen-len(buf))
		if !ok {
			return string(buf), unix.EFAULT
		}
		done := len(buf)
		if cap(buf)-done < readlen {
			newCap := max(2*cap(buf), done+readlen)
			buf = append(make([]byte, 0, min(newCap, maxlen)), buf...)
		}
		buf = buf[:done+readlen]
		n, err := uio.CopyIn(ctx, addr, buf[done:], opts)
		err = checkProgress(n, readlen, err)
		if i := bytes.IndexByte(buf[done:done+n], 0); i >= 0 {
			return string(buf[:done+i]), nil
		}
		buf = buf[:done+n]
		if err != nil {
			return string(buf), err
		}
		addr += hostarch.Addr(n)
	}
	return string(buf), unix.ENAMETOOLONG
}
