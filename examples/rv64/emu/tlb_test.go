package emu

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

// Instructions of the test program: sd x5, 0(x6); ld x7, 0(x6); ebreak.
const (
	insSD     = 0x00533023
	insLD     = 0x00033383
	insEbreak = 0x00100073
	codeAddr  = 0x10000
	dataAddr  = 0x20000
)

// tlbProc returns a process on the TLB back-end whose code page holds the
// test program (read and execute) and whose data page holds 0x1111, with
// x5 = 0x2222 and x6 = dataAddr.
func tlbProc(t *testing.T) (*proc, *asSpace) {
	t.Helper()
	s, err := newAS(DefaultSize, TLB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	for _, m := range []struct {
		addr  uint64
		perms hostarch.AccessType
		words []uint32
	}{
		{codeAddr, hostarch.AccessType{Read: true, Execute: true}, []uint32{insSD, insLD, insEbreak}},
		{dataAddr, hostarch.ReadWrite, []uint32{0x1111}},
	} {
		if _, err := s.as.Mmap(addrspace.MmapOpts{Addr: hostarch.Addr(m.addr), Length: pageSize, Fixed: true, Perms: m.perms, Private: true}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4*len(m.words))
		for i, w := range m.words {
			binary.LittleEndian.PutUint32(b[4*i:], w)
		}
		if _, err := s.as.CopyOut(t.Context(), hostarch.Addr(m.addr), b, usermem.IOOpts{IgnorePermissions: true}); err != nil {
			t.Fatal(err)
		}
	}
	p := &proc{m: &Machine{}, pid: 1, sp: s}
	p.cpu.pc = codeAddr
	p.cpu.x[5], p.cpu.x[6] = 0x2222, dataAddr
	return p, s
}

// stale fills the TLB for every access of the program, applies change to
// the address space and then makes the TLB believe it is current: as if
// change had happened on another goroutine between the generation compare
// and the access, which then goes through the old entry to the host.
func stale(t *testing.T, s *asSpace, change func()) {
	t.Helper()
	s.tlb.fill(codeAddr, hostarch.Execute)
	s.tlb.fill(dataAddr, hostarch.Write)
	change()
	s.tlb.gen = s.as.Generation()
}

func peek(t *testing.T, as *addrspace.AddressSpace, a uint64) uint64 {
	t.Helper()
	var b [8]byte
	if _, err := as.CopyIn(t.Context(), hostarch.Addr(a), b[:], usermem.IOOpts{}); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])
}

// TestTLBStaleAfterClone: a store through a write entry taken before a
// Clone faults on the host (the page is copy-on-write now); ResolveFault
// breaks copy-on-write, the store is retried and lands in the parent only.
func TestTLBStaleAfterClone(t *testing.T) {
	p, s := tlbProc(t)
	var child *addrspace.AddressSpace
	stale(t, s, func() {
		var err error
		if child, err = s.as.Clone(); err != nil {
			t.Fatal(err)
		}
	})
	defer child.Close()
	st := p.loop()
	if st.Signal != SIGTRAP || st.PC != codeAddr+8 || st.Fault != nil {
		t.Fatalf("status %v, want SIGTRAP at the ebreak", st)
	}
	if p.hostFaults != 1 {
		t.Errorf("%d host faults resolved, want 1", p.hostFaults)
	}
	if p.cpu.x[7] != 0x2222 {
		t.Errorf("x7 = %#x, want the value stored, 0x2222", p.cpu.x[7])
	}
	if got := peek(t, s.as, dataAddr); got != 0x2222 {
		t.Errorf("parent's data %#x, want 0x2222", got)
	}
	if got := peek(t, child, dataAddr); got != 0x1111 {
		t.Errorf("child's data %#x, want 0x1111: the store went through to the shared page", got)
	}
}

// TestTLBStaleFaults: an access through a stale entry to memory taken away
// is the guest's SIGSEGV at the exact address, with the access and reason.
func TestTLBStaleFaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(as *addrspace.AddressSpace) error
		pc     uint64
		fault  addrspace.FaultError
	}{
		{"store after Mprotect read-only", func(as *addrspace.AddressSpace) error {
			return as.Mprotect(dataAddr, pageSize, hostarch.Read)
		}, codeAddr, addrspace.FaultError{Addr: dataAddr, Access: hostarch.Write, Reason: addrspace.FaultProtection}},
		{"store after Munmap", func(as *addrspace.AddressSpace) error {
			return as.Munmap(dataAddr, pageSize)
		}, codeAddr, addrspace.FaultError{Addr: dataAddr, Access: hostarch.Write, Reason: addrspace.FaultUnmapped}},
		{"fetch after Munmap of the code", func(as *addrspace.AddressSpace) error {
			return as.Munmap(codeAddr, pageSize)
		}, codeAddr, addrspace.FaultError{Addr: codeAddr, Access: hostarch.Execute, Reason: addrspace.FaultUnmapped}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, s := tlbProc(t)
			stale(t, s, func() {
				if err := tc.change(s.as); err != nil {
					t.Fatal(err)
				}
			})
			st := p.loop()
			if st.Signal != SIGSEGV || st.PC != tc.pc || st.Fault == nil || *st.Fault != tc.fault {
				t.Fatalf("status %v, want SIGSEGV at pc %#x: %+v", st, tc.pc, tc.fault)
			}
		})
	}
}

// TestTLBExecuteRevoked: Mprotect that takes Execute away leaves the page
// readable on the host, so only the generation compare can see it: the
// next fetch misses, Translate refuses Execute, and the guest gets SIGSEGV
// for its instruction fetch.
func TestTLBExecuteRevoked(t *testing.T) {
	p, s := tlbProc(t)
	s.tlb.fill(codeAddr, hostarch.Execute)
	if err := s.as.Mprotect(codeAddr, pageSize, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	st := p.loop()
	want := addrspace.FaultError{Addr: codeAddr, Access: hostarch.Execute, Reason: addrspace.FaultProtection}
	if st.Signal != SIGSEGV || st.PC != codeAddr || st.Fault == nil || *st.Fault != want {
		t.Fatalf("status %v, want SIGSEGV at pc %#x: %+v", st, codeAddr, want)
	}
}

// TestTLBMisaligned: accesses that are not naturally aligned, page-crossing
// ones included, take the CopyIn/CopyOut path and give the same bytes as
// aligned ones.
func TestTLBMisaligned(t *testing.T) {
	s, err := newAS(DefaultSize, TLB)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if _, err := s.as.Mmap(addrspace.MmapOpts{Addr: dataAddr, Length: 2 * pageSize, Fixed: true, Perms: hostarch.ReadWrite, Private: true}); err != nil {
		t.Fatal(err)
	}
	m := tlbMem{s.tlb}
	for _, a := range []uint64{dataAddr + 1, dataAddr + pageSize - 3, dataAddr + pageSize - 1, dataAddr + 2*pageSize - 8} {
		m.store64(a, 0x0102030405060708)
		if got := m.load64(a); got != 0x0102030405060708 {
			t.Errorf("load64(%#x) = %#x", a, got)
		}
		if got := m.load32(a + 1); got != 0x04050607 {
			t.Errorf("load32(%#x) = %#x", a+1, got)
		}
		if got := m.load16(a + 6); got != 0x0102 {
			t.Errorf("load16(%#x) = %#x", a+6, got)
		}
		if got := peek(t, s.as, a); got != 0x0102030405060708 {
			t.Errorf("CopyIn(%#x) = %#x", a, got)
		}
	}
	// A page-crossing store into an unmapped page faults at its first byte
	// there.
	func() {
		defer func() {
			fe, ok := recover().(*addrspace.FaultError)
			if !ok || fe.Addr != dataAddr+2*pageSize || fe.Reason != addrspace.FaultUnmapped {
				t.Errorf("store across the end: %v, want an unmapped fault at %#x", fe, dataAddr+2*pageSize)
			}
		}()
		m.store64(dataAddr+2*pageSize-4, 0)
	}()
}

// TestTLBTruncatedFile: a store through a TLB entry for a shared file page
// whose file was truncated since (which changes no generation: the file
// changed, not the address space) raises SIGBUS on the host; ResolveFault
// reports FaultBus and the guest is killed by SIGBUS at the address.
func TestTLBTruncatedFile(t *testing.T) {
	const fileAddr = 0x30000
	p, s := tlbProc(t)
	f, err := os.CreateTemp(t.TempDir(), "rv64-file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(pageSize); err != nil {
		t.Fatal(err)
	}
	if _, err := s.as.Mmap(addrspace.MmapOpts{Addr: fileAddr, Length: pageSize, Fixed: true, Perms: hostarch.ReadWrite, File: f}); err != nil {
		t.Fatal(err)
	}
	p.cpu.x[6] = fileAddr
	s.tlb.fill(codeAddr, hostarch.Execute)
	s.tlb.fill(fileAddr, hostarch.Write)
	gen := s.as.Generation()
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if s.as.Generation() != gen {
		t.Fatal("truncating the file changed the generation: the test no longer goes through the stale entry")
	}
	st := p.loop()
	want := addrspace.FaultError{Addr: fileAddr, Access: hostarch.Write, Reason: addrspace.FaultBus}
	if st.Signal != SIGBUS || st.PC != codeAddr || st.Fault == nil || *st.Fault != want {
		t.Fatalf("status %v, want SIGBUS at pc %#x: %+v", st, codeAddr, want)
	}
	if p.hostFaults != 0 {
		t.Errorf("%d host faults resolved, want 0", p.hostFaults)
	}
}
