package addrspace

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// The differential test against the host kernel (hostdiff_test.go and its
// machinery in hostdiff_host_test.go), extended to the mapping flags
// NoReplace (MAP_FIXED_NOREPLACE) and Populate (MAP_POPULATE: residency
// compared through mincore(2) on both sides) and to futexes (FutexWait,
// FutexWake and FutexRequeue against futex(2) on the host mirror's
// addresses): results, errnos, bytes and maps.
//
// The host's futex calls are the shared ones (no FUTEX_PRIVATE_FLAG), the
// kind mmsim's futexes model: a shared mapping's word is keyed by its
// backing, and an address that does not resolve to a page is EFAULT even
// for a wake (a private FUTEX_WAKE never looks at the memory).
//
// Deliberate differences, which the cases account for:
//   - A FutexWait whose time runs out returns ctx.Err()
//     (context.DeadlineExceeded), not ETIMEDOUT: the caller's context is
//     the timeout, and a canceled one returns context.Canceled, which
//     futex(2) has no errno for (EINTR comes closest). The comparison maps
//     DeadlineExceeded to ETIMEDOUT.
//   - Residency (mincore) is compared right after Mmap only: afterwards,
//     mmsim backs a window of private anonymous pages around a faulting
//     one (fault-around; see pma), where Linux faults in anonymous memory
//     one page at a time.

// futex(2) operations (linux/futex.h), which x/sys/unix does not name.
const (
	futexRequeueOp    = 3
	futexCmpRequeueOp = 4
	futexWaitBitsetOp = 9
	futexWakeBitsetOp = 10
)

// hfKind is the kind of an operation of the flags and futex cases.
type hfKind int

const (
	hfBase      hfKind = iota // an hdOp of the base differential test
	hfMmap                    // Mmap with NoReplace and Populate
	hfStore                   // set the 4-byte word at Addr to Val on both sides
	hfFutexWait               // FutexWait with a short timeout
	hfFutexWake               // FutexWake with no waiters expected
	hfWaiters                 // the waiters scenario (see waiters)
)

// hfOp is one operation of the flags and futex cases.
type hfOp struct {
	Kind hfKind
	Base hdOp // hfBase

	// hfMmap: as hdOp's, plus the flags.
	Addr      hostarch.Addr
	Len       uint64
	Fixed     bool
	NoReplace bool
	Populate  bool
	Perms     hostarch.AccessType
	Private   bool
	File      int // -1: anonymous
	Off       uint64

	// futexes
	Val    uint32
	Bitset uint32
	N      int
	// hfWaiters: the bitset of each waiter, and the wakes to run once all
	// wait: (n, bitset) pairs, then a requeue of the rest if Requeue.
	Waiters []uint32
	Wakes   [][2]uint32
	Requeue *hfRequeue
}

// hfRequeue is a FutexRequeue of the waiters left, from Addr to Addr2.
type hfRequeue struct {
	Addr2           hostarch.Addr
	NWake, NRequeue int
	Cmp             bool // FUTEX_CMP_REQUEUE with the word's value
}

func (o hfOp) String() string {
	switch o.Kind {
	case hfBase:
		return o.Base.String()
	case hfMmap:
		s := fmt.Sprintf("as.Mmap(MmapOpts{Addr: %#x, Length: %#x, Fixed: %v, NoReplace: %v, Populate: %v, Perms: %s, Private: %v",
			o.Addr, o.Len, o.Fixed, o.NoReplace, o.Populate, permsGo(o.Perms), o.Private)
		if o.File >= 0 {
			s += fmt.Sprintf(", File: f%d, Offset: %#x", o.File, o.Off)
		}
		return s + "})"
	case hfStore:
		return fmt.Sprintf("store %#x at %#x", o.Val, o.Addr)
	case hfFutexWait:
		return fmt.Sprintf("as.FutexWait(ctx (1ms), %#x, %#x, %#x)", o.Addr, o.Val, o.Bitset)
	case hfFutexWake:
		return fmt.Sprintf("as.FutexWake(%#x, %d, %#x)", o.Addr, o.N, o.Bitset)
	case hfWaiters:
		return fmt.Sprintf("waiters %x at %#x, wakes %v, requeue %+v", o.Waiters, o.Addr, o.Wakes, o.Requeue)
	}
	return fmt.Sprintf("hfOp(%d)", o.Kind)
}

// hfStep applies o to both sides of r and returns the first difference, or
// "".
func (r *hdRun) hfStep(o hfOp) string {
	switch o.Kind {
	case hfBase:
		return r.step(o.Base)
	case hfMmap:
		return r.hfMmap(o)
	case hfStore:
		var b [4]byte
		hostarch.ByteOrder.PutUint32(b[:], o.Val)
		_, err := r.as.CopyOut(r.ctx, o.Addr, b[:], usermem.IOOpts{IgnorePermissions: true})
		_, e := r.h.copyOut(o.Addr, b[:], true)
		if errnoOf(err) != e {
			return fmt.Sprintf("store = %v; host %v", err, e)
		}
	case hfFutexWait:
		ctx, cancel := context.WithTimeout(r.ctx, time.Millisecond)
		err := r.as.FutexWait(ctx, o.Addr, o.Val, o.Bitset)
		cancel()
		e := r.h.futexWait(o.Addr, o.Val, o.Bitset, time.Millisecond)
		if got := futexErrno(err); got != e {
			return fmt.Sprintf("FutexWait = %v (%v); host %v", err, got, e)
		}
	case hfFutexWake:
		n, err := r.as.FutexWake(o.Addr, o.N, o.Bitset)
		hn, e := r.h.futexWake(o.Addr, o.N, o.Bitset)
		if errnoOf(err) != e || n != hn {
			return fmt.Sprintf("FutexWake = %d, %v; host %d, %v", n, err, hn, e)
		}
	case hfWaiters:
		return r.waiters(o)
	}
	return r.compareMaps()
}

// futexErrno is the errno futex(2) returns for what FutexWait returned:
// the deliberate difference of a timeout (see the top of the file).
func futexErrno(err error) unix.Errno {
	if errors.Is(err, context.DeadlineExceeded) {
		return unix.ETIMEDOUT
	}
	return errnoOf(err)
}

// hfMmap mirrors an Mmap with NoReplace and Populate: the host gets
// MAP_FIXED_NOREPLACE and MAP_POPULATE. A mapping mmsim places itself (no
// Fixed, no NoReplace) goes on the host where mmsim put it, as in step.
// After a successful Mmap the new range's residency is compared.
func (r *hdRun) hfMmap(o hfOp) string {
	h := r.h
	opts := MmapOpts{Addr: o.Addr, Length: o.Len, Fixed: o.Fixed, NoReplace: o.NoReplace, Populate: o.Populate,
		Perms: o.Perms, Private: o.Private, Offset: o.Off}
	fd := ^uintptr(0)
	if o.File >= 0 {
		opts.File = r.simF[o.File]
		fd = r.hostF[o.File].Fd()
	}
	got, err := r.as.Mmap(opts)
	flags := uintptr(unix.MAP_SHARED)
	if o.Private {
		flags = unix.MAP_PRIVATE
	}
	if o.File < 0 {
		flags |= unix.MAP_ANONYMOUS
	}
	if o.Populate {
		flags |= unix.MAP_POPULATE
	}
	at := o.Addr
	switch {
	case o.NoReplace:
		// With or without MAP_FIXED: Linux's MAP_FIXED_NOREPLACE implies
		// MAP_FIXED and still refuses to replace.
		flags |= unix.MAP_FIXED_NOREPLACE
		if o.Fixed {
			flags |= unix.MAP_FIXED
		}
	case o.Fixed:
		flags |= unix.MAP_FIXED
	default:
		if errnoOf(err) == unix.ENOMEM {
			return "" // no room in the space: the host has no such limit
		}
		if err == nil {
			flags |= unix.MAP_FIXED_NOREPLACE
			at = got
		}
	}
	p, _, e := unix.Syscall6(unix.SYS_MMAP, h.base+uintptr(at), uintptr(o.Len), hdProt(o.Perms), flags, fd, uintptr(o.Off))
	if e == 0 && err != nil && !o.Fixed && !o.NoReplace {
		unix.Syscall(unix.SYS_MUNMAP, p, uintptr(o.Len), 0)
		return fmt.Sprintf("Mmap = %v; the host maps it", err)
	}
	if errnoOf(err) != e {
		return fmt.Sprintf("Mmap = %#x, %v; host %v", got, err, e)
	}
	if e != 0 {
		return r.compareMaps()
	}
	if p != h.base+uintptr(got) {
		return fmt.Sprintf("Mmap = %#x; host %#x", got, p-h.base)
	}
	if d := r.compareResidency(got, o.Len); d != "" {
		return d
	}
	if o.File < 0 && o.Private {
		// As step does: mmsim assumes private anonymous memory is written.
		if _, err := r.as.CopyOut(r.ctx, got, []byte{0}, usermem.IOOpts{IgnorePermissions: true}); err != nil {
			return fmt.Sprintf("touching the new mapping: %v", err)
		}
		if _, e := h.copyOut(got, []byte{0}, true); e != 0 {
			return fmt.Sprintf("touching the new mapping on the host: %v", e)
		}
	}
	return r.compareMaps()
}

// compareResidency compares mincore(2) of [addr, addr+length) on both
// sides.
func (r *hdRun) compareResidency(addr hostarch.Addr, length uint64) string {
	pages := (length + pg - 1) / pg
	sim := make([]byte, pages)
	err := r.as.MincoreInto(addr, length, sim)
	host := make([]byte, pages)
	e := hostMincore(r.h.base+uintptr(addr), uintptr(length), host)
	for i := range host {
		host[i] &= 1 // the other bits are reserved
	}
	if errnoOf(err) != e || string(sim) != string(host) {
		return fmt.Sprintf("mincore(%#x, %#x) = %v, %v; host %v, %v", addr, length, sim, err, host, e)
	}
	return ""
}

// futexWake is futex(FUTEX_WAKE_BITSET) on the host mirror of addr.
func (h *hostRange) futexWake(addr hostarch.Addr, n int, bitset uint32) (int, unix.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, h.base+uintptr(addr), futexWakeBitsetOp, uintptr(n), 0, 0, uintptr(bitset))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// futexRequeue is futex(FUTEX_REQUEUE) or, with cmp, FUTEX_CMP_REQUEUE
// against val, on the host mirrors of addr and addr2.
func (h *hostRange) futexRequeue(addr, addr2 hostarch.Addr, nwake, nrequeue int, cmp bool, val uint32) (int, unix.Errno) {
	op := uintptr(futexRequeueOp)
	if cmp {
		op = futexCmpRequeueOp
	}
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, h.base+uintptr(addr), op, uintptr(nwake), uintptr(nrequeue), h.base+uintptr(addr2), uintptr(val))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// waiters runs the waiters scenario of o on both sides: one waiter per
// entry of o.Waiters (with that bitset) sleeps on the word at o.Addr,
// which holds o.Val; once all sleep (counted exactly by requeueing them all
// to o.Addr+4 and back, on each side with its own call), o.Wakes run in
// turn, then o.Requeue; every count and errno is compared. Then every
// waiter left is woken (from o.Addr and from the requeue's target), and
// the number of waiters that returned 0 must be the number woken.
func (r *hdRun) waiters(o hfOp) string {
	const long = 10 * time.Second
	k := len(o.Waiters)
	// The spare word holds the value too, so that the waiters can be
	// requeued back to o.Addr with FUTEX_CMP_REQUEUE.
	spare := o.Addr + 4
	if d := r.hfStep(hfOp{Kind: hfStore, Addr: spare, Val: o.Val}); d != "" {
		return d
	}
	type side struct {
		name    string
		wait    func(bitset uint32) error // returns the waiter's result
		wake    func(addr hostarch.Addr, n int, bitset uint32) (int, unix.Errno)
		requeue func(addr, addr2 hostarch.Addr, nwake, nrequeue int, cmp bool) (int, unix.Errno)
	}
	sim := side{
		name: "mmsim",
		wait: func(bitset uint32) error {
			ctx, cancel := context.WithTimeout(r.ctx, long)
			defer cancel()
			return r.as.FutexWait(ctx, o.Addr, o.Val, bitset)
		},
		wake: func(addr hostarch.Addr, n int, bitset uint32) (int, unix.Errno) {
			n, err := r.as.FutexWake(addr, n, bitset)
			return n, errnoOf(err)
		},
		requeue: func(addr, addr2 hostarch.Addr, nwake, nrequeue int, cmp bool) (int, unix.Errno) {
			var val *uint32
			if cmp {
				v := o.Val
				val = &v
			}
			n, err := r.as.FutexRequeue(addr, addr2, nwake, nrequeue, val)
			return n, errnoOf(err)
		},
	}
	host := side{
		name: "host",
		wait: func(bitset uint32) error {
			if e := r.h.futexWait(o.Addr, o.Val, bitset, long); e != 0 {
				return e
			}
			return nil
		},
		wake: r.h.futexWake,
		requeue: func(addr, addr2 hostarch.Addr, nwake, nrequeue int, cmp bool) (int, unix.Errno) {
			return r.h.futexRequeue(addr, addr2, nwake, nrequeue, cmp, o.Val)
		},
	}
	type outcome struct {
		counts []string // every count and errno, in order
		woken  int      // waiters that returned 0
		errs   []string // what the others returned
	}
	run := func(s side) (outcome, string) {
		var out outcome
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, bs := range o.Waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.wait(bs)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					out.woken++
				} else {
					out.errs = append(out.errs, err.Error())
				}
			}()
		}
		// Count the sleepers exactly: all of them move to spare and back.
		deadline := time.Now().Add(long / 2)
		for {
			n, e := s.requeue(o.Addr, spare, 0, math.MaxInt32, true)
			if e != 0 {
				return out, fmt.Sprintf("%s: counting the waiters: %v", s.name, e)
			}
			if m, e := s.requeue(spare, o.Addr, 0, math.MaxInt32, true); e != 0 || m != n {
				return out, fmt.Sprintf("%s: requeueing %d waiters back: %d, %v", s.name, n, m, e)
			}
			if n == k {
				break
			}
			if time.Now().After(deadline) {
				return out, fmt.Sprintf("%s: %d of %d waiters asleep", s.name, n, k)
			}
			time.Sleep(time.Millisecond)
		}
		for _, w := range o.Wakes {
			n, e := s.wake(o.Addr, int(int32(w[0])), w[1])
			out.counts = append(out.counts, fmt.Sprintf("wake(%d, %#x) = %d, %v", int32(w[0]), w[1], n, e))
		}
		if q := o.Requeue; q != nil {
			n, e := s.requeue(o.Addr, q.Addr2, q.NWake, q.NRequeue, q.Cmp)
			out.counts = append(out.counts, fmt.Sprintf("requeue(%d, %d, cmp %v) = %d, %v", q.NWake, q.NRequeue, q.Cmp, n, e))
		}
		// Wake the rest, wherever they are.
		rest := 0
		for _, a := range []hostarch.Addr{o.Addr, spare, requeueTarget(o)} {
			n, _ := s.wake(a, math.MaxInt32, ^uint32(0))
			rest += n
		}
		wg.Wait()
		out.counts = append(out.counts, fmt.Sprintf("then woke %d more", rest))
		return out, ""
	}
	so, d := run(sim)
	if d != "" {
		return d
	}
	ho, d := run(host)
	if d != "" {
		return d
	}
	if strings.Join(so.counts, "; ") != strings.Join(ho.counts, "; ") || so.woken != ho.woken || so.woken != k {
		return fmt.Sprintf("waiters:\n  mmsim %s; %d of %d returned 0 %q\n  host  %s; %d of %d returned 0 %q",
			strings.Join(so.counts, "; "), so.woken, k, so.errs, strings.Join(ho.counts, "; "), ho.woken, k, ho.errs)
	}
	return r.compareMaps()
}

// requeueTarget is where o's requeue moves waiters (o.Addr without one).
func requeueTarget(o hfOp) hostarch.Addr {
	if o.Requeue != nil {
		return o.Requeue.Addr2
	}
	return o.Addr
}

// hfRunOps runs ops on a fresh pair and returns the first divergence, with
// the operations up to it.
func hfRunOps(ops []hfOp) (string, error) {
	r, err := newHDRun()
	if err != nil {
		return "", err
	}
	defer r.close()
	for i, o := range ops {
		if o.Kind == hfBase && ignorable(o.Base, r.as.Mappings()) {
			continue
		}
		if d := r.hfStep(o); d != "" {
			var b strings.Builder
			for _, p := range ops[:i+1] {
				b.WriteString(p.String() + "\n")
			}
			return b.String() + "// diverges: " + d, nil
		}
	}
	if d := r.compareBytes(); d != "" {
		return "at the end: " + d, nil
	}
	return "", nil
}

// TestHostDiffFlags runs the flag and futex cases against the host kernel
// (one top-level test, so that the arm64 run under qemu, where the "host"
// is qemu's emulation, skips it by one name).
func TestHostDiffFlags(t *testing.T) {
	t.Run("NoReplace", testHostDiffNoReplace)
	t.Run("Populate", testHostDiffPopulate)
	t.Run("FlagsRandom", testHostDiffFlagsRandom)
	t.Run("Futex", testHostDiffFutex)
	t.Run("FutexWake", testHostDiffFutexWake)
}

// hfBaseOps wraps hdOps.
func hfBaseOps(ops ...hdOp) []hfOp {
	out := make([]hfOp, len(ops))
	for i, o := range ops {
		out[i] = hfOp{Kind: hfBase, Base: o}
	}
	return out
}

// testHostDiffNoReplace compares MAP_FIXED_NOREPLACE with the host's: over
// nothing, over all or part of a mapping (EEXIST, nothing changed: maps
// and every byte compared), next to one, with Fixed as well, misaligned,
// of length 0, and a length that rounds up onto a mapping.
func testHostDiffNoReplace(t *testing.T) {
	rw := hostarch.ReadWrite
	setup := hfBaseOps(
		hdOp{Kind: hdMmap, Addr: 0x10000, Len: 4 * pg, Fixed: true, Perms: rw, Private: true, File: -1},
		hdOp{Kind: hdCopyOut, Addr: 0x10000, Len: 4 * pg, Seed: 7, File: -1},
		hdOp{Kind: hdMmap, Addr: 0x18000, Len: 2 * pg, Fixed: true, Perms: rw, File: 0, Off: pg},
	)
	nr := func(addr hostarch.Addr, length uint64, fixed bool, file int) hfOp {
		return hfOp{Kind: hfMmap, Addr: addr, Len: length, Fixed: fixed, NoReplace: true, Perms: hostarch.Read, Private: true, File: file}
	}
	for _, tc := range []struct {
		name string
		op   hfOp
	}{
		{"over nothing", nr(0x20000, 3*pg, false, -1)},
		{"over nothing, a file", nr(0x20000, 3*pg, false, 1)},
		{"over nothing, with Fixed", nr(0x20000, 3*pg, true, -1)},
		{"over a whole mapping", nr(0x10000, 4*pg, false, -1)},
		{"over a whole mapping, with Fixed", nr(0x10000, 4*pg, true, -1)},
		{"over the middle of a mapping", nr(0x11000, pg, false, -1)},
		{"over its last page", nr(0x13000, 2*pg, false, -1)},
		{"ending on its first page", nr(0xf000, 2*pg, false, 0)},
		{"over a file mapping", nr(0x19000, pg, true, -1)},
		{"across two mappings and the gap", nr(0x12000, 8*pg, false, -1)},
		{"just after a mapping", nr(0x14000, pg, false, -1)},
		{"just before one", nr(0x17000, pg, false, -1)},
		{"filling the gap exactly", nr(0x14000, 4*pg, false, -1)},
		{"a length that rounds up onto a mapping", nr(0x17000, pg+1, false, -1)},
		{"misaligned", nr(0x20001, pg, false, -1)},
		{"misaligned, over a mapping", nr(0x10001, pg, false, -1)},
		{"length 0", nr(0x20000, 0, false, -1)},
		{"length 0 over a mapping", nr(0x10000, 0, false, -1)},
		{"a misaligned offset", hfOp{Kind: hfMmap, Addr: 0x20000, Len: pg, NoReplace: true, Perms: hostarch.Read, Private: true, File: 0, Off: 100}},
		{"writable shared over a read-only file", hfOp{Kind: hfMmap, Addr: 0x20000, Len: pg, NoReplace: true, Perms: rw, File: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := append(append([]hfOp(nil), setup...), tc.op, hfOp{Kind: hfBase, Base: hdOp{Kind: hdCompare, File: -1}})
			d, err := hfRunOps(ops)
			if err != nil {
				t.Fatal(err)
			}
			if d != "" {
				t.Fatalf("diverges:\n%s", d)
			}
		})
	}
}

// testHostDiffPopulate compares MAP_POPULATE with the host's: the result,
// the maps, and which pages mincore reports resident right after the Mmap,
// for every kind of mapping and permission, a mapping past the end of its
// file (the pages beyond it are not populated, and the Mmap still
// succeeds), and Populate together with NoReplace.
func testHostDiffPopulate(t *testing.T) {
	rw, r, none := hostarch.ReadWrite, hostarch.Read, hostarch.NoAccess
	w := hostarch.Write
	pop := func(addr hostarch.Addr, pages int, perms hostarch.AccessType, private bool, file int, off uint64) hfOp {
		return hfOp{Kind: hfMmap, Addr: addr, Len: uint64(pages) * pg, Fixed: true, Populate: true, Perms: perms, Private: private, File: file, Off: off}
	}
	for _, tc := range []struct {
		name string
		ops  []hfOp
	}{
		{"private anonymous", []hfOp{pop(0x10000, 4, rw, true, -1, 0)}},
		{"private anonymous, read-only", []hfOp{pop(0x10000, 4, r, true, -1, 0)}},
		{"private anonymous, write-only", []hfOp{pop(0x10000, 4, w, true, -1, 0)}},
		{"private anonymous, no access", []hfOp{pop(0x10000, 4, none, true, -1, 0)}},
		{"shared anonymous", []hfOp{pop(0x10000, 4, rw, false, -1, 0)}},
		{"shared anonymous, read-only", []hfOp{pop(0x10000, 4, r, false, -1, 0)}},
		{"shared file", []hfOp{pop(0x10000, 4, rw, false, 0, pg)}},
		{"private file, written", []hfOp{pop(0x10000, 4, rw, true, 0, 0), {Kind: hfBase, Base: hdOp{Kind: hdCompare, File: -1}}}},
		{"private file, read-only", []hfOp{pop(0x10000, 4, r, true, 1, 0)}},
		{"past the end of the file", []hfOp{pop(0x10000, 8, r, true, 1, 0)}},
		{"shared, past the end of the file", []hfOp{pop(0x10000, 8, r, false, 1, pg)}},
		{"replacing a mapping", []hfOp{pop(0x10000, 4, rw, true, -1, 0), pop(0x11000, 2, rw, false, -1, 0)}},
		{"not populated, for reference", []hfOp{{Kind: hfMmap, Addr: 0x10000, Len: 4 * pg, Fixed: true, Perms: rw, Private: true, File: -1}}},
		{"with NoReplace, free", []hfOp{{Kind: hfMmap, Addr: 0x10000, Len: 4 * pg, NoReplace: true, Populate: true, Perms: rw, Private: true, File: -1}}},
		{"with NoReplace, taken", []hfOp{pop(0x10000, 1, r, true, -1, 0),
			{Kind: hfMmap, Addr: 0x10000, Len: 4 * pg, NoReplace: true, Populate: true, Perms: rw, Private: true, File: -1}}},
		{"placed by the address space", []hfOp{{Kind: hfMmap, Len: 3 * pg, Populate: true, Perms: rw, Private: true, File: -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := hfRunOps(tc.ops)
			if err != nil {
				t.Fatal(err)
			}
			if d != "" {
				t.Fatalf("diverges:\n%s", d)
			}
		})
	}
}

// testHostDiffFlagsRandom interleaves random NoReplace and Populate Mmaps
// with the base test's random operations, comparing as TestHostDiff does
// (and residency after each flagged Mmap), for MMSIM_HOSTDIFF_TIME (default
// 1s) from MMSIM_HOSTDIFF_SEED.
func testHostDiffFlagsRandom(t *testing.T) {
	d := time.Second
	if s := os.Getenv("MMSIM_HOSTDIFF_TIME"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	var seed int64 = 1
	if s := os.Getenv("MMSIM_HOSTDIFF_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	start := time.Now()
	seqs := 0
	for ; time.Since(start) < d; seqs++ {
		s := seed + int64(seqs)
		diff, err := hfRandom(s, 60)
		if err != nil {
			t.Fatal(err)
		}
		if diff != "" {
			t.Fatalf("sequence %d (MMSIM_HOSTDIFF_SEED=%d) diverges:\n%s", seqs, s, diff)
		}
	}
	t.Logf("%d sequences in %v, zero divergences", seqs, time.Since(start).Round(time.Millisecond))
}

// hfRandom runs a random sequence of n operations from seed.
func hfRandom(seed int64, n int) (string, error) {
	r, err := newHDRun()
	if err != nil {
		return "", err
	}
	defer r.close()
	rng := rand.New(rand.NewSource(seed))
	g := &hdGen{rng: rng}
	var ops []hfOp
	for range n {
		ms := r.as.Mappings()
		var o hfOp
		if rng.Intn(4) == 0 {
			b := g.next(ms)
			for b.Kind != hdMmap {
				b = g.next(ms)
			}
			o = hfOp{Kind: hfMmap, Addr: b.Addr, Len: b.Len, Fixed: b.Fixed, NoReplace: rng.Intn(2) == 0,
				Populate: rng.Intn(2) == 0, Perms: b.Perms, Private: b.Private, File: b.File, Off: b.Off}
			if o.Addr == 0 && o.NoReplace {
				o.Addr = g.addr(ms) // page 0 of the space is not page 0 of the host
			}
			if (o.Fixed || o.NoReplace) && uint64(o.Addr)+o.Len > hdSize {
				// The end of the space is a deliberate difference (see
				// hostdiff_host_test.go): the host range has guards there.
				o.Len = hdSize - uint64(o.Addr)
			}
		} else {
			o = hfOp{Kind: hfBase, Base: g.next(ms)}
			if ignorable(o.Base, ms) {
				continue
			}
		}
		ops = append(ops, o)
		if d := r.hfStep(o); d != "" {
			var b strings.Builder
			for _, p := range ops {
				b.WriteString(p.String() + "\n")
			}
			return b.String() + "// diverges: " + d, nil
		}
	}
	if d := r.compareBytes(); d != "" {
		return "at the end: " + d, nil
	}
	return "", nil
}

// testHostDiffFutex compares FutexWait and FutexWake with futex(2) on the
// host mirror: a word that holds the value (ETIMEDOUT: the deliberate
// difference, see the top of the file), one that differs (EAGAIN), an
// unmapped or inaccessible word (EFAULT), a misaligned one or a zero bitset
// (EINVAL), a page never touched (it reads as 0 on both), file-backed words;
// wakes with nobody waiting.
func testHostDiffFutex(t *testing.T) {
	rw := hostarch.ReadWrite
	setup := append(hfBaseOps(
		hdOp{Kind: hdMmap, Addr: 0x10000, Len: 2 * pg, Fixed: true, Perms: rw, Private: true, File: -1},
		hdOp{Kind: hdMmap, Addr: 0x13000, Len: pg, Fixed: true, Perms: hostarch.NoAccess, Private: true, File: -1},
		hdOp{Kind: hdMmap, Addr: 0x15000, Len: 2 * pg, Fixed: true, Perms: rw, File: 0},
		hdOp{Kind: hdMmap, Addr: 0x18000, Len: pg, Fixed: true, Perms: hostarch.Read, Private: true, File: 1},
		hdOp{Kind: hdMmap, Addr: 0x1a000, Len: pg, Fixed: true, Perms: hostarch.Write, Private: true, File: -1},
		hdOp{Kind: hdMmap, Addr: 0x1c000, Len: 2 * pg, Fixed: true, Perms: rw, File: -1},
		hdOp{Kind: hdMmap, Addr: 0x1e000, Len: 2 * pg, Fixed: true, Perms: hostarch.Write, Private: true, File: -1},
	), hfOp{Kind: hfStore, Addr: 0x10100, Val: 42}, hfOp{Kind: hfStore, Addr: 0x15100, Val: 7})
	all := ^uint32(0)
	wait := func(addr hostarch.Addr, val, bitset uint32) hfOp {
		return hfOp{Kind: hfFutexWait, Addr: addr, Val: val, Bitset: bitset}
	}
	wake := func(addr hostarch.Addr, n int, bitset uint32) hfOp {
		return hfOp{Kind: hfFutexWake, Addr: addr, N: n, Bitset: bitset}
	}
	// The word f1 holds at 0x18100.
	var f1word uint32
	{
		b := make([]byte, 4)
		data := make([]byte, hdFiles[1].size)
		rand.New(rand.NewSource(2)).Read(data) // as newHDRun fills file 1
		copy(b, data[0x100:])
		f1word = hostarch.ByteOrder.Uint32(b)
	}
	for _, tc := range []struct {
		name string
		op   hfOp
	}{
		{"wait, the word holds the value", wait(0x10100, 42, all)},
		{"wait, the word differs", wait(0x10100, 41, all)},
		{"wait with a bitset", wait(0x10100, 42, 0x10)},
		{"wait with a zero bitset", wait(0x10100, 42, 0)},
		{"wait, misaligned", wait(0x10102, 42, all)},
		{"wait, misaligned and unmapped", wait(0x20002, 0, all)},
		{"wait, unmapped", wait(0x20000, 0, all)},
		{"wait, in the hole between mappings", wait(0x12000, 0, all)},
		{"wait, no access", wait(0x13000, 0, all)},
		{"wait, a page never touched, 0", wait(0x11000, 0, all)},
		{"wait, a page never touched, 1", wait(0x11000, 1, all)},
		{"wait, a shared file word", wait(0x15100, 7, all)},
		{"wait, a shared file word that differs", wait(0x15100, 8, all)},
		{"wait, a read-only private file word", wait(0x18100, f1word, all)},
		{"wait, a read-only private file word that differs", wait(0x18100, f1word+1, all)},
		{"wait, a write-only page", wait(0x1a000, 0, all)},
		{"wait, shared anonymous", wait(0x1c000, 0, all)},
		{"wait, the last word of a mapping", wait(0x11ffc, 0, all)},
		{"wake, nobody waits", wake(0x10100, 1, all)},
		{"wake many, nobody waits", wake(0x10100, math.MaxInt32, all)},
		{"wake, a zero bitset", wake(0x10100, 1, 0)},
		{"wake, misaligned", wake(0x10101, 1, all)},
		{"wake, unmapped", wake(0x20000, 1, all)},
		{"wait, a write-only page never touched", wait(0x1f000, 0, all)},
		{"wake, a write-only page never touched", wake(0x1f000, 1, all)},
		{"wake, no access", wake(0x13000, 1, all)},
		{"wake, a write-only page", wake(0x1a000, 1, all)},
		{"wake, a page never touched", wake(0x11000, 1, all)},
		{"wake, a shared file word", wake(0x15100, 1, all)},
		{"wake, a read-only file word", wake(0x18100, 1, all)},
		{"wake, shared anonymous", wake(0x1c000, 1, all)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := append(append([]hfOp(nil), setup...), tc.op)
			d, err := hfRunOps(ops)
			if err != nil {
				t.Fatal(err)
			}
			if d != "" {
				t.Fatalf("diverges:\n%s", d)
			}
		})
	}
}

// testHostDiffFutexWake compares wake and requeue counts with waiters
// asleep on both sides: counts limited by n, by bitset, the order of
// waiters, FUTEX_REQUEUE and FUTEX_CMP_REQUEUE counts, and that each
// waiter woken returns 0.
func testHostDiffFutexWake(t *testing.T) {
	rw := hostarch.ReadWrite
	setup := append(hfBaseOps(
		hdOp{Kind: hdMmap, Addr: 0x10000, Len: 2 * pg, Fixed: true, Perms: rw, Private: true, File: -1},
		hdOp{Kind: hdMmap, Addr: 0x15000, Len: 2 * pg, Fixed: true, Perms: rw, File: 0},
	), hfOp{Kind: hfStore, Addr: 0x10100, Val: 5}, hfOp{Kind: hfStore, Addr: 0x15100, Val: 5})
	all := ^uint32(0)
	for _, tc := range []struct {
		name string
		op   hfOp
	}{
		{"wake 2 of 3, then the rest", hfOp{Addr: 0x10100, Waiters: []uint32{all, all, all}, Wakes: [][2]uint32{{2, all}, {5, all}}}},
		{"by bitset", hfOp{Addr: 0x10100, Waiters: []uint32{1, 2, 4}, Wakes: [][2]uint32{{10, 3}, {1, 4}, {1, 4}}}},
		{"a bitset that matches nobody", hfOp{Addr: 0x10100, Waiters: []uint32{1, 2}, Wakes: [][2]uint32{{10, 8}}}},
		{"n 0", hfOp{Addr: 0x10100, Waiters: []uint32{all, all}, Wakes: [][2]uint32{{0, all}}}},
		{"n negative", hfOp{Addr: 0x10100, Waiters: []uint32{all, all}, Wakes: [][2]uint32{{^uint32(0), all}}}},
		{"a shared file word", hfOp{Addr: 0x15100, Waiters: []uint32{all, all, all}, Wakes: [][2]uint32{{1, all}}}},
		{"requeue 1, wake 1", hfOp{Addr: 0x10100, Waiters: []uint32{all, all, all}, Requeue: &hfRequeue{Addr2: 0x10200, NWake: 1, NRequeue: 1}}},
		{"cmp requeue 1, wake 1", hfOp{Addr: 0x10100, Waiters: []uint32{all, all, all}, Requeue: &hfRequeue{Addr2: 0x10200, NWake: 1, NRequeue: 1, Cmp: true}}},
		{"requeue all, wake none", hfOp{Addr: 0x10100, Waiters: []uint32{all, all}, Requeue: &hfRequeue{Addr2: 0x10200, NRequeue: 10}}},
		{"requeue to a shared file word", hfOp{Addr: 0x10100, Waiters: []uint32{all, all}, Requeue: &hfRequeue{Addr2: 0x15200, NWake: 0, NRequeue: 1, Cmp: true}}},
		{"requeue onto itself", hfOp{Addr: 0x10100, Waiters: []uint32{all, all, all}, Requeue: &hfRequeue{Addr2: 0x10100, NWake: 1, NRequeue: 5}}},
		{"requeue to unmapped", hfOp{Addr: 0x10100, Waiters: []uint32{all}, Requeue: &hfRequeue{Addr2: 0x20000, NWake: 1, NRequeue: 1}}},
		{"requeue, a negative count", hfOp{Addr: 0x10100, Waiters: []uint32{all}, Requeue: &hfRequeue{Addr2: 0x10200, NWake: -1, NRequeue: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.op.Kind = hfWaiters
			tc.op.Val = 5
			ops := append(append([]hfOp(nil), setup...), tc.op)
			d, err := hfRunOps(ops)
			if err != nil {
				t.Fatal(err)
			}
			if d != "" {
				t.Fatalf("diverges:\n%s", d)
			}
		})
	}
}
