package addrspace

import (
	"context"
	"errors"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// TestCopiesIgnoreExecuteAndCtx checks what the package documentation
// says copies check: Read and Write, never Execute (an execute-only page
// reads, as on x86; a read-write page without Execute copies both ways),
// and that a canceled ctx stops no copy, while FutexWait honours it.
func TestCopiesIgnoreExecuteAndCtx(t *testing.T) {
	as := newAS(t, 1<<30)
	x := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.Execute, Private: true})
	rw := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	buf := make([]byte, 16)
	for _, c := range []struct {
		name    string
		ctx     context.Context
		op      func(ctx context.Context) (int, error)
		want    int
		wantErr error
	}{
		{"read execute-only", ctx, func(ctx context.Context) (int, error) { return as.CopyIn(ctx, x, buf, usermem.IOOpts{}) }, 16, nil},
		{"write execute-only", ctx, func(ctx context.Context) (int, error) { return as.CopyOut(ctx, x, buf, usermem.IOOpts{}) }, 0, unix.EFAULT},
		{"write, ctx canceled", canceled, func(ctx context.Context) (int, error) {
			return as.CopyOut(ctx, rw, []byte("0123456789abcdef"), usermem.IOOpts{})
		}, 16, nil},
		{"read, ctx canceled", canceled, func(ctx context.Context) (int, error) { return as.CopyIn(ctx, rw, buf, usermem.IOOpts{}) }, 16, nil},
		{"zero, ctx canceled", canceled, func(ctx context.Context) (int, error) {
			n, err := as.ZeroOut(ctx, rw+16, 16, usermem.IOOpts{})
			return int(n), err
		}, 16, nil},
		{"CopyBetween, ctx canceled", canceled, func(ctx context.Context) (int, error) {
			n, err := CopyBetween(ctx, as, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: rw + 64, End: rw + 80}),
				as, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: rw, End: rw + 16}))
			return int(n), err
		}, 16, nil},
	} {
		n, err := c.op(c.ctx)
		if n != c.want || !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
			t.Errorf("%s = %d, %v; want %d, %v", c.name, n, err, c.want, c.wantErr)
		}
	}
	if got := string(readAt(t, as, rw+64, 16)); got != "0123456789abcdef" {
		t.Errorf("CopyBetween copied %q", got)
	}
	if err := as.FutexWait(canceled, rw+16, 0, allBits); !errors.Is(err, context.Canceled) {
		t.Errorf("FutexWait with a canceled ctx = %v, want context.Canceled", err)
	}
}
