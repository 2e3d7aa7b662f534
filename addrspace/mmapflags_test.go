package addrspace

import (
	"errors"
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestMmapNoReplace checks MAP_FIXED_NOREPLACE: EEXIST over anything mapped
// (nothing changes), the range mapped otherwise, with or without Fixed.
func TestMmapNoReplace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		addr    hostarch.Addr
		length  uint64
		fixed   bool
		wantErr error
	}{
		{"free", 0x300000, 2 * pg, false, nil},
		{"free, with Fixed", 0x300000, 2 * pg, true, nil},
		{"over the whole mapping", 0x200000, 4 * pg, false, unix.EEXIST},
		{"over its last page", 0x200000 + 3*pg, 2 * pg, false, unix.EEXIST},
		{"ending on its first page", 0x200000 - pg, 2 * pg, true, unix.EEXIST},
		{"just after it", 0x200000 + 4*pg, pg, false, nil},
		{"unaligned", 0x300001, pg, false, unix.EINVAL},
		{"page 0", 0, pg, false, unix.EPERM},
		{"beyond the space", 1 << 30, pg, false, unix.ENOMEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 1<<30)
			a := mustMmap(t, as, MmapOpts{Addr: 0x200000, Fixed: true, Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
			writeAt(t, as, a, "keep")
			before := as.Mappings()
			got, err := as.Mmap(MmapOpts{Addr: tc.addr, Length: tc.length, NoReplace: true, Fixed: tc.fixed, Perms: hostarch.Read, Private: true})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Mmap = %#x, %v; want %v", got, err, tc.wantErr)
				}
				if !mapsEqualT(as.Mappings(), before) || string(readAt(t, as, a, 4)) != "keep" {
					t.Fatal("a failed NoReplace changed the mappings or bytes")
				}
				return
			}
			if err != nil || got != tc.addr {
				t.Fatalf("Mmap = %#x, %v; want %#x", got, err, tc.addr)
			}
		})
	}
}

func mapsEqualT(a, b []Mapping) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMmapPopulate checks MAP_POPULATE: every page resident on return
// (private anonymous, private and shared file), none for PROT_NONE, and a
// file shorter than the mapping populates up to its end without failing.
func TestMmapPopulate(t *testing.T) {
	f := tempFile(t, pattern(3*pg+100, 1), os.O_RDWR)
	for _, tc := range []struct {
		name     string
		opts     MmapOpts
		resident uint64 // pages
	}{
		{"private anonymous", MmapOpts{Length: 8 * pg, Perms: hostarch.ReadWrite, Private: true}, 8},
		{"private file, past its end", MmapOpts{Length: 6 * pg, Perms: hostarch.ReadWrite, Private: true, File: f}, 4},
		{"shared file, read-only", MmapOpts{Length: 4 * pg, Perms: hostarch.Read, File: f}, 4},
		{"PROT_NONE", MmapOpts{Length: 4 * pg, Private: true}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 1<<30)
			opts := tc.opts
			opts.Populate = true
			a, err := as.Mmap(opts)
			if err != nil {
				t.Fatal(err)
			}
			res, err := as.Mincore(a, opts.Length)
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			for _, r := range res {
				if r {
					n++
				}
			}
			if n != tc.resident {
				t.Fatalf("%d pages resident after Mmap with Populate, want %d", n, tc.resident)
			}
			if opts.Private && opts.Perms.Write && opts.File == nil {
				if st := mustStats(t, as); st.PrivateCopies != int(tc.resident) {
					t.Fatalf("PrivateCopies = %d, want %d", st.PrivateCopies, tc.resident)
				}
			}
		})
	}
}
