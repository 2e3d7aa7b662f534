package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

// Guest loads and stores at an emulator's grain (the emulator fast-path
// issue): 8-byte accesses at addresses an emulator computes, through a
// software TLB over AddressSpace.Translate, against the same accesses to a
// plain []byte.
const (
	guestAccesses = 256      // accesses per iteration, half loads, half stores
	guestSet      = 64 << 10 // the working set the addresses fall in
	guestBase     = hostarch.Addr(0x100000)
)

// guestOffsets are the accesses' offsets into the working set: 8-byte
// aligned, spread over its pages in an order a prefetcher cannot follow;
// loads (even i) at offsets with bit 3 clear, stores (odd i) with it set,
// so that every load reads the working set's initial pattern.
var guestOffsets = func() [guestAccesses]uint32 {
	var offs [guestAccesses]uint32
	x := uint32(12345)
	for i := range offs {
		x = x*1664525 + 1013904223
		offs[i] = (x >> 8) % guestSet &^ 15
		if i%2 == 1 {
			offs[i] |= 8
		}
	}
	return offs
}()

// guestPattern is the working set's initial contents: the 8-byte word at
// offset o holds guestWord(o).
var guestPattern = func() []byte {
	b := make([]byte, guestSet)
	for o := 0; o < guestSet; o += 8 {
		binary.LittleEndian.PutUint64(b[o:], guestWord(uint32(o)))
	}
	return b
}()

func guestWord(o uint32) uint64 { return uint64(o)*0x9e3779b97f4a7c15 | 1 }

// wantGuestSum is the sum of the words the loads read.
var wantGuestSum = func() uint64 {
	var sum uint64
	for i := 0; i < guestAccesses; i += 2 {
		sum += guestWord(guestOffsets[i])
	}
	return sum
}()

// checkGuest checks the loop's effect: the loads' sum, and the working
// set afterwards (mem), where each store's word holds its index.
func checkGuest(b *testing.B, sum uint64, mem []byte) {
	if sum != wantGuestSum {
		b.Fatalf("the loads summed to %#x, want %#x", sum, wantGuestSum)
	}
	want := append([]byte(nil), guestPattern...)
	for i := 1; i < guestAccesses; i += 2 {
		binary.LittleEndian.PutUint64(want[guestOffsets[i]:], uint64(i))
	}
	if !bytes.Equal(mem, want) {
		b.Fatal("the working set differs from the stores' effect")
	}
}

// guestSpace returns an address space whose working set at guestBase
// holds guestPattern, and a function that reads it back.
func guestSpace(b *testing.B) (*addrspace.AddressSpace, func() []byte) {
	as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { as.Close() })
	if _, err := as.Mmap(addrspace.MmapOpts{Addr: guestBase, Fixed: true, Length: guestSet, Perms: hostarch.ReadWrite, Private: true}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := as.CopyOut(ctx, guestBase, guestPattern, usermem.IOOpts{}); err != nil {
		b.Fatal(err)
	}
	return as, func() []byte {
		mem := make([]byte, guestSet)
		if _, err := as.CopyIn(ctx, guestBase, mem, usermem.IOOpts{}); err != nil {
			b.Fatal(err)
		}
		return mem
	}
}

// guestTLB is the software TLB of addrspace's Example_tlb, reduced to
// loads and stores: direct-mapped, one compare per access that hits. The
// benchmark writes its hit path out in the loop, as an interpreter inlines
// it in its load and store handlers.
type guestTLB struct {
	as  *addrspace.AddressSpace
	gen uint64
	ent [256]guestTLBEntry
}

type guestTLBEntry struct {
	readTag, writeTag uint64
	mem               *[hostarch.PageSize]byte
}

//go:noinline
func (t *guestTLB) flush() {
	t.gen = t.as.Generation()
	for i := range t.ent {
		t.ent[i] = guestTLBEntry{readTag: 1, writeTag: 1}
	}
}

// sync is the once-per-instruction generation check.
func (t *guestTLB) sync() {
	if t.as.Generation() != t.gen {
		t.flush()
	}
}

//go:noinline
func (t *guestTLB) fill(addr hostarch.Addr, at hostarch.AccessType) {
	tr, err := t.as.Translate(addr, at)
	if err != nil {
		panic(err) // the benchmark's pages never fault
	}
	if tr.Gen != t.gen {
		t.flush()
	}
	page := addr.RoundDown()
	e := &t.ent[page/hostarch.PageSize%256]
	e.mem = (*[hostarch.PageSize]byte)(tr.Mem[page-tr.Range.Start:])
	e.readTag, e.writeTag = uint64(page), 1
	if tr.Perms.Write {
		e.writeTag = uint64(page)
	}
}

// guestSlice is an emulator's guest memory as a plain []byte from base.
type guestSlice struct {
	mem  []byte
	base hostarch.Addr
}

// fault delivers the guest's SIGSEGV (the benchmark's addresses never
// fault).
//
//go:noinline
func (g *guestSlice) fault(b *testing.B, a hostarch.Addr) {
	b.Fatalf("guest fault at %#x", a)
}

var translateOpImpls = []opImpl{
	{"GuestLoadStore8B", "slice", func(b *testing.B) {
		// The same emulator with its guest memory as one Go slice from a
		// guest base: a subtraction, a bounds check (which delivers the
		// guest's fault where Go's own check would panic) and the access.
		g := &guestSlice{mem: append([]byte(nil), guestPattern...), base: guestBase}
		var sum uint64
		for b.Loop() {
			sum = 0
			for i := 0; i < len(guestOffsets); i++ {
				// An interpreter's load and store handlers: an address
				// outside the slice is the guest's fault, not a Go panic.
				a := guestBase + hostarch.Addr(guestOffsets[i])
				off := uint64(a - g.base)
				if off > uint64(len(g.mem))-8 {
					g.fault(b, a)
					continue
				}
				if i%2 == 0 {
					sum += binary.LittleEndian.Uint64(g.mem[off:])
				} else {
					binary.LittleEndian.PutUint64(g.mem[off:], uint64(i))
				}
			}
		}
		checkGuest(b, sum, g.mem)
	}},
	{"GuestLoadStore8B", "tlb", func(b *testing.B) {
		// Through a software TLB over Translate, the generation checked
		// once per access (as once per instruction).
		as, readBack := guestSpace(b)
		t := &guestTLB{as: as}
		t.flush()
		var sum uint64
		for b.Loop() {
			sum = 0
			for i := 0; i < len(guestOffsets); {
				// An interpreter's load and store handlers, the TLB's hit
				// path written out in them as an interpreter inlines it;
				// a miss fills the entry and retries the access.
				t.sync()
				a := guestBase + hostarch.Addr(guestOffsets[i])
				e := &t.ent[uint8(a/hostarch.PageSize)]
				if i%2 == 0 {
					if e.readTag != uint64(a)&^(hostarch.PageSize-8) {
						t.fill(a, hostarch.Read)
						continue
					}
					sum += binary.LittleEndian.Uint64(e.mem[a%hostarch.PageSize:])
				} else {
					if e.writeTag != uint64(a)&^(hostarch.PageSize-8) {
						t.fill(a, hostarch.Write)
						continue
					}
					binary.LittleEndian.PutUint64(e.mem[a%hostarch.PageSize:], uint64(i))
				}
				i++
			}
		}
		checkGuest(b, sum, readBack())
	}},
	{"GuestLoadStore8B", "mmsim", func(b *testing.B) {
		// The same accesses with CopyIn and CopyOut, for comparison.
		as, readBack := guestSpace(b)
		ctx := context.Background()
		var buf [8]byte
		var sum uint64
		for b.Loop() {
			sum = 0
			for i, off := range guestOffsets[:] {
				a := guestBase + hostarch.Addr(off)
				if i%2 == 0 {
					if _, err := as.CopyIn(ctx, a, buf[:], usermem.IOOpts{}); err != nil {
						b.Fatal(err)
					}
					sum += binary.LittleEndian.Uint64(buf[:])
				} else {
					binary.LittleEndian.PutUint64(buf[:], uint64(i))
					if _, err := as.CopyOut(ctx, a, buf[:], usermem.IOOpts{}); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		checkGuest(b, sum, readBack())
	}},
}

func init() {
	budgetOpImpls = append(budgetOpImpls, translateOpImpls...)
}

// TestGuestLoadStore runs each cell of GuestLoadStore8B once; each checks
// the sum its loads saw and what its stores left.
func TestGuestLoadStore(t *testing.T) {
	for _, o := range translateOpImpls {
		t.Run(o.impl, func(t *testing.T) {
			if !runOnce(t, o.run) {
				t.Error("failed; see the output above")
			}
		})
	}
}
