package addrspace

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime/debug"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// direct runs f, an access through a Translation's Mem, as an emulator
// does: with debug.SetPanicOnFault, recovering a host fault's address.
func direct(f func()) (hostAddr uintptr, faulted bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			re, ok := e.(interface{ Addr() uintptr })
			if !ok {
				panic(e)
			}
			hostAddr, faulted = re.Addr(), true
		}
	}()
	f()
	return 0, false
}

// TestDirectAccessFaults touches guest memory through a Translation taken
// before a change, as an emulator whose TLB is stale until it next
// compares the generation: each access either works or raises a host fault
// that GuestAddr maps back and ResolveFault resolves (the retry then sees
// the new state) or turns into the guest's fault.
func TestDirectAccessFaults(t *testing.T) {
	const base = 0x100000
	file := pattern(4*int(ps), 3)
	tests := []struct {
		name   string
		perms  hostarch.AccessType
		file   string // "" anonymous; "private" or "shared" file
		change func(t *testing.T, as *AddressSpace, f *os.File)
		at     hostarch.AccessType
		off    hostarch.Addr // of the access, from base
		// fault: whether the first access faults; reason: what
		// ResolveFault returns then (0: nil, and the retry works); want:
		// the byte the retry reads (or writes).
		fault  bool
		reason FaultReason
		want   byte
	}{
		{name: "no change", perms: hostarch.ReadWrite, at: hostarch.Write, off: 5 * ps, want: 0x77,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {}},
		{name: "clone makes it copy-on-write", perms: hostarch.ReadWrite, at: hostarch.Write, off: 5*ps + 9, fault: true, want: 0x77,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				c := mustClone(t, as)
				t.Cleanup(func() {
					if got := readAt(t, c, base+5*ps+9, 1); got[0] != 0x11 {
						t.Errorf("the clone sees %#x, want %#x", got[0], 0x11)
					}
				})
			}},
		{name: "dontneed drops the page", perms: hostarch.ReadWrite, at: hostarch.Read, off: 5 * ps, fault: true, want: 0,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				if err := as.Madvise(base, 16*ps, unix.MADV_DONTNEED); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "munmap", perms: hostarch.ReadWrite, at: hostarch.Read, off: 5 * ps, fault: true, reason: FaultUnmapped,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				if err := as.Munmap(base+5*ps, ps); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "mprotect none", perms: hostarch.ReadWrite, at: hostarch.Read, off: 5 * ps, fault: true, reason: FaultProtection,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				if err := as.Mprotect(base, 16*ps, hostarch.NoAccess); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "mprotect read-only, write", perms: hostarch.ReadWrite, at: hostarch.Write, off: 5 * ps, fault: true, reason: FaultProtection,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				if err := as.Mprotect(base, 16*ps, hostarch.Read); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "mmap over it", perms: hostarch.ReadWrite, at: hostarch.Read, off: 5 * ps, fault: true, want: 0,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 16 * ps, Perms: hostarch.ReadWrite, Private: true})
			}},
		{name: "shared file truncated", perms: hostarch.ReadWrite, file: "shared", at: hostarch.Read, off: 2*ps + 100, fault: true, reason: FaultBus,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				if err := f.Truncate(ps + 10); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "shared file truncated, write", perms: hostarch.ReadWrite, file: "shared", at: hostarch.Write, off: 3 * ps, fault: true, reason: FaultBus,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				if err := f.Truncate(ps + 10); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "private file truncated", perms: hostarch.Read, file: "private", at: hostarch.Read, off: 3*ps + 8, fault: true, reason: FaultBus,
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				if err := os.Truncate(f.Name(), 0); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "shared file truncated, page within", perms: hostarch.ReadWrite, file: "shared", at: hostarch.Read, off: 8, want: file[8],
			change: func(t *testing.T, as *AddressSpace, f *os.File) {
				if err := f.Truncate(ps + 10); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 1<<30)
			var f *os.File
			o := MmapOpts{Addr: base, Fixed: true, Length: 16 * ps, Perms: tc.perms, Private: true}
			switch tc.file {
			case "":
				mustMmap(t, as, o)
				writeAt(t, as, base+tc.off, "\x11")
			case "private":
				f = tempFile(t, file, os.O_RDONLY)
				o.File, o.Length = f, 4*ps
				mustMmap(t, as, o)
			case "shared":
				f = tempFile(t, file, os.O_RDWR)
				o.File, o.Length, o.Private = f, 4*ps, false
				mustMmap(t, as, o)
			}
			addr := base + tc.off
			tr, err := as.Translate(addr, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			tc.change(t, as, f)
			i := addr - tr.Range.Start
			access := func() {
				if tc.at.Write {
					tr.Mem[i] = 0x77
				} else {
					sink = tr.Mem[i]
				}
			}
			hostAddr, faulted := direct(access)
			if faulted != tc.fault {
				t.Fatalf("the access faulted: %v, want %v", faulted, tc.fault)
			}
			if faulted {
				g, ok := as.GuestAddr(hostAddr)
				if !ok || g != addr {
					if tc.reason != FaultBus || os.Getenv("MMSIM_TEST_EXEC") == "" {
						t.Fatalf("GuestAddr(%#x) = %#x, %v; want %#x", hostAddr, g, ok, addr)
					}
					// qemu-user 7.2 (the Makefile's arm64 run) gives a
					// SIGBUS the address of the last SIGSEGV: the emulator
					// resolves the guest address it computed, as
					// ResolveFault's doc advises.
					t.Logf("GuestAddr(%#x) = %#x, %v; want %#x (under %s)", hostAddr, g, ok, addr, os.Getenv("MMSIM_TEST_EXEC"))
				}
				err := as.ResolveFault(addr, tc.at)
				var fe *FaultError
				if tc.reason != 0 {
					if !errors.As(err, &fe) || fe.Reason != tc.reason || fe.Addr != addr {
						t.Fatalf("ResolveFault = %v, want a %v fault at %#x", err, tc.reason, addr)
					}
					// The fault stays: retrying faults again.
					if _, again := direct(access); !again {
						t.Fatalf("the access works after ResolveFault said %v", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("ResolveFault: %v", err)
				}
				if _, again := direct(access); again {
					t.Fatalf("the access faults again after ResolveFault")
				}
			}
			if tc.at.Write {
				if got := readAt(t, as, addr, 1); got[0] != tc.want {
					t.Errorf("the guest reads %#x after the write, want %#x", got[0], tc.want)
				}
			} else if sink != tc.want {
				t.Errorf("read %#x, want %#x", sink, tc.want)
			}
		})
	}
}

var sink byte

// TestDirectAccessCrossingPages: an 8-byte access that crosses into a
// page that is not mapped on the host faults in the second page; resolving
// each page the access touches (as ResolveFault's doc says) makes the
// retry work.
func TestDirectAccessCrossingPages(t *testing.T) {
	as := newAS(t, 1<<30)
	const base = 0x100000
	mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 32 * ps, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, base, "a")
	writeAt(t, as, base+16*ps, "b")
	tr, err := as.Translate(base, hostarch.Write)
	if err != nil || tr.Range != ar(base, 32) {
		t.Fatalf("Translate = %v, %v", tr.Range, err)
	}
	if err := as.Madvise(base+16*ps, ps, unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	addr := hostarch.Addr(base + 16*ps - 4)
	i := addr - tr.Range.Start
	access := func() { binary.LittleEndian.PutUint64(tr.Mem[i:], 0x0807060504030201) }
	host, faulted := direct(access)
	if !faulted {
		t.Fatal("no fault on the dropped page")
	}
	// The host reports an address in the faulting page, or (arm64) the
	// start of the access.
	if g, ok := as.GuestAddr(host); !ok || (g != base+16*ps && g != addr) {
		t.Fatalf("GuestAddr = %#x, %v", g, ok)
	}
	for _, a := range []hostarch.Addr{addr, addr + 7} {
		if err := as.ResolveFault(a, hostarch.Write); err != nil {
			t.Fatalf("ResolveFault(%#x): %v", a, err)
		}
	}
	if _, faulted := direct(access); faulted {
		t.Fatal("the retry faulted")
	}
	if got := readAt(t, as, addr, 8); binary.LittleEndian.Uint64(got) != 0x0807060504030201 {
		t.Fatalf("read %x", got)
	}
}

// TestDirectAccessAfterClose: Mem stays reserved (faulting) after Close
// while the AddressSpace is reachable; ResolveFault says ErrClosed.
func TestDirectAccessAfterClose(t *testing.T) {
	as := newAS(t, 1<<30)
	addr := mustMmap(t, as, MmapOpts{Length: 4 * ps, Perms: hostarch.ReadWrite, Private: true})
	tr, err := as.Translate(addr, hostarch.Write)
	if err != nil {
		t.Fatal(err)
	}
	tr.Mem[0] = 1
	as.Close()
	for _, write := range []bool{false, true} {
		host, faulted := direct(func() {
			if write {
				tr.Mem[ps+1] = 2
			} else {
				sink = tr.Mem[ps+1]
			}
		})
		if g, ok := as.GuestAddr(host); !faulted || !ok || g != addr+ps+1 {
			t.Fatalf("write %v after Close: faulted %v at guest %#x (%v)", write, faulted, g, ok)
		}
		if err := as.ResolveFault(addr+ps+1, hostarch.Read); !errors.Is(err, ErrClosed) {
			t.Fatalf("ResolveFault after Close: %v", err)
		}
	}
}
