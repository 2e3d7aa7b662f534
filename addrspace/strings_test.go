package addrspace

import (
	"context"
	"errors"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// TestCopyStringIn checks AddressSpace's own CopyStringIn (usermem.StringIO)
// against usermem's general loop over the same memory (through ioOnly,
// which hides the method): the same string and error in every case, and the
// exact result the rules give.
func TestCopyStringIn(t *testing.T) {
	ctx := context.Background()
	as := newAS(t, 64*pg)
	// Pages 4-6 readable, 7 unmapped, 8 PROT_NONE.
	a := mustMmap(t, as, MmapOpts{Addr: 4 * pg, Length: 3 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	mustMmap(t, as, MmapOpts{Addr: 8 * pg, Length: pg, Fixed: true, Private: true})
	fill := func(at hostarch.Addr, b []byte) {
		t.Helper()
		if _, err := as.CopyOut(ctx, at, b, noOpt); err != nil {
			t.Fatal(err)
		}
	}
	str := func(n int, c byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = c
		}
		return b
	}
	fill(a, append(str(63, 'a'), 0))          // a short string
	fill(a+pg-10, append(str(9, 'b'), 0))     // NUL the last byte of a page
	fill(a+100, append(str(300, 'c'), 0))     // longer than the first chunk
	fill(a+3*pg-5, str(5, 'd'))               // runs into the unmapped page
	fill(a+2*pg-50, append(str(100, 'e'), 0)) // crosses into page 6
	for _, tc := range []struct {
		name   string
		addr   hostarch.Addr
		maxlen int
		want   string
		err    error
	}{
		{"short", a, 4096, string(str(63, 'a')), nil},
		{"exactly maxlen with NUL", a, 64, string(str(63, 'a')), nil},
		{"maxlen one short", a, 63, string(str(63, 'a')), unix.ENAMETOOLONG},
		{"maxlen 1", a, 1, "a", unix.ENAMETOOLONG},
		{"NUL at page end", a + pg - 10, 4096, string(str(9, 'b')), nil},
		{"past the first chunk", a + 100, 4096, string(str(300, 'c')), nil},
		{"crosses a page", a + 2*pg - 50, 4096, string(str(100, 'e')), nil},
		{"into an unmapped page", a + 3*pg - 5, 4096, string(str(5, 'd')), unix.EFAULT},
		{"unmapped", 7 * pg, 4096, "", unix.EFAULT},
		{"PROT_NONE", 8 * pg, 16, "", unix.EFAULT},
		{"beyond Size", 64 * pg, 16, "", unix.EFAULT},
		{"wraps", ^hostarch.Addr(0) - 3, 16, "", unix.EFAULT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := usermem.CopyStringIn(ctx, as, tc.addr, tc.maxlen, noOpt)
			ref, refErr := usermem.CopyStringIn(ctx, ioOnly{as}, tc.addr, tc.maxlen, noOpt)
			if got != tc.want || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Errorf("CopyStringIn = %q (%d bytes), %v; want %d bytes, %v", got, len(got), err, len(tc.want), tc.err)
			}
			if got != ref || errors.Is(refErr, unix.EFAULT) != errors.Is(err, unix.EFAULT) || (refErr == nil) != (err == nil) {
				t.Errorf("StringIO path = %q, %v; general loop = %q, %v", got, err, ref, refErr)
			}
		})
	}
	if allocs := testing.AllocsPerRun(100, func() { usermem.CopyStringIn(ctx, as, a, 4096, noOpt) }); allocs != 1 {
		t.Errorf("a short string costs %v allocations, want 1 (the string)", allocs)
	}
}
