package addrspace

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

const stackTop = hostarch.Addr(0x1000_0000)

// newStack maps a 4-page read-write stack that grows down, ending at
// stackTop, with opts' other fields, and returns its start.
func newStack(t *testing.T, as *AddressSpace, opts MmapOpts) hostarch.Addr {
	t.Helper()
	opts.Addr, opts.Length, opts.Fixed = stackTop-4*pg, 4*pg, true
	opts.Perms, opts.Private, opts.GrowsDown = hostarch.ReadWrite, true, true
	return mustMmap(t, as, opts)
}

// TestGrowsDownAccessPaths checks that every access path grows a stack:
// an access 10 pages below it extends the mapping to that page, and the
// bytes land there.
func TestGrowsDownAccessPaths(t *testing.T) {
	target := stackTop - 14*pg + 100
	for _, tc := range []struct {
		name string
		// access touches 4 bytes at addr (writing 0x11223344 where it
		// writes), returning the error.
		access func(as *AddressSpace, addr hostarch.Addr) error
		writes bool
	}{
		{"CopyOut", func(as *AddressSpace, a hostarch.Addr) error {
			_, err := as.CopyOut(ctx, a, []byte{0x44, 0x33, 0x22, 0x11}, noOpt)
			return err
		}, true},
		{"CopyIn", func(as *AddressSpace, a hostarch.Addr) error {
			_, err := as.CopyIn(ctx, a, make([]byte, 4), noOpt)
			return err
		}, false},
		{"ZeroOut", func(as *AddressSpace, a hostarch.Addr) error {
			_, err := as.ZeroOut(ctx, a, 4, noOpt)
			return err
		}, false},
		{"CopyOutSeq", func(as *AddressSpace, a hostarch.Addr) error {
			_, err := as.CopyOutSeq(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + 4}), []byte{0x44, 0x33, 0x22, 0x11}, noOpt)
			return err
		}, true},
		{"CopyInSeq", func(as *AddressSpace, a hostarch.Addr) error {
			_, err := as.CopyInSeq(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + 4}), make([]byte, 4), noOpt)
			return err
		}, false},
		{"SwapUint32", func(as *AddressSpace, a hostarch.Addr) error {
			_, err := as.SwapUint32(ctx, a, 0x11223344, noOpt)
			return err
		}, true},
		{"CompareAndSwapUint32", func(as *AddressSpace, a hostarch.Addr) error {
			_, err := as.CompareAndSwapUint32(ctx, a, 0, 0x11223344, noOpt)
			return err
		}, true},
		{"LoadUint32", func(as *AddressSpace, a hostarch.Addr) error {
			_, err := as.LoadUint32(ctx, a, noOpt)
			return err
		}, false},
		{"CopyOutFrom", func(as *AddressSpace, a hostarch.Addr) error {
			src := safemem.FromIOReader{Reader: bytes.NewReader([]byte{0x44, 0x33, 0x22, 0x11})}
			_, err := as.CopyOutFrom(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + 4}), src, noOpt)
			return err
		}, true},
		{"CopyInTo", func(as *AddressSpace, a hostarch.Addr) error {
			var b bytes.Buffer
			_, err := as.CopyInTo(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + 4}), safemem.FromIOWriter{Writer: &b}, noOpt)
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 1<<30)
			newStack(t, as, MmapOpts{})
			if err := tc.access(as, target); err != nil {
				t.Fatalf("access at %#x: %v", target, err)
			}
			ms := as.Mappings()
			want := hostarch.AddrRange{Start: target.RoundDown(), End: stackTop}
			if len(ms) != 1 || ms[0].Range != want || !ms[0].GrowsDown {
				t.Fatalf("mappings %+v; want one growing down over %v", ms, want)
			}
			got := readAt(t, as, target, 4)
			wantBytes := []byte{0, 0, 0, 0}
			if tc.writes {
				wantBytes = []byte{0x44, 0x33, 0x22, 0x11}
			}
			if !bytes.Equal(got, wantBytes) {
				t.Fatalf("bytes %x, want %x", got, wantBytes)
			}
		})
	}
}

// TestGrowsDownRules checks when an access below a stack grows it, as
// Linux's expand_downwards and acct_stack_growth decide; a refused growth
// is an EFAULT for the address and changes nothing.
func TestGrowsDownRules(t *testing.T) {
	gap := hostarch.Addr(stackGuardGap)
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, as *AddressSpace) // after the stack
		stack  MmapOpts                             // extra stack options
		limits Limits
		addr   hostarch.Addr
		grows  bool // to addr's page
	}{
		{"one byte below", nil, MmapOpts{}, Limits{}, stackTop - 4*pg - 1, true},
		{"far below, nothing under it", nil, MmapOpts{}, Limits{}, stackTop - 4000*pg, true},
		{"above the guard gap of an accessible mapping", func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: stackTop - 400*pg, Length: pg, Fixed: true, Perms: hostarch.Read, Private: true})
		}, MmapOpts{}, Limits{}, stackTop - 399*pg + gap, true},
		{"inside the guard gap of an accessible mapping", func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: stackTop - 400*pg, Length: pg, Fixed: true, Perms: hostarch.Read, Private: true})
		}, MmapOpts{}, Limits{}, stackTop - 399*pg + gap - 1, false},
		{"just above a PROT_NONE mapping", func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: stackTop - 10*pg, Length: pg, Fixed: true, Private: true})
		}, MmapOpts{}, Limits{}, stackTop - 9*pg, true},
		{"just above another stack", func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: stackTop - 10*pg, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, GrowsDown: true})
		}, MmapOpts{}, Limits{}, stackTop - 9*pg, true},
		{"within Stack", nil, MmapOpts{}, Limits{Stack: 8 * pg}, stackTop - 8*pg, true},
		{"beyond Stack", nil, MmapOpts{}, Limits{Stack: 8 * pg}, stackTop - 8*pg - 1, false},
		// Linux compares the size of the VMA that grows, not the stack's:
		// with its top page read-only, the stack may reach 9 pages.
		{"Stack counts the VMA that grows", func(t *testing.T, as *AddressSpace) {
			if err := as.Mprotect(stackTop-pg, pg, hostarch.Read); err != nil {
				t.Fatal(err)
			}
		}, MmapOpts{}, Limits{Stack: 8 * pg}, stackTop - 9*pg, true},
		{"beyond Stack in the VMA that grows", func(t *testing.T, as *AddressSpace) {
			if err := as.Mprotect(stackTop-pg, pg, hostarch.Read); err != nil {
				t.Fatal(err)
			}
		}, MmapOpts{}, Limits{Stack: 8 * pg}, stackTop - 9*pg - 1, false},
		{"within AS", nil, MmapOpts{}, Limits{AS: 5 * pg}, stackTop - 5*pg, true},
		{"beyond AS", nil, MmapOpts{}, Limits{AS: 5 * pg}, stackTop - 5*pg - 1, false},
		{"Data does not count stacks", nil, MmapOpts{}, Limits{Data: pg}, stackTop - 100*pg, true},
		{"locked, within Memlock", nil, MmapOpts{Locked: true}, Limits{Memlock: 5 * pg}, stackTop - 5*pg, true},
		{"locked, beyond Memlock", nil, MmapOpts{Locked: true}, Limits{Memlock: 5 * pg}, stackTop - 5*pg - 1, false},
		{"unlocked, Memlock does not apply", nil, MmapOpts{}, Limits{Memlock: 5 * pg}, stackTop - 6*pg, true},
		{"not below a stack", func(t *testing.T, as *AddressSpace) {
			mustMmap(t, as, MmapOpts{Addr: stackTop - 10*pg, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
		}, MmapOpts{}, Limits{}, stackTop - 11*pg, false},
		{"below MinAddr", nil, MmapOpts{}, Limits{}, MinAddr - 1, false},
		{"at MinAddr", nil, MmapOpts{}, Limits{}, MinAddr, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 1<<30)
			newStack(t, as, tc.stack)
			if tc.setup != nil {
				tc.setup(t, as)
			}
			if err := as.SetLimits(tc.limits); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, as)
			n, err := as.CopyOut(ctx, tc.addr, []byte{1}, noOpt)
			if !tc.grows {
				var fe *FaultError
				if n != 0 || !errors.As(err, &fe) || fe.Addr != tc.addr || fe.Reason != FaultUnmapped {
					t.Fatalf("CopyOut at %#x = %d, %v; want an unmapped fault there", tc.addr, n, err)
				}
				if after := snapshot(t, as); after != before {
					t.Fatalf("a refused growth changed the space:\n%s\nwas\n%s", after, before)
				}
				return
			}
			if n != 1 || err != nil {
				t.Fatalf("CopyOut at %#x = %d, %v; want growth", tc.addr, n, err)
			}
			var got *Mapping
			for _, m := range as.Mappings() {
				if m.Range.Contains(tc.addr) {
					got = &m
				}
			}
			if got == nil || got.Range.Start != tc.addr.RoundDown() || !got.GrowsDown || got.Locked != tc.stack.Locked {
				t.Fatalf("after growth the mapping at %#x is %+v", tc.addr, got)
			}
			if b := readAt(t, as, tc.addr, 1); b[0] != 1 {
				t.Fatalf("byte %d at %#x", b[0], tc.addr)
			}
		})
	}
}

// TestGrowsDownIgnorePermissions checks that IgnorePermissions accesses
// grow a stack too, as Linux's /proc/PID/mem and ptrace do
// (__access_remote_vm expands the stack), even one whose lowest page is
// read-only.
func TestGrowsDownIgnorePermissions(t *testing.T) {
	as := newAS(t, 1<<30)
	newStack(t, as, MmapOpts{})
	if err := as.Mprotect(stackTop-4*pg, pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	if _, err := as.CopyIn(ctx, stackTop-5*pg, make([]byte, 1), usermem.IOOpts{IgnorePermissions: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := as.CopyOut(ctx, stackTop-6*pg, []byte{7}, usermem.IOOpts{IgnorePermissions: true}); err != nil {
		t.Fatal(err)
	}
	if m, _ := lockLookup(as, stackTop-6*pg); m.Range != (hostarch.AddrRange{Start: stackTop - 6*pg, End: stackTop - 3*pg}) || m.Perms != hostarch.Read {
		t.Fatalf("after IgnorePermissions growth: %+v", m)
	}
	if b := readAt(t, as, stackTop-6*pg, 1); b[0] != 7 {
		t.Fatalf("byte %d", b[0])
	}
}

// TestGrowsDownPgoff checks Linux's grow <= vm_pgoff rule: a stack moved
// up by Mremap keeps the pgoff of where it was made, and cannot grow
// below address 0 of it.
func TestGrowsDownPgoff(t *testing.T) {
	as := newAS(t, 1<<30)
	s := mustMmap(t, as, MmapOpts{Addr: 4 * pg, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, GrowsDown: true})
	writeAt(t, as, s, "x")
	if _, err := as.Mremap(s, pg, pg, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, stackTop); err != nil {
		t.Fatal(err)
	}
	// pgoff is 4 pages: growing by 4 pages is allowed, by 5 not.
	if _, err := as.CopyOut(ctx, stackTop-5*pg, []byte{1}, noOpt); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("growth past pgoff 0: %v, want EFAULT", err)
	}
	writeAt(t, as, stackTop-4*pg, "y")
	if ms := as.Mappings(); len(ms) != 1 || ms[0].Range.Start != stackTop-4*pg {
		t.Fatalf("mappings %+v", ms)
	}
}

// TestMmapGrowsDownErrors checks that only private anonymous mappings may
// grow down, with Linux's EINVAL, changing nothing.
func TestMmapGrowsDownErrors(t *testing.T) {
	f := tempFile(t, pattern(2*pg, 3), os.O_RDWR)
	as := newAS(t, 1<<30)
	newStack(t, as, MmapOpts{})
	before := snapshot(t, as)
	for _, tc := range []struct {
		name string
		o    MmapOpts
	}{
		{"shared anonymous", MmapOpts{Length: pg, Perms: hostarch.ReadWrite, GrowsDown: true}},
		{"private file", MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true, File: f, GrowsDown: true}},
		{"shared file", MmapOpts{Length: pg, Perms: hostarch.Read, File: f, GrowsDown: true}},
	} {
		if a, err := as.Mmap(tc.o); !errors.Is(err, unix.EINVAL) {
			t.Errorf("%s: Mmap = %#x, %v; want EINVAL", tc.name, a, err)
		}
		if after := snapshot(t, as); after != before {
			t.Fatalf("%s: a failed Mmap changed the space", tc.name)
		}
	}
}

// TestGrowsDownGap checks that Mmap without a fixed address (hint or not)
// leaves the guard gap below a stack free, and that Brk stops short of it,
// as Linux's vm_start_gap makes them.
func TestGrowsDownGap(t *testing.T) {
	const size = 64 << 20
	as, err := New(Options{Size: size, BrkStart: size - 300*pg})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	top := hostarch.Addr(size)
	mustMmap(t, as, MmapOpts{Addr: top - 4*pg, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, GrowsDown: true})
	gapStart := top - 4*pg - stackGuardGap
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.Read, Private: true})
	if a+pg > gapStart {
		t.Fatalf("Mmap placed a page at %#x, inside the stack's guard gap [%#x, %#x)", a, gapStart, top-4*pg)
	}
	b := mustMmap(t, as, MmapOpts{Addr: top - 5*pg, Length: pg, Perms: hostarch.Read, Private: true})
	if b == top-5*pg {
		t.Fatalf("Mmap took the hint %#x inside the guard gap", b)
	}
	// A fixed mapping may go there.
	mustMmap(t, as, MmapOpts{Addr: top - 5*pg, Length: pg, Fixed: true, Perms: hostarch.Read, Private: true})
	for _, x := range []hostarch.Addr{a, b, top - 5*pg} {
		if err := as.Munmap(x, pg); err != nil {
			t.Fatal(err)
		}
	}
	// The heap starts 300 pages below the top: it may grow until its end
	// plus a page reaches the gap.
	brkStart := top - 300*pg
	room := gapStart - pg - brkStart
	if got, err := as.Brk(brkStart + room); err != nil || got != brkStart+room {
		t.Fatalf("Brk to the gap = %#x, %v", got, err)
	}
	if got, err := as.Brk(brkStart + room + 1); !errors.Is(err, unix.ENOMEM) || got != brkStart+room {
		t.Fatalf("Brk into the gap = %#x, %v; want ENOMEM", got, err)
	}
}
