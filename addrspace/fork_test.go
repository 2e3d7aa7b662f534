package addrspace

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

func readAt(t *testing.T, as *AddressSpace, addr hostarch.Addr, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	if got, err := as.CopyIn(ctx, addr, buf, noOpt); got != n || err != nil {
		t.Fatalf("CopyIn(%#x, %d) = %d, %v", addr, n, got, err)
	}
	return buf
}

func writeAt(t *testing.T, as *AddressSpace, addr hostarch.Addr, s string) {
	t.Helper()
	if n, err := as.CopyOut(ctx, addr, []byte(s), noOpt); n != len(s) || err != nil {
		t.Fatalf("CopyOut(%#x, %q) = %d, %v", addr, s, n, err)
	}
}

func mustClone(t *testing.T, as *AddressSpace) *AddressSpace {
	t.Helper()
	c, err := as.Clone()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func stats(t *testing.T, as *AddressSpace) Stats {
	t.Helper()
	st, err := as.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCloneCOW(t *testing.T) {
	const n = 4 * pg
	for _, tc := range []struct {
		name  string
		steps func(t *testing.T, p, c *AddressSpace, a hostarch.Addr)
	}{
		{"write in parent", func(t *testing.T, p, c *AddressSpace, a hostarch.Addr) {
			writeAt(t, p, a+10, "parent")
			if got := readAt(t, p, a+10, 6); string(got) != "parent" {
				t.Fatalf("parent reads %q", got)
			}
			if got := readAt(t, c, a+10, 6); !bytes.Equal(got, pattern(n, 1)[10:16]) {
				t.Fatalf("child reads %q", got)
			}
		}},
		{"write in child", func(t *testing.T, p, c *AddressSpace, a hostarch.Addr) {
			writeAt(t, c, a+pg-2, "child")
			if got := readAt(t, c, a+pg-2, 5); string(got) != "child" {
				t.Fatalf("child reads %q", got)
			}
			if got := readAt(t, p, a+pg-2, 5); !bytes.Equal(got, pattern(n, 1)[pg-2:pg+3]) {
				t.Fatalf("parent reads %q", got)
			}
		}},
		{"write in both", func(t *testing.T, p, c *AddressSpace, a hostarch.Addr) {
			writeAt(t, p, a, "PPPP")
			writeAt(t, c, a, "CCCC")
			writeAt(t, p, a+2, "pp")
			if got := string(readAt(t, p, a, 4)); got != "PPpp" {
				t.Fatalf("parent reads %q", got)
			}
			if got := string(readAt(t, c, a, 4)); got != "CCCC" {
				t.Fatalf("child reads %q", got)
			}
		}},
		{"unmap in one", func(t *testing.T, p, c *AddressSpace, a hostarch.Addr) {
			if err := c.Munmap(a, n); err != nil {
				t.Fatal(err)
			}
			before := stats(t, p)
			// The parent's pages are its own again: written in place.
			writeAt(t, p, a, "mine")
			if st := stats(t, p); st.PrivateCopies != before.PrivateCopies || st.SharedPages != 0 {
				t.Fatalf("after the child unmapped: %+v (before %+v)", st, before)
			}
			if got := string(readAt(t, p, a, 4)); got != "mine" {
				t.Fatalf("parent reads %q", got)
			}
		}},
		{"close the child", func(t *testing.T, p, c *AddressSpace, a hostarch.Addr) {
			c.Close()
			writeAt(t, p, a+pg, "solo")
			if st := stats(t, p); st.PrivateCopies != 4 || st.SharedPages != 0 {
				t.Fatalf("after the child closed: %+v", st)
			}
		}},
		{"clone of a clone", func(t *testing.T, p, c *AddressSpace, a hostarch.Addr) {
			writeAt(t, c, a, "gen1")
			g := mustClone(t, c)
			writeAt(t, g, a, "gen2")
			writeAt(t, c, a+4, "!")
			for _, x := range []struct {
				as   *AddressSpace
				want string
			}{{p, string(pattern(n, 1)[:5])}, {c, "gen1!"}, {g, "gen2" + string(pattern(n, 1)[4:5])}} {
				if got := string(readAt(t, x.as, a, 5)); got != x.want {
					t.Fatalf("reads %q, want %q", got, x.want)
				}
			}
			// The child's first write copied its whole run of 4 shared
			// pages, and the grandchild's too: nothing is shared.
			if st := stats(t, g); st.SharedPages != 0 || st.PrivateCopies != 4 {
				t.Fatalf("grandchild shares %d pages, has %d of its own; want 0, 4", st.SharedPages, st.PrivateCopies)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newAS(t, 1<<30)
			a := mustMmap(t, p, MmapOpts{Length: n, Perms: hostarch.ReadWrite, Private: true})
			writeAt(t, p, a, string(pattern(n, 1)))
			c := mustClone(t, p)
			if st := stats(t, p); st.SharedPages != 4 || st.PrivateCopies != 0 {
				t.Fatalf("after Clone: %+v", st)
			}
			tc.steps(t, p, c, a)
		})
	}
}

func TestCloneShared(t *testing.T) {
	p := newAS(t, 1<<30)
	anon := mustMmap(t, p, MmapOpts{Length: pg, Perms: hostarch.ReadWrite})
	f := tempFile(t, pattern(2*pg, 3), os.O_RDWR)
	file := mustMmap(t, p, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, File: f})
	priv := mustMmap(t, p, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, File: f, Private: true})
	writeAt(t, p, priv, "before")
	c := mustClone(t, p)
	writeAt(t, c, anon, "shared anon")
	writeAt(t, p, file+pg, "shared file")
	writeAt(t, c, priv, "child's")
	if got := string(readAt(t, p, anon, 11)); got != "shared anon" {
		t.Fatalf("parent reads %q from shared anonymous memory", got)
	}
	if got := string(readAt(t, c, file+pg, 11)); got != "shared file" {
		t.Fatalf("child reads %q from the shared file", got)
	}
	if got := string(readAt(t, p, priv, 7)); got != "before"+string(pattern(2*pg, 3)[6:7]) {
		t.Fatalf("parent reads %q from its private file page", got)
	}
	if onDisk, _ := os.ReadFile(f.Name()); string(onDisk[pg:pg+11]) != "shared file" || !bytes.Equal(onDisk[:6], pattern(2*pg, 3)[:6]) {
		t.Fatal("the file holds the wrong bytes")
	}
	if ms := c.Mappings(); len(ms) != 3 {
		t.Fatalf("child has %d mappings", len(ms))
	}
}

// TestCloneLarge clones a space with many mappings and touched memory and
// checks that no page was copied and that memory is shared, then freed.
func TestCloneLarge(t *testing.T) {
	p := newAS(t, 1<<34)
	const maps = 2000
	for i := 0; i < maps; i++ {
		a := mustMmap(t, p, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true, Name: fmt.Sprint(i)})
		writeAt(t, p, a, "x")
	}
	big := mustMmap(t, p, MmapOpts{Length: 64 << 20, Perms: hostarch.ReadWrite, Private: true})
	if _, err := p.ZeroOut(ctx, big, 64<<20, noOpt); err != nil {
		t.Fatal(err)
	}
	before := stats(t, p)
	c := mustClone(t, p)
	after := stats(t, p)
	if after.MemoryFileBytes != before.MemoryFileBytes || after.PrivateCopies != 0 {
		t.Fatalf("Clone copied memory: before %+v after %+v", before, after)
	}
	if want := uint64(maps*2 + (64<<20)/pg); after.SharedPages != want {
		t.Fatalf("SharedPages = %d, want %d", after.SharedPages, want)
	}
	if st := stats(t, c); st.Mappings != maps+1 {
		t.Fatalf("child has %d mappings", st.Mappings)
	}
	c.Close()
	if st := stats(t, p); st.SharedPages != 0 || st.MemoryFileBytes != before.MemoryFileBytes {
		t.Fatalf("after the child closed: %+v", st)
	}
}

func TestMremap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(as *AddressSpace) // after a 4-page mapping at 16*pg
		old     hostarch.Addr
		oldLen  uint64
		newLen  uint64
		flags   int
		newAddr hostarch.Addr
		want    hostarch.Addr
		err     unix.Errno
	}{
		{name: "shrink", old: 16 * pg, oldLen: 4 * pg, newLen: 2 * pg, want: 16 * pg},
		{name: "grow in place", old: 16 * pg, oldLen: 4 * pg, newLen: 6 * pg, want: 16 * pg},
		{name: "grow blocked", setup: func(as *AddressSpace) {
			as.Mmap(MmapOpts{Addr: 20 * pg, Length: pg, Fixed: true})
		}, old: 16 * pg, oldLen: 4 * pg, newLen: 6 * pg, err: unix.ENOMEM},
		{name: "grow by moving", setup: func(as *AddressSpace) {
			as.Mmap(MmapOpts{Addr: 20 * pg, Length: pg, Fixed: true})
		}, old: 16 * pg, oldLen: 4 * pg, newLen: 6 * pg, flags: unix.MREMAP_MAYMOVE, want: 58 * pg},
		{name: "fixed", old: 16 * pg, oldLen: 4 * pg, newLen: 4 * pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 40 * pg, want: 40 * pg},
		{name: "fixed shrinking", old: 16 * pg, oldLen: 4 * pg, newLen: 2 * pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 40 * pg, want: 40 * pg},
		{name: "part of the middle", old: 17 * pg, oldLen: 2 * pg, newLen: 3 * pg, flags: unix.MREMAP_MAYMOVE, want: 61 * pg},
		{name: "fixed without maymove", old: 16 * pg, oldLen: 4 * pg, newLen: 4 * pg, flags: unix.MREMAP_FIXED, newAddr: 40 * pg, err: unix.EINVAL},
		{name: "unknown flag", old: 16 * pg, oldLen: pg, newLen: pg, flags: 0x100, err: unix.EINVAL},
		{name: "unaligned", old: 16*pg + 1, oldLen: pg, newLen: 2 * pg, err: unix.EINVAL},
		{name: "zero new length", old: 16 * pg, oldLen: pg, newLen: 0, err: unix.EINVAL},
		{name: "overlapping fixed", old: 16 * pg, oldLen: 4 * pg, newLen: 4 * pg, flags: unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED, newAddr: 18 * pg, err: unix.EINVAL},
		{name: "unmapped", old: 30 * pg, oldLen: pg, newLen: 2 * pg, flags: unix.MREMAP_MAYMOVE, err: unix.EFAULT},
		{name: "across mappings", setup: func(as *AddressSpace) {
			as.Mmap(MmapOpts{Addr: 20 * pg, Length: pg, Fixed: true})
		}, old: 19 * pg, oldLen: 2 * pg, newLen: 3 * pg, flags: unix.MREMAP_MAYMOVE, err: unix.EFAULT},
		{name: "private length 0", old: 16 * pg, oldLen: 0, newLen: pg, flags: unix.MREMAP_MAYMOVE, err: unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 64*pg)
			a := mustMmap(t, as, MmapOpts{Addr: 16 * pg, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
			data := pattern(4*pg, 4)
			writeAt(t, as, a, string(data))
			if tc.setup != nil {
				tc.setup(as)
			}
			before := snapshot(t, as)
			got, err := as.Mremap(tc.old, tc.oldLen, tc.newLen, tc.flags, tc.newAddr)
			if tc.err != 0 {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Mremap = %#x, %v; want %v", got, err, tc.err)
				}
				if snapshot(t, as) != before {
					t.Fatal("a failed Mremap changed the address space")
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Mremap = %#x, %v; want %#x", got, err, tc.want)
			}
			// The moved bytes are at the new address, new pages are zero.
			moved := data[tc.old-a : uint64(tc.old-a)+min(tc.oldLen, tc.newLen)]
			if b := readAt(t, as, got, len(moved)); !bytes.Equal(b, moved) {
				t.Fatal("contents did not move with the mapping")
			}
			if tc.newLen > tc.oldLen {
				if b := readAt(t, as, got+hostarch.Addr(tc.oldLen), int(tc.newLen-tc.oldLen)); !bytes.Equal(b, make([]byte, tc.newLen-tc.oldLen)) {
					t.Fatal("new pages are not zero")
				}
			}
			if got != tc.old {
				if n, err := as.CopyIn(ctx, tc.old, make([]byte, 1), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
					t.Fatal("the old range is still mapped")
				}
			}
		})
	}
}

func TestMremapSharedAndFile(t *testing.T) {
	as := newAS(t, 1<<30)
	f := tempFile(t, pattern(8*pg, 6), os.O_RDWR)
	a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Fixed: true, Length: 2 * pg, Perms: hostarch.ReadWrite, File: f})
	// Block growing in place.
	mustMmap(t, as, MmapOpts{Addr: a + 2*pg, Length: pg, Fixed: true})
	b, err := as.Mremap(a, 2*pg, 4*pg, unix.MREMAP_MAYMOVE, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, as, b, 4*pg); !bytes.Equal(got, pattern(8*pg, 6)[:4*pg]) {
		t.Fatal("a moved and grown file mapping does not show the file")
	}
	writeAt(t, as, b+3*pg, "grown")
	if onDisk, _ := os.ReadFile(f.Name()); string(onDisk[3*pg:3*pg+5]) != "grown" {
		t.Fatal("write through the grown mapping missed the file")
	}
	// Old length 0 duplicates a shared mapping.
	s := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite})
	d, err := as.Mremap(s, 0, pg, unix.MREMAP_MAYMOVE, 0)
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, as, d, "alias")
	if got := string(readAt(t, as, s, 5)); got != "alias" {
		t.Fatalf("duplicate does not alias: %q", got)
	}
}

func TestMadvise(t *testing.T) {
	as := newAS(t, 1<<30)
	f := tempFile(t, pattern(2*pg, 7), os.O_RDONLY)
	priv := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true})
	shared := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite})
	pf := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true, File: f})
	for _, a := range []hostarch.Addr{priv, priv + pg, shared, pf} {
		writeAt(t, as, a, "dirty")
	}
	c := mustClone(t, as)
	for _, r := range []struct {
		addr hostarch.Addr
		n    uint64
	}{{priv, 2 * pg}, {shared, pg}, {pf, 2 * pg}} {
		if err := as.Madvise(r.addr, r.n, unix.MADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range []struct {
		name string
		as   *AddressSpace
		addr hostarch.Addr
		want string
	}{
		{"private anonymous", as, priv + pg, "\x00\x00\x00\x00\x00"},
		{"shared anonymous", as, shared, "dirty"},
		{"private file", as, pf, string(pattern(2*pg, 7)[:5])},
		{"clone's private anonymous", c, priv + pg, "dirty"},
		{"clone's private file", c, pf, "dirty"},
	} {
		if got := string(readAt(t, x.as, x.addr, 5)); got != x.want {
			t.Errorf("%s after MADV_DONTNEED: %q, want %q", x.name, got, x.want)
		}
	}
	for _, tc := range []struct {
		addr   hostarch.Addr
		n      uint64
		advice int
		want   unix.Errno
	}{
		{priv + 1, pg, unix.MADV_DONTNEED, unix.EINVAL},
		{priv, pg, unix.MADV_HUGEPAGE, 0},
		{priv, pg, unix.MADV_MERGEABLE, unix.EINVAL},
		{priv, 64 * pg, unix.MADV_DONTNEED, unix.ENOMEM},
		{priv, 0, unix.MADV_DONTNEED, 0},
		{pf, 2 * pg, unix.MADV_WILLNEED, 0},
		{pf, pg, unix.MADV_SEQUENTIAL, 0},
	} {
		if err := as.Madvise(tc.addr, tc.n, tc.advice); errnoOf(err) != tc.want {
			t.Errorf("Madvise(%#x, %#x, %d) = %v, want %v", tc.addr, tc.n, tc.advice, err, tc.want)
		}
	}
}

func TestMsyncMincore(t *testing.T) {
	as := newAS(t, 1<<30)
	f := tempFile(t, pattern(4*pg, 8), os.O_RDWR)
	a := mustMmap(t, as, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, File: f})
	writeAt(t, as, a+pg, "synced")
	if err := as.Msync(a, 4*pg, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	if onDisk, _ := os.ReadFile(f.Name()); string(onDisk[pg:pg+6]) != "synced" {
		t.Fatal("msync: the file does not hold the write")
	}
	for _, tc := range []struct {
		addr  hostarch.Addr
		n     uint64
		flags int
		want  unix.Errno
	}{
		{a, pg, unix.MS_ASYNC | unix.MS_SYNC, unix.EINVAL},
		{a, pg, 0x100, unix.EINVAL},
		{a + 1, pg, unix.MS_SYNC, unix.EINVAL},
		{a, 8 * pg, unix.MS_SYNC, unix.ENOMEM},
		{a, 0, unix.MS_ASYNC, 0},
		{a, 2 * pg, unix.MS_ASYNC | unix.MS_INVALIDATE, 0},
	} {
		if err := as.Msync(tc.addr, tc.n, tc.flags); errnoOf(err) != tc.want {
			t.Errorf("Msync(%#x, %#x, %#x) = %v, want %v", tc.addr, tc.n, tc.flags, err, tc.want)
		}
	}

	anon := mustMmap(t, as, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, anon+2*pg, "touch")
	res, err := as.Mincore(anon, 4*pg)
	if err != nil || len(res) != 4 || !res[2] || res[0] || res[1] || res[3] {
		t.Fatalf("Mincore = %v, %v", res, err)
	}
	if res, err := as.Mincore(a, pg); err != nil || !res[0] {
		t.Fatalf("Mincore of a page-cache page = %v, %v", res, err)
	}
	if _, err := as.Mincore(anon, 64*pg); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Mincore over a hole = %v", err)
	}
	if _, err := as.Mincore(anon+1, pg); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Mincore unaligned = %v", err)
	}
}

func TestBrk(t *testing.T) {
	as, err := New(Options{Size: 1 << 30, BrkStart: 0x100000})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	if got, err := as.Brk(0); got != 0x100000 || err != nil {
		t.Fatalf("Brk(0) = %#x, %v", got, err)
	}
	if got, err := as.Brk(0x102345); got != 0x102345 || err != nil {
		t.Fatalf("Brk(grow) = %#x, %v", got, err)
	}
	writeAt(t, as, 0x102344, "h")
	if n, err := as.CopyOut(ctx, 0x103000, []byte("x"), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatal("the heap extends past the rounded-up break")
	}
	if got, err := as.Brk(0x108000); got != 0x108000 || err != nil {
		t.Fatalf("Brk(grow more) = %#x, %v", got, err)
	}
	if ms := as.Mappings(); len(ms) != 1 || ms[0].Name != "[heap]" || ms[0].Range != (hostarch.AddrRange{Start: 0x100000, End: 0x108000}) {
		t.Fatalf("heap mappings: %+v", ms)
	}
	var b strings.Builder
	as.WriteMaps(&b)
	if !strings.HasSuffix(b.String(), "[heap]\n") {
		t.Fatalf("WriteMaps: %q", b.String())
	}
	if got, err := as.Brk(0x101000); got != 0x101000 || err != nil {
		t.Fatalf("Brk(shrink) = %#x, %v", got, err)
	}
	if n, _ := as.CopyIn(ctx, 0x101000, make([]byte, 1), noOpt); n != 0 {
		t.Fatal("shrinking left the pages mapped")
	}
	// Growing into a mapping fails and leaves the break where it was.
	mustMmap(t, as, MmapOpts{Addr: 0x104000, Length: pg, Fixed: true})
	if got, err := as.Brk(0x105000); got != 0x101000 || !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Brk into a mapping = %#x, %v", got, err)
	}
	if got, err := as.Brk(0x1000); got != 0x101000 || !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Brk below the start = %#x, %v", got, err)
	}
	if err := as.SetBrkStart(0x200000); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("SetBrkStart with a heap = %v", err)
	}
	c := mustClone(t, as)
	if got, _ := c.Brk(0); got != 0x101000 {
		t.Fatalf("clone's break = %#x", got)
	}
}

// TestLazyMaxView checks the max view that is mapped on first use: it shows
// the current backing after mappings are replaced, moved and unmapped, and
// mappings that differ only in whether it is mapped look and act as one.
func TestLazyMaxView(t *testing.T) {
	as := newAS(t, 1<<30)
	ign := noOpt
	ign.IgnorePermissions = true
	a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Fixed: true, Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true})
	if n, err := as.CopyOut(ctx, a, []byte("old"), ign); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	// Adjacent, same attributes, max view not mapped: one mapping.
	b := mustMmap(t, as, MmapOpts{Addr: a + 2*pg, Fixed: true, Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true})
	if ms := as.Mappings(); len(ms) != 1 || ms[0].Range != (hostarch.AddrRange{Start: a, End: b + 2*pg}) {
		t.Fatalf("Mappings = %+v", ms)
	}
	// Mremap across the two moves both.
	writeAt(t, as, b, "new")
	dst, err := as.Mremap(a, 4*pg, 4*pg, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, 0x40000)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(readAt(t, as, dst, 3)) + string(readAt(t, as, dst+2*pg, 3)); got != "oldnew" {
		t.Fatalf("after the move: %q", got)
	}
	// Replacing a range whose max view was mapped: the max view must show
	// the new (zero) page, not the old one.
	mustMmap(t, as, MmapOpts{Addr: dst, Fixed: true, Length: pg, Perms: hostarch.Read, Private: true})
	buf := make([]byte, 3)
	if n, err := as.CopyIn(ctx, dst, buf, ign); n != 3 || err != nil || string(buf) != "\x00\x00\x00" {
		t.Fatalf("max view after a fixed replacement: %q, %d, %v", buf, n, err)
	}
	// And after Munmap, nothing.
	as.Munmap(dst, 4*pg)
	if n, err := as.CopyIn(ctx, dst, buf, ign); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("max view after Munmap: %d, %v", n, err)
	}
}
