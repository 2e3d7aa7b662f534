package addrspace

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestMremapDontUnmapErrors checks MREMAP_DONTUNMAP's errors against Linux
// 6.18's mm/mremap.c (confirmed on the host by TestHostDiffAdviceCases,
// except at the end of the space, which the host range does not have): each
// exact, and nothing changed.
func TestMremapDontUnmapErrors(t *testing.T) {
	const size = 0x40000
	as := newAS(t, size)
	a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	mustMmap(t, as, MmapOpts{Addr: 0x12000, Length: pg, Fixed: true, Perms: hostarch.Read, Private: true})
	writeAt(t, as, a, string(pattern(2*pg, 9)))
	const du = unix.MREMAP_MAYMOVE | unix.MREMAP_DONTUNMAP
	before := snapshot(t, as)
	for _, tc := range []struct {
		name           string
		old            hostarch.Addr
		oldLen, newLen uint64
		flags          int
		newAddr        hostarch.Addr
		want           unix.Errno
	}{
		{"without MREMAP_MAYMOVE", a, 2 * pg, 2 * pg, unix.MREMAP_DONTUNMAP, 0x20000, unix.EINVAL},
		{"growing", a, pg, 2 * pg, du, 0x20000, unix.EINVAL},
		{"shrinking", a, 2 * pg, pg, du, 0x20000, unix.EINVAL},
		{"an unaligned hint", a, 2 * pg, 2 * pg, du, 0x20001, unix.EINVAL},
		{"a hint overlapping old", a, 2 * pg, 2 * pg, du, a + pg, unix.EINVAL},
		{"a hint past the end", a, 2 * pg, 2 * pg, du, size - pg, unix.EINVAL},
		{"a hint that wraps", a, 2 * pg, 2 * pg, du, ^hostarch.Addr(0) &^ (pg - 1), unix.EINVAL},
		{"FIXED overlapping old", a, 2 * pg, 2 * pg, du | unix.MREMAP_FIXED, a + pg, unix.EINVAL},
		{"lengths that wrap to 0", a, ^uint64(0), ^uint64(0), du, 0x20000, unix.EINVAL},
		{"lengths of the whole space", a, size, size, du, 0, unix.EINVAL},
		{"lengths past the space", a, 1 << 62, 1 << 62, du, 0x20000, unix.EINVAL},
		{"unmapped old", 0x18000, pg, pg, du, 0x20000, unix.EFAULT},
		{"old past the space", ^hostarch.Addr(0) &^ (pg - 1), pg, pg, du, 0x20000, unix.EFAULT},
		{"across two mappings", a, 3 * pg, 3 * pg, du, 0x20000, unix.EFAULT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := as.Mremap(tc.old, tc.oldLen, tc.newLen, tc.flags, tc.newAddr)
			if errnoOf(err) != tc.want {
				t.Fatalf("Mremap = %#x, %v; want %v", got, err, tc.want)
			}
			if snapshot(t, as) != before {
				t.Fatal("a failed Mremap changed the space")
			}
		})
	}
	// No free range large enough.
	full := newAS(t, 0x10000)
	b := mustMmap(t, full, MmapOpts{Addr: pg, Length: 0x10000 - pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, full, b, "full")
	before = snapshot(t, full)
	if _, err := full.Mremap(b, pg, pg, du, 0); !errors.Is(err, unix.ENOMEM) {
		t.Errorf("Mremap with no free range = %v; want ENOMEM", err)
	}
	if snapshot(t, full) != before {
		t.Error("a failed Mremap changed the space")
	}
}

// TestMremapDontUnmap checks what MREMAP_DONTUNMAP moves and what it leaves:
// the pages move, the old range stays mapped and reads fresh.
func TestMremapDontUnmap(t *testing.T) {
	zero := make([]byte, pg)
	const du, fx = unix.MREMAP_MAYMOVE | unix.MREMAP_DONTUNMAP, unix.MREMAP_MAYMOVE | unix.MREMAP_DONTUNMAP | unix.MREMAP_FIXED

	t.Run("private anonymous, whole", func(t *testing.T) {
		as := newAS(t, 1<<20)
		a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
		writeAt(t, as, a, string(pattern(2*pg, 1)))
		got, err := as.Mremap(a, 2*pg, 2*pg, du, 0x40000)
		if err != nil || got != 0x40000 {
			t.Fatalf("Mremap = %#x, %v; want 0x40000 (the hint)", got, err)
		}
		if m := mapsOf(as); m != "0x10000-0x12000 rw-p 0x0\n0x40000-0x42000 rw-p 0x0\n" {
			t.Fatalf("mappings\n%s", m)
		}
		if b := readAt(t, as, got, 2*pg); !bytes.Equal(b, pattern(2*pg, 1)) {
			t.Error("the moved pages lost their bytes")
		}
		if b := readAt(t, as, a, 2*pg); !bytes.Equal(b, append(zero, zero...)) {
			t.Error("the old range does not read zero")
		}
		writeAt(t, as, a, "again")
		if b := string(readAt(t, as, got, 5)); b != string(pattern(5, 1)) {
			t.Errorf("a write to the old range reached the new: %q", b)
		}
		// The old range's memory went with the pages: nothing is counted
		// twice.
		st, _ := as.Stats()
		if st.PrivateCopies != 4 {
			t.Errorf("PrivateCopies = %d; want 4 (2 moved, 2 backed around the write to the old range)", st.PrivateCopies)
		}
	})

	t.Run("part of a mapping, FIXED over another", func(t *testing.T) {
		as := newAS(t, 1<<20)
		a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
		writeAt(t, as, a, string(pattern(4*pg, 2)))
		mustMmap(t, as, MmapOpts{Addr: 0x40000, Length: 4 * pg, Fixed: true, Perms: hostarch.Read, Private: true})
		got, err := as.Mremap(a+pg, 2*pg, 2*pg, fx, 0x41000)
		if err != nil || got != 0x41000 {
			t.Fatalf("Mremap = %#x, %v", got, err)
		}
		// The old mapping is not split; the target splits the other.
		if m := mapsOf(as); m != "0x10000-0x14000 rw-p 0x0\n0x40000-0x41000 r--p 0x0\n0x41000-0x43000 rw-p 0x0\n0x43000-0x44000 r--p 0x0\n" {
			t.Fatalf("mappings\n%s", m)
		}
		p := pattern(4*pg, 2)
		if b := readAt(t, as, a, 4*pg); !bytes.Equal(b[:pg], p[:pg]) || !bytes.Equal(b[pg:3*pg], append(zero, zero...)) || !bytes.Equal(b[3*pg:], p[3*pg:]) {
			t.Error("the old mapping: only the moved pages should read zero")
		}
		if b := readAt(t, as, got, 2*pg); !bytes.Equal(b, p[pg:3*pg]) {
			t.Error("the moved pages lost their bytes")
		}
	})

	t.Run("private file with a copy", func(t *testing.T) {
		as := newAS(t, 1<<20)
		f := tempFile(t, pattern(2*pg, 3), os.O_RDWR)
		a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, File: f})
		writeAt(t, as, a, "mine")
		got, err := as.Mremap(a, 2*pg, 2*pg, du, 0)
		if err != nil {
			t.Fatal(err)
		}
		if b := string(readAt(t, as, got, 4)); b != "mine" {
			t.Errorf("the private copy did not move: %q", b)
		}
		if b := readAt(t, as, a, 2*pg); !bytes.Equal(b, pattern(2*pg, 3)) {
			t.Error("the old range does not read the file again")
		}
		if data, _ := readAll(f); !bytes.Equal(data, pattern(2*pg, 3)) {
			t.Error("the file changed")
		}
	})

	t.Run("shared anonymous", func(t *testing.T) {
		as := newAS(t, 1<<20)
		a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite})
		writeAt(t, as, a, string(pattern(2*pg, 4)))
		got, err := as.Mremap(a, 2*pg, 2*pg, du, 0x40000)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range []hostarch.Addr{a, got} {
			if b := readAt(t, as, x, 2*pg); !bytes.Equal(b, pattern(2*pg, 4)) {
				t.Errorf("%#x does not show the shared-memory object", x)
			}
		}
		writeAt(t, as, got, "both")
		if b := string(readAt(t, as, a, 4)); b != "both" {
			t.Errorf("the old range does not see the new one's write: %q", b)
		}
	})

	t.Run("FIXED across mappings and a gap", func(t *testing.T) {
		as := newAS(t, 1<<20)
		a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
		mustMmap(t, as, MmapOpts{Addr: 0x12000, Length: pg, Fixed: true, Perms: hostarch.Read})
		writeAt(t, as, a, "one")
		got, err := as.Mremap(a, 3*pg, 3*pg, fx, 0x40000)
		if err != nil || got != 0x40000 {
			t.Fatalf("Mremap = %#x, %v", got, err)
		}
		want := "0x10000-0x11000 rw-p 0x0\n0x12000-0x13000 r--s 0x0\n0x40000-0x41000 rw-p 0x0\n0x42000-0x43000 r--s 0x0\n"
		if m := mapsOf(as); m != want {
			t.Fatalf("mappings\n%swant\n%s", m, want)
		}
		if b := string(readAt(t, as, got, 3)); b != "one" {
			t.Errorf("moved page reads %q", b)
		}
	})

	t.Run("locked old mapping is unlocked", func(t *testing.T) {
		as := newAS(t, 1<<20)
		a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
		setLocked(as, a)
		got, err := as.Mremap(a+pg, pg, pg, du, 0x40000)
		if err != nil {
			t.Fatal(err)
		}
		f := flagsOf(t, as)
		want := "00010000-00014000 rw-p 00000000 00:00 0 \nVmFlags: rd wr mr mw me ac \n00040000-00041000 rw-p 00000000 00:00 0 \nVmFlags: rd wr mr mw me lo ac \n"
		if f != want || got != 0x40000 {
			t.Errorf("VmFlags\n%swant\n%s", f, want)
		}
	})

	t.Run("MaxMapCount", func(t *testing.T) {
		as, err := New(Options{Size: 1 << 20, MaxMapCount: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer as.Close()
		a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
		writeAt(t, as, a, string(pattern(4*pg, 5)))
		before := snapshot(t, as)
		// The middle page would need the mapping split in three and one more.
		if _, err := as.Mremap(a+pg, pg, pg, du, 0x40000); !errors.Is(err, unix.ENOMEM) {
			t.Fatalf("Mremap(DONTUNMAP) past MaxMapCount = %v; want ENOMEM", err)
		}
		if snapshot(t, as) != before {
			t.Fatal("a failed Mremap changed the space")
		}
		// The whole mapping needs one more: the space is healthy.
		got, err := as.Mremap(a, 4*pg, 4*pg, du, 0x40000)
		if err != nil || !bytes.Equal(readAt(t, as, got, 4*pg), pattern(4*pg, 5)) {
			t.Fatalf("Mremap after the failure = %#x, %v", got, err)
		}
	})
}
