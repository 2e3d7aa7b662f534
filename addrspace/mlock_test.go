package addrspace

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

const lockBase = hostarch.Addr(0x100_0000)

// lockState renders each mapping's range and lock bits, and the resident
// pages of [lockBase, lockBase+16 pages).
func lockState(t *testing.T, as *AddressSpace) string {
	t.Helper()
	var b strings.Builder
	for _, m := range as.Mappings() {
		fmt.Fprintf(&b, "%v", m.Range)
		if m.Locked {
			b.WriteString(" L")
		}
		if m.LockOnFault {
			b.WriteString(" F")
		}
		b.WriteString("; ")
	}
	if !hostPopulates() {
		return b.String()
	}
	b.WriteString("resident ")
	for i := range 16 {
		res := make([]byte, 1)
		if err := as.MincoreInto(lockBase+hostarch.Addr(i*pg), pg, res); err != nil {
			res[0] = 0 // unmapped
		}
		b.WriteByte('0' + res[0])
	}
	return b.String()
}

// hostPopulates reports whether the host makes pages resident on
// MADV_POPULATE_WRITE, as locking has it do. qemu-user takes the advice for
// a hint it may ignore, and does (the Makefile skips TestMmapPopulate there
// for the same reason): there the residency of locked pages is not
// checked, the rest is.
var hostPopulates = sync.OnceValue(func() bool {
	b, err := unix.Mmap(-1, 0, pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false
	}
	defer unix.Munmap(b)
	vec := make([]byte, 1)
	if unix.Madvise(b, unix.MADV_POPULATE_WRITE) != nil {
		return false
	}
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), pg, uintptr(unsafe.Pointer(&vec[0])))
	return e == 0 && vec[0]&1 != 0
})

// wantLock is a lockState expectation, without the residency where the
// host does not populate.
func wantLock(s string) string {
	if i := strings.Index(s, "resident "); i >= 0 && !hostPopulates() {
		return s[:i]
	}
	return s
}

// lr is the range string of [lockBase+a pages, lockBase+b pages).
func lr(a, b int) string {
	return hostarch.AddrRange{Start: lockBase + hostarch.Addr(a*pg), End: lockBase + hostarch.Addr(b*pg)}.String()
}

// TestMlock checks Mlock and Munlock: the exact splits, lock bits and
// resident pages, Linux's errors, and on failure what Linux leaves.
func TestMlock(t *testing.T) {
	huge := ^uint64(0)
	for _, tc := range []struct {
		name   string
		limits Limits
		setup  func(t *testing.T, as *AddressSpace)
		op     func(as *AddressSpace) error
		want   unix.Errno
		state  string // "" : unchanged
	}{
		{"middle", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase+2*pg, 2*pg, false) },
			0, lr(0, 2) + "; " + lr(2, 4) + " L; " + lr(4, 8) + "; resident 0011000000000000"},
		{"unaligned address widens to pages", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase+2*pg+100, pg, false) },
			0, lr(0, 2) + "; " + lr(2, 4) + " L; " + lr(4, 8) + "; resident 0011000000000000"},
		{"whole mapping", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, 8*pg, false) },
			0, lr(0, 8) + " L; resident 1111111100000000"},
		{"on fault", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, 8*pg, true) },
			0, lr(0, 8) + " L F; resident 0000000000000000"},
		{"on fault over locked pages replaces the mode", Limits{}, func(t *testing.T, as *AddressSpace) {
			if err := as.Mlock(lockBase, 2*pg, false); err != nil {
				t.Fatal(err)
			}
		}, func(as *AddressSpace) error { return as.Mlock(lockBase, 4*pg, true) },
			0, lr(0, 4) + " L F; " + lr(4, 8) + "; resident 1100000000000000"},
		{"munlock merges back", Limits{}, func(t *testing.T, as *AddressSpace) {
			if err := as.Mlock(lockBase+2*pg, 2*pg, false); err != nil {
				t.Fatal(err)
			}
		}, func(as *AddressSpace) error { return as.Munlock(lockBase, 8*pg) },
			0, lr(0, 8) + "; resident 0011000000000000"},
		{"zero length", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, 0, false) }, 0, ""},
		{"unmapped start", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase-pg, 2*pg, false) }, unix.ENOMEM, ""},
		{"munlock of an unmapped start", Limits{}, nil, func(as *AddressSpace) error { return as.Munlock(lockBase-pg, 2*pg) }, unix.ENOMEM, ""},
		{"hole after the mapping", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase+6*pg, 4*pg, false) },
			// Linux locks up to the hole and populates nothing.
			unix.ENOMEM, lr(0, 6) + "; " + lr(6, 8) + " L; resident 0000000000000000"},
		{"beyond the space", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, 1<<40, false) },
			unix.ENOMEM, lr(0, 8) + " L; resident 0000000000000000"},
		{"wrapping range", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, huge-2*pg, false) }, unix.EINVAL, ""},
		{"an address near 2^64 that wraps", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(^hostarch.Addr(0)-99, 10, false) }, unix.EINVAL, ""},
		{"munlock of the last page of 2^64", Limits{}, nil, func(as *AddressSpace) error { return as.Munlock(^hostarch.Addr(0)-pg+1, pg) }, unix.EINVAL, ""},
		{"an address far beyond the space", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(1<<50, pg, true) }, unix.ENOMEM, ""},
		{"mlockall with a negative flag", Limits{}, nil, func(as *AddressSpace) error { return as.Mlockall(-1) }, unix.EINVAL, ""},
		{"length that PAGE_ALIGN wraps to 0", Limits{}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, huge, false) }, 0, ""},
		{"within Memlock", Limits{Memlock: 4 * pg}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, 4*pg, false) },
			0, lr(0, 4) + " L; " + lr(4, 8) + "; resident 1111000000000000"},
		{"beyond Memlock", Limits{Memlock: 4 * pg}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, 5*pg, false) }, unix.ENOMEM, ""},
		{"Memlock rounds down to pages", Limits{Memlock: 5*pg - 1}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, 5*pg, false) }, unix.ENOMEM, ""},
		{"Memlock below a page", Limits{Memlock: 100}, nil, func(as *AddressSpace) error { return as.Mlock(lockBase, pg, false) }, unix.ENOMEM, ""},
		{"relocking counts once", Limits{Memlock: 4 * pg}, func(t *testing.T, as *AddressSpace) {
			if err := as.Mlock(lockBase, 4*pg, false); err != nil {
				t.Fatal(err)
			}
		}, func(as *AddressSpace) error { return as.Mlock(lockBase, 4*pg, true) },
			0, lr(0, 4) + " L F; " + lr(4, 8) + "; resident 1111000000000000"},
		{"more beyond Memlock", Limits{Memlock: 4 * pg}, func(t *testing.T, as *AddressSpace) {
			if err := as.Mlock(lockBase, 4*pg, false); err != nil {
				t.Fatal(err)
			}
		}, func(as *AddressSpace) error { return as.Mlock(lockBase+2*pg, 3*pg, false) }, unix.ENOMEM, ""},
		{"MaxMapCount", Limits{}, nil, nil, unix.ENOMEM, ""}, // op set below
		{"DONTNEED on locked pages", Limits{}, func(t *testing.T, as *AddressSpace) {
			if err := as.Mlock(lockBase+4*pg, 4*pg, false); err != nil {
				t.Fatal(err)
			}
		}, func(as *AddressSpace) error { return as.Madvise(lockBase+4*pg, 4*pg, unix.MADV_DONTNEED) }, unix.EINVAL, ""},
		{"DONTNEED up to locked pages", Limits{}, func(t *testing.T, as *AddressSpace) {
			if err := as.Mlock(lockBase+4*pg, 4*pg, false); err != nil {
				t.Fatal(err)
			}
		}, func(as *AddressSpace) error { return as.Madvise(lockBase, 8*pg, unix.MADV_DONTNEED) },
			// The unlocked pages before them are dropped, as on Linux.
			unix.EINVAL, lr(0, 4) + "; " + lr(4, 8) + " L; resident 0000111100000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Size: 1 << 30, Limits: tc.limits}
			op := tc.op
			if tc.name == "MaxMapCount" {
				opts.MaxMapCount = 2
				op = func(as *AddressSpace) error { return as.Mlock(lockBase+2*pg, 2*pg, false) }
			}
			as, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer as.Close()
			mustMmap(t, as, MmapOpts{Addr: lockBase, Length: 8 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
			if tc.setup != nil {
				tc.setup(t, as)
			}
			// A snapshot reads every page (faulting it in), so it is taken
			// only where nothing may change, before the lock state.
			var bytesBefore string
			if tc.state == "" {
				bytesBefore = snapshot(t, as)
			}
			before := lockState(t, as)
			err = op(as)
			if errnoOf(err) != tc.want {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			after := lockState(t, as)
			want := wantLock(tc.state)
			if want == "" {
				want = before
			}
			if after != want {
				t.Fatalf("state\n  %s\nwant\n  %s", after, want)
			}
			if tc.state == "" && snapshot(t, as) != bytesBefore {
				t.Fatal("the call changed the mappings or bytes")
			}
		})
	}
}

// TestMlockKeepsBytes checks that locking faults pages in without changing
// them: written anonymous pages, a private file mapping's pages (read,
// not copied, where read-only; ENOMEM for a page past the file's end, as
// Linux's mlock), and that a locked page's bytes survive a refused
// DONTNEED.
func TestMlockKeepsBytes(t *testing.T) {
	data := pattern(3*pg, 9)
	f := tempFile(t, data, os.O_RDONLY)
	as := newAS(t, 1<<30)
	a := mustMmap(t, as, MmapOpts{Addr: lockBase, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, a+pg, "hello")
	fm := mustMmap(t, as, MmapOpts{Length: 4 * pg, Perms: hostarch.Read, Private: true, File: f})
	if err := as.Mlock(a, 4*pg, false); err != nil {
		t.Fatal(err)
	}
	// The page past the file's end cannot be faulted in: Linux's mlock
	// locks the range, populates the pages before it, and fails.
	if err := as.Mlock(fm, 4*pg, false); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Mlock over a page past the file's end = %v, want ENOMEM", err)
	}
	if m, _ := lockLookup(as, fm); !m.Locked || m.Range.Length() != 4*pg {
		t.Fatalf("after a failed populate the mapping is %+v", m)
	}
	if got := string(readAt(t, as, a+pg, 5)); got != "hello" {
		t.Fatalf("locked page reads %q", got)
	}
	if got := readAt(t, as, fm, 3*pg); string(got) != string(data) {
		t.Fatal("locked file pages differ from the file")
	}
	if res, _ := as.Mincore(fm, 4*pg); hostPopulates() && fmt.Sprint(res) != "[true true true false]" {
		t.Fatalf("file mapping residency %v", res)
	}
	if st := mustStats(t, as); st.PrivateCopies != 4 {
		t.Fatalf("PrivateCopies = %d: locking a read-only private file mapping copied pages, or the anonymous pages were not backed", st.PrivateCopies)
	}
	if err := as.Madvise(a, pg*4, unix.MADV_DONTNEED); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("DONTNEED of locked pages = %v", err)
	}
	if got := string(readAt(t, as, a+pg, 5)); got != "hello" {
		t.Fatalf("after a refused DONTNEED the page reads %q", got)
	}
}

// TestMmapLocked checks MAP_LOCKED: resident and locked on return;
// EAGAIN beyond Memlock (counting pages a fixed mapping replaces, as Linux
// does) with nothing changed.
func TestMmapLocked(t *testing.T) {
	as, err := New(Options{Size: 1 << 30, Limits: Limits{Memlock: 6 * pg}})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	a := mustMmap(t, as, MmapOpts{Addr: lockBase, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, Locked: true})
	if s := lockState(t, as); s != wantLock(lr(0, 4)+" L; resident 1111000000000000") {
		t.Fatalf("after MAP_LOCKED: %s", s)
	}
	if st := mustStats(t, as); st.PrivateCopies != 4 {
		t.Fatalf("PrivateCopies = %d, want the 4 locked pages backed", st.PrivateCopies)
	}
	before := snapshot(t, as)
	for _, o := range []MmapOpts{
		{Length: 3 * pg, Perms: hostarch.Read, Private: true, Locked: true},
		{Addr: a, Length: 4 * pg, Fixed: true, Perms: hostarch.Read, Private: true, Locked: true},
	} {
		if got, err := as.Mmap(o); !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("Mmap(%+v) = %#x, %v; want EAGAIN", o, got, err)
		}
		if snapshot(t, as) != before {
			t.Fatal("a failed Mmap changed the space")
		}
	}
	// Within the limit, and PROT_NONE: locked, nothing resident.
	n := mustMmap(t, as, MmapOpts{Addr: lockBase + 8*pg, Length: 2 * pg, Fixed: true, Private: true, Locked: true})
	if m, _ := lockLookup(as, n); !m.Locked {
		t.Fatalf("PROT_NONE MAP_LOCKED mapping %+v", m)
	}
	if s := lockState(t, as); !strings.HasSuffix(s, wantLock("resident 1111000000000000")) {
		t.Fatalf("PROT_NONE pages were faulted in: %s", s)
	}
}

// TestMlockall checks mlockall's flags, its limit, MCL_FUTURE for Mmap and
// Brk, and Munlockall.
func TestMlockall(t *testing.T) {
	for _, flags := range []int{0, unix.MCL_ONFAULT, 0x100, unix.MCL_CURRENT | 0x100} {
		as := newAS(t, 1<<30)
		if err := as.Mlockall(flags); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Mlockall(%#x) = %v, want EINVAL", flags, err)
		}
	}

	as, err := New(Options{Size: 1 << 30, BrkStart: lockBase + 32*pg, Limits: Limits{Memlock: 10 * pg}})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	mustMmap(t, as, MmapOpts{Addr: lockBase, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	mustMmap(t, as, MmapOpts{Addr: lockBase + 6*pg, Length: 8 * pg, Fixed: true, Perms: hostarch.Read, Private: true})
	before := lockState(t, as)
	// 12 pages mapped: MCL_CURRENT compares them all with the limit.
	if err := as.Mlockall(unix.MCL_CURRENT); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Mlockall(MCL_CURRENT) over the limit = %v, want ENOMEM", err)
	}
	if s := lockState(t, as); s != before {
		t.Fatalf("a failed Mlockall changed %s to %s", before, s)
	}
	// MCL_FUTURE alone ignores the mappings there are.
	if err := as.Mlockall(unix.MCL_FUTURE); err != nil {
		t.Fatal(err)
	}
	if s := lockState(t, as); s != before {
		t.Fatalf("MCL_FUTURE locked existing mappings: %s", s)
	}
	// A new mapping is locked and resident; one beyond the limit is EAGAIN.
	mustMmap(t, as, MmapOpts{Addr: lockBase + 4*pg, Length: 2 * pg, Fixed: true, Perms: hostarch.Read, Private: true})
	if s := lockState(t, as); s != wantLock(lr(0, 4)+"; "+lr(4, 6)+" L; "+lr(6, 14)+"; resident 0000110000000000") {
		t.Fatalf("after an Mmap under MCL_FUTURE: %s", s)
	}
	if _, err := as.Mmap(MmapOpts{Length: 9 * pg, Perms: hostarch.Read, Private: true}); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Mmap under MCL_FUTURE beyond Memlock = %v, want EAGAIN", err)
	}
	// Brk: locked and resident too.
	if _, err := as.Brk(lockBase + 34*pg); err != nil {
		t.Fatal(err)
	}
	if m, ok := lockLookup(as, lockBase+32*pg); !ok || !m.Locked || m.Range.Length() != 2*pg {
		t.Fatalf("heap under MCL_FUTURE: %+v", m)
	}
	if res, _ := as.Mincore(lockBase+32*pg, 2*pg); hostPopulates() && (!res[0] || !res[1]) {
		t.Fatalf("heap under MCL_FUTURE not resident: %v", res)
	}
	if got, err := as.Brk(lockBase + 42*pg); !errors.Is(err, unix.EAGAIN) || got != lockBase+34*pg {
		t.Fatalf("Brk beyond Memlock = %#x, %v; want EAGAIN", got, err)
	}
	// MCL_CURRENT|MCL_ONFAULT within a raised limit: every mapping locked
	// on fault, nothing new resident; MCL_FUTURE is now off.
	if err := as.SetLimits(Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := as.Mlockall(unix.MCL_CURRENT | unix.MCL_ONFAULT); err != nil {
		t.Fatal(err)
	}
	for _, m := range as.Mappings() {
		if !m.Locked || !m.LockOnFault {
			t.Fatalf("after MCL_CURRENT|MCL_ONFAULT: %+v", m)
		}
	}
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.Read, Private: true})
	if m, _ := lockLookup(as, a); m.Locked {
		t.Fatal("Mlockall without MCL_FUTURE left MCL_FUTURE on")
	}
	// MCL_CURRENT: every page resident.
	if err := as.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE); err != nil {
		t.Fatal(err)
	}
	if s := lockState(t, as); !strings.HasSuffix(s, wantLock("resident 1111111111111100")) {
		t.Fatalf("after MCL_CURRENT: %s", s)
	}
	// Munlockall: nothing locked, nor later.
	if err := as.Munlockall(); err != nil {
		t.Fatal(err)
	}
	a = mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.Read, Private: true})
	if res, _ := as.Mincore(a, pg); hostPopulates() && res[0] {
		t.Fatal("a mapping made after Munlockall was populated")
	}
	for _, m := range as.Mappings() {
		if m.Locked || m.LockOnFault {
			t.Fatalf("after Munlockall: %+v", m)
		}
	}
	if ms := as.Mappings(); len(ms) > 5 {
		t.Fatalf("unlocked mappings did not merge back: %+v", ms)
	}
}

// TestMlockClone checks that Clone inherits the limits but neither the
// locks nor MCL_FUTURE, as fork does.
func TestMlockClone(t *testing.T) {
	lim := Limits{AS: 1 << 20, Data: 1 << 19, Stack: 1 << 18, Memlock: 1 << 17}
	as, err := New(Options{Size: 1 << 30, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	mustMmap(t, as, MmapOpts{Addr: lockBase, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, Locked: true})
	writeAt(t, as, lockBase, "parent")
	if err := as.Mlockall(unix.MCL_FUTURE); err != nil {
		t.Fatal(err)
	}
	c := mustClone(t, as)
	defer c.Close()
	if c.Limits() != lim {
		t.Fatalf("child limits %+v, want %+v", c.Limits(), lim)
	}
	if m, _ := lockLookup(c, lockBase); m.Locked {
		t.Fatal("the child inherited a lock")
	}
	if m, _ := lockLookup(as, lockBase); !m.Locked {
		t.Fatal("the parent lost its lock")
	}
	a := mustMmap(t, c, MmapOpts{Length: pg, Perms: hostarch.Read, Private: true})
	if m, _ := lockLookup(c, a); m.Locked {
		t.Fatal("the child inherited MCL_FUTURE")
	}
	if got := string(readAt(t, c, lockBase, 6)); got != "parent" {
		t.Fatalf("child reads %q", got)
	}
}

// lockLookup returns the mapping containing addr.
func lockLookup(as *AddressSpace, addr hostarch.Addr) (Mapping, bool) {
	for _, m := range as.Mappings() {
		if m.Range.Contains(addr) {
			return m, true
		}
	}
	return Mapping{}, false
}

// TestMlockMprotectWritable checks Linux's mprotect_fixup populate: a
// locked private file mapping made writable gets its private copies at
// once, so that later changes to the file no longer show through it; an
// unlocked one still shows them until written.
func TestMlockMprotectWritable(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(fmt.Sprintf("locked=%v", locked), func(t *testing.T) {
			f := tempFile(t, pattern(2*pg, 1), os.O_RDWR)
			as := newAS(t, 1<<30)
			a := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.Read, Private: true, File: f, Locked: locked})
			if err := as.Mprotect(a, 2*pg, hostarch.ReadWrite); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("changed"), 0); err != nil {
				t.Fatal(err)
			}
			got := string(readAt(t, as, a, 7))
			if locked && got == "changed" {
				t.Fatal("a locked private mapping made writable still shows the file's changes (no private copy)")
			}
			if !locked && got != "changed" {
				t.Fatalf("an unlocked private mapping never written reads %q, want the file's change", got)
			}
			if st := mustStats(t, as); (st.PrivateCopies == 2) != locked {
				t.Fatalf("PrivateCopies = %d (locked %v)", st.PrivateCopies, locked)
			}
		})
	}
}

// TestMlockCloneKeepsVMAs checks that the child of a space with a locked
// piece in a mapping shows the pieces apart, unlocked, as Linux's child
// does (dup_mmap clears VM_LOCKED but merges nothing, and each VMA gets an
// anon_vma of its own).
func TestMlockCloneKeepsVMAs(t *testing.T) {
	as := newAS(t, 1<<30)
	mustMmap(t, as, MmapOpts{Addr: lockBase, Length: 8 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, lockBase, "x")
	if err := as.Mlock(lockBase+2*pg, 2*pg, false); err != nil {
		t.Fatal(err)
	}
	c := mustClone(t, as)
	defer c.Close()
	// (The child's residency is not the point: only the mappings.)
	if s, _, _ := strings.Cut(lockState(t, c), "resident"); s != lr(0, 2)+"; "+lr(2, 4)+"; "+lr(4, 8)+"; " {
		t.Fatalf("child: %s", s)
	}
	if s, _, _ := strings.Cut(lockState(t, as), "resident"); s != lr(0, 2)+"; "+lr(2, 4)+" L; "+lr(4, 8)+"; " {
		t.Fatalf("parent: %s", s)
	}
}

// TestMlockallHugeSpace checks that Mlockall(MCL_CURRENT) of a sparse
// space of 2^40 bytes populates its few pages without walking the holes.
// (2^40 bytes suffice: the test counts lock holds, 262,144 if it walked
// them; a space of 2^46 could not be reserved beside another test's.)
func TestMlockallHugeSpace(t *testing.T) {
	as := newAS(t, 1<<40)
	hi := mustMmap(t, as, MmapOpts{Addr: 1<<40 - 2*pg, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	lo := mustMmap(t, as, MmapOpts{Addr: lockBase, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	before := as.populateHolds
	if err := as.Mlockall(unix.MCL_CURRENT); err != nil {
		t.Fatal(err)
	}
	// A lock hold per mapping (and per hole skipped), not per 4 MiB of the
	// 2^40 bytes.
	if holds := as.populateHolds - before; holds > 4 {
		t.Fatalf("Mlockall of a sparse 2^40-byte space took the lock %d times: it walks the holes", holds)
	}
	for _, a := range []hostarch.Addr{lo, hi, hi + pg} {
		if m, _ := lockLookup(as, a); !m.Locked {
			t.Fatalf("%#x not locked: %+v", a, m)
		}
		if res, _ := as.Mincore(a, pg); hostPopulates() && !res[0] {
			t.Fatalf("%#x not resident", a)
		}
	}
}
