package addrspace

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"
	"time"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// FuzzHostile's calls added after it was first written (ops 25 and up): the
// mlock family, the resource limits, the emulator's direct-access calls
// (Translate, ResolveFault, GuestAddr, Lookup, Generation), WriteSmaps, the
// futexes, CopyBetween and usermem.CopyStringIn over the space.

// hostileMoreOps is the number of ops more makes.
const hostileMoreOps = 12

// hostileLockMax bounds the bytes one space may have populated by locking
// where the guest's request is legitimate but would exhaust the test
// machine: Mlockall(MCL_CURRENT) of a large space, MCL_FUTURE with every
// later mapping populated, Mremap growth of a locked mapping. The fuzzer
// keeps Limits.Memlock at most this whenever MCL_FUTURE populates, and
// otherwise adds MCL_ONFAULT or shortens the request.
const hostileLockMax = 4 * hostileMaxTouch

// memlockBounded reports whether l's Memlock bounds the pages a space may
// lock to hostileLockMax.
func memlockBounded(l Limits) bool { return l.Memlock != 0 && l.Memlock <= hostileLockMax }

// fullyLocked reports whether one of ms is locked (not on fault): growing
// it populates the new pages.
func fullyLocked(ms []Mapping) bool {
	for _, m := range ms {
		if m.Locked && !m.LockOnFault {
			return true
		}
	}
	return false
}

// mappedBytes is the total length of ms.
func mappedBytes(ms []Mapping) uint64 {
	var n uint64
	for _, m := range ms {
		n += uint64(m.Range.Length())
	}
	return n
}

// growRegions returns the ranges an access may map by growing a stack: the
// gap below each mapping that grows down (MmapOpts.GrowsDown).
func growRegions(ms []Mapping) []hostarch.AddrRange {
	var rs []hostarch.AddrRange
	for i, m := range ms {
		if !m.GrowsDown {
			continue
		}
		lo := hostarch.Addr(0)
		if i > 0 {
			lo = ms[i-1].Range.End
		}
		if lo < m.Range.Start {
			rs = append(rs, hostarch.AddrRange{Start: lo, End: m.Range.Start})
		}
	}
	return rs
}

// lockRange is the range Mlock and Munlock act on: [addr, addr+length)
// widened to whole pages as Linux's mlock widens it (a length that rounds
// up past 2^64 wraps to 0), clamped at the top of the address type.
func lockRange(addr hostarch.Addr, length uint64) hostarch.AddrRange {
	start := addr.RoundDown()
	l := (length + uint64(addr-start) + pg - 1) &^ (pg - 1)
	return pageRange(start, l)
}

// hTr is a translation Translate returned.
type hTr struct {
	s  *hSpace
	tr Translation
}

// checkTranslations checks that every translation kept in h.trs whose
// space's Generation is still its Gen shows what the space holds, as
// Translation promises, without faulting.
func (h *hostile) checkTranslations(op string) {
	h.t.Helper()
	for _, t := range h.trs {
		if t.s.closed || t.s.closing || t.s.as.Generation() != t.tr.Gen {
			continue
		}
		for _, p := range trPages(t.tr) {
			want := readAllMax(t.s.as, p)
			off := p.Start - t.tr.Range.Start
			got, ok := readHost(t.tr.Mem[off : off+pg])
			if !ok {
				h.fail("after %s, touching page %v of the translation %v of %s faulted, at the same Generation %d", op, p, t.tr.Range, t.s.name, t.tr.Gen)
			}
			if string(got) != string(want) {
				h.fail("after %s, page %v of the translation %v of %s shows other bytes than CopyIn reads (%d of %d), at the same Generation %d",
					op, p, t.tr.Range, t.s.name, len(want), len(got), t.tr.Gen)
			}
		}
	}
}

// trPages returns the pages of a translation that the checks compare: its
// first, middle and last (a translation may cover gigabytes).
func trPages(tr Translation) []hostarch.AddrRange {
	var ps []hostarch.AddrRange
	for _, a := range []hostarch.Addr{tr.Range.Start, (tr.Range.Start + tr.Range.Length()/2).RoundDown(), tr.Range.End - pg} {
		if n := len(ps); n == 0 || ps[n-1].Start != a {
			ps = append(ps, hostarch.AddrRange{Start: a, End: a + pg})
		}
	}
	return ps
}

// readHost copies mem, or returns false if touching it faults.
func readHost(mem []byte) (b []byte, ok bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if recover() != nil {
				b, ok = nil, false
			}
		}()
		debug.SetPanicOnFault(true)
		b = append([]byte(nil), mem...)
		ok = true
	}()
	<-done
	return b, ok
}

// containing returns the mapping of ms that contains a.
func containing(ms []Mapping, a hostarch.Addr) (Mapping, bool) {
	for _, m := range ms {
		if m.Range.Contains(a) {
			return m, true
		}
	}
	return Mapping{}, false
}

// moreMmapOpts draws Mmap's later options, bounding Length where they
// populate the mapping.
func (h *hostile) moreMmapOpts(s *hSpace, o *MmapOpts) {
	if h.in.intn(3) != 0 {
		return
	}
	b := h.in.byte()
	o.GrowsDown, o.Locked, o.NoReplace, o.Populate = b&1 != 0, b&2 != 0, b&4 != 0, b&8 != 0
	if (o.Populate || (o.Locked && !memlockBounded(s.limits))) && o.Length > hostileMaxTouch && o.Length <= s.size {
		o.Length = hostileMaxTouch
	}
}

// more makes one of the calls ops 25 and up make (k = op-25).
func (h *hostile) more(k int, s *hSpace, eff *effect) string {
	var name string
	var err error
	open := !s.closed && !s.closing
	switch k {
	case 0: // Mlock
		a, l, onFault := h.addr(s), h.length(s), h.in.bool()
		if !onFault {
			l = shorten(s, a, l)
		}
		name = fmt.Sprintf("%s.Mlock(%#x, %#x, %v)", s.name, a, l, onFault)
		h.run(name, func() { err = s.as.Mlock(a, l, onFault) })
		e := h.errno(name, s, err, unix.ENOMEM, unix.EAGAIN, unix.EINVAL)
		if e == unix.EINVAL {
			break
		}
		r := lockRange(a, l)
		eff.maps = []hostarch.AddrRange{r}
		if e == 0 && open {
			for _, m := range s.as.Mappings() {
				if r.Length() > 0 && m.Range.Overlaps(r) && (!m.Locked || m.LockOnFault != onFault) {
					h.fail("%s succeeded, but %+v is not locked so", name, m)
				}
			}
		}
	case 1: // Munlock
		a, l := h.addr(s), h.length(s)
		name = fmt.Sprintf("%s.Munlock(%#x, %#x)", s.name, a, l)
		h.run(name, func() { err = s.as.Munlock(a, l) })
		if h.errno(name, s, err, unix.ENOMEM, unix.EINVAL) == unix.EINVAL {
			break
		}
		r := lockRange(a, l)
		eff.maps = []hostarch.AddrRange{r}
		if err == nil && open {
			for _, m := range s.as.Mappings() {
				if r.Length() > 0 && m.Range.Overlaps(r) && (m.Locked || m.LockOnFault) {
					h.fail("%s succeeded, but %+v is locked", name, m)
				}
			}
		}
	case 2: // Mlockall
		fl := h.flags(unix.MCL_CURRENT, unix.MCL_FUTURE, unix.MCL_ONFAULT)
		if !memlockBounded(s.limits) && fl&unix.MCL_ONFAULT == 0 &&
			(fl&unix.MCL_FUTURE != 0 || mappedBytes(h.mappings(s)) > hostileLockMax) {
			// Populating every mapping, now or later, could take all the
			// machine's memory: lock on fault instead.
			fl |= unix.MCL_ONFAULT
		}
		name = fmt.Sprintf("%s.Mlockall(%#x)", s.name, fl)
		h.run(name, func() { err = s.as.Mlockall(fl) })
		if h.errno(name, s, err, unix.EINVAL, unix.ENOMEM) != 0 {
			break
		}
		eff.maps = []hostarch.AddrRange{{Start: 0, End: math.MaxUint64}}
		s.futurePop = fl&unix.MCL_FUTURE != 0 && fl&unix.MCL_ONFAULT == 0
		if fl&unix.MCL_CURRENT != 0 && open {
			for _, m := range s.as.Mappings() {
				if !m.Locked || m.LockOnFault != (fl&unix.MCL_ONFAULT != 0) {
					h.fail("%s succeeded, but %+v is not locked so", name, m)
				}
			}
		}
	case 3: // Munlockall
		name = fmt.Sprintf("%s.Munlockall()", s.name)
		h.run(name, func() { err = s.as.Munlockall() })
		if h.errno(name, s, err) != 0 {
			break
		}
		eff.maps = []hostarch.AddrRange{{Start: 0, End: math.MaxUint64}}
		s.futurePop = false
		if open {
			for _, m := range s.as.Mappings() {
				if m.Locked || m.LockOnFault {
					h.fail("%s succeeded, but %+v is locked", name, m)
				}
			}
		}
	case 4: // SetLimits, Limits
		var l Limits
		if h.in.intn(3) != 0 {
			v := func() uint64 {
				return []uint64{0, 0, 0, 1, pg - 1, pg, pg + 1, 16 * pg, 1 << 20, 64 << 20, 1 << 40, 1 << 63, math.MaxUint64, h.in.u64()}[h.in.intn(14)]
			}
			l = Limits{AS: v(), Data: v(), Stack: v(), Memlock: v()}
		}
		if s.futurePop && !memlockBounded(l) {
			// Every later mapping is populated: keep that bounded.
			l.Memlock = hostileLockMax
		}
		name = fmt.Sprintf("%s.SetLimits(%+v)", s.name, l)
		var got Limits
		h.run(name, func() {
			err = s.as.SetLimits(l)
			got = s.as.Limits()
		})
		if h.errno(name, s, err) != 0 || !open {
			break
		}
		s.limits = l
		rd := func(set, now uint64) bool { return now == set || now == set&^(pg-1) }
		if !rd(l.AS, got.AS) || !rd(l.Data, got.Data) || !rd(l.Stack, got.Stack) || !rd(l.Memlock, got.Memlock) {
			h.fail("%s, then Limits() = %+v", name, got)
		}
	case 5, 6: // Translate, ResolveFault, GuestAddr
		a, at := h.addr(s), h.perms()
		if h.in.bool() {
			at.Execute = false
		}
		gen := s.as.Generation()
		var tr Translation
		if k == 5 {
			name = fmt.Sprintf("%s.Translate(%#x, %v)", s.name, a, at)
			h.run(name, func() { tr, err = s.as.Translate(a, at) })
		} else {
			name = fmt.Sprintf("%s.ResolveFault(%#x, %v)", s.name, a, at)
			h.run(name, func() { err = s.as.ResolveFault(a, at) })
		}
		h.errno(name, s, err, unix.EFAULT)
		if !open {
			break
		}
		ms := s.as.Mappings()
		want := at
		if !want.Any() {
			want = hostarch.Read
		}
		ok := h.accessible(ms, s.size, a, 1, want, false) == 1
		var fe *FaultError
		if (err == nil) != ok || (err != nil && !errors.As(err, &fe)) {
			h.fail("%s = %v; want it to succeed: %v", name, err, ok)
		}
		if fe != nil {
			m, in := containing(ms, a)
			var reason FaultReason
			switch {
			case !in || uint64(a) >= s.size:
				reason = FaultUnmapped
			case !m.Perms.Effective().SupersetOf(want):
				reason = FaultProtection
			default:
				reason = FaultBus
			}
			if fe.Reason != reason && fe.Reason != FaultHostMemory {
				h.fail("%s = %v (reason %v); want reason %v", name, err, fe.Reason, reason)
			}
		}
		if k == 6 || err != nil {
			break
		}
		m, _ := containing(ms, a)
		if !tr.Range.Contains(a) || uint64(len(tr.Mem)) != uint64(tr.Range.Length()) ||
			tr.Range.Start < m.Range.Start || tr.Range.End > m.Range.End || !tr.Range.IsPageAligned() {
			h.fail("%s = %v (%d bytes); want a page-aligned range with %#x inside %v", name, tr.Range, len(tr.Mem), a, m.Range)
		}
		if !tr.Perms.Read || (want.Write && !tr.Perms.Write) || (want.Execute && !tr.Perms.Execute) {
			h.fail("%s: Perms %v for an access %v", name, tr.Perms, want)
		}
		if tr.Gen != s.as.Generation() || tr.Gen != gen {
			h.fail("%s: Gen %d, Generation %d before, %d now", name, tr.Gen, gen, s.as.Generation())
		}
		if h.trs = append(h.trs, hTr{s, tr}); len(h.trs) > 4 {
			h.trs = h.trs[1:]
		}
		for _, p := range append(trPages(tr), hostarch.AddrRange{Start: a.RoundDown(), End: a.RoundDown() + pg}) {
			off := p.Start - tr.Range.Start
			if got := readAllMax(s.as, p); string(got) != string(tr.Mem[off:off+pg]) {
				h.fail("%s: page %v of Mem differs from the bytes CopyIn reads (%d read)", name, p, len(got))
			}
		}
		first, last := uintptr(unsafe.Pointer(&tr.Mem[0])), uintptr(unsafe.Pointer(&tr.Mem[len(tr.Mem)-1]))
		if g, ok := s.as.GuestAddr(first); !ok || g != tr.Range.Start {
			h.fail("%s: GuestAddr(&Mem[0]) = %#x, %v; want %#x", name, g, ok, tr.Range.Start)
		}
		if g, ok := s.as.GuestAddr(last); !ok || g != tr.Range.End-1 {
			h.fail("%s: GuestAddr(&Mem[last]) = %#x, %v; want %#x", name, g, ok, tr.Range.End-1)
		}
		if tr.Perms.Write && h.in.bool() {
			// A write through Mem is what the space holds.
			i := uint64(a - tr.Range.Start)
			tr.Mem[i] ^= 0xa5
			var b [1]byte
			if n, err := s.as.CopyIn(ctx, a, b[:], usermem.IOOpts{IgnorePermissions: true}); n != 1 || b[0] != tr.Mem[i] {
				h.fail("%s: wrote %#x through Mem, CopyIn reads %#x (%d, %v)", name, tr.Mem[i], b[0], n, err)
			}
			eff.priv, eff.shared = []hostarch.AddrRange{{Start: a, End: a + 1}}, true
		}
	case 7: // Lookup, GuestAddr of addresses not in the app view, Generation
		a := h.addr(s)
		name = fmt.Sprintf("%s.Lookup(%#x)", s.name, a)
		var m Mapping
		var ok bool
		hosts := []uintptr{0, 1, math.MaxUint64, uintptr(unsafe.Pointer(&h.canary[0])), uintptr(h.in.u64())}
		var inView []bool
		h.run(name, func() {
			m, ok = s.as.Lookup(a)
			for _, p := range hosts {
				_, in := s.as.GuestAddr(p)
				inView = append(inView, in)
			}
			_ = s.as.Generation()
		})
		for i, in := range inView[:4] {
			if in {
				h.fail("%s: GuestAddr(%#x) is in the app view", name, hosts[i])
			}
		}
		if !open {
			if s.closed && ok {
				h.fail("%s on a closed space = %+v", name, m)
			}
			break
		}
		want, wok := containing(s.as.Mappings(), a)
		if uint64(a) >= s.size {
			wok = false
		}
		if ok != wok || (ok && m != want) {
			h.fail("%s = %+v, %v; want %+v, %v", name, m, ok, want, wok)
		}
	case 8: // WriteSmaps (and WriteMaps, whose lines it repeats)
		name = fmt.Sprintf("%s.WriteSmaps", s.name)
		var sm, mp strings.Builder
		var err2 error
		h.run(name, func() {
			err = s.as.WriteSmaps(&sm)
			err2 = s.as.WriteMaps(&mp)
		})
		h.errno(name, s, err)
		h.errno(name, s, err2)
		if err != nil || err2 != nil || !open {
			break
		}
		var heads []string
		for _, line := range strings.SplitAfter(sm.String(), "\n") {
			if line != "" && strings.IndexByte("0123456789abcdef", line[0]) >= 0 {
				heads = append(heads, line)
			}
		}
		if strings.Join(heads, "") != mp.String() {
			h.fail("%s: the smaps headers\n%s\ndiffer from the maps\n%s", name, strings.Join(heads, ""), mp.String())
		}
	case 9: // futexes
		name = h.futex(s)
	case 10: // CopyBetween, with s the destination
		src := h.pick()
		var dars, sars []hostarch.AddrRange
		single := h.in.bool()
		if single {
			da, sa := h.addr(s), h.addr(src)
			l := h.length(s)
			dars = []hostarch.AddrRange{pageRange(da, 0)}
			dars[0].End = da + hostarch.Addr(shorten(s, da, l))
			if dars[0].End < da {
				dars[0].End = math.MaxUint64
			}
			sars = []hostarch.AddrRange{{Start: sa, End: sa + dars[0].Length()}}
			if sars[0].End < sa {
				sars[0].End = math.MaxUint64
			}
		} else {
			dars, sars = h.ranges(s), h.ranges(src)
			shortenAll(s, dars)
			shortenAll(src, sars)
		}
		dseq, ok1 := h.seqOf(dars)
		sseq, ok2 := h.seqOf(sars)
		if !ok1 || !ok2 {
			return "AddrRangeSeqFromSlice"
		}
		name = fmt.Sprintf("CopyBetween(%s %v, %s %v)", s.name, dars, src.name, sars)
		var srcMs []Mapping
		if !src.closed && !src.closing {
			srcMs = src.as.Mappings()
		}
		var n int64
		h.run(name, func() { n, err = CopyBetween(ctx, s.as, dseq, src.as, sseq) })
		eff.priv, eff.shared = dars, true
		total := min(dseq.NumBytes(), sseq.NumBytes())
		if errors.Is(err, ErrClosed) {
			if !s.closed && !s.closing && !src.closed && !src.closing {
				h.fail("%s = %v with both spaces open", name, err)
			}
			break
		}
		h.errno(name, s, err, unix.EFAULT)
		if n < 0 || n > total || (err != nil) != (n < total) {
			h.fail("%s = %d, %v; want at most %d, and an error iff fewer", name, n, err, total)
		}
		if !single || !open || src.closed || src.closing {
			break
		}
		if hasGrowsDown(srcMs) {
			srcMs = src.as.Mappings()
		}
		dstMs := s.as.Mappings()
		da, sa := dars[0].Start, sars[0].Start
		want := min(h.accessible(srcMs, src.size, sa, uint64(total), hostarch.Read, false),
			h.accessible(dstMs, s.size, da, uint64(total), hostarch.Write, false))
		if uint64(n) != want {
			h.fail("%s = %d, %v; want %d of %d", name, n, err, want, total)
		}
		var fe *FaultError
		if errors.As(err, &fe) {
			at := da + hostarch.Addr(n)
			if fe.InSource {
				at = sa + hostarch.Addr(n)
			}
			// Overlapping ranges of one space: a fault names either side.
			if fe.Addr != at && !(s == src && (fe.Addr == da+hostarch.Addr(n) || fe.Addr == sa+hostarch.Addr(n))) {
				h.fail("%s = %d, fault %+v; want the fault at %#x", name, n, fe, at)
			}
		}
	default: // usermem.CopyStringIn
		a, o := h.addr(s), h.opts()
		maxlen := []int{1, 2, pg - 1, pg, pg + 1, 3 * pg, 1 << 20, math.MaxInt}[h.in.intn(8)]
		name = fmt.Sprintf("%s.CopyStringIn(%#x, %d, %+v)", s.name, a, maxlen, o)
		var str string
		h.run(name, func() { str, err = usermem.CopyStringIn(ctx, s.as, a, maxlen, o) })
		e := h.errno(name, s, err, unix.EFAULT, unix.ENAMETOOLONG)
		if !open {
			break
		}
		if len(str) > maxlen || strings.IndexByte(str, 0) >= 0 {
			h.fail("%s returned %d bytes (a NUL at %d)", name, len(str), strings.IndexByte(str, 0))
		}
		got := readAllMax(s.as, hostarch.AddrRange{Start: a, End: a + hostarch.Addr(len(str))})
		if string(got) != str {
			h.fail("%s = %q, memory holds %q", name, str, got)
		}
		switch e {
		case 0:
			var b [1]byte
			if len(str) >= maxlen {
				h.fail("%s = %d bytes without error", name, len(str))
			} else if n, _ := s.as.CopyIn(ctx, a+hostarch.Addr(len(str)), b[:], usermem.IOOpts{IgnorePermissions: true}); n != 1 || b[0] != 0 {
				h.fail("%s = %q, not ended by a NUL", name, str)
			}
		case unix.ENAMETOOLONG:
			if len(str) != maxlen {
				h.fail("%s = %d bytes, %v", name, len(str), err)
			}
		default:
			var fe *FaultError
			if errors.As(err, &fe) {
				if fe.Addr < a+hostarch.Addr(len(str)) || h.accessible(s.as.Mappings(), s.size, fe.Addr, 1, hostarch.Read, o.IgnorePermissions) == 1 {
					h.fail("%s = %d bytes, fault at %#x, which is readable or inside the string", name, len(str), fe.Addr)
				}
			}
		}
	}
	return name
}

// samplesIn reports whether as holds the bytes of snap's samples.
func samplesIn(as *AddressSpace, snap hSnap) bool {
	for _, smp := range snap.samples {
		if string(readAllMax(as, smp.ar)) != string(smp.data) {
			return false
		}
	}
	return true
}

// hasGrowsDown reports whether one of ms grows down.
func hasGrowsDown(ms []Mapping) bool { return len(growRegions(ms)) > 0 }

// futex makes a FutexWait (with a context that is done or soon done, with
// or without another waiter), FutexWake or FutexRequeue call.
func (h *hostile) futex(s *hSpace) string {
	a := h.addr(s)
	if h.in.bool() {
		a &^= 3
	}
	a2 := h.addr(s) &^ 3
	bitset := []uint32{0, 1, math.MaxUint32, uint32(h.in.u64())}[h.in.intn(4)]
	var word uint32
	if v, err := s.as.LoadUint32(ctx, a&^3, usermem.IOOpts{IgnorePermissions: true}); err == nil {
		word = v
	}
	val := []uint32{word, word + 1, 0}[h.in.intn(3)]
	wait := time.Duration(h.in.intn(20)) * time.Millisecond
	cctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if h.in.intn(4) == 0 {
		cancel()
	}
	counts := []int{-1, 0, 1, 2, math.MaxInt, math.MinInt}
	ctxErr := func(err error) bool {
		return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	}
	var name string
	var err error
	var call func() (int, error)
	switch h.in.intn(3) {
	case 0:
		name = fmt.Sprintf("%s.FutexWait(%#x, %#x, %#x, %v)", s.name, a, val, bitset, wait)
		h.run(name, func() { err = s.as.FutexWait(cctx, a, val, bitset) })
		if !ctxErr(err) {
			h.errno(name, s, err, unix.EINVAL, unix.EAGAIN, unix.EFAULT)
		}
		if err == nil {
			h.fail("%s woke with no waker", name)
		}
		return name
	case 1:
		n := counts[h.in.intn(len(counts))]
		name = fmt.Sprintf("%s.FutexWake(%#x, %d, %#x) with a waiter", s.name, a, n, bitset)
		call = func() (int, error) { return s.as.FutexWake(a, n, bitset) }
	default:
		nw, nr := counts[h.in.intn(len(counts))], counts[h.in.intn(len(counts))]
		var vp *uint32
		if h.in.bool() {
			vp = &val
		}
		name = fmt.Sprintf("%s.FutexRequeue(%#x, %#x, %d, %d, %v) with a waiter", s.name, a, a2, nw, nr, vp != nil)
		call = func() (int, error) { return s.as.FutexRequeue(a, a2, nw, nr, vp) }
	}
	// A waiter on a (holding word), woken or not within wait.
	done := make(chan error, 1)
	go func() { done <- s.as.FutexWait(cctx, a, word, math.MaxUint32) }()
	var woke int
	h.run(name, func() { woke, err = call() })
	h.errno(name, s, err, unix.EINVAL, unix.EFAULT, unix.EAGAIN)
	if woke < 0 || woke > 1 {
		h.fail("%s = %d with one waiter at most", name, woke)
	}
	select {
	case werr := <-done:
		if werr != nil && !ctxErr(werr) {
			h.errno(name+": the waiter", s, werr, unix.EINVAL, unix.EAGAIN, unix.EFAULT)
		}
		if werr == nil && (err != nil || woke == 0) {
			h.fail("%s = %d, %v, but the waiter woke", name, woke, err)
		}
	case <-time.After(hostileStall):
		h.fail("%s: the waiter did not return within %v of a %v deadline", name, hostileStall, wait)
	}
	return name
}
