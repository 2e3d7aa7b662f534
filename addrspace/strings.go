package addrspace

import (
	"bytes"
	"context"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

var _ usermem.StringIO = (*AddressSpace)(nil)

// CopyStringIn implements usermem.StringIO: it returns what
// usermem.CopyStringIn returns for the string at addr (the rules are
// documented there), reading the first chunk into a buffer on its own stack
// so that a short string costs one allocation (itself) and no pool.
//
// Preconditions: maxlen > 0 (usermem.CopyStringIn checks it before it
// calls this method); as usermem.IO.CopyIn.
func (as *AddressSpace) CopyStringIn(ctx context.Context, addr hostarch.Addr, maxlen int, opts usermem.IOOpts) (string, error) {
	readlen := hostarch.PageSize - int(addr.PageOffset())
	readlen = min(readlen, maxlen, usermem.ScratchLen)
	var buf [usermem.ScratchLen]byte
	if _, ok := addr.AddLength(uint64(readlen)); ok && maxlen > readlen {
		n, err := as.CopyIn(ctx, addr, buf[:readlen], opts)
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return string(buf[:i]), nil
		}
		if err != nil {
			return string(buf[:n]), err
		}
	}
	// A longer string, one that would fill maxlen, or a range that
	// wraps: the general loop, from the start (it reads the first chunk
	// again, and finds it as it was unless the guest changed it since).
	return usermem.CopyStringIn(ctx, ioOnly{as}, addr, maxlen, opts)
}

// ioOnly hides an IO's optional interfaces (StringIO above all) from the
// usermem helpers it is passed to.
type ioOnly struct{ usermem.IO }
