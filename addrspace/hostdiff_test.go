package addrspace

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestHostDiff runs random sequences of Mmap, Munmap, Mprotect, Mremap,
// Madvise and copies against an AddressSpace and, with real system calls,
// against a reserved range of the host's own address space (see
// hostdiff_host_test.go), comparing every result, errno, byte and maps line.
// A divergence is shrunk to a few operations and printed as Go code.
//
// It runs for MMSIM_HOSTDIFF_TIME (a Go duration; default 3s, 1s with
// -short) from seed MMSIM_HOSTDIFF_SEED (default 1; sequence i uses seed+i).
func TestHostDiff(t *testing.T) {
	d := 3 * time.Second
	if testing.Short() {
		d = time.Second
	}
	if s := os.Getenv("MMSIM_HOSTDIFF_TIME"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	seed := int64(1)
	if s := os.Getenv("MMSIM_HOSTDIFF_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	// MMSIM_HOSTDIFF_SURVEY=1 logs every divergence instead of stopping at
	// the first.
	survey := os.Getenv("MMSIM_HOSTDIFF_SURVEY") != ""
	failed := 0
	start := time.Now()
	seqs, ops := 0, 0
	for time.Since(start) < d {
		s := seed + int64(seqs)
		res, err := runRandom(s, 60)
		if err != nil {
			t.Fatal(err)
		}
		seqs++
		ops += len(res.ops)
		if res.diff != "" && survey {
			small, _ := shrink(res.ops, 100)
			t.Logf("seed %d: %d ops:\n%s", s, len(small.ops), repro(small))
			failed++
			continue
		}
		if res.diff != "" {
			small, err := shrink(res.ops, 300)
			if err != nil {
				t.Fatal(err)
			}
			t.Fatalf("sequence %d (MMSIM_HOSTDIFF_SEED=%d) diverges after %d operations; shrunk to %d:\n%s",
				seqs, s, len(res.ops), len(small.ops), repro(small))
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d sequences diverge", failed, seqs)
	}
	t.Logf("%d sequences (%d operations) in %v, zero divergences", seqs, ops, time.Since(start).Round(time.Millisecond))
}

// TestHostDiffCases runs the cases of issue 11 (and the table tests of
// mremap_test.go, advice_test.go and vma_test.go) through the differential test, so
// that the host kernel confirms what those tables expect.
func TestHostDiffCases(t *testing.T) {
	rw, r := hostarch.ReadWrite, hostarch.Read
	anon := func(addr hostarch.Addr, pages int, perms hostarch.AccessType, private bool) hdOp {
		return hdOp{Kind: hdMmap, Addr: addr, Len: uint64(pages) * pg, Fixed: true, Perms: perms, Private: private, File: -1}
	}
	file := func(addr hostarch.Addr, pages int, off uint64) hdOp {
		return hdOp{Kind: hdMmap, Addr: addr, Len: uint64(pages) * pg, Fixed: true, Perms: rw, File: 0, Off: off}
	}
	remap := func(old hostarch.Addr, oldLen, newLen uint64, flags int, newAddr hostarch.Addr) hdOp {
		return hdOp{Kind: hdMremap, Addr: old, Len: oldLen, NewLen: newLen, Flags: flags, NewAddr: newAddr, File: -1}
	}
	write := func(addr hostarch.Addr, n uint64) hdOp {
		return hdOp{Kind: hdCopyOut, Addr: addr, Len: n, Ignore: true, Seed: int64(addr), File: -1}
	}
	unmap := func(addr hostarch.Addr, pages int) hdOp {
		return hdOp{Kind: hdMunmap, Addr: addr, Len: uint64(pages) * pg, File: -1}
	}
	advise := func(addr hostarch.Addr, n uint64, advice int) hdOp {
		return hdOp{Kind: hdMadvise, Addr: addr, Len: n, Advice: advice, File: -1}
	}
	pfile := func(addr hostarch.Addr, pages int, perms hostarch.AccessType) hdOp {
		return hdOp{Kind: hdMmap, Addr: addr, Len: uint64(pages) * pg, Fixed: true, Perms: perms, Private: true, File: 0}
	}
	protect := func(addr hostarch.Addr, pages int, perms hostarch.AccessType) hdOp {
		return hdOp{Kind: hdMprotect, Addr: addr, Len: uint64(pages) * pg, Perms: perms, File: -1}
	}
	read := func(addr hostarch.Addr, n uint64) hdOp {
		return hdOp{Kind: hdCopyIn, Addr: addr, Len: n, File: -1}
	}
	cmp := hdOp{Kind: hdCompare, File: -1}
	const mm, fx = unix.MREMAP_MAYMOVE, unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED
	for _, tc := range []struct {
		name string
		ops  []hdOp
	}{
		{"growth by move, then growth again", []hdOp{anon(0x10000, 1, rw, true), write(0x10000, 10), anon(0x11000, 1, r, true),
			remap(0x10000, pg, 8*pg, mm, 0), remap(0x28000, 8*pg, 16*pg, mm, 0), cmp}},
		{"a Fixed Mmap of an identical mapping over part of one", []hdOp{anon(0x10000, 4, rw, true), anon(0x11000, 2, rw, true),
			remap(0x10000, 4*pg, 8*pg, 0, 0)}},
		{"the same over a file mapping", []hdOp{file(0x10000, 4, 0), file(0x11000, 2, pg), remap(0x10000, 4*pg, 6*pg, 0, 0)}},
		{"shared anonymous growth over its object", []hdOp{anon(0x10000, 4, rw, false), write(0x10000, 4*pg), unmap(0x12000, 2),
			remap(0x10000, 2*pg, 4*pg, 0, 0), cmp, remap(0x10000, 4*pg, 6*pg, 0, 0), read(0x13000, 3*pg), cmp}},
		{"a duplicate past the mapping", []hdOp{anon(0x10000, 4, rw, false), write(0x10000, 4*pg), unmap(0x11000, 3),
			remap(0x10000, 0, 4*pg, mm, 0), cmp}},
		{"a duplicate from inside", []hdOp{anon(0x10000, 4, rw, false), write(0x10000, 4*pg), remap(0x12000, 0, 2*pg, fx, 0x20000), cmp}},
		{"a duplicate onto itself", []hdOp{anon(0x10000, 2, rw, false), remap(0x10000, 0, pg, fx, 0x10000)}},
		{"FIXED same length over mappings and gaps", []hdOp{anon(0x10000, 2, rw, true), anon(0x13000, 1, r, true), anon(0x21000, 1, r, false),
			remap(0x10000, 4*pg, 4*pg, fx, 0x20000)}},
		{"FIXED same length from a gap", []hdOp{anon(0x11000, 2, rw, true), remap(0x10000, 4*pg, 4*pg, fx, 0x20000)}},
		{"a FIXED shrink with only the head in one mapping", []hdOp{anon(0x10000, 1, rw, true), anon(0x11000, 1, r, true),
			remap(0x10000, 2*pg, pg, fx, 0x20000)}},
		{"FIXED to an unaligned target, nothing at old", []hdOp{remap(0x10000, pg, pg, fx, 0x20001)}},
		{"FIXED to an overlapping target, nothing at old", []hdOp{remap(0x10000, 2*pg, pg, fx, 0x11000)}},
		{"old length 0 without MAYMOVE", []hdOp{anon(0x10000, 1, rw, false), remap(0x10000, 0, pg, 0, 0)}},
		{"old length 0, private", []hdOp{anon(0x10000, 1, rw, true), remap(0x10000, 0, pg, mm, 0)}},
		{"the same length over holes", []hdOp{anon(0x10000, 1, rw, true), remap(0x10000, 4*pg, 4*pg, mm, 0)}},
		{"an old length that rounds to 0", []hdOp{anon(0x10000, 1, rw, false), remap(0x10000, ^uint64(0), pg, mm, 0)}},
		{"Madvise over holes", []hdOp{anon(0x10000, 2, rw, true), anon(0x13000, 1, rw, true), write(0x10000, 4*pg),
			advise(0x10000, 4*pg, unix.MADV_DONTNEED), cmp}},
		{"VM_ACCOUNT of a private file mapping", []hdOp{pfile(0x10000, 2, r), protect(0x11000, 1, rw), protect(0x11000, 1, r)}},
		{"anon_vmas of private anonymous neighbours written apart", []hdOp{anon(0x10000, 1, rw, true), anon(0x12000, 1, rw, true),
			anon(0x11000, 1, rw, true)}},
		{"pieces of one private anonymous mapping", []hdOp{anon(0x10000, 3, rw, true), protect(0x11000, 1, r), protect(0x11000, 1, rw)}},
		{"two shared anonymous mappings", []hdOp{anon(0x10000, 1, rw, false), anon(0x11000, 1, rw, false)}},
		{"pieces of one shared anonymous mapping", []hdOp{anon(0x10000, 3, rw, false), protect(0x11000, 1, r)}},
		{"private file pieces written apart", []hdOp{pfile(0x10000, 2, rw), advise(0x11000, pg, unix.MADV_RANDOM),
			write(0x10000, 1), write(0x11000, 1), advise(0x10000, 2*pg, unix.MADV_NORMAL)}},
		{"a private file piece not written", []hdOp{pfile(0x10000, 2, rw), advise(0x11000, pg, unix.MADV_RANDOM),
			write(0x10000, 1), advise(0x10000, 2*pg, unix.MADV_NORMAL)}},
		{"Madvise of a length that overflows", []hdOp{anon(0x10000, 1, rw, true), advise(0x10000, ^uint64(0), unix.MADV_DONTNEED),
			advise(0x10000, ^uint64(0)-0x8000, unix.MADV_DONTNEED)}},
		{"Madvise of length 0 over nothing", []hdOp{advise(0x10000, 0, unix.MADV_DONTNEED), advise(0x10001, 0, unix.MADV_DONTNEED)}},
		{"MADV_RANDOM splits, MADV_NORMAL merges", []hdOp{anon(0x10000, 4, rw, true), advise(0x11000, pg, unix.MADV_RANDOM),
			advise(0x10000, 4*pg, unix.MADV_NORMAL)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := runOps(tc.ops)
			if err != nil {
				t.Fatal(err)
			}
			if res.diff != "" {
				t.Fatalf("diverges:\n%s", repro(res))
			}
		})
	}
}
