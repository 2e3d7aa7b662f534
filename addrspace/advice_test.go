package addrspace

import (
	"bytes"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// TestMadviseLinux checks Madvise's errors and effects against what Linux
// 6.18 does (confirmed by TestHostDiffCases): over holes every mapped part
// is advised before ENOMEM, the end of the space is a hole, length 0 is 0
// whatever the range, and MADV_RANDOM/SEQUENTIAL split and merge mappings.
func TestMadviseLinux(t *testing.T) {
	const size = 64 * pg
	dirty := bytes.Repeat([]byte{0xd1}, pg)
	zero := make([]byte, pg)
	for _, tc := range []struct {
		name     string
		pages    []hostarch.Addr // private anonymous pages, mapped and written
		addr     hostarch.Addr
		n        uint64
		advice   int
		wantErr  unix.Errno
		wantZero []hostarch.Addr // pages that read zero afterwards; the others keep their bytes
		wantMaps string          // "" to skip
	}{
		{name: "a hole in the middle", pages: []hostarch.Addr{0x10000, 0x11000, 0x13000},
			addr: 0x10000, n: 4 * pg, advice: unix.MADV_DONTNEED, wantErr: unix.ENOMEM,
			wantZero: []hostarch.Addr{0x10000, 0x11000, 0x13000}},
		{name: "a hole first", pages: []hostarch.Addr{0x11000},
			addr: 0x10000, n: 2 * pg, advice: unix.MADV_DONTNEED, wantErr: unix.ENOMEM,
			wantZero: []hostarch.Addr{0x11000}},
		{name: "past the end of the space", pages: []hostarch.Addr{size - pg},
			addr: size - pg, n: 2 * pg, advice: unix.MADV_DONTNEED, wantErr: unix.ENOMEM,
			wantZero: []hostarch.Addr{size - pg}},
		{name: "all mapped", pages: []hostarch.Addr{0x10000, 0x11000},
			addr: 0x10000, n: pg + 1, advice: unix.MADV_DONTNEED,
			wantZero: []hostarch.Addr{0x10000, 0x11000}},
		{name: "length 0 over nothing", addr: 0x10000, n: 0, advice: unix.MADV_DONTNEED},
		{name: "length 0 beyond the space", addr: size + pg, n: 0, advice: unix.MADV_DONTNEED},
		{name: "length 0 unaligned", addr: 0x10001, n: 0, advice: unix.MADV_DONTNEED, wantErr: unix.EINVAL},
		{name: "length 0 with unknown advice", addr: 0x10000, n: 0, advice: 12345, wantErr: unix.EINVAL},
		{name: "a length that overflows", pages: []hostarch.Addr{0x10000},
			addr: 0x10000, n: ^uint64(0), advice: unix.MADV_DONTNEED, wantErr: unix.EINVAL},
		{name: "a range that wraps", pages: []hostarch.Addr{0x10000},
			addr: 0x10000, n: ^uint64(0) - 0x8000, advice: unix.MADV_DONTNEED, wantErr: unix.EINVAL},
		{name: "wholly beyond the space", addr: size + pg, n: pg, advice: unix.MADV_WILLNEED, wantErr: unix.ENOMEM},
		{name: "MADV_RANDOM splits a mapping", pages: []hostarch.Addr{0x10000, 0x11000, 0x12000},
			addr: 0x11000, n: pg, advice: unix.MADV_RANDOM,
			wantMaps: "0x10000-0x11000 rw-p 0x0\n0x11000-0x12000 rw-p 0x0\n0x12000-0x13000 rw-p 0x0\n"},
		{name: "MADV_NORMAL over holes", pages: []hostarch.Addr{0x10000, 0x12000},
			addr: 0x10000, n: 3 * pg, advice: unix.MADV_NORMAL, wantErr: unix.ENOMEM,
			wantMaps: "0x10000-0x11000 rw-p 0x0\n0x12000-0x13000 rw-p 0x0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, size)
			for _, a := range tc.pages {
				mustMmap(t, as, MmapOpts{Addr: a, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
				writeAt(t, as, a, string(dirty))
			}
			err := as.Madvise(tc.addr, tc.n, tc.advice)
			if errnoOf(err) != tc.wantErr {
				t.Fatalf("Madvise(%#x, %#x, %d) = %v; want %v", tc.addr, tc.n, tc.advice, err, tc.wantErr)
			}
			for _, a := range tc.pages {
				want := dirty
				for _, z := range tc.wantZero {
					if z == a {
						want = zero
					}
				}
				buf := make([]byte, pg)
				if n, err := as.CopyIn(ctx, a, buf, usermem.IOOpts{}); n != pg || err != nil || !bytes.Equal(buf, want) {
					t.Errorf("page %#x after Madvise: %d, %v, zero %v; want zero %v", a, n, err, bytes.Equal(buf, zero), bytes.Equal(want, zero))
				}
			}
			if tc.wantMaps != "" {
				if m := mapsOf(as); m != tc.wantMaps {
					t.Errorf("mappings\n%swant\n%s", m, tc.wantMaps)
				}
			}
		})
	}
	// MADV_NORMAL over the whole mapping merges it again.
	as := newAS(t, size)
	mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 3 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	if err := as.Madvise(0x11000, pg, unix.MADV_SEQUENTIAL); err != nil {
		t.Fatal(err)
	}
	if err := as.Madvise(0x10000, 3*pg, unix.MADV_NORMAL); err != nil {
		t.Fatal(err)
	}
	if m, want := mapsOf(as), "0x10000-0x13000 rw-p 0x0\n"; m != want {
		t.Fatalf("after MADV_NORMAL: mappings\n%swant\n%s", m, want)
	}
}
