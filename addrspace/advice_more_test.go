package addrspace

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// flagsOf renders each mapping's maps line and VmFlags from WriteSmaps: the
// state that the flag advice changes.
func flagsOf(t *testing.T, as *AddressSpace) string {
	t.Helper()
	var b bytes.Buffer
	if err := as.WriteSmaps(&b); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "VmFlags:") || (l != "" && !strings.Contains(l, ":  ") && !strings.HasPrefix(l, "THPeligible")) {
			if !strings.Contains(l, " kB") {
				out.WriteString(l + "\n")
			}
		}
	}
	return out.String()
}

// adviceFixture is a space with one mapping of each kind:
//
//	0x10000  private anonymous rw, 4 pages written (pattern 1)
//	0x20000  shared anonymous rw, 2 pages written (pattern 2)
//	0x30000  private file rw, 2 pages, the first written (copied)
//	0x40000  shared file rw, 2 pages
//	0x50000  shared anonymous, read-only (MaxPerms rw), 1 page
//	0x60000  shared mapping of a file open read-only, 1 page
type adviceFixture struct {
	as         *AddressSpace
	file, rofi *os.File
}

const (
	fxPriv, fxShared, fxPFile, fxSFile, fxShRO, fxROFile hostarch.Addr = 0x10000, 0x20000, 0x30000, 0x40000, 0x50000, 0x60000
)

func newAdviceFixture(t *testing.T) *adviceFixture {
	as := newAS(t, 1<<20)
	fx := &adviceFixture{as: as, file: tempFile(t, pattern(2*pg, 5), os.O_RDWR), rofi: tempFile(t, pattern(pg, 6), os.O_RDONLY)}
	mustMmap(t, as, MmapOpts{Addr: fxPriv, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, fxPriv, string(pattern(4*pg, 1)))
	mustMmap(t, as, MmapOpts{Addr: fxShared, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite})
	writeAt(t, as, fxShared, string(pattern(2*pg, 2)))
	mustMmap(t, as, MmapOpts{Addr: fxPFile, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, File: fx.file})
	writeAt(t, as, fxPFile, "copied")
	mustMmap(t, as, MmapOpts{Addr: fxSFile, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, File: fx.file})
	mustMmap(t, as, MmapOpts{Addr: fxShRO, Length: pg, Fixed: true, Perms: hostarch.Read})
	mustMmap(t, as, MmapOpts{Addr: fxROFile, Length: pg, Fixed: true, Perms: hostarch.Read, File: fx.rofi})
	return fx
}

// setLocked marks the VMA at addr locked, as Mlock would (the locking calls
// are another issue's).
func setLocked(as *AddressSpace, addr hostarch.Addr) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.find(addr).flags |= vmLocked
}

// TestMadviseMore checks the advice of the kernel-extras issue against
// Linux 6.18's mm/madvise.c (the errors are confirmed on the host by
// TestHostDiffAdviceCases): the exact error, the exact effect, and, where
// the first mapping refuses the advice, nothing changed.
func TestMadviseMore(t *testing.T) {
	zero := make([]byte, pg)
	for _, tc := range []struct {
		name   string
		locked hostarch.Addr // a VMA to mark locked first, or 0
		addr   hostarch.Addr
		n      uint64
		advice int
		want   unix.Errno
		check  func(t *testing.T, fx *adviceFixture)
	}{
		{name: "MADV_FREE drops private anonymous pages", addr: fxPriv + pg, n: 2 * pg, advice: unix.MADV_FREE,
			check: func(t *testing.T, fx *adviceFixture) {
				p := pattern(4*pg, 1)
				for i, want := range [][]byte{p[:pg], zero, zero, p[3*pg:]} {
					if got := readAt(t, fx.as, fxPriv+hostarch.Addr(i)*pg, pg); !bytes.Equal(got, want) {
						t.Errorf("page %d after MADV_FREE: zero %v, want zero %v", i, bytes.Equal(got, zero), bytes.Equal(want, zero))
					}
				}
				writeAt(t, fx.as, fxPriv+pg, "rewritten")
				if got := string(readAt(t, fx.as, fxPriv+pg, 9)); got != "rewritten" {
					t.Errorf("a write after MADV_FREE reads %q", got)
				}
			}},
		{name: "MADV_FREE over a hole", addr: fxPriv + 3*pg, n: 2 * pg, advice: unix.MADV_FREE, want: unix.ENOMEM,
			check: func(t *testing.T, fx *adviceFixture) {
				if got := readAt(t, fx.as, fxPriv+3*pg, pg); !bytes.Equal(got, zero) {
					t.Errorf("the mapped page before the hole was not freed")
				}
			}},
		{name: "MADV_FREE of shared anonymous memory", addr: fxShared, n: pg, advice: unix.MADV_FREE, want: unix.EINVAL},
		{name: "MADV_FREE of a private file mapping", addr: fxPFile, n: pg, advice: unix.MADV_FREE, want: unix.EINVAL},
		{name: "MADV_FREE of locked pages", locked: fxPriv, addr: fxPriv, n: pg, advice: unix.MADV_FREE, want: unix.EINVAL},
		{name: "MADV_FREE up to a shared mapping", addr: fxPriv + 3*pg, n: 0x10000, advice: unix.MADV_FREE, want: unix.EINVAL,
			check: func(t *testing.T, fx *adviceFixture) {
				if got := readAt(t, fx.as, fxPriv+3*pg, pg); !bytes.Equal(got, zero) {
					t.Errorf("the private page before the shared mapping was not freed")
				}
				if got := readAt(t, fx.as, fxShared, pg); !bytes.Equal(got, pattern(2*pg, 2)[:pg]) {
					t.Errorf("the shared mapping changed")
				}
			}},
		{name: "MADV_REMOVE of shared anonymous memory", addr: fxShared + pg, n: pg, advice: unix.MADV_REMOVE,
			check: func(t *testing.T, fx *adviceFixture) {
				if got := readAt(t, fx.as, fxShared, 2*pg); !bytes.Equal(got[:pg], pattern(2*pg, 2)[:pg]) || !bytes.Equal(got[pg:], zero) {
					t.Errorf("after MADV_REMOVE of the second page: first kept %v, second zero %v",
						bytes.Equal(got[:pg], pattern(2*pg, 2)[:pg]), bytes.Equal(got[pg:], zero))
				}
			}},
		{name: "MADV_REMOVE of a shared file mapping", addr: fxSFile, n: pg, advice: unix.MADV_REMOVE,
			check: func(t *testing.T, fx *adviceFixture) {
				data, _ := readAll(fx.file)
				if len(data) != 2*pg || !bytes.Equal(data[:pg], zero) || !bytes.Equal(data[pg:], pattern(2*pg, 5)[pg:]) {
					t.Errorf("file after MADV_REMOVE: %d bytes, first page zero %v", len(data), bytes.Equal(data[:pg], zero))
				}
				if got := readAt(t, fx.as, fxSFile, pg); !bytes.Equal(got, zero) {
					t.Errorf("the shared mapping does not read zero")
				}
				// The private mapping's copy is its own; its page not copied
				// shows the hole, as on Linux.
				if got := string(readAt(t, fx.as, fxPFile, 6)); got != "copied" {
					t.Errorf("the private copy reads %q", got)
				}
			}},
		{name: "MADV_REMOVE of a read-only shared mapping that may be written", addr: fxShRO, n: pg, advice: unix.MADV_REMOVE},
		{name: "MADV_REMOVE of private anonymous memory", addr: fxPriv, n: pg, advice: unix.MADV_REMOVE, want: unix.EINVAL},
		{name: "MADV_REMOVE of a private file mapping", addr: fxPFile, n: pg, advice: unix.MADV_REMOVE, want: unix.EACCES},
		{name: "MADV_REMOVE of a file open read-only", addr: fxROFile, n: pg, advice: unix.MADV_REMOVE, want: unix.EACCES},
		{name: "MADV_REMOVE of locked pages", locked: fxShared, addr: fxShared, n: pg, advice: unix.MADV_REMOVE, want: unix.EINVAL},
		{name: "MADV_DONTFORK splits", addr: fxPriv + pg, n: pg, advice: unix.MADV_DONTFORK,
			check: func(t *testing.T, fx *adviceFixture) {
				want := "0x10000-0x11000 rw-p 0x0\n0x11000-0x12000 rw-p 0x0\n0x12000-0x14000 rw-p 0x0\n"
				if got := mapsOf(fx.as)[:len(want)]; got != want {
					t.Errorf("mappings\n%swant\n%s", got, want)
				}
				if f := flagsOf(t, fx.as); !strings.Contains(f, "00011000-00012000 rw-p 00000000 00:00 0 \nVmFlags: rd wr mr mw me dc ac \n") {
					t.Errorf("VmFlags:\n%s", f)
				}
			}},
		{name: "MADV_WIPEONFORK of private anonymous memory", addr: fxPriv, n: 4 * pg, advice: unix.MADV_WIPEONFORK,
			check: func(t *testing.T, fx *adviceFixture) {
				if f := flagsOf(t, fx.as); !strings.Contains(f, "00010000-00014000 rw-p 00000000 00:00 0 \nVmFlags: rd wr mr mw me ac wf \n") {
					t.Errorf("VmFlags:\n%s", f)
				}
			}},
		{name: "MADV_WIPEONFORK of shared anonymous memory", addr: fxShared, n: pg, advice: unix.MADV_WIPEONFORK, want: unix.EINVAL},
		{name: "MADV_WIPEONFORK of a private file mapping", addr: fxPFile, n: pg, advice: unix.MADV_WIPEONFORK, want: unix.EINVAL},
		{name: "MADV_WIPEONFORK up to a shared mapping", addr: fxPriv, n: 0x10000 + pg, advice: unix.MADV_WIPEONFORK, want: unix.EINVAL,
			check: func(t *testing.T, fx *adviceFixture) {
				if f := flagsOf(t, fx.as); !strings.Contains(f, "00010000-00014000 rw-p 00000000 00:00 0 \nVmFlags: rd wr mr mw me ac wf \n") {
					t.Errorf("the private mapping before the shared one is not advised:\n%s", f)
				}
			}},
		{name: "MADV_KEEPONFORK of anything", addr: fxShared, n: pg, advice: unix.MADV_KEEPONFORK},
		{name: "MADV_HUGEPAGE of a file mapping", addr: fxSFile, n: pg, advice: unix.MADV_HUGEPAGE,
			check: func(t *testing.T, fx *adviceFixture) {
				if f := flagsOf(t, fx.as); !strings.Contains(f, "VmFlags: rd wr sh mr mw me ms hg \n") {
					t.Errorf("VmFlags:\n%s", f)
				}
			}},
		{name: "MADV_NOHUGEPAGE clears MADV_HUGEPAGE", addr: fxPriv, n: 4 * pg, advice: unix.MADV_NOHUGEPAGE,
			check: func(t *testing.T, fx *adviceFixture) {
				f := flagsOf(t, fx.as)
				if !strings.Contains(f, "00010000-00014000 rw-p 00000000 00:00 0 \nVmFlags: rd wr mr mw me ac nh \n") {
					t.Errorf("VmFlags:\n%s", f)
				}
			}},
		{name: "flag advice over a hole", addr: fxPriv, n: 0x10000 + 2*pg, advice: unix.MADV_HUGEPAGE, want: unix.ENOMEM,
			check: func(t *testing.T, fx *adviceFixture) {
				if f := flagsOf(t, fx.as); strings.Count(f, " hg \n") != 2 {
					t.Errorf("both mappings around the hole should be advised:\n%s", f)
				}
			}},
		{name: "unaligned", addr: fxPriv + 1, n: pg, advice: unix.MADV_FREE, want: unix.EINVAL},
		{name: "a length that overflows", addr: fxPriv, n: ^uint64(0), advice: unix.MADV_REMOVE, want: unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newAdviceFixture(t)
			if tc.name == "MADV_NOHUGEPAGE clears MADV_HUGEPAGE" {
				if err := fx.as.Madvise(fxPriv, 4*pg, unix.MADV_HUGEPAGE); err != nil {
					t.Fatal(err)
				}
			}
			if tc.locked != 0 {
				setLocked(fx.as, tc.locked)
			}
			before, flagsBefore := snapshot(t, fx.as), flagsOf(t, fx.as)
			fileBefore, _ := readAll(fx.file)
			err := fx.as.Madvise(tc.addr, tc.n, tc.advice)
			if errnoOf(err) != tc.want {
				t.Fatalf("Madvise(%#x, %#x, %d) = %v; want %v", tc.addr, tc.n, tc.advice, err, tc.want)
			}
			if tc.check != nil {
				tc.check(t, fx)
				return
			}
			if tc.want != 0 {
				fileAfter, _ := readAll(fx.file)
				if after := snapshot(t, fx.as); after != before || flagsOf(t, fx.as) != flagsBefore || !bytes.Equal(fileAfter, fileBefore) {
					t.Errorf("a failed Madvise changed the space or the file")
				}
			}
		})
	}
}

// TestMadviseMoreBudget exhausts MaxMapCount with flag advice: EAGAIN, as
// Linux's split failure, nothing changed, and the space works afterwards.
func TestMadviseMoreBudget(t *testing.T) {
	as, err := New(Options{Size: 1 << 20, MaxMapCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 8 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, a, string(pattern(8*pg, 3)))
	mustMmap(t, as, MmapOpts{Addr: 0x20000, Length: pg, Fixed: true, Perms: hostarch.Read, Private: true})
	before, flags := snapshot(t, as), flagsOf(t, as)
	for _, advice := range []int{unix.MADV_DONTFORK, unix.MADV_WIPEONFORK, unix.MADV_HUGEPAGE, unix.MADV_RANDOM} {
		if err := as.Madvise(a+2*pg, pg, advice); !errors.Is(err, unix.EAGAIN) {
			t.Errorf("Madvise(%d) splitting a mapping in three at MaxMapCount 3 = %v; want EAGAIN", advice, err)
		}
		if snapshot(t, as) != before || flagsOf(t, as) != flags {
			t.Fatalf("a failed Madvise(%d) changed the space", advice)
		}
	}
	// One split fits: the space is healthy.
	if err := as.Madvise(a, pg, unix.MADV_DONTFORK); err != nil {
		t.Fatal(err)
	}
	if err := as.Madvise(a, pg, unix.MADV_DOFORK); err != nil {
		t.Fatal(err)
	}
	if got := mapsOf(as); got != "0x10000-0x18000 rw-p 0x0\n0x20000-0x21000 r--p 0x0\n" {
		t.Errorf("mappings after DONTFORK and DOFORK:\n%s", got)
	}
	if got := readAt(t, as, a, 8*pg); !bytes.Equal(got, pattern(8*pg, 3)) {
		t.Errorf("bytes changed")
	}
}

// TestCloneForkAdvice checks Clone against Linux's dup_mmap: a mapping
// advised MADV_DONTFORK is not in the clone, one advised MADV_WIPEONFORK is,
// with zero-filled pages and the advice kept; the parent keeps its bytes.
func TestCloneForkAdvice(t *testing.T) {
	as := newAS(t, 1<<20)
	priv := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	dont := mustMmap(t, as, MmapOpts{Addr: 0x20000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	wipe := mustMmap(t, as, MmapOpts{Addr: 0x30000, Length: 3 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	shared := mustMmap(t, as, MmapOpts{Addr: 0x40000, Length: pg, Fixed: true, Perms: hostarch.ReadWrite})
	for i, a := range []hostarch.Addr{priv, dont, wipe, shared} {
		writeAt(t, as, a, string(pattern(pg, byte(i))))
	}
	writeAt(t, as, wipe+2*pg, "third")
	for _, x := range []struct {
		a      hostarch.Addr
		n      uint64
		advice int
	}{{dont, 2 * pg, unix.MADV_DONTFORK}, {wipe, 2 * pg, unix.MADV_WIPEONFORK}, {shared, pg, unix.MADV_DONTFORK}} {
		if err := as.Madvise(x.a, x.n, x.advice); err != nil {
			t.Fatal(err)
		}
	}
	c := mustClone(t, as)
	if got, want := mapsOf(c), "0x10000-0x12000 rw-p 0x0\n0x30000-0x32000 rw-p 0x0\n0x32000-0x33000 rw-p 0x0\n"; got != want {
		t.Fatalf("clone's mappings\n%swant\n%s", got, want)
	}
	if f := flagsOf(t, c); !strings.Contains(f, "00030000-00032000 rw-p 00000000 00:00 0 \nVmFlags: rd wr mr mw me ac wf \n") {
		t.Errorf("the clone's wiped mapping lost its advice:\n%s", f)
	}
	zero := make([]byte, pg)
	for _, x := range []struct {
		name string
		as   *AddressSpace
		a    hostarch.Addr
		want []byte
	}{
		{"clone's private", c, priv, pattern(pg, 0)},
		{"clone's wiped first page", c, wipe, zero},
		{"clone's wiped second page", c, wipe + pg, zero},
		{"clone's page after the wiped range", c, wipe + 2*pg, append([]byte("third"), zero[5:]...)},
		{"parent's wiped", as, wipe, pattern(pg, 2)},
		{"parent's not copied", as, dont, pattern(pg, 1)},
		{"parent's shared", as, shared, pattern(pg, 3)},
	} {
		if got := readAt(t, x.as, x.a, pg); !bytes.Equal(got, x.want) {
			t.Errorf("%s: got %q..., want %q...", x.name, got[:8], x.want[:8])
		}
	}
	for _, a := range []hostarch.Addr{dont, shared} {
		if n, err := c.CopyIn(ctx, a, make([]byte, 1), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
			t.Errorf("clone's CopyIn at %#x (left out) = %d, %v; want EFAULT", a, n, err)
		}
	}
	// The clone's wiped pages are its own: writes do not reach the parent.
	writeAt(t, c, wipe, "child")
	if got := string(readAt(t, as, wipe, 5)); got != string(pattern(pg, 2)[:5]) {
		t.Errorf("the clone's write reached the parent: %q", got)
	}
	// The parent's wiped pages (the first written) are not shared with
	// the clone.
	var b bytes.Buffer
	as.WriteSmaps(&b)
	if !strings.Contains(b.String(), "00030000-00032000 rw-p 00000000 00:00 0 \nSize:                  8 kB\nKernelPageSize:        4 kB\nMMUPageSize:           4 kB\nRss:                   4 kB\nPss:                   4 kB\nPss_Dirty:             4 kB\nShared_Clean:          0 kB\nShared_Dirty:          0 kB\nPrivate_Clean:         0 kB\nPrivate_Dirty:         4 kB\n") {
		t.Errorf("parent's wiped mapping in smaps:\n%s", b.String())
	}
	// MADV_DOFORK and MADV_KEEPONFORK undo the advice for the next clone.
	if err := as.Madvise(dont, 2*pg, unix.MADV_DOFORK); err != nil {
		t.Fatal(err)
	}
	if err := as.Madvise(wipe, 3*pg, unix.MADV_KEEPONFORK); err != nil {
		t.Fatal(err)
	}
	c2 := mustClone(t, as)
	if got := readAt(t, c2, wipe, pg); !bytes.Equal(got, pattern(pg, 2)) {
		t.Errorf("after MADV_KEEPONFORK the clone's page reads %q...", got[:8])
	}
	if got := readAt(t, c2, dont, pg); !bytes.Equal(got, pattern(pg, 1)) {
		t.Errorf("after MADV_DOFORK the clone's page reads %q...", got[:8])
	}
}

// TestMremapDupKeepsDontFork: a second mapping of shared pages made by
// Mremap with an old length of 0 duplicates the VMA (Linux's copy_vma), so
// a MADV_DONTFORK on the first carries over ("dc" in smaps, checked on the
// host kernel when this test was written) and Clone leaves both out. The
// randomised model once took the duplicate for a fresh mapping.
func TestMremapDupKeepsDontFork(t *testing.T) {
	as := newAS(t, 1<<20)
	a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite})
	writeAt(t, as, a, "shared")
	if err := as.Madvise(a, pg, unix.MADV_DONTFORK); err != nil {
		t.Fatal(err)
	}
	b, err := as.Mremap(a, 0, 3*pg, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, 0x40000)
	if err != nil || b != 0x40000 {
		t.Fatalf("Mremap(old length 0) = %#x, %v", b, err)
	}
	if got := string(readAt(t, as, b, 6)); got != "shared" {
		t.Fatalf("the duplicate reads %q", got)
	}
	zero := "                                  /dev/zero (deleted)\n"
	want := "00010000-00011000 rw-s 00000000 00:00 0" + zero + "VmFlags: rd wr sh mr mw me ms dc \n" +
		"00011000-00014000 rw-s 00001000 00:00 0" + zero + "VmFlags: rd wr sh mr mw me ms \n" +
		"00040000-00043000 rw-s 00000000 00:00 0" + zero + "VmFlags: rd wr sh mr mw me ms dc \n"
	if f := flagsOf(t, as); f != want {
		t.Errorf("smaps flags:\n%swant\n%s", f, want)
	}
	c := mustClone(t, as)
	if got, want := mapsOf(c), "0x11000-0x14000 rw-s 0x1000\n"; got != want {
		t.Fatalf("clone's mappings\n%swant\n%s", got, want)
	}
}

// forkAdvised reports whether a mapping of as is advised MADV_DONTFORK or
// MADV_WIPEONFORK.
func forkAdvised(as *AddressSpace) bool {
	as.mu.Lock()
	defer as.mu.Unlock()
	found := false
	as.vmas.Ascend(func(v *vma) bool {
		found = v.flags&(vmDontCopy|vmWipeOnFork) != 0
		return !found
	})
	return found
}

// mappingsWithin reports whether every page of sub lies in a mapping of
// super with the same attributes.
func mappingsWithin(sub, super []Mapping) bool {
	for _, m := range sub {
		ok := false
		for _, p := range super {
			if p.Range.Start <= m.Range.Start && m.Range.End <= p.Range.End && p.Perms == m.Perms && p.Private == m.Private && p.FileName == m.FileName {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// TestMadviseDiscardFamily checks MADV_FREE and MADV_REMOVE in a family of
// clones: MADV_FREE drops only the advising space's references (a clone
// keeps its copy-on-write share of the page), MADV_REMOVE punches the
// shared-memory object that every clone maps.
func TestMadviseDiscardFamily(t *testing.T) {
	as := newAS(t, 1<<20)
	priv := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	shared := mustMmap(t, as, MmapOpts{Addr: 0x20000, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite})
	writeAt(t, as, priv, string(pattern(2*pg, 1)))
	writeAt(t, as, shared, string(pattern(2*pg, 2)))
	c := mustClone(t, as)
	if err := as.Madvise(priv, 2*pg, unix.MADV_FREE); err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 2*pg)
	if got := readAt(t, as, priv, 2*pg); !bytes.Equal(got, zero) {
		t.Error("the parent's freed pages do not read zero")
	}
	if got := readAt(t, c, priv, 2*pg); !bytes.Equal(got, pattern(2*pg, 1)) {
		t.Error("MADV_FREE in the parent changed the clone's pages")
	}
	// The clone's pages are its own now: Private_Dirty, not shared.
	var b bytes.Buffer
	c.WriteSmaps(&b)
	if !strings.Contains(b.String(), "00010000-00012000 rw-p 00000000 00:00 0 \nSize:                  8 kB\nKernelPageSize:        4 kB\nMMUPageSize:           4 kB\nRss:                   8 kB\nPss:                   8 kB\nPss_Dirty:             8 kB\nShared_Clean:          0 kB\nShared_Dirty:          0 kB\nPrivate_Clean:         0 kB\nPrivate_Dirty:         8 kB\n") {
		t.Errorf("the clone's smaps after the parent's MADV_FREE:\n%s", b.String())
	}
	if err := c.Madvise(shared+pg, pg, unix.MADV_REMOVE); err != nil {
		t.Fatal(err)
	}
	for name, x := range map[string]*AddressSpace{"parent": as, "clone": c} {
		got := readAt(t, x, shared, 2*pg)
		if !bytes.Equal(got[:pg], pattern(2*pg, 2)[:pg]) || !bytes.Equal(got[pg:], zero[:pg]) {
			t.Errorf("%s after the clone's MADV_REMOVE of the second page: first kept %v, second zero %v",
				name, bytes.Equal(got[:pg], pattern(2*pg, 2)[:pg]), bytes.Equal(got[pg:], zero[:pg]))
		}
	}
}
