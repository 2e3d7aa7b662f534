package addrspace

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// The differential test (hostdiff_host_test.go) extended to the advice of
// the kernel-extras issue, MREMAP_DONTUNMAP and WriteSmaps. Operations are
// mirrored on the host kernel as there, and after each the smaps entries of
// both sides are compared as well as the maps lines.
//
// Deliberate differences, handled here:
//   - MADV_FREE: Linux may drop the pages at any time until they are
//     written; mmsim drops them at once. After a MADV_FREE the host is made
//     to drop them too (MADV_DONTNEED over the private anonymous mappings
//     that the MADV_FREE advised: those in the range up to the first one
//     that refused it), which is one of the outcomes Linux allows.
//   - smaps values that mmsim computes differently (see WriteSmaps): Rss and
//     the counts that follow from it are compared only where the test
//     controls which pages were touched (the cases of
//     TestHostDiffSmapsCases), and only for private anonymous memory
//     written page by page; the random sequences compare every entry's
//     range, field names and order, Size, page sizes, the fields mmsim
//     always shows as 0 (where the host shows 0 too: hugetlb, swap, KSM,
//     THP) and VmFlags.
//   - Clone has no mirror on the host (fork(2) of a Go process); it is
//     covered by the table tests of advice_more_test.go.

func init() {
	for a, n := range map[int]string{
		unix.MADV_FREE: "unix.MADV_FREE", unix.MADV_REMOVE: "unix.MADV_REMOVE",
		unix.MADV_DONTFORK: "unix.MADV_DONTFORK", unix.MADV_DOFORK: "unix.MADV_DOFORK",
		unix.MADV_WIPEONFORK: "unix.MADV_WIPEONFORK", unix.MADV_KEEPONFORK: "unix.MADV_KEEPONFORK",
		unix.MADV_HUGEPAGE: "unix.MADV_HUGEPAGE", unix.MADV_NOHUGEPAGE: "unix.MADV_NOHUGEPAGE",
	} {
		adviceNames[a] = n
	}
}

// hdNewAdvice is the advice the extension generates.
var hdNewAdvice = []int{unix.MADV_FREE, unix.MADV_REMOVE, unix.MADV_DONTFORK, unix.MADV_DOFORK,
	unix.MADV_WIPEONFORK, unix.MADV_KEEPONFORK, unix.MADV_HUGEPAGE, unix.MADV_NOHUGEPAGE}

// stepAdvice applies o to both sides like step, with MADV_FREE's host
// side made to drop the pages and Mremap with MREMAP_DONTUNMAP mirrored,
// and compares the smaps entries (exact values too, if exact).
func (r *hdRun) stepAdvice(o hdOp, exact bool) string {
	var d string
	switch {
	case o.Kind == hdMadvise && o.Advice == unix.MADV_FREE:
		d = r.madviseFree(o)
	case o.Kind == hdMremap && o.Flags&unix.MREMAP_DONTUNMAP != 0:
		d = r.mremapDontUnmap(o)
	default:
		d = r.step(o)
	}
	if d != "" {
		return d
	}
	return r.compareSmaps(exact)
}

// madviseFree mirrors a Madvise(MADV_FREE), then has the host drop what it
// advised (see the top of the file).
func (r *hdRun) madviseFree(o hdOp) string {
	err := r.as.Madvise(o.Addr, o.Len, o.Advice)
	_, _, e := unix.Syscall(unix.SYS_MADVISE, r.h.base+uintptr(o.Addr), uintptr(o.Len), uintptr(o.Advice))
	if errnoOf(err) != e {
		return fmt.Sprintf("Madvise = %v; host %v", err, e)
	}
	n, _ := hostarch.PageRoundUp(o.Len)
	end := uint64(o.Addr) + n
	_, host := r.maps()
	for _, l := range host {
		if l.end <= uint64(o.Addr) || l.start >= end {
			continue
		}
		if l.name != "" || l.perms[3] != 'p' {
			break
		}
		s, en := max(l.start, uint64(o.Addr)), min(l.end, end)
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, r.h.base+uintptr(s), uintptr(en-s), unix.MADV_DONTNEED); e != 0 {
			return fmt.Sprintf("host MADV_DONTNEED after MADV_FREE: %v", e)
		}
	}
	return r.compareMaps()
}

// mremapDontUnmap mirrors a Mremap with MREMAP_DONTUNMAP: without
// MREMAP_FIXED the host gets mmsim's target as its hint, which it takes
// since the maps are the same.
func (r *hdRun) mremapDontUnmap(o hdOp) string {
	got, err := r.as.Mremap(o.Addr, o.Len, o.NewLen, o.Flags, o.NewAddr)
	hint := o.NewAddr
	if err == nil {
		hint = got
	}
	if errnoOf(err) == unix.ENOMEM && o.Flags&unix.MREMAP_FIXED == 0 && !r.hasGap(o.NewLen) {
		return r.compareMaps() // no room in the space: the host has no such limit
	}
	p, _, e := unix.Syscall6(unix.SYS_MREMAP, r.h.base+uintptr(o.Addr), uintptr(o.Len), uintptr(o.NewLen), uintptr(o.Flags), r.h.base+uintptr(hint), 0)
	if errnoOf(err) != e {
		if e == 0 && (p < r.h.base || p >= r.h.base+hdSize) {
			unix.Syscall(unix.SYS_MUNMAP, p, uintptr(o.NewLen), 0)
		}
		return fmt.Sprintf("Mremap = %#x, %v; host %#x, %v", got, err, p-r.h.base, e)
	}
	if e == 0 && p != r.h.base+uintptr(got) {
		return fmt.Sprintf("Mremap = %#x; host %#x", got, p-r.h.base)
	}
	return r.compareMaps()
}

// smapEntry is one entry of an smaps listing.
type smapEntry struct {
	line   hdLine
	fields []string          // the field lines, in order, VmFlags excluded
	vals   map[string]uint64 // by field name
	flags  string            // the VmFlags line
}

// parseSmaps parses the smaps entries in [lo, lo+hdSize), as parseMaps
// parses maps lines.
func parseSmaps(text []byte, lo uint64, inodes map[uint64]string) []smapEntry {
	var es []smapEntry
	in := false
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(name, " ") || strings.Contains(name, "-") {
			// A maps line.
			ls := parseMaps([]byte(line), lo, inodes)
			in = len(ls) == 1
			if in {
				es = append(es, smapEntry{line: ls[0], vals: map[string]uint64{}})
			}
			continue
		}
		if !in {
			continue
		}
		e := &es[len(es)-1]
		if name == "VmFlags" {
			e.flags = line
			continue
		}
		e.fields = append(e.fields, line)
		v, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		e.vals[name] = v
	}
	return es
}

// smapFieldNames lists an entry's field names, each with the length of its
// line (label, value and unit in their fixed widths): Linux's layout.
func smapFieldNames(e smapEntry) []string {
	var ns []string
	for _, f := range e.fields {
		name, _, _ := strings.Cut(f, ":")
		ns = append(ns, fmt.Sprintf("%s/%d", name, len(f)))
	}
	return ns
}

// smapZeroFields are the fields mmsim always shows as 0.
var smapZeroFields = []string{"KSM", "LazyFree", "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped",
	"Shared_Hugetlb", "Private_Hugetlb", "Swap", "SwapPss", "THPeligible"}

// smapExactFields are compared for written private anonymous memory.
var smapExactFields = []string{"Rss", "Pss", "Pss_Dirty", "Shared_Clean", "Shared_Dirty", "Private_Clean",
	"Private_Dirty", "Referenced", "Anonymous", "Locked"}

func (r *hdRun) smaps() (sim, host []smapEntry) {
	var b bytes.Buffer
	if err := r.as.WriteSmaps(&b); err != nil {
		panic(err)
	}
	sim = parseSmaps(b.Bytes(), 0, r.inodes)
	text, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		panic(err)
	}
	host = parseSmaps(text, uint64(r.h.base), r.inodes)
	return sim, host
}

// compareSmaps compares both sides' smaps entries.
func (r *hdRun) compareSmaps(exact bool) string {
	sim, host := r.smaps()
	if len(sim) != len(host) {
		return fmt.Sprintf("smaps: %d entries; host %d", len(sim), len(host))
	}
	for i := range sim {
		s, h := sim[i], host[i]
		if s.line != h.line {
			return fmt.Sprintf("smaps entry %d: %v; host %v", i, s.line, h.line)
		}
		if a, b := strings.Join(smapFieldNames(s), " "), strings.Join(smapFieldNames(h), " "); a != b {
			return fmt.Sprintf("smaps entry %v fields:\n  %s\nhost\n  %s", s.line, a, b)
		}
		if s.flags != h.flags {
			return fmt.Sprintf("smaps entry %v: %q; host %q", s.line, s.flags, h.flags)
		}
		for _, f := range []string{"Size", "KernelPageSize", "MMUPageSize"} {
			if s.vals[f] != h.vals[f] {
				return fmt.Sprintf("smaps entry %v: %s %d; host %d", s.line, f, s.vals[f], h.vals[f])
			}
		}
		for _, f := range smapZeroFields {
			if s.vals[f] != 0 {
				return fmt.Sprintf("smaps entry %v: %s %d, not 0", s.line, f, s.vals[f])
			}
			if h.vals[f] != 0 && f != "THPeligible" {
				return fmt.Sprintf("smaps entry %v: the host shows %s %d (a host mmsim does not model)", s.line, f, h.vals[f])
			}
		}
		if exact && s.line.name == "" && s.line.perms[3] == 'p' {
			for _, f := range smapExactFields {
				if s.vals[f] != h.vals[f] {
					return fmt.Sprintf("smaps entry %v: %s %d kB; host %d kB", s.line, f, s.vals[f], h.vals[f])
				}
			}
		}
	}
	return ""
}

// runOpsAdvice runs ops on a fresh pair, comparing after each, and returns
// the first divergence.
func runOpsAdvice(ops []hdOp, exact bool) (hdResult, error) {
	r, err := newHDRun()
	if err != nil {
		return hdResult{}, err
	}
	defer r.close()
	var res hdResult
	for _, o := range ops {
		if ignorable(o, r.as.Mappings()) {
			continue
		}
		res.ops = append(res.ops, o)
		// Reads back private anonymous pages never written: Linux maps its
		// zero page (not in Rss), mmsim backs them.
		exact = exact && o.Kind != hdCompare && o.Kind != hdCopyIn
		if d := r.stepAdvice(o, exact); d != "" {
			res.diff = d
			return res, nil
		}
	}
	if d := r.compareBytes(); d != "" {
		res.diff = "at the end: " + d
	}
	return res, nil
}

// nextAdvice draws an operation: a quarter of them the new advice or a
// Mremap with MREMAP_DONTUNMAP, the rest as TestHostDiff draws them.
func (g *hdGen) nextAdvice(ms []Mapping) hdOp {
	rng := g.rng
	if rng.Intn(4) != 0 {
		return g.next(ms)
	}
	o := hdOp{File: -1}
	if rng.Intn(3) == 0 {
		o.Kind = hdMremap
		o.Addr = g.addr(ms)
		o.Len = g.length(o.Addr, 4)
		o.NewLen = o.Len
		if rng.Intn(10) == 0 {
			o.NewLen += pg
		}
		o.Flags = unix.MREMAP_MAYMOVE | unix.MREMAP_DONTUNMAP
		switch rng.Intn(6) {
		case 0:
			o.Flags = unix.MREMAP_DONTUNMAP
		case 1, 2:
			o.Flags |= unix.MREMAP_FIXED
		}
		o.NewAddr = g.addr(ms)
		if room := (hdSize - uint64(o.NewAddr)) / pg * pg; o.NewLen > room {
			o.NewLen = room
			o.Len = room
		}
		return o
	}
	o.Kind = hdMadvise
	o.Addr = g.addr(ms)
	o.Len = g.length(o.Addr, 4)
	o.Advice = hdNewAdvice[rng.Intn(len(hdNewAdvice))]
	return o
}

// runRandomAdvice runs a random sequence of n operations from seed.
func runRandomAdvice(seed int64, n int) (hdResult, error) {
	r, err := newHDRun()
	if err != nil {
		return hdResult{}, err
	}
	defer r.close()
	g := &hdGen{rng: rand.New(rand.NewSource(seed))}
	var res hdResult
	for i := 0; i < n; i++ {
		ms := r.as.Mappings()
		o := g.nextAdvice(ms)
		if ignorable(o, ms) {
			continue
		}
		res.ops = append(res.ops, o)
		if d := r.stepAdvice(o, false); d != "" {
			res.diff = d
			return res, nil
		}
	}
	if d := r.compareBytes(); d != "" {
		res.diff = "at the end: " + d
	}
	return res, nil
}

// shrinkAdvice is shrink for runOpsAdvice.
func shrinkAdvice(ops []hdOp, budget int) (hdResult, error) {
	best, err := runOpsAdvice(ops, false)
	if err != nil || best.diff == "" {
		return best, err
	}
	ops = best.ops
	for chunk := len(ops) / 2; chunk >= 1 && budget > 0; chunk /= 2 {
		for i := 0; i+chunk <= len(ops) && budget > 0; {
			cand := append(append([]hdOp(nil), ops[:i]...), ops[i+chunk:]...)
			budget--
			res, err := runOpsAdvice(cand, false)
			if err != nil {
				return best, err
			}
			if res.diff != "" {
				best, ops = res, res.ops
				continue
			}
			i += chunk
		}
	}
	return best, nil
}

// TestHostDiffAdvice runs random sequences with the new advice and
// MREMAP_DONTUNMAP against the host kernel, comparing smaps entries too,
// for MMSIM_HOSTDIFF_TIME (default 2s, 1s with -short) from
// MMSIM_HOSTDIFF_SEED.
func TestHostDiffAdvice(t *testing.T) {
	d := 2 * time.Second
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
	start := time.Now()
	seqs, ops := 0, 0
	for time.Since(start) < d {
		s := seed + int64(seqs)
		res, err := runRandomAdvice(s, 60)
		if err != nil {
			t.Fatal(err)
		}
		seqs++
		ops += len(res.ops)
		if res.diff != "" {
			small, err := shrinkAdvice(res.ops, 300)
			if err != nil {
				t.Fatal(err)
			}
			t.Fatalf("sequence %d (MMSIM_HOSTDIFF_SEED=%d) diverges after %d operations; shrunk to %d:\n%s",
				seqs, s, len(res.ops), len(small.ops), repro(small))
		}
	}
	t.Logf("%d sequences (%d operations) in %v, zero divergences", seqs, ops, time.Since(start).Round(time.Millisecond))
}

// TestHostDiffAdviceCases runs the new advice's and MREMAP_DONTUNMAP's
// table cases through the differential test, smaps values included.
func TestHostDiffAdviceCases(t *testing.T) {
	rw, r := hostarch.ReadWrite, hostarch.Read
	anon := func(addr hostarch.Addr, pages int, perms hostarch.AccessType, private bool) hdOp {
		return hdOp{Kind: hdMmap, Addr: addr, Len: uint64(pages) * pg, Fixed: true, Perms: perms, Private: private, File: -1}
	}
	file := func(addr hostarch.Addr, pages int, perms hostarch.AccessType, private bool, f int) hdOp {
		return hdOp{Kind: hdMmap, Addr: addr, Len: uint64(pages) * pg, Fixed: true, Perms: perms, Private: private, File: f}
	}
	write := func(addr hostarch.Addr, n uint64) hdOp {
		return hdOp{Kind: hdCopyOut, Addr: addr, Len: n, Seed: int64(addr), File: -1}
	}
	advise := func(addr hostarch.Addr, n uint64, advice int) hdOp {
		return hdOp{Kind: hdMadvise, Addr: addr, Len: n, Advice: advice, File: -1}
	}
	remap := func(old hostarch.Addr, n uint64, flags int, newAddr hostarch.Addr) hdOp {
		return hdOp{Kind: hdMremap, Addr: old, Len: n, NewLen: n, Flags: flags, NewAddr: newAddr, File: -1}
	}
	cmp := hdOp{Kind: hdCompare, File: -1}
	const du, fx = unix.MREMAP_MAYMOVE | unix.MREMAP_DONTUNMAP, unix.MREMAP_MAYMOVE | unix.MREMAP_DONTUNMAP | unix.MREMAP_FIXED
	for _, tc := range []struct {
		name string
		ops  []hdOp
	}{
		{"MADV_FREE of written private anonymous pages", []hdOp{anon(0x10000, 4, rw, true), write(0x10000, 4*pg),
			advise(0x11000, 2*pg, unix.MADV_FREE), write(0x12000, 10), cmp}},
		{"MADV_FREE over a hole", []hdOp{anon(0x10000, 2, rw, true), anon(0x13000, 1, rw, true), write(0x10000, 2*pg),
			write(0x13000, pg), advise(0x10000, 4*pg, unix.MADV_FREE), cmp}},
		{"MADV_FREE stops at a file mapping", []hdOp{anon(0x10000, 2, rw, true), file(0x12000, 2, rw, true, 0),
			anon(0x14000, 1, rw, true), write(0x10000, 2*pg), write(0x14000, pg), advise(0x10000, 5*pg, unix.MADV_FREE), cmp}},
		{"MADV_FREE of shared anonymous memory", []hdOp{anon(0x10000, 2, rw, false), write(0x10000, 2*pg),
			advise(0x10000, 2*pg, unix.MADV_FREE), cmp}},
		{"MADV_REMOVE of shared anonymous memory", []hdOp{anon(0x10000, 4, rw, false), write(0x10000, 4*pg),
			advise(0x11000, 2*pg, unix.MADV_REMOVE), cmp}},
		{"MADV_REMOVE of a shared file mapping", []hdOp{file(0x10000, 4, rw, false, 0), write(0x10000, 4*pg),
			file(0x20000, 4, r, true, 0), advise(0x11000, pg, unix.MADV_REMOVE), cmp}},
		{"MADV_REMOVE of private and read-only mappings", []hdOp{anon(0x10000, 1, rw, true), file(0x11000, 1, rw, true, 0),
			anon(0x12000, 1, r, false), advise(0x10000, pg, unix.MADV_REMOVE), advise(0x11000, pg, unix.MADV_REMOVE),
			advise(0x12000, pg, unix.MADV_REMOVE), cmp}},
		{"MADV_REMOVE over a hole, then EACCES", []hdOp{anon(0x10000, 1, rw, false), anon(0x12000, 1, r, false),
			write(0x10000, pg), advise(0x10000, 3*pg, unix.MADV_REMOVE), cmp}},
		{"MADV_DONTFORK splits, MADV_DOFORK merges", []hdOp{anon(0x10000, 4, rw, true), write(0x10000, 4*pg),
			advise(0x11000, pg, unix.MADV_DONTFORK), advise(0x10000, 4*pg, unix.MADV_DOFORK)}},
		{"MADV_WIPEONFORK on private anonymous memory", []hdOp{anon(0x10000, 4, rw, true), write(0x10000, 4*pg),
			advise(0x12000, 2*pg, unix.MADV_WIPEONFORK), advise(0x12000, pg, unix.MADV_KEEPONFORK)}},
		{"MADV_WIPEONFORK stops at a shared mapping", []hdOp{anon(0x10000, 1, rw, true), anon(0x11000, 1, rw, false),
			anon(0x12000, 1, rw, true), advise(0x10000, 3*pg, unix.MADV_WIPEONFORK)}},
		{"MADV_WIPEONFORK of a private file mapping", []hdOp{file(0x10000, 2, rw, true, 0), advise(0x10000, 2*pg, unix.MADV_WIPEONFORK)}},
		{"MADV_HUGEPAGE, MADV_NOHUGEPAGE", []hdOp{anon(0x10000, 6, rw, true), write(0x10000, 6*pg), advise(0x11000, 2*pg, unix.MADV_HUGEPAGE),
			advise(0x12000, 2*pg, unix.MADV_NOHUGEPAGE), file(0x20000, 2, r, false, 1), advise(0x20000, pg, unix.MADV_HUGEPAGE)}},
		{"flag advice over holes", []hdOp{anon(0x10000, 1, rw, true), anon(0x12000, 1, rw, false),
			advise(0x10000, 4*pg, unix.MADV_DONTFORK), advise(0x10000, 0, unix.MADV_HUGEPAGE)}},
		{"DONTUNMAP of a whole private anonymous mapping", []hdOp{anon(0x10000, 2, rw, true), write(0x10000, 2*pg),
			remap(0x10000, 2*pg, du, 0), cmp, write(0x10000, 10), cmp}},
		{"DONTUNMAP of part of one, to a hint", []hdOp{anon(0x10000, 4, rw, true), write(0x10000, 4*pg),
			remap(0x11000, 2*pg, du, 0x20000), cmp}},
		{"DONTUNMAP FIXED over a mapping", []hdOp{anon(0x10000, 2, rw, true), write(0x10000, 2*pg), anon(0x20000, 4, r, true),
			remap(0x10000, 2*pg, fx, 0x21000), cmp}},
		{"DONTUNMAP FIXED across mappings and a gap", []hdOp{anon(0x10000, 1, rw, true), anon(0x12000, 1, r, false),
			write(0x10000, pg), remap(0x10000, 3*pg, fx, 0x20000), cmp}},
		{"DONTUNMAP of a shared mapping", []hdOp{anon(0x10000, 2, rw, false), write(0x10000, 2*pg), remap(0x10000, 2*pg, du, 0x20000), cmp}},
		{"DONTUNMAP of a private file mapping with copies", []hdOp{file(0x10000, 3, rw, true, 0), write(0x11000, 10),
			remap(0x10000, 3*pg, du, 0x20000), cmp}},
		{"DONTUNMAP of a whole mapping, then Mprotect read-only (VM_ACCOUNT dropped)", []hdOp{anon(0x18000, 6, hostarch.AccessType{Write: true, Execute: true}, true),
			{Kind: hdMmap, Addr: 0x16000, Len: 0x40f3, Fixed: true, Perms: hostarch.AccessType{Execute: true}, File: 0},
			remap(0x1a000, 4*pg, fx, 0x8000), {Kind: hdMprotect, Addr: 0x1c000, Len: 6 * pg, File: -1}}},
		{"DONTUNMAP of whole VMAs that differ only in their anon_vma (Linux keeps them apart)", []hdOp{
			anon(0x2b000, 4, hostarch.AccessType{Write: true}, true), anon(0x2f000, 1, hostarch.AccessType{Read: true, Execute: true}, true),
			{Kind: hdMprotect, Addr: 0x2e000, Len: 2 * pg, Perms: hostarch.AnyAccess, File: -1}, remap(0x2e000, 2*pg, fx, 0x3000),
			{Kind: hdMprotect, Addr: 0x2e000, Len: pg, Perms: hostarch.ReadWrite, File: -1}, write(0x2f000, 1),
			{Kind: hdMprotect, Addr: 0x2e000, Len: 2 * pg, Perms: hostarch.ReadWrite, File: -1}}},
		{"DONTUNMAP errors", []hdOp{anon(0x10000, 2, rw, true), anon(0x12000, 1, r, true),
			remap(0x10000, 2*pg, unix.MREMAP_DONTUNMAP, 0x20000),
			{Kind: hdMremap, Addr: 0x10000, Len: pg, NewLen: 2 * pg, Flags: du, NewAddr: 0x20000, File: -1},
			remap(0x10000, 2*pg, du, 0x10001), remap(0x10000, 2*pg, du, 0x11000), remap(0x10000, 3*pg, du, 0x20000),
			remap(0x18000, pg, du, 0x20000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := runOpsAdvice(tc.ops, true)
			if err != nil {
				t.Fatal(err)
			}
			if res.diff != "" {
				t.Fatalf("diverges:\n%s", repro(res))
			}
		})
	}
}
