package addrspace

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
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
			ref, refErr := usermem.CopyStringIn(ctx, plainIO{as}, tc.addr, tc.maxlen, noOpt)
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

// TestCopyStringInPaths covers what the fast path hands to the general
// loop: a page never touched (the scan faults; CopyIn backs it), the max
// view, a closed space, and a string running off its page; each gives the
// general loop's result.
func TestCopyStringInPaths(t *testing.T) {
	ctx := context.Background()
	as := newAS(t, 64*pg)
	a := mustMmap(t, as, MmapOpts{Addr: 4 * pg, Length: 3 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	ro := mustMmap(t, as, MmapOpts{Addr: 10 * pg, Length: pg, Fixed: true, Perms: hostarch.Read, Private: true})
	// A string in a read-only page, written through the max view.
	if _, err := as.CopyOut(ctx, ro, []byte("read-only\x00"), usermem.IOOpts{IgnorePermissions: true}); err != nil {
		t.Fatal(err)
	}
	if err := as.Mprotect(ro, pg, hostarch.NoAccess); err != nil {
		t.Fatal(err)
	}
	long := make([]byte, 2*pg)
	for i := range long {
		long[i] = 'L'
	}
	long[pg+100] = 0
	if _, err := as.CopyOut(ctx, a+pg, long[:pg+101], noOpt); err != nil {
		t.Fatal(err)
	}
	// Strings around the stack buffer's size, each NUL-terminated.
	at := a + 2*pg + 512
	var sized []string
	for _, n := range []int{126, 127, 128, 129, 200} {
		str := strings.Repeat("s", n)
		if _, err := as.CopyOut(ctx, at, append([]byte(str), 0), noOpt); err != nil {
			t.Fatal(err)
		}
		sized = append(sized, str)
		at += hostarch.Addr(n + 1)
	}
	type pathCase struct {
		name string
		addr hostarch.Addr
		opts usermem.IOOpts
		want string
		err  error
	}
	var sizedCases []pathCase
	at = a + 2*pg + 512
	for _, str := range sized {
		sizedCases = append(sizedCases, pathCase{fmt.Sprintf("%d bytes", len(str)), at, noOpt, str, nil})
		at += hostarch.Addr(len(str) + 1)
	}
	for _, tc := range append(sizedCases, []pathCase{
		{"page never touched", a, noOpt, "", nil},
		{"max view", ro, usermem.IOOpts{IgnorePermissions: true}, "read-only", nil},
		{"PROT_NONE without it", ro, noOpt, "", unix.EFAULT},
		{"runs off its page", a + pg, noOpt, string(long[:pg+100]), nil},
	}...) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := usermem.CopyStringIn(ctx, as, tc.addr, 3*pg, tc.opts)
			if got != tc.want || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Errorf("CopyStringIn = %d bytes, %v; want %d bytes, %v", len(got), err, len(tc.want), tc.err)
			}
		})
	}
	if err := as.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := usermem.CopyStringIn(ctx, as, a+pg, 16, noOpt); got != "" || err == nil {
		t.Errorf("CopyStringIn after Close = %q, %v; want an error", got, err)
	}
}

// TestCopyStringInRace runs CopyStringIn while another goroutine writes NULs
// into the string and takes them out again: every result is a prefix of
// the string with no NUL in it, whatever interleaving it saw.
func TestCopyStringInRace(t *testing.T) {
	ctx := context.Background()
	as := newAS(t, 64*pg)
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	str := []byte("/usr/lib/mmsim/a/rather/long/path/that/keeps/going/and/going/on\x00")
	if _, err := as.CopyOut(ctx, a, str, noOpt); err != nil {
		t.Fatal(err)
	}
	want := string(str[:len(str)-1])
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20000; i++ {
			at := a + hostarch.Addr(i*7%(len(str)-1))
			as.CopyOut(ctx, at, []byte{0}, noOpt)
			as.CopyOut(ctx, at, str[int(at-a):int(at-a)+1], noOpt)
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		got, err := usermem.CopyStringIn(ctx, as, a, pg, noOpt)
		if err != nil || len(got) > len(want) || got != want[:len(got)] {
			t.Fatalf("CopyStringIn = %q, %v; want a prefix of %q", got, err, want)
		}
	}
}

// TestCopyStringInEdges feeds CopyStringIn's guest arguments their edges:
// an address of 0, 2^64-1 or the last byte of the space, a maxlen of 0, 1
// or the largest int. Each gives the general loop's result.
func TestCopyStringInEdges(t *testing.T) {
	ctx := context.Background()
	as := newAS(t, 64*pg)
	mustMmap(t, as, MmapOpts{Addr: 63 * pg, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	if _, err := as.CopyOut(ctx, 64*pg-6, []byte("tail\x00Z"), noOpt); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		addr   hostarch.Addr
		maxlen int
		want   string
		err    error
	}{
		{"address 0", 0, math.MaxInt, "", unix.EFAULT},
		{"address 2^64-1", ^hostarch.Addr(0), math.MaxInt, "", unix.EFAULT},
		{"address 2^64-1, maxlen 1", ^hostarch.Addr(0), 1, "", unix.EFAULT},
		{"maxlen 0", 64*pg - 6, 0, "", unix.ENAMETOOLONG},
		{"maxlen 1", 64*pg - 6, 1, "t", unix.ENAMETOOLONG},
		{"largest maxlen", 64*pg - 6, math.MaxInt, "tail", nil},
		{"runs into the end of the space", 64*pg - 1, math.MaxInt, "Z", unix.EFAULT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := usermem.CopyStringIn(ctx, as, tc.addr, tc.maxlen, noOpt)
			ref, refErr := usermem.CopyStringIn(ctx, plainIO{as}, tc.addr, tc.maxlen, noOpt)
			if got != tc.want || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Errorf("CopyStringIn = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
			if got != ref || fmt.Sprint(err) != fmt.Sprint(refErr) {
				t.Errorf("StringIO path = %q, %v; general loop = %q, %v", got, err, ref, refErr)
			}
		})
	}
}
