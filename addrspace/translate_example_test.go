package addrspace_test

import (
	"encoding/binary"
	"fmt"
	"runtime/debug"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
)

// A tlb is an emulator's software TLB over an AddressSpace: direct-mapped,
// with a tag per access kind, so that an aligned load or store that hits
// costs one compare. Loads and stores need no generation check: the host
// protections of Mem enforce the guest's, so a stale entry faults instead
// of touching wrong memory (see run). The generation is checked once per
// instruction (sync), which also keeps Execute, checked in software, exact.
type tlb struct {
	as  *addrspace.AddressSpace
	gen uint64
	ent [tlbSize]tlbEntry
}

const tlbSize = 256

type tlbEntry struct {
	// readTag, writeTag and execTag are the page's guest address if it
	// may be read (written, executed) through mem, and noTag otherwise.
	readTag, writeTag, execTag uint64
	mem                        []byte // the page's host memory
}

const noTag = 1 // never an aligned page address

func newTLB(as *addrspace.AddressSpace) *tlb {
	t := &tlb{as: as}
	t.flush()
	return t
}

func (t *tlb) flush() {
	t.gen = t.as.Generation()
	for i := range t.ent {
		t.ent[i] = tlbEntry{readTag: noTag, writeTag: noTag, execTag: noTag}
	}
}

// sync flushes the TLB if a translation may have become wrong.
func (t *tlb) sync() {
	if t.as.Generation() != t.gen {
		t.flush()
	}
}

// tag is addr's page if addr is 8-byte aligned (an aligned access never
// crosses a page), and something no entry holds otherwise.
func tag(addr hostarch.Addr) uint64 { return uint64(addr) &^ (hostarch.PageSize - 8) }

// fetch32 reads an instruction: the page must allow Execute.
func (t *tlb) fetch32(addr hostarch.Addr) (uint32, error) {
	e := &t.ent[addr/hostarch.PageSize%tlbSize]
	if e.execTag == uint64(addr)&^(hostarch.PageSize-4) {
		return binary.LittleEndian.Uint32(e.mem[addr%hostarch.PageSize:]), nil
	}
	if err := t.fill(addr, hostarch.Execute); err != nil {
		return 0, err
	}
	return t.fetch32(addr)
}

func (t *tlb) load64(addr hostarch.Addr) (uint64, error) {
	e := &t.ent[addr/hostarch.PageSize%tlbSize]
	if e.readTag == tag(addr) {
		return binary.LittleEndian.Uint64(e.mem[addr%hostarch.PageSize:]), nil
	}
	if err := t.fill(addr, hostarch.Read); err != nil {
		return 0, err
	}
	return t.load64(addr)
}

func (t *tlb) store64(addr hostarch.Addr, v uint64) error {
	e := &t.ent[addr/hostarch.PageSize%tlbSize]
	if e.writeTag == tag(addr) {
		binary.LittleEndian.PutUint64(e.mem[addr%hostarch.PageSize:], v)
		return nil
	}
	if err := t.fill(addr, hostarch.Write); err != nil {
		return err
	}
	return t.store64(addr, v)
}

// fill translates addr's page. (A real emulator sends misaligned accesses
// to CopyIn and CopyOut instead.)
func (t *tlb) fill(addr hostarch.Addr, at hostarch.AccessType) error {
	if addr%8 != 0 && (!at.Execute || addr%4 != 0) {
		return fmt.Errorf("misaligned access at %#x", addr)
	}
	tr, err := t.as.Translate(addr, at)
	if err != nil {
		return err // the guest's SIGSEGV or SIGBUS
	}
	if tr.Gen != t.gen {
		t.flush() // older entries may be stale
	}
	page := addr.RoundDown()
	e := &t.ent[page/hostarch.PageSize%tlbSize]
	e.mem = tr.Mem[page-tr.Range.Start:][:hostarch.PageSize]
	e.readTag, e.writeTag, e.execTag = uint64(page), noTag, noTag
	if tr.Perms.Write {
		e.writeTag = uint64(page)
	}
	if tr.Perms.Execute {
		e.execTag = uint64(page)
	}
	return nil
}

// run runs a guest instruction's access to addr, step, as an emulator's
// loop does: a host fault in it (a stale entry) is resolved and the
// instruction retried, or becomes the guest's fault. It resolves the
// guest address it computed, not the host's report of the fault, which an
// access that crosses a page may place in either page (and qemu-user
// reports wrongly for SIGBUS); the report must lie in the guest's memory.
func (t *tlb) run(at hostarch.AccessType, addr hostarch.Addr, step func() error) error {
	for {
		t.sync()
		hostAddr, err := t.try(step)
		if hostAddr == 0 {
			return err
		}
		if _, ok := t.as.GuestAddr(hostAddr); !ok {
			panic(fmt.Sprintf("fault at %#x outside the guest", hostAddr))
		}
		t.flush()
		if err := t.as.ResolveFault(addr, at); err != nil {
			return err
		}
	}
}

// try runs step, recovering a host fault: its address, or 0.
func (t *tlb) try(step func() error) (hostAddr uintptr, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(interface{ Addr() uintptr })
			if !ok {
				panic(r)
			}
			hostAddr = f.Addr()
		}
	}()
	return 0, step()
}

// Example_tlb keeps a software TLB over an address space, as an emulator
// does, while the address space changes under it.
func Example_tlb() {
	as, _ := addrspace.New(addrspace.Options{Size: 1 << 30})
	defer as.Close()
	addr, _ := as.Mmap(addrspace.MmapOpts{Addr: 0x10000, Fixed: true, Length: 2 * hostarch.PageSize,
		Perms: hostarch.ReadWrite, Private: true})
	t := newTLB(as)
	load := func(a hostarch.Addr) {
		var v uint64
		err := t.run(hostarch.Read, a, func() (err error) { v, err = t.load64(a); return err })
		fmt.Println("load:", v, err)
	}
	store := func(a hostarch.Addr, v uint64) {
		fmt.Println("store:", t.run(hostarch.Write, a, func() error { return t.store64(a, v) }))
	}

	store(addr+8, 42)
	load(addr + 8)

	// Clone makes the page copy-on-write: the generation changes, and the
	// next store refills through Translate, which copies the page.
	child, _ := as.Clone()
	store(addr+8, 43)
	load(addr + 8)
	v, _ := newTLB(child).load64(addr + 8)
	fmt.Println("child:", v)
	child.Close()

	// Read-only now: the store that hits the TLB entry (not synced here)
	// faults on the host, and the fault is the guest's.
	as.Mprotect(addr, hostarch.PageSize, hostarch.Read)
	fmt.Println("stale:", t.ent[addr/hostarch.PageSize%tlbSize].writeTag == uint64(addr))
	hostAddr, _ := t.try(func() error { return t.store64(addr+8, 44) })
	guest, _ := as.GuestAddr(hostAddr)
	fmt.Printf("host fault at guest %#x\n", guest)
	store(addr+8, 44)
	as.Munmap(addr, 2*hostarch.PageSize)
	load(addr + 8)
	// Output:
	// store: <nil>
	// load: 42 <nil>
	// store: <nil>
	// load: 43 <nil>
	// child: 42
	// stale: true
	// host fault at guest 0x10008
	// store: addrspace: -w- fault at 0x10008 (protection): bad address
	// load: 0 addrspace: r-- fault at 0x10008 (unmapped): bad address
}
