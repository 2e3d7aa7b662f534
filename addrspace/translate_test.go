package addrspace

import (
	"errors"
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

const ps = hostarch.PageSize

// ar is [start, start+pages pages).
func ar(start hostarch.Addr, pages int) hostarch.AddrRange {
	return hostarch.AddrRange{Start: start, End: start + hostarch.Addr(pages)*ps}
}

func faultReason(err error) FaultReason {
	var fe *FaultError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return 0
}

func TestTranslate(t *testing.T) {
	const base = 0x100000 // 16-page aligned: fault-around windows start here
	file := pattern(3*int(ps)+100, 7)
	tests := []struct {
		name  string
		setup func(t *testing.T, as *AddressSpace) // maps at base
		addr  hostarch.Addr
		at    hostarch.AccessType
		want  hostarch.AddrRange
		perms hostarch.AccessType
		// mem: the guest bytes of want's first page, checked through Mem
		// (nil: zeroes).
		mem    []byte
		reason FaultReason
	}{
		{
			name: "anonymous read backs a fault-around window, writable",
			setup: func(t *testing.T, as *AddressSpace) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 64 * ps, Perms: hostarch.ReadWrite, Private: true})
			},
			addr: base + 5*ps + 3, at: hostarch.Read,
			want: ar(base, 16), perms: hostarch.ReadWrite,
		},
		{
			name: "run ends at the mapping",
			setup: func(t *testing.T, as *AddressSpace) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 3 * ps, Perms: hostarch.ReadWrite, Private: true})
				mustMmap(t, as, MmapOpts{Addr: base + 3*ps, Fixed: true, Length: 3 * ps, Perms: hostarch.Read, Private: true})
			},
			addr: base + ps, at: hostarch.Write,
			want: ar(base, 3), perms: hostarch.ReadWrite,
		},
		{
			name: "execute allowed",
			setup: func(t *testing.T, as *AddressSpace) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 2 * ps, Perms: hostarch.AccessType{Read: true, Execute: true}, Private: true})
			},
			addr: base + ps + 8, at: hostarch.Execute,
			want: ar(base, 2), perms: hostarch.AccessType{Read: true, Execute: true},
		},
		{
			name: "execute forbidden",
			setup: func(t *testing.T, as *AddressSpace) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 2 * ps, Perms: hostarch.ReadWrite, Private: true})
			},
			addr: base, at: hostarch.Execute, reason: FaultProtection,
		},
		{
			name: "write to a read-only mapping",
			setup: func(t *testing.T, as *AddressSpace) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 2 * ps, Perms: hostarch.Read, Private: true})
			},
			addr: base, at: hostarch.Write, reason: FaultProtection,
		},
		{
			name: "PROT_NONE read",
			setup: func(t *testing.T, as *AddressSpace) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 2 * ps, Private: true})
			},
			addr: base, at: hostarch.Read, reason: FaultProtection,
		},
		{
			name: "no access is a read",
			setup: func(t *testing.T, as *AddressSpace) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 2 * ps, Perms: hostarch.Read, Private: true})
			},
			addr: base + ps, at: hostarch.NoAccess,
			want: ar(base, 2), perms: hostarch.Read,
		},
		{
			name: "every access of a read-write mapping",
			setup: func(t *testing.T, as *AddressSpace) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 2 * ps, Perms: hostarch.ReadWrite, Private: true})
			},
			addr: base, at: hostarch.AnyAccess, reason: FaultProtection,
		},
		{
			name: "write-only is readable, as on Linux",
			setup: func(t *testing.T, as *AddressSpace) {
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 2 * ps, Perms: hostarch.Write, Private: true})
			},
			addr: base, at: hostarch.Read,
			want: ar(base, 2), perms: hostarch.ReadWrite,
		},
		{
			name:  "unmapped",
			setup: func(t *testing.T, as *AddressSpace) {},
			addr:  base, at: hostarch.Read, reason: FaultUnmapped,
		},
		{
			name:  "beyond the address space",
			setup: func(t *testing.T, as *AddressSpace) {},
			addr:  1 << 40, at: hostarch.Read, reason: FaultUnmapped,
		},
		{
			name:  "highest address",
			setup: func(t *testing.T, as *AddressSpace) {},
			addr:  ^hostarch.Addr(0), at: hostarch.Write, reason: FaultUnmapped,
		},
		{
			name: "private file read shows the file, not writable",
			setup: func(t *testing.T, as *AddressSpace) {
				f := tempFile(t, file, os.O_RDONLY)
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 8 * ps, Perms: hostarch.ReadWrite, Private: true, File: f})
			},
			// The file's fourth page holds 100 bytes; pages past it SIGBUS.
			addr: base + 3*ps, at: hostarch.Read,
			want: ar(base, 4), perms: hostarch.Read, mem: file[:ps],
		},
		{
			name: "private file write copies the page",
			setup: func(t *testing.T, as *AddressSpace) {
				f := tempFile(t, file, os.O_RDONLY)
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 8 * ps, Perms: hostarch.ReadWrite, Private: true, File: f})
			},
			addr: base + ps, at: hostarch.Write,
			want: ar(base+ps, 1), perms: hostarch.ReadWrite, mem: file[ps : 2*ps],
		},
		{
			name: "private file beyond its end",
			setup: func(t *testing.T, as *AddressSpace) {
				f := tempFile(t, file, os.O_RDONLY)
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 8 * ps, Perms: hostarch.ReadWrite, Private: true, File: f})
			},
			addr: base + 4*ps, at: hostarch.Read, reason: FaultBus,
		},
		{
			name: "shared file beyond its end, writing",
			setup: func(t *testing.T, as *AddressSpace) {
				f := tempFile(t, file, os.O_RDWR)
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 8 * ps, Perms: hostarch.ReadWrite, File: f})
			},
			addr: base + 7*ps, at: hostarch.Write, reason: FaultBus,
		},
		{
			name: "shared file write",
			setup: func(t *testing.T, as *AddressSpace) {
				f := tempFile(t, file, os.O_RDWR)
				mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 8 * ps, Perms: hostarch.ReadWrite, File: f})
			},
			addr: base + 2*ps, at: hostarch.Write,
			want: ar(base, 4), perms: hostarch.ReadWrite, mem: file[:ps],
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 1<<30)
			tc.setup(t, as)
			gen := as.Generation()
			tr, err := as.Translate(tc.addr, tc.at)
			if tc.reason != 0 {
				if got := faultReason(err); got != tc.reason || !errors.Is(err, unix.EFAULT) {
					t.Fatalf("Translate(%#x, %v) = %v, want a %v fault", tc.addr, tc.at, err, tc.reason)
				}
				var fe *FaultError
				errors.As(err, &fe)
				if fe.Addr != tc.addr || fe.Access != tc.at {
					t.Errorf("fault at %#x %v, want %#x %v", fe.Addr, fe.Access, tc.addr, tc.at)
				}
				if rerr := as.ResolveFault(tc.addr, tc.at); faultReason(rerr) != tc.reason {
					t.Errorf("ResolveFault = %v, want a %v fault", rerr, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Translate(%#x, %v): %v", tc.addr, tc.at, err)
			}
			if tr.Range != tc.want || tr.Perms != tc.perms || uint64(len(tr.Mem)) != uint64(tc.want.Length()) || tr.Gen != gen {
				t.Fatalf("Translate(%#x, %v) = %v %v len %d gen %d, want %v %v gen %d", tc.addr, tc.at, tr.Range, tr.Perms, len(tr.Mem), tr.Gen, tc.want, tc.perms, gen)
			}
			wantMem := tc.mem
			if wantMem == nil {
				wantMem = make([]byte, ps)
			}
			if got := tr.Mem[:len(wantMem)]; string(got) != string(wantMem) {
				t.Errorf("Mem's first page differs from the guest's")
			}
			// Mem is the guest's memory: a write through it is what the
			// copy paths read, and the other way round.
			off := int(tc.addr - tr.Range.Start)
			if tr.Perms.Write {
				tr.Mem[off] = 0xa5
				if got := readAt(t, as, tc.addr, 1); got[0] != 0xa5 {
					t.Errorf("CopyIn after a write through Mem = %#x", got[0])
				}
			}
			if m, _ := as.Lookup(tc.addr); m.Perms.Write {
				writeAt(t, as, tc.addr, "\x5a")
				if tr.Mem[off] != 0x5a {
					t.Errorf("Mem after CopyOut = %#x", tr.Mem[off])
				}
			} else if got := readAt(t, as, tr.Range.Start, len(tr.Mem)); string(got) != string(tr.Mem) {
				t.Errorf("Mem differs from CopyIn")
			}
			if err := as.ResolveFault(tc.addr, tc.at); err != nil {
				t.Errorf("ResolveFault of a resolved page: %v", err)
			}
			if g := as.Generation(); g != gen {
				t.Errorf("Generation changed from %d to %d by faults that only add access", gen, g)
			}
		})
	}
}

func TestTranslateClosed(t *testing.T) {
	as := newAS(t, 1<<30)
	addr := mustMmap(t, as, MmapOpts{Length: ps, Perms: hostarch.ReadWrite, Private: true})
	tr, err := as.Translate(addr, hostarch.Write)
	if err != nil {
		t.Fatal(err)
	}
	gen := as.Generation()
	as.Close()
	if as.Generation() == gen {
		t.Errorf("Close did not change the generation")
	}
	for _, a := range []hostarch.Addr{addr, 1 << 40} {
		if _, err := as.Translate(a, hostarch.Read); !errors.Is(err, ErrClosed) || !errors.Is(err, unix.EFAULT) {
			t.Errorf("Translate(%#x) after Close: %v, want ErrClosed (EFAULT)", a, err)
		}
		if err := as.ResolveFault(a, hostarch.Read); !errors.Is(err, ErrClosed) {
			t.Errorf("ResolveFault(%#x) after Close: %v, want ErrClosed", a, err)
		}
	}
	if _, ok := as.Lookup(addr); ok {
		t.Errorf("Lookup after Close found a mapping")
	}
	if g, ok := as.GuestAddr(uintptr(as.appBase) + uintptr(addr)); !ok || g != addr || tr.Range.Start != addr {
		t.Errorf("GuestAddr after Close = %#x, %v", g, ok)
	}
}

func TestGuestAddr(t *testing.T) {
	as := newAS(t, 1<<30)
	addr := mustMmap(t, as, MmapOpts{Length: 2 * ps, Perms: hostarch.ReadWrite, Private: true})
	tr, err := as.Translate(addr+ps+7, hostarch.Read)
	if err != nil {
		t.Fatal(err)
	}
	host := uintptr(addrOf(tr.Mem)) + uintptr(addr+ps+7-tr.Range.Start)
	b := uintptr(as.appBase)
	for _, tc := range []struct {
		host uintptr
		want hostarch.Addr
		ok   bool
	}{
		{host, addr + ps + 7, true},
		{b, 0, true},
		{b + (1 << 30) - 1, (1 << 30) - 1, true},
		{b + (1 << 30), 0, false},
		{b - 1, 0, false},
		{0, 0, false},
		{^uintptr(0), 0, false},
	} {
		if got, ok := as.GuestAddr(tc.host); got != tc.want || ok != tc.ok {
			t.Errorf("GuestAddr(%#x) = %#x, %v; want %#x, %v", tc.host, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLookup(t *testing.T) {
	as := newAS(t, 1<<30)
	f := tempFile(t, pattern(8*int(ps), 1), os.O_RDONLY)
	a := mustMmap(t, as, MmapOpts{Addr: 0x100000, Fixed: true, Length: 4 * ps, Perms: hostarch.ReadWrite, Private: true, Name: "x"})
	// Mprotect splits the mapping and merging it back makes it one again.
	if err := as.Mprotect(a+ps, ps, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	b := mustMmap(t, as, MmapOpts{Addr: 0x200000, Fixed: true, Length: 4 * ps, Perms: hostarch.Read, Private: true, File: f, Offset: 2 * ps})
	ms := as.Mappings()
	if len(ms) != 4 {
		t.Fatalf("Mappings = %+v", ms)
	}
	for _, m := range ms {
		for _, addr := range []hostarch.Addr{m.Range.Start, m.Range.End - 1, m.Range.Start + (m.Range.End-m.Range.Start)/2} {
			got, ok := as.Lookup(addr)
			if !ok || got != m {
				t.Errorf("Lookup(%#x) = %+v, %v; want %+v", addr, got, ok, m)
			}
		}
	}
	if err := as.Mprotect(a+ps, ps, hostarch.ReadWrite); err != nil {
		t.Fatal(err)
	}
	if got, ok := as.Lookup(a + 2*ps); !ok || got.Range != ar(a, 4) || got.Name != "x" || got.Perms != hostarch.ReadWrite {
		t.Errorf("Lookup after the merge = %+v, %v", got, ok)
	}
	if got, ok := as.Lookup(b + ps); !ok || got.Offset != 2*ps || got.FileName != f.Name() || got.Inode == 0 {
		t.Errorf("Lookup of the file mapping = %+v, %v", got, ok)
	}
	for _, addr := range []hostarch.Addr{0, a - 1, a + 4*ps, b + 4*ps, 1<<30 - 1, 1 << 30, ^hostarch.Addr(0)} {
		if got, ok := as.Lookup(addr); ok {
			t.Errorf("Lookup(%#x) = %+v, want none", addr, got)
		}
	}
}

// TestGenerationChanges checks that every call that may make a
// Translation wrong changes Generation before it returns, and that faults
// that only add access do not.
func TestGenerationChanges(t *testing.T) {
	const base = 0x100000
	rwx := hostarch.AnyAccess
	tests := []struct {
		name   string
		op     func(t *testing.T, as *AddressSpace) error
		change bool
	}{
		{"munmap", func(t *testing.T, as *AddressSpace) error { return as.Munmap(base+3*ps, ps) }, true},
		{"mprotect read-only", func(t *testing.T, as *AddressSpace) error { return as.Mprotect(base, ps, hostarch.Read) }, true},
		{"mprotect drops execute only", func(t *testing.T, as *AddressSpace) error { return as.Mprotect(base, 16*ps, hostarch.ReadWrite) }, true},
		{"mremap moves", func(t *testing.T, as *AddressSpace) error {
			_, err := as.Mremap(base, 16*ps, 16*ps, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, 0x400000)
			return err
		}, true},
		{"mremap shrinks", func(t *testing.T, as *AddressSpace) error {
			_, err := as.Mremap(base, 64*ps, 8*ps, 0, 0)
			return err
		}, true},
		{"madvise dontneed", func(t *testing.T, as *AddressSpace) error { return as.Madvise(base, ps, unix.MADV_DONTNEED) }, true},
		{"fixed mmap over it", func(t *testing.T, as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Addr: base + 2*ps, Fixed: true, Length: ps, Perms: rwx, Private: true})
			return err
		}, true},
		{"clone", func(t *testing.T, as *AddressSpace) error {
			c, err := as.Clone()
			if err == nil {
				c.Close()
			}
			return err
		}, true},
		{"close", func(t *testing.T, as *AddressSpace) error { return as.Close() }, true},
		{"translate elsewhere", func(t *testing.T, as *AddressSpace) error {
			_, err := as.Translate(base+40*ps, hostarch.Write)
			return err
		}, false},
		{"copy faults", func(t *testing.T, as *AddressSpace) error {
			_, err := as.CopyOut(ctx, base+20*ps, make([]byte, 30*ps), noOpt)
			return err
		}, false},
		{"mmap elsewhere", func(t *testing.T, as *AddressSpace) error {
			_, err := as.Mmap(MmapOpts{Length: ps, Perms: rwx, Private: true})
			return err
		}, false},
		{"lookup", func(t *testing.T, as *AddressSpace) error { as.Lookup(base); return nil }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 1<<30)
			mustMmap(t, as, MmapOpts{Addr: base, Fixed: true, Length: 64 * ps, Perms: rwx, Private: true})
			tr, err := as.Translate(base+5*ps, hostarch.Write)
			if err != nil || tr.Range != ar(base, 16) || tr.Perms != rwx {
				t.Fatalf("Translate = %v %v, %v", tr.Range, tr.Perms, err)
			}
			if err := tc.op(t, as); err != nil {
				t.Fatal(err)
			}
			if changed := as.Generation() != tr.Gen; changed != tc.change {
				t.Errorf("generation %d -> %d: changed %v, want %v", tr.Gen, as.Generation(), changed, tc.change)
			}
		})
	}
}

// TestGenerationBrk: shrinking the heap changes the generation; growing it
// does not.
func TestGenerationBrk(t *testing.T) {
	as := newAS(t, 1<<30)
	start, _ := as.Brk(0)
	if _, err := as.Brk(start + 8*ps); err != nil {
		t.Fatal(err)
	}
	tr, err := as.Translate(start+5*ps, hostarch.Write)
	if err != nil || tr.Range != ar(start, 8) {
		t.Fatalf("Translate = %v, %v", tr.Range, err)
	}
	if _, err := as.Brk(start + 16*ps); err != nil || as.Generation() != tr.Gen {
		t.Fatalf("growing the heap: %v, generation %d -> %d", err, tr.Gen, as.Generation())
	}
	if _, err := as.Brk(start + 2*ps); err != nil || as.Generation() == tr.Gen {
		t.Fatalf("shrinking the heap: %v, generation %d -> %d", err, tr.Gen, as.Generation())
	}
	if _, err := as.Translate(start+5*ps, hostarch.Read); faultReason(err) != FaultUnmapped {
		t.Fatalf("Translate of the freed heap: %v", err)
	}
}
