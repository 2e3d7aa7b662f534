package addrspace

import (
	"errors"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// TestMprotectAcrossEnd checks that the end of the address space is a hole
// for Mprotect, as TASK_SIZE is on Linux: the pages up to it change, then
// ENOMEM.
func TestMprotectAcrossEnd(t *testing.T) {
	const size = 16 * pg
	for _, tc := range []struct {
		name      string
		addr      hostarch.Addr
		length    uint64
		wantErr   unix.Errno
		readOnly  []hostarch.Addr // pages left read-only
		writeable []hostarch.Addr
	}{
		{"ends at Size", 14 * pg, 2 * pg, 0, []hostarch.Addr{14 * pg, 15 * pg}, []hostarch.Addr{13 * pg}},
		{"runs past Size", 14 * pg, 4 * pg, unix.ENOMEM, []hostarch.Addr{14 * pg, 15 * pg}, []hostarch.Addr{13 * pg}},
		{"huge length", 15 * pg, 1 << 62, unix.ENOMEM, []hostarch.Addr{15 * pg}, []hostarch.Addr{14 * pg}},
		{"starts at Size", size, pg, unix.ENOMEM, nil, []hostarch.Addr{14 * pg, 15 * pg}},
		{"starts beyond Size", 1 << 40, pg, unix.ENOMEM, nil, []hostarch.Addr{15 * pg}},
		{"wraps", 15 * pg, ^uint64(0) - 15*pg + 1, unix.ENOMEM, nil, []hostarch.Addr{15 * pg}},
		{"2^64-page", ^hostarch.Addr(0) &^ (pg - 1), pg, unix.ENOMEM, nil, []hostarch.Addr{15 * pg}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, size)
			mustMmap(t, as, MmapOpts{Addr: 12 * pg, Fixed: true, Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
			err := as.Mprotect(tc.addr, tc.length, hostarch.Read)
			if tc.wantErr == 0 && err != nil || tc.wantErr != 0 && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Mprotect(%#x, %#x) = %v, want %v", tc.addr, tc.length, err, tc.wantErr)
			}
			for _, a := range tc.readOnly {
				if n, err := as.CopyOut(ctx, a, []byte{1}, usermem.IOOpts{}); n != 0 || !errors.Is(err, unix.EFAULT) {
					t.Errorf("page %#x: write = %d, %v; want read-only", a, n, err)
				}
			}
			for _, a := range tc.writeable {
				if n, err := as.CopyOut(ctx, a, []byte{1}, usermem.IOOpts{}); n != 1 || err != nil {
					t.Errorf("page %#x: write = %d, %v; want writable", a, n, err)
				}
			}
		})
	}
}
