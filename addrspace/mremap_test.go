package addrspace

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// mapsOf renders the mappings as "start-end perms offset" lines, with p or
// s for private or shared and f for a file.
func mapsOf(as *AddressSpace) string {
	var b strings.Builder
	for _, m := range as.Mappings() {
		ps := "s"
		if m.Private {
			ps = "p"
		}
		if m.FileName != "" {
			ps += "f"
		}
		fmt.Fprintf(&b, "%#x-%#x %v%s %#x\n", m.Range.Start, m.Range.End, m.Perms, ps, m.Offset)
	}
	return b.String()
}

type mremapCall struct {
	old             hostarch.Addr
	oldLen, newLen  uint64
	flags           int
	newAddr         hostarch.Addr
	want            hostarch.Addr
	wantErr         unix.Errno
	wantMapsAfter   string // "" to skip
	wantBytesAt     hostarch.Addr
	wantBytes       []byte // nil to skip; checked with IgnorePermissions
	wantFaultAt     hostarch.Addr
	wantFaultChecks bool
}

// TestMremapLinux checks Mremap against what Linux 6.18 does (each case was
// run against the host kernel; see TestHostDiff), one or more calls after a
// setup.
func TestMremapLinux(t *testing.T) {
	const size = 64 * pg
	data := pattern(4*pg, 7)
	rw, r := hostarch.ReadWrite, hostarch.Read
	anon := func(addr hostarch.Addr, pages int, perms hostarch.AccessType, private bool) func(*testing.T, *AddressSpace, *os.File) {
		return func(t *testing.T, as *AddressSpace, _ *os.File) {
			mustMmap(t, as, MmapOpts{Addr: addr, Length: uint64(pages) * pg, Fixed: true, Perms: perms, Private: private})
		}
	}
	steps := func(fs ...func(*testing.T, *AddressSpace, *os.File)) func(*testing.T, *AddressSpace, *os.File) {
		return func(t *testing.T, as *AddressSpace, f *os.File) {
			for _, s := range fs {
				s(t, as, f)
			}
		}
	}
	write := func(addr hostarch.Addr, b []byte) func(*testing.T, *AddressSpace, *os.File) {
		return func(t *testing.T, as *AddressSpace, _ *os.File) {
			if n, err := as.CopyOut(ctx, addr, b, usermem.IOOpts{IgnorePermissions: true}); err != nil || n != len(b) {
				t.Fatalf("CopyOut: %d, %v", n, err)
			}
		}
	}
	unmap := func(addr hostarch.Addr, pages int) func(*testing.T, *AddressSpace, *os.File) {
		return func(t *testing.T, as *AddressSpace, _ *os.File) {
			if err := as.Munmap(addr, uint64(pages)*pg); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(*testing.T, *AddressSpace, *os.File)
		calls []mremapCall
	}{
		{
			name:  "growth by move is one mapping, which can grow again",
			setup: steps(anon(0x10000, 1, rw, true), write(0x10000, data[:pg]), anon(0x11000, 1, r, true)),
			calls: []mremapCall{
				{old: 0x10000, oldLen: pg, newLen: 8 * pg, flags: unix.MREMAP_MAYMOVE, want: 0x38000,
					wantMapsAfter: "0x11000-0x12000 r--p 0x0\n0x38000-0x40000 rw-p 0x0\n"},
				{old: 0x38000, oldLen: 8 * pg, newLen: 16 * pg, flags: unix.MREMAP_MAYMOVE, want: 0x28000,
					wantMapsAfter: "0x11000-0x12000 r--p 0x0\n0x28000-0x38000 rw-p 0x0\n",
					wantBytesAt:   0x28000, wantBytes: append(append([]byte(nil), data[:pg]...), make([]byte, pg)...)},
			},
		},
		{
			name:  "a Fixed Mmap of an identical mapping over part of one merges",
			setup: steps(anon(0x10000, 4, rw, true), anon(0x11000, 2, rw, true)),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 4 * pg, newLen: 8 * pg, want: 0x10000, wantMapsAfter: "0x10000-0x18000 rw-p 0x0\n"},
			},
		},
		{
			name:  "shared anonymous growth shows the object's bytes",
			setup: steps(anon(0x10000, 4, rw, false), write(0x10000, data), unmap(0x12000, 2)),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 2 * pg, newLen: 4 * pg, want: 0x10000, wantMapsAfter: "0x10000-0x14000 rw-s 0x0\n",
					wantBytesAt: 0x10000, wantBytes: data},
			},
		},
		{
			name:  "shared anonymous growth past the object's end faults",
			setup: anon(0x10000, 2, rw, false),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 2 * pg, newLen: 4 * pg, want: 0x10000, wantMapsAfter: "0x10000-0x14000 rw-s 0x0\n",
					wantFaultChecks: true, wantFaultAt: 0x12000},
			},
		},
		{
			name:  "a duplicate reaches past the mapping into its object",
			setup: steps(anon(0x10000, 4, rw, false), write(0x10000, data), unmap(0x11000, 3)),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 0, newLen: 4 * pg, flags: unix.MREMAP_MAYMOVE, want: 0x3c000,
					wantMapsAfter: "0x10000-0x11000 rw-s 0x0\n0x3c000-0x40000 rw-s 0x0\n",
					wantBytesAt:   0x3c000, wantBytes: data},
			},
		},
		{
			name:  "a duplicate from inside a shared mapping",
			setup: steps(anon(0x10000, 4, rw, false), write(0x10000, data)),
			calls: []mremapCall{
				{old: 0x12000, oldLen: 0, newLen: 2 * pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0x20000, want: 0x20000,
					wantMapsAfter: "0x10000-0x14000 rw-s 0x0\n0x20000-0x22000 rw-s 0x2000\n",
					wantBytesAt:   0x20000, wantBytes: data[2*pg:]},
			},
		},
		{
			name:  "a duplicate onto itself unmaps the source first: EFAULT",
			setup: anon(0x10000, 2, rw, false),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 0, newLen: pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0x10000,
					wantErr: unix.EFAULT, wantMapsAfter: "0x11000-0x12000 rw-s 0x1000\n"},
			},
		},
		{
			name:  "FIXED with the same length moves several mappings and their gaps",
			setup: steps(anon(0x10000, 2, rw, true), anon(0x13000, 1, r, true), anon(0x21000, 1, r, false)),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 4 * pg, newLen: 4 * pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0x20000, want: 0x20000,
					wantMapsAfter: "0x20000-0x22000 rw-p 0x0\n0x23000-0x24000 r--p 0x0\n"},
			},
		},
		{
			name:  "a FIXED shrink needs only the head in one mapping",
			setup: steps(anon(0x10000, 1, rw, true), anon(0x11000, 1, r, true)),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 2 * pg, newLen: pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0x20000, want: 0x20000,
					wantMapsAfter: "0x20000-0x21000 rw-p 0x0\n"},
			},
		},
		{
			name: "FIXED to an unaligned target with nothing at old: EINVAL",
			calls: []mremapCall{
				{old: 0x10000, oldLen: pg, newLen: pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0x20001, wantErr: unix.EINVAL},
			},
		},
		{
			name: "FIXED to a target overlapping old with nothing at old: EINVAL",
			calls: []mremapCall{
				{old: 0x10000, oldLen: 2 * pg, newLen: pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0x11000, wantErr: unix.EINVAL},
			},
		},
		{
			name:  "FIXED to page 0: the target is unmapped, then EPERM",
			setup: steps(anon(0x1000, 1, rw, true), anon(0x10000, 1, rw, true)),
			calls: []mremapCall{
				{old: 0x10000, oldLen: pg, newLen: 2 * pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0,
					wantErr: unix.EPERM, wantMapsAfter: "0x10000-0x11000 rw-p 0x0\n"},
				{old: 0x10000, oldLen: pg, newLen: pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0, wantErr: unix.EPERM},
				{old: 0x10000, oldLen: 0, newLen: pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0, wantErr: unix.EINVAL},
			},
		},
		{
			name:  "old length 0 on a shared mapping without MAYMOVE: ENOMEM",
			setup: anon(0x10000, 1, rw, false),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 0, newLen: pg, wantErr: unix.ENOMEM},
			},
		},
		{
			name:  "old length 0 on a private mapping: EINVAL",
			setup: anon(0x10000, 1, rw, true),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 0, newLen: pg, flags: unix.MREMAP_MAYMOVE, wantErr: unix.EINVAL},
			},
		},
		{
			name:  "the same length past the end of the space returns old",
			setup: anon(size-pg, 1, rw, true),
			calls: []mremapCall{
				{old: size - pg, oldLen: 2 * pg, newLen: 2 * pg, want: size - pg, wantMapsAfter: "0x3f000-0x40000 rw-p 0x0\n"},
			},
		},
		{
			name:  "the same length over holes returns old",
			setup: anon(0x10000, 1, rw, true),
			calls: []mremapCall{
				{old: 0x10000, oldLen: 4 * pg, newLen: 4 * pg, flags: unix.MREMAP_MAYMOVE, want: 0x10000},
			},
		},
		{
			name: "a huge new length on a file mapping: EINVAL, not a panic",
			setup: func(t *testing.T, as *AddressSpace, f *os.File) {
				mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: pg, Fixed: true, Perms: rw, File: f})
			},
			calls: []mremapCall{
				{old: 0x10000, oldLen: pg, newLen: ^uint64(0) - 0x10000 + 1, wantErr: unix.EINVAL, wantMapsAfter: "0x10000-0x11000 rw-sf 0x0\n"},
				{old: 0x10000, oldLen: pg, newLen: ^uint64(0) - 0x10000 + 1, flags: unix.MREMAP_MAYMOVE, wantErr: unix.EINVAL},
				{old: 0x10000, oldLen: pg, newLen: size + pg, flags: unix.MREMAP_MAYMOVE, wantErr: unix.EINVAL},
				{old: 0x10000, oldLen: pg, newLen: ^uint64(0) - pg + 1, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 0x20000, wantErr: unix.EINVAL},
			},
		},
		{
			name:  "an old length that rounds to 0 duplicates, as PAGE_ALIGN wraps",
			setup: anon(0x10000, 1, rw, false),
			calls: []mremapCall{
				{old: 0x10000, oldLen: ^uint64(0), newLen: pg, flags: unix.MREMAP_MAYMOVE, want: 0x3f000,
					wantMapsAfter: "0x10000-0x11000 rw-s 0x0\n0x3f000-0x40000 rw-s 0x0\n"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, size)
			f := tempFile(t, pattern(4*pg, 1), os.O_RDWR)
			if tc.setup != nil {
				tc.setup(t, as, f)
			}
			for _, c := range tc.calls {
				got, err := as.Mremap(c.old, c.oldLen, c.newLen, c.flags, c.newAddr)
				var errno unix.Errno
				if err != nil && !errors.As(err, &errno) {
					t.Fatalf("Mremap(%#x, %#x, %#x, %#x, %#x): %v is not a unix.Errno", c.old, c.oldLen, c.newLen, c.flags, c.newAddr, err)
				}
				if errno != c.wantErr || (c.wantErr == 0 && got != c.want) {
					t.Fatalf("Mremap(%#x, %#x, %#x, %#x, %#x) = %#x, %v; want %#x, %v", c.old, c.oldLen, c.newLen, c.flags, c.newAddr, got, err, c.want, c.wantErr)
				}
				if c.wantMapsAfter != "" {
					if m := mapsOf(as); m != c.wantMapsAfter {
						t.Fatalf("after Mremap(%#x, %#x, %#x): mappings\n%swant\n%s", c.old, c.oldLen, c.newLen, m, c.wantMapsAfter)
					}
				}
				if c.wantBytes != nil {
					buf := make([]byte, len(c.wantBytes))
					if n, err := as.CopyIn(ctx, c.wantBytesAt, buf, usermem.IOOpts{IgnorePermissions: true}); n != len(buf) || err != nil || !bytes.Equal(buf, c.wantBytes) {
						t.Fatalf("bytes at %#x: %d, %v, equal %v", c.wantBytesAt, n, err, bytes.Equal(buf, c.wantBytes))
					}
				}
				if c.wantFaultChecks {
					buf := make([]byte, pg)
					if n, err := as.CopyIn(ctx, c.wantFaultAt, buf, usermem.IOOpts{}); n != 0 || !errors.Is(err, unix.EFAULT) {
						t.Fatalf("CopyIn at %#x = %d, %v; want 0, EFAULT", c.wantFaultAt, n, err)
					}
				}
			}
		})
	}
}

// TestMremapSharedAliases checks that a duplicate and a grown shared
// anonymous mapping alias the same object: a write through one shows
// through the other.
func TestMremapSharedAliases(t *testing.T) {
	as := newAS(t, 64*pg)
	a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite})
	if err := as.Munmap(a+pg, pg); err != nil {
		t.Fatal(err)
	}
	d, err := as.Mremap(a, 0, 2*pg, unix.MREMAP_MAYMOVE, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := as.Mremap(a, pg, 2*pg, 0, 0); err != nil || g != a {
		t.Fatalf("growing in place = %#x, %v", g, err)
	}
	for _, w := range []struct {
		at, see hostarch.Addr
		s       string
	}{{d + pg, a + pg, "dup"}, {a + pg, d + pg, "grown"}, {a, d, "first"}} {
		writeAt(t, as, w.at, w.s)
		if got := string(readAt(t, as, w.see, len(w.s))); got != w.s {
			t.Fatalf("write %q at %#x reads %q at %#x", w.s, w.at, got, w.see)
		}
	}
}

// TestMremapHostileArguments calls Mremap with arguments from the edges of
// their ranges over file, shared and private mappings: every call returns
// a result inside the space (never page 0) or EINVAL, EFAULT, ENOMEM or
// EPERM (a FIXED target at page 0), never panics
// (issue 10: a huge newLen on a file mapping used to wrap a bound and panic
// in pma), and leaves no file reference behind.
func TestMremapHostileArguments(t *testing.T) {
	const size = 64 * pg
	f := tempFile(t, pattern(4*pg, 3), os.O_RDWR)
	addrs := []hostarch.Addr{0, 1, 0x10000, 0x14000, size - pg, size, size + pg, 1 << 63, ^hostarch.Addr(0) &^ (pg - 1), ^hostarch.Addr(0)}
	lens := []uint64{0, 1, pg, 2 * pg, size, size + pg, 1 << 63, ^uint64(0) - 0x10000 + 1, ^uint64(0) - pg + 1, ^uint64(0)}
	flagSet := []int{0, unix.MREMAP_MAYMOVE, unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, unix.MREMAP_FIXED, 0x80}
	runtime.GC()
	fds := countFDs(t)
	calls := 0
	for _, flags := range flagSet {
		for _, old := range addrs[:6] {
			for _, oldLen := range lens {
				for _, newLen := range lens {
					for _, newAddr := range []hostarch.Addr{0, 0x20000, size - pg, ^hostarch.Addr(0) &^ (pg - 1)} {
						as, err := New(Options{Size: size})
						if err != nil {
							t.Fatal(err)
						}
						mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, File: f})
						mustMmap(t, as, MmapOpts{Addr: 0x14000, Length: pg, Fixed: true, Perms: hostarch.ReadWrite})
						mustMmap(t, as, MmapOpts{Addr: size - pg, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
						got, err := as.Mremap(old, oldLen, newLen, flags, newAddr)
						calls++
						var errno unix.Errno
						switch {
						case err == nil:
							if !got.IsPageAligned() || got < MinAddr || uint64(got) >= size {
								t.Errorf("Mremap(%#x, %#x, %#x, %#x, %#x) = %#x, outside the space", old, oldLen, newLen, flags, newAddr, got)
							}
						case !errors.As(err, &errno) || (errno != unix.EINVAL && errno != unix.EFAULT && errno != unix.ENOMEM && errno != unix.EPERM):
							t.Errorf("Mremap(%#x, %#x, %#x, %#x, %#x): %v", old, oldLen, newLen, flags, newAddr, err)
						}
						if err := as.Close(); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	}
	runtime.GC()
	if n := countFDs(t); n > fds {
		t.Errorf("%d descriptors open after %d calls, %d before", n, calls, fds)
	}
}
