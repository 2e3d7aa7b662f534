package addrspace

import (
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestVMAMerging checks which neighbours are one mapping, as Linux 6.18
// merges VMAs (TestHostDiffCases runs the same steps against the host
// kernel).
func TestVMAMerging(t *testing.T) {
	rw, r := hostarch.ReadWrite, hostarch.Read
	type step func(*testing.T, *AddressSpace, *os.File)
	mmap := func(addr hostarch.Addr, pages int, perms hostarch.AccessType, private bool, file bool, off uint64) step {
		return func(t *testing.T, as *AddressSpace, f *os.File) {
			o := MmapOpts{Addr: addr, Length: uint64(pages) * pg, Fixed: true, Perms: perms, Private: private}
			if file {
				o.File, o.Offset = f, off
			}
			mustMmap(t, as, o)
		}
	}
	protect := func(addr hostarch.Addr, pages int, perms hostarch.AccessType) step {
		return func(t *testing.T, as *AddressSpace, _ *os.File) {
			if err := as.Mprotect(addr, uint64(pages)*pg, perms); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(addr hostarch.Addr) step {
		return func(t *testing.T, as *AddressSpace, _ *os.File) { writeAt(t, as, addr, "w") }
	}
	advise := func(addr hostarch.Addr, pages int, advice int) step {
		return func(t *testing.T, as *AddressSpace, _ *os.File) {
			if err := as.Madvise(addr, uint64(pages)*pg, advice); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  string
	}{
		{"a private file mapping once writable keeps VM_ACCOUNT",
			[]step{mmap(0x10000, 2, r, true, true, 0), protect(0x11000, 1, rw), protect(0x11000, 1, r)},
			"0x10000-0x11000 r--pf 0x0\n0x11000-0x12000 r--pf 0x1000\n"},
		{"private anonymous neighbours written apart keep their anon_vmas",
			[]step{mmap(0x10000, 1, rw, true, false, 0), mmap(0x12000, 1, rw, true, false, 0), mmap(0x11000, 1, rw, true, false, 0)},
			"0x10000-0x12000 rw-p 0x0\n0x12000-0x13000 rw-p 0x0\n"},
		{"private anonymous pieces of one mapping merge again",
			[]step{mmap(0x10000, 3, rw, true, false, 0), protect(0x11000, 1, r), protect(0x11000, 1, rw)},
			"0x10000-0x13000 rw-p 0x0\n"},
		{"two shared anonymous mappings never merge",
			[]step{mmap(0x10000, 1, rw, false, false, 0), mmap(0x11000, 1, rw, false, false, 0)},
			"0x10000-0x11000 rw-s 0x0\n0x11000-0x12000 rw-s 0x0\n"},
		{"pieces of one shared anonymous mapping merge again, at their offsets",
			[]step{mmap(0x10000, 3, rw, false, false, 0), protect(0x11000, 1, r)},
			"0x10000-0x11000 rw-s 0x0\n0x11000-0x12000 r--s 0x1000\n0x12000-0x13000 rw-s 0x2000\n"},
		{"private file pieces written apart do not merge",
			[]step{mmap(0x10000, 2, rw, true, true, 0), advise(0x11000, 1, unix.MADV_RANDOM), write(0x10000), write(0x11000),
				advise(0x10000, 2, unix.MADV_NORMAL)},
			"0x10000-0x11000 rw-pf 0x0\n0x11000-0x12000 rw-pf 0x1000\n"},
		{"a private file piece not written joins a written one",
			[]step{mmap(0x10000, 2, rw, true, true, 0), advise(0x11000, 1, unix.MADV_RANDOM), write(0x10000),
				advise(0x10000, 2, unix.MADV_NORMAL)},
			"0x10000-0x12000 rw-pf 0x0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 64*pg)
			f := tempFile(t, pattern(4*pg, 5), os.O_RDWR)
			for _, s := range tc.steps {
				s(t, as, f)
			}
			if got := mapsOf(as); got != tc.want {
				t.Fatalf("mappings\n%swant\n%s", got, tc.want)
			}
		})
	}
}
