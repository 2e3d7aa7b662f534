package addrspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

var (
	ctx   = context.Background()
	noOpt = usermem.IOOpts{}
)

func newAS(t testing.TB, size uint64) *AddressSpace {
	t.Helper()
	as, err := New(Options{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { as.Close() })
	return as
}

func mustMmap(t testing.TB, as *AddressSpace, o MmapOpts) hostarch.Addr {
	t.Helper()
	addr, err := as.Mmap(o)
	if err != nil {
		t.Fatalf("Mmap(%+v): %v", o, err)
	}
	return addr
}

// tempFile creates a file holding data and opens it with flag.
func tempFile(t testing.TB, data []byte, flag int) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(name, flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13) + seed
	}
	return b
}

// snapshot captures the mappings and the readable bytes of an address space.
func snapshot(t *testing.T, as *AddressSpace) string {
	t.Helper()
	var b strings.Builder
	for _, m := range as.Mappings() {
		fmt.Fprintf(&b, "%+v\n", m)
		buf := make([]byte, m.Range.Length())
		n, _ := as.CopyIn(ctx, m.Range.Start, buf, usermem.IOOpts{IgnorePermissions: true})
		fmt.Fprintf(&b, "%x\n", buf[:n])
	}
	return b.String()
}

func TestMmapErrorsChangeNothing(t *testing.T) {
	as := newAS(t, 64*pg)
	wo := tempFile(t, pattern(2*pg, 0), os.O_WRONLY)
	ro := tempFile(t, pattern(2*pg, 0), os.O_RDONLY)
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	base := mustMmap(t, as, MmapOpts{Addr: 8 * pg, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite})
	as.CopyOut(ctx, base, pattern(4*pg, 7), noOpt)
	before := snapshot(t, as)
	for _, tc := range []struct {
		name string
		o    MmapOpts
		want unix.Errno
	}{
		{"zero length", MmapOpts{Length: 0, Perms: hostarch.Read}, unix.EINVAL},
		{"huge length", MmapOpts{Length: ^uint64(0), Perms: hostarch.Read}, unix.ENOMEM},
		{"larger than the space", MmapOpts{Length: 64 * pg, Perms: hostarch.Read}, unix.ENOMEM},
		{"unaligned fixed", MmapOpts{Addr: base + 1, Length: pg, Fixed: true}, unix.EINVAL},
		{"page 0", MmapOpts{Addr: 0, Length: pg, Fixed: true}, unix.EPERM},
		{"beyond Size", MmapOpts{Addr: 63 * pg, Length: 2 * pg, Fixed: true}, unix.ENOMEM},
		{"overflowing fixed", MmapOpts{Addr: ^hostarch.Addr(0) &^ (pg - 1), Length: 2 * pg, Fixed: true}, unix.ENOMEM},
		{"unaligned offset", MmapOpts{Addr: base, Length: pg, Fixed: true, File: ro, Offset: 1}, unix.EINVAL},
		{"overflowing offset", MmapOpts{Addr: base, Length: pg, Fixed: true, File: ro, Offset: ^uint64(0) &^ (pg - 1)}, unix.EOVERFLOW},
		{"write-only file", MmapOpts{Addr: base, Length: pg, Fixed: true, File: wo, Perms: hostarch.Read}, unix.EACCES},
		{"directory", MmapOpts{Addr: base, Length: pg, Fixed: true, File: dir, Perms: hostarch.Read}, unix.ENODEV},
		{"shared write of read-only file", MmapOpts{Addr: base, Length: pg, Fixed: true, File: ro, Perms: hostarch.ReadWrite}, unix.EACCES},
		{"perms beyond MaxPerms", MmapOpts{Addr: base, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, MaxPerms: hostarch.Read}, unix.EACCES},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, err := as.Mmap(tc.o)
			if !errors.Is(err, tc.want) || addr != 0 {
				t.Fatalf("Mmap = %#x, %v; want %v", addr, err, tc.want)
			}
			if after := snapshot(t, as); after != before {
				t.Fatalf("a failed Mmap changed the address space:\n%s\nwas\n%s", after, before)
			}
		})
	}
	// No gap left: ENOMEM, nothing changed.
	if _, err := as.Mmap(MmapOpts{Length: 60 * pg, Perms: hostarch.Read}); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Mmap without a gap = %v", err)
	}
	if after := snapshot(t, as); after != before {
		t.Fatal("a failed Mmap changed the address space")
	}
}

func TestMunmapMprotectErrors(t *testing.T) {
	as := newAS(t, 64*pg)
	a := mustMmap(t, as, MmapOpts{Addr: 8 * pg, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, MaxPerms: hostarch.ReadWrite})
	as.CopyOut(ctx, a, pattern(4*pg, 3), noOpt)
	before := snapshot(t, as)
	for _, tc := range []struct {
		name string
		err  error
		want unix.Errno
	}{
		{"munmap unaligned", as.Munmap(a+1, pg), unix.EINVAL},
		{"munmap zero", as.Munmap(a, 0), unix.EINVAL},
		{"munmap beyond", as.Munmap(63*pg, 2*pg), unix.EINVAL},
		{"munmap huge", as.Munmap(a, ^uint64(0)), unix.EINVAL},
		{"mprotect unaligned", as.Mprotect(a+1, pg, hostarch.Read), unix.EINVAL},
		{"mprotect unmapped start", as.Mprotect(a-pg, 2*pg, hostarch.Read), unix.ENOMEM},
		{"mprotect beyond", as.Mprotect(63*pg, 2*pg, hostarch.Read), unix.ENOMEM},
		{"mprotect huge", as.Mprotect(a, ^uint64(0), hostarch.Read), unix.ENOMEM},
		{"mprotect beyond MaxPerms", as.Mprotect(a, pg, hostarch.AnyAccess), unix.EACCES},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if after := snapshot(t, as); after != before {
		t.Fatal("failed calls changed the address space")
	}
	if err := as.Mprotect(a, 0, hostarch.NoAccess); err != nil {
		t.Errorf("mprotect of length 0 = %v", err)
	}
	if err := as.Munmap(40*pg, pg); err != nil {
		t.Errorf("munmap of unmapped pages = %v", err)
	}
	// As on Linux, pages before a hole keep their new protection.
	if err := as.Mprotect(a, 6*pg, hostarch.Read); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("mprotect over a hole = %v", err)
	}
	if ms := as.Mappings(); len(ms) != 1 || ms[0].Perms != hostarch.Read {
		t.Fatalf("after mprotect over a hole: %+v", ms)
	}
}

func TestFaultErrors(t *testing.T) {
	as := newAS(t, 64*pg)
	a := mustMmap(t, as, MmapOpts{Addr: 8 * pg, Length: 3 * pg, Fixed: true, Perms: hostarch.ReadWrite})
	if err := as.Mprotect(a+pg, pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	if err := as.Munmap(a+2*pg, pg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3*pg)
	for _, tc := range []struct {
		name   string
		do     func() (int64, error)
		n      int64
		addr   hostarch.Addr
		access hostarch.AccessType
		reason FaultReason
	}{
		{"write to read-only", func() (int64, error) { n, err := as.CopyOut(ctx, a+10, buf, noOpt); return int64(n), err }, pg - 10, a + pg, hostarch.Write, FaultProtection},
		{"read of unmapped", func() (int64, error) { n, err := as.CopyIn(ctx, a+100, buf, noOpt); return int64(n), err }, 2*pg - 100, a + 2*pg, hostarch.Read, FaultUnmapped},
		{"zero of read-only", func() (int64, error) { return as.ZeroOut(ctx, a+pg-1, 5, noOpt) }, 1, a + pg, hostarch.Write, FaultProtection},
		{"beyond Size", func() (int64, error) { n, err := as.CopyIn(ctx, 63*pg, buf[:2*pg], noOpt); return int64(n), err }, 0, 63 * pg, hostarch.Read, FaultUnmapped},
		{"overflow", func() (int64, error) {
			n, err := as.CopyIn(ctx, ^hostarch.Addr(0)-3, buf[:8], noOpt)
			return int64(n), err
		}, 0, ^hostarch.Addr(0) - 3, hostarch.Read, FaultUnmapped},
		{"swap on read-only", func() (int64, error) { _, err := as.SwapUint32(ctx, a+pg, 1, noOpt); return 0, err }, 0, a + pg, hostarch.ReadWrite, FaultProtection},
		{"load of page 0", func() (int64, error) { _, err := as.LoadUint32(ctx, 0, noOpt); return 0, err }, 0, 0, hostarch.Read, FaultUnmapped},
		// The fast paths' range checks at the 2^64 and Size edges.
		{"copyout at 2^64-1", func() (int64, error) {
			n, err := as.CopyOut(ctx, ^hostarch.Addr(0), buf[:1], noOpt)
			return int64(n), err
		}, 0, ^hostarch.Addr(0), hostarch.Write, FaultUnmapped},
		{"zero of 2^63-1 bytes", func() (int64, error) { return as.ZeroOut(ctx, a, math.MaxInt64, noOpt) }, 0, a, hostarch.Write, FaultUnmapped},
		{"swap at 2^64-4", func() (int64, error) { _, err := as.SwapUint32(ctx, ^hostarch.Addr(3), 1, noOpt); return 0, err }, 0, ^hostarch.Addr(3), hostarch.ReadWrite, FaultUnmapped},
		{"cas at 2^64-4", func() (int64, error) {
			_, err := as.CompareAndSwapUint32(ctx, ^hostarch.Addr(3), 0, 1, noOpt)
			return 0, err
		}, 0, ^hostarch.Addr(3), hostarch.ReadWrite, FaultUnmapped},
		{"load at 2^64-4 through the max view", func() (int64, error) {
			_, err := as.LoadUint32(ctx, ^hostarch.Addr(3), usermem.IOOpts{IgnorePermissions: true})
			return 0, err
		}, 0, ^hostarch.Addr(3), hostarch.Read, FaultUnmapped},
		{"load at Size", func() (int64, error) { _, err := as.LoadUint32(ctx, 64*pg, noOpt); return 0, err }, 0, 64 * pg, hostarch.Read, FaultUnmapped},
		{"load of Size's last word", func() (int64, error) { _, err := as.LoadUint32(ctx, 64*pg-4, noOpt); return 0, err }, 0, 64*pg - 4, hostarch.Read, FaultUnmapped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.do()
			var fe *FaultError
			if n != tc.n || !errors.Is(err, unix.EFAULT) || !errors.As(err, &fe) {
				t.Fatalf("got %d, %v; want %d, EFAULT", n, err, tc.n)
			}
			if fe.Addr != tc.addr || fe.Access != tc.access || fe.Reason != tc.reason {
				t.Fatalf("FaultError %+v; want addr %#x access %v reason %v", *fe, tc.addr, tc.access, tc.reason)
			}
		})
	}
	// Misaligned atomics: EINVAL, memory untouched.
	as.CopyOut(ctx, a, []byte{1, 2, 3, 4, 5, 6, 7, 8}, noOpt)
	for name, f := range map[string]func() error{
		"swap": func() error { _, err := as.SwapUint32(ctx, a+1, 0, noOpt); return err },
		"cas":  func() error { _, err := as.CompareAndSwapUint32(ctx, a+2, 0x04030201, 0, noOpt); return err },
		"load": func() error { _, err := as.LoadUint32(ctx, a+3, noOpt); return err },
	} {
		if err := f(); !errors.Is(err, unix.EINVAL) {
			t.Errorf("misaligned %s = %v", name, err)
		}
	}
	got := make([]byte, 8)
	as.CopyIn(ctx, a, got, noOpt)
	if !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("misaligned atomics changed memory: %v", got)
	}
	if n, err := as.ZeroOut(ctx, a, -1, noOpt); n != 0 || !errors.Is(err, unix.EINVAL) {
		t.Errorf("ZeroOut(-1) = %d, %v", n, err)
	}
}

func TestPermissions(t *testing.T) {
	as := newAS(t, 64*pg)
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.NoAccess, MaxPerms: hostarch.ReadWrite})
	buf := []byte("data")
	if n, err := as.CopyOut(ctx, a, buf, noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("CopyOut to PROT_NONE = %d, %v", n, err)
	}
	ign := usermem.IOOpts{IgnorePermissions: true}
	if n, err := as.CopyOut(ctx, a, buf, ign); n != 4 || err != nil {
		t.Fatalf("CopyOut ignoring permissions = %d, %v", n, err)
	}
	if err := as.Mprotect(a, pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if n, err := as.CopyIn(ctx, a, got, noOpt); n != 4 || err != nil || string(got) != "data" {
		t.Fatalf("CopyIn = %d, %v, %q", n, err, got)
	}
	// MaxPerms is never bypassed.
	b := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.Read, MaxPerms: hostarch.Read})
	if n, err := as.CopyOut(ctx, b, buf, ign); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("CopyOut beyond MaxPerms = %d, %v", n, err)
	}
	if err := as.Mprotect(b, pg, hostarch.ReadWrite); !errors.Is(err, unix.EACCES) {
		t.Fatalf("Mprotect beyond MaxPerms = %v", err)
	}
	// Write and execute imply read, as on x86.
	c := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.Write})
	if n, err := as.CopyIn(ctx, c, got, noOpt); n != 4 || err != nil {
		t.Fatalf("CopyIn of write-only = %d, %v", n, err)
	}
}

func TestSharedFile(t *testing.T) {
	data := pattern(3*pg, 1)
	f := tempFile(t, data, os.O_RDWR)
	as1, as2 := newAS(t, 0), newAS(t, 0)
	a1 := mustMmap(t, as1, MmapOpts{Length: 3 * pg, Perms: hostarch.ReadWrite, File: f})
	a2 := mustMmap(t, as2, MmapOpts{Length: 2 * pg, Perms: hostarch.Read, File: f, Offset: pg})
	if n, err := as1.CopyOut(ctx, a1+pg+5, []byte("shared!"), noOpt); n != 7 || err != nil {
		t.Fatal(n, err)
	}
	onDisk, _ := os.ReadFile(f.Name())
	if string(onDisk[pg+5:pg+12]) != "shared!" {
		t.Fatalf("file holds %q", onDisk[pg+5:pg+12])
	}
	got := make([]byte, 7)
	if n, err := as2.CopyIn(ctx, a2+5, got, noOpt); n != 7 || err != nil || string(got) != "shared!" {
		t.Fatalf("other address space reads %q (%d, %v)", got, n, err)
	}
	// The caller may close its descriptor; the mapping keeps its own.
	f.Close()
	if n, err := as1.CopyOut(ctx, a1, []byte("after close"), noOpt); n != 11 || err != nil {
		t.Fatal(n, err)
	}
	onDisk, _ = os.ReadFile(f.Name())
	if !bytes.HasPrefix(onDisk, []byte("after close")) {
		t.Fatal("write after close did not reach the file")
	}
	ms := as1.Mappings()
	if len(ms) != 1 || ms[0].MaxPerms != hostarch.AnyAccess || ms[0].FileName != f.Name() || ms[0].Private {
		t.Fatalf("Mappings = %+v", ms)
	}
}

func TestPrivateFileCOW(t *testing.T) {
	data := pattern(3*pg, 2)
	f := tempFile(t, data, os.O_RDONLY)
	as := newAS(t, 0)
	a := mustMmap(t, as, MmapOpts{Length: 3 * pg, Perms: hostarch.ReadWrite, Private: true, File: f})
	// A write across two pages breaks copy-on-write on both and completes.
	if n, err := as.CopyOut(ctx, a+pg-3, []byte("private"), noOpt); n != 7 || err != nil {
		t.Fatal(n, err)
	}
	if onDisk, _ := os.ReadFile(f.Name()); !bytes.Equal(onDisk, data) {
		t.Fatal("a private mapping changed the file")
	}
	got := make([]byte, 3*pg)
	as.CopyIn(ctx, a, got, noOpt)
	want := append([]byte(nil), data...)
	copy(want[pg-3:], "private")
	if !bytes.Equal(got, want) {
		t.Fatal("private mapping does not read back its own write")
	}
	// Untouched pages still show the file: a change to the file is visible
	// there (as on Linux), not on copied pages.
	w, err := os.OpenFile(f.Name(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteAt([]byte("FILE"), 2*pg+10)
	w.WriteAt([]byte("FILE"), 10)
	as.CopyIn(ctx, a, got, noOpt)
	if string(got[2*pg+10:2*pg+14]) != "FILE" || string(got[10:14]) != string(data[10:14]) {
		t.Fatalf("after the file changed: untouched page %q, copied page %q", got[2*pg+10:2*pg+14], got[10:14])
	}
	// Atomics break COW too.
	if _, err := as.SwapUint32(ctx, a+2*pg, 7, noOpt); err != nil {
		t.Fatal(err)
	}
	if v, _ := as.LoadUint32(ctx, a+2*pg, noOpt); v != 7 {
		t.Fatalf("LoadUint32 = %d", v)
	}
	// Read-only private: write faults; with IgnorePermissions (MaxPerms rwx)
	// it copies.
	if err := as.Mprotect(a, 3*pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	if n, err := as.CopyOut(ctx, a+pg, []byte("x"), noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("write to read-only private = %d, %v", n, err)
	}
	if n, err := as.CopyOut(ctx, a+pg, []byte("x"), usermem.IOOpts{IgnorePermissions: true}); n != 1 || err != nil {
		t.Fatalf("forced write to private = %d, %v", n, err)
	}
	copy(data[10:], "FILE")
	if onDisk, _ := os.ReadFile(f.Name()); !bytes.Equal(onDisk[:2*pg], data[:2*pg]) {
		t.Fatal("a private mapping changed the file")
	}
}

func TestTruncatedFile(t *testing.T) {
	f := tempFile(t, pattern(4*pg, 3), os.O_RDWR)
	as := newAS(t, 0)
	shared := mustMmap(t, as, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, File: f})
	private := mustMmap(t, as, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, File: f, Private: true})
	if err := f.Truncate(2*pg + 100); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4*pg)
	for _, tc := range []struct {
		name string
		do   func() (int, error)
	}{
		{"shared read", func() (int, error) { return as.CopyIn(ctx, shared, buf, noOpt) }},
		{"shared write", func() (int, error) { return as.CopyOut(ctx, shared, buf, noOpt) }},
		{"private read", func() (int, error) { return as.CopyIn(ctx, private, buf, noOpt) }},
		{"private write", func() (int, error) { return as.CopyOut(ctx, private, buf, noOpt) }},
	} {
		n, err := tc.do()
		var fe *FaultError
		// The page holding EOF stays accessible (its tail reads as zero).
		if n != 3*pg || !errors.As(err, &fe) || fe.Reason != FaultBus || fe.Addr%(4*pg) != 3*pg%(4*pg) && fe.Addr != shared+3*pg && fe.Addr != private+3*pg {
			t.Errorf("%s = %d, %v; want %d and a bus error", tc.name, n, err, 3*pg)
		}
	}
}

func TestSplitMergeAndMaps(t *testing.T) {
	as := newAS(t, 1<<30)
	a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 8 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	if err := as.Mprotect(a+2*pg, 2*pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	if n := len(as.Mappings()); n != 3 {
		t.Fatalf("after mprotect of the middle: %d mappings", n)
	}
	if err := as.Mprotect(a+2*pg, 2*pg, hostarch.ReadWrite); err != nil {
		t.Fatal(err)
	}
	if n := len(as.Mappings()); n != 1 {
		t.Fatalf("after mprotect back: %d mappings, want 1 (merged)", n)
	}
	if err := as.Munmap(a+3*pg, pg); err != nil {
		t.Fatal(err)
	}
	// Mapping the hole again with the same attributes merges all three.
	mustMmap(t, as, MmapOpts{Addr: a + 3*pg, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	if n := len(as.Mappings()); n != 1 {
		t.Fatalf("after filling the hole: %d mappings, want 1", n)
	}
	f := tempFile(t, pattern(2*pg, 0), os.O_RDONLY)
	mustMmap(t, as, MmapOpts{Addr: 0x40000, Length: 2 * pg, Fixed: true, Perms: hostarch.Read, File: f, Offset: pg})
	mustMmap(t, as, MmapOpts{Addr: 0x50000, Length: pg, Fixed: true, Perms: hostarch.ReadWrite})
	var st unix.Stat_t
	unix.Stat(f.Name(), &st)
	var b bytes.Buffer
	if err := as.WriteMaps(&b); err != nil {
		t.Fatal(err)
	}
	pad := func(s string) string { return s + strings.Repeat(" ", 73-len(s)) }
	want := "00010000-00018000 rw-p 00000000 00:00 0 \n" +
		pad(fmt.Sprintf("00040000-00042000 r--s 00001000 %02x:%02x %d ", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)) + f.Name() + "\n" +
		pad("00050000-00051000 rw-s 00000000 00:00 0 ") + "/dev/zero (deleted)\n"
	if b.String() != want {
		t.Fatalf("WriteMaps:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestPlacement(t *testing.T) {
	as := newAS(t, 32*pg)
	a := mustMmap(t, as, MmapOpts{Length: 2 * pg})
	if a != 30*pg {
		t.Fatalf("first mapping at %#x, want the top", a)
	}
	b := mustMmap(t, as, MmapOpts{Length: pg})
	if b != 29*pg {
		t.Fatalf("second mapping at %#x", b)
	}
	c := mustMmap(t, as, MmapOpts{Addr: 5*pg + 7, Length: pg})
	if c != 5*pg {
		t.Fatalf("hinted mapping at %#x, want the hint rounded down", c)
	}
	d := mustMmap(t, as, MmapOpts{Addr: 5 * pg, Length: pg})
	if d != 28*pg {
		t.Fatalf("mapping with a taken hint at %#x", d)
	}
	// Fixed replaces.
	mustMmap(t, as, MmapOpts{Addr: 29 * pg, Length: 2 * pg, Fixed: true, Perms: hostarch.Read})
	ms := as.Mappings()
	if len(ms) != 4 || ms[2].Range != (hostarch.AddrRange{Start: 29 * pg, End: 31 * pg}) || ms[2].Perms != hostarch.Read {
		t.Fatalf("after a fixed replacement: %+v", ms)
	}
}

func TestSizes(t *testing.T) {
	as := newAS(t, 0)
	if as.Size() < 64<<30 {
		t.Errorf("default size %#x < 64 GiB", as.Size())
	}
	big := newAS(t, 1<<40)
	top := hostarch.Addr(1<<40 - pg)
	mustMmap(t, big, MmapOpts{Addr: top, Length: pg, Fixed: true, Perms: hostarch.ReadWrite})
	if n, err := big.CopyOut(ctx, top+pg-4, []byte{1, 2, 3, 4}, noOpt); n != 4 || err != nil {
		t.Fatalf("copy at the top of 1 TiB: %d, %v", n, err)
	}
	for _, tc := range []struct {
		size uint64
		want unix.Errno
	}{
		{pg + 1, unix.EINVAL},
		{pg, unix.EINVAL},
		{1 << 61, unix.ENOMEM},
	} {
		if as, err := New(Options{Size: tc.size}); !errors.Is(err, tc.want) {
			t.Errorf("New(%#x) = %v, %v; want %v", tc.size, as, err, tc.want)
		}
	}
}

func TestClosed(t *testing.T) {
	as, err := New(Options{Size: 64 * pg})
	if err != nil {
		t.Fatal(err)
	}
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite})
	if err := as.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	var ioErrs []error
	_, err = as.CopyIn(ctx, a, buf, noOpt)
	ioErrs = append(ioErrs, err)
	_, err = as.CopyOut(ctx, a, buf, noOpt)
	ioErrs = append(ioErrs, err)
	_, err = as.ZeroOut(ctx, a, 8, noOpt)
	ioErrs = append(ioErrs, err)
	_, err = as.SwapUint32(ctx, a, 1, noOpt)
	ioErrs = append(ioErrs, err)
	_, err = as.CopyInTo(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + 8}), &safemem.BlockSeqWriter{}, noOpt)
	ioErrs = append(ioErrs, err)
	for i, err := range ioErrs {
		if !errors.Is(err, ErrClosed) || !errors.Is(err, unix.EFAULT) {
			t.Errorf("IO call %d after Close: %v", i, err)
		}
	}
	if _, err := as.Mmap(MmapOpts{Length: pg}); !errors.Is(err, ErrClosed) {
		t.Errorf("Mmap after Close: %v", err)
	}
	if err := as.Munmap(a, pg); !errors.Is(err, ErrClosed) {
		t.Errorf("Munmap after Close: %v", err)
	}
	if err := as.Mprotect(a, pg, hostarch.Read); !errors.Is(err, ErrClosed) {
		t.Errorf("Mprotect after Close: %v", err)
	}
	if err := as.Close(); !errors.Is(err, ErrClosed) || !errors.Is(err, unix.EBADF) {
		t.Errorf("second Close: %v", err)
	}
	if as.Mappings() != nil {
		t.Error("Mappings after Close")
	}
}

// recordingWriter keeps the blocks it is handed.
type recordingWriter struct {
	blocks []safemem.Block
	out    bytes.Buffer
}

func (w *recordingWriter) WriteFromBlocks(srcs safemem.BlockSeq) (uint64, error) {
	for s := srcs; !s.IsEmpty(); s = s.Tail() {
		w.blocks = append(w.blocks, s.Head())
	}
	return safemem.FromIOWriter{Writer: &w.out}.WriteFromBlocks(srcs)
}

func TestVectored(t *testing.T) {
	as := newAS(t, 64*pg)
	a := mustMmap(t, as, MmapOpts{Addr: 8 * pg, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite})
	ars := hostarch.AddrRangeSeqFromSlice([]hostarch.AddrRange{
		{Start: a + 10, End: a + 20},
		{Start: a + pg, End: a + pg},
		{Start: a + 2*pg - 5, End: a + 2*pg + 5},
	})
	src := []byte("0123456789abcdefghij")
	n, err := as.CopyOutFrom(ctx, ars, safemem.FromIOReader{Reader: bytes.NewReader(src)}, noOpt)
	if n != 20 || err != nil {
		t.Fatalf("CopyOutFrom = %d, %v", n, err)
	}
	w := &recordingWriter{}
	n, err = as.CopyInTo(ctx, ars, w, noOpt)
	if n != 20 || err != nil || w.out.String() != string(src) {
		t.Fatalf("CopyInTo = %d, %v, %q", n, err, w.out.String())
	}
	// Zero-copy: the writer saw blocks of the view itself.
	if len(w.blocks) != 2 || !w.blocks[0].NeedSafecopy() || w.blocks[0].Len() != 10 {
		t.Fatalf("blocks: %v", w.blocks)
	}
	// A gap: the exact total before it, and EFAULT.
	if err := as.Munmap(a+2*pg, pg); err != nil {
		t.Fatal(err)
	}
	w = &recordingWriter{}
	n, err = as.CopyInTo(ctx, ars, w, noOpt)
	if n != 15 || !errors.Is(err, unix.EFAULT) || w.out.String() != "0123456789abcde" {
		t.Fatalf("CopyInTo over a gap = %d, %v, %q", n, err, w.out.String())
	}
	n, err = as.CopyOutFrom(ctx, ars, safemem.FromIOReader{Reader: bytes.NewReader(src)}, noOpt)
	var fe *FaultError
	if n != 15 || !errors.As(err, &fe) || fe.Addr != a+2*pg {
		t.Fatalf("CopyOutFrom over a gap = %d, %v", n, err)
	}
	// A range beyond Size fails whole.
	bad := hostarch.AddrRangeSeqFromSlice([]hostarch.AddrRange{{Start: a, End: a + 4}, {Start: 63 * pg, End: 65 * pg}})
	if n, err := as.CopyInTo(ctx, bad, w, noOpt); n != 0 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("CopyInTo beyond Size = %d, %v", n, err)
	}
	// Private file pages are made writable before the reader runs, and a
	// read-only page ends the writable prefix.
	f := tempFile(t, pattern(2*pg, 9), os.O_RDONLY)
	p := mustMmap(t, as, MmapOpts{Addr: 20 * pg, Length: 2 * pg, Fixed: true, Perms: hostarch.ReadWrite, File: f, Private: true})
	mustMmap(t, as, MmapOpts{Addr: 22 * pg, Length: pg, Fixed: true, Perms: hostarch.Read})
	calls := 0
	reader := safemem.ReaderFunc(func(dsts safemem.BlockSeq) (uint64, error) {
		calls++
		return safemem.FromIOReader{Reader: bytes.NewReader(bytes.Repeat([]byte{'z'}, 3*pg))}.ReadToBlocks(dsts)
	})
	n, err = as.CopyOutFrom(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: p + 100, End: p + 3*pg}), reader, noOpt)
	if n != 2*pg-100 || !errors.As(err, &fe) || fe.Addr != p+2*pg || fe.Reason != FaultProtection || calls != 1 {
		t.Fatalf("CopyOutFrom over COW pages = %d, %v (%d calls)", n, err, calls)
	}
	if onDisk, _ := os.ReadFile(f.Name()); !bytes.Equal(onDisk, pattern(2*pg, 9)) {
		t.Fatal("CopyOutFrom changed a privately mapped file")
	}
}

func TestFaultOutsideViewPanics(t *testing.T) {
	as := newAS(t, 64*pg)
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite})
	host, err := unix.Mmap(-1, 0, pg, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(host)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "outside the address space") {
			t.Fatalf("recover() = %v", r)
		}
	}()
	as.CopyIn(ctx, a, host, noOpt)
	t.Fatal("a fault in the caller's buffer was swallowed")
}

// TestConcurrentCopiesAndMappings copies from 8 goroutines while another
// maps and unmaps other regions, under the race detector.
func TestConcurrentCopiesAndMappings(t *testing.T) {
	as := newAS(t, 1<<30)
	const workers = 8
	var bases [workers]hostarch.Addr
	for i := range bases {
		bases[i] = mustMmap(t, as, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite})
	}
	f := tempFile(t, pattern(4*pg, 5), os.O_RDWR)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			src := pattern(3*pg, byte(i))
			dst := make([]byte, 3*pg)
			for iter := 0; ; iter++ {
				select {
				case <-stop:
					return
				default:
				}
				off := hostarch.Addr(iter % pg)
				if n, err := as.CopyOut(ctx, bases[i]+off, src, noOpt); n != len(src) || err != nil {
					errs <- fmt.Errorf("worker %d CopyOut: %d, %v", i, n, err)
					return
				}
				if n, err := as.CopyIn(ctx, bases[i]+off, dst, noOpt); n != len(dst) || err != nil || !bytes.Equal(dst, src) {
					errs <- fmt.Errorf("worker %d CopyIn: %d, %v", i, n, err)
					return
				}
				if _, err := as.CompareAndSwapUint32(ctx, bases[i]+3*pg, uint32(iter), uint32(iter+1), noOpt); err != nil {
					errs <- fmt.Errorf("worker %d CAS: %v", i, err)
					return
				}
			}
		}(i)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(stop)
		for iter := 0; iter < 300; iter++ {
			a, err := as.Mmap(MmapOpts{Length: uint64(iter%4+1) * pg, Perms: hostarch.ReadWrite, File: f, Private: iter%2 == 0})
			if err != nil {
				errs <- err
				return
			}
			as.CopyOut(ctx, a, []byte("cow"), noOpt)
			if err := as.Mprotect(a, pg, hostarch.Read); err != nil {
				errs <- err
				return
			}
			if err := as.Munmap(a, uint64(iter%4+1)*pg); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCopyRacingMunmap checks that a copy racing with Munmap of its own
// range sees, page by page, the old mapping or EFAULT — never a crash.
func TestCopyRacingMunmap(t *testing.T) {
	as := newAS(t, 1<<30)
	var wg sync.WaitGroup
	for iter := 0; iter < 200; iter++ {
		a := mustMmap(t, as, MmapOpts{Length: 16 * pg, Perms: hostarch.ReadWrite})
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16*pg)
			n, err := as.CopyIn(ctx, a, buf, noOpt)
			if (n == len(buf)) != (err == nil) || (err != nil && !errors.Is(err, unix.EFAULT)) {
				t.Errorf("racing CopyIn = %d, %v", n, err)
			}
		}()
		if err := as.Munmap(a, 16*pg); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// mapsLines returns the number of lines of /proc/self/maps, and of those that
// are the address spaces' own: memory files, the mapped test file, and view
// reservations of viewSize bytes.
func mapsLines(t *testing.T, file string, viewSize uint64) (all, ours int) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		all++
		var lo, hi uint64
		fmt.Sscanf(line, "%x-%x", &lo, &hi)
		if strings.Contains(line, "memfd:mmsim") || strings.Contains(line, file) || hi-lo == viewSize {
			ours++
		}
	}
	return all, ours
}

// waitCollected runs the garbage collector until the views of closed
// address spaces are released and the process reserves no more than
// reserved bytes for views.
func waitCollected(t *testing.T, reserved uint64) {
	t.Helper()
	for i := 0; i < 200; i++ {
		runtime.GC()
		if HostStats().ReservedBytes <= reserved {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("views of closed address spaces not released: %d bytes reserved, want %d", HostStats().ReservedBytes, reserved)
}

// TestNoLeaks creates, uses and closes 1,000 address spaces and checks that
// the process's descriptors and host mappings are back where they started.
func TestNoLeaks(t *testing.T) {
	const size = 1<<30 + 7*pg // a size nothing else in the process maps
	f := tempFile(t, pattern(2*pg, 1), os.O_RDWR)
	use := func() {
		as, err := New(Options{Size: size})
		if err != nil {
			t.Fatal(err)
		}
		a := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite})
		b := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, File: f, Private: true})
		c := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, File: f})
		as.CopyOut(ctx, a, []byte("x"), noOpt)
		as.CopyOut(ctx, b, []byte("y"), noOpt)
		as.CopyIn(ctx, c, make([]byte, 8), noOpt)
		as.Munmap(a, pg)
		child, err := as.Clone()
		if err != nil {
			t.Fatal(err)
		}
		child.CopyOut(ctx, b, []byte("z"), noOpt)
		if err := as.Close(); err != nil {
			t.Fatal(err)
		}
		if err := child.Close(); err != nil {
			t.Fatal(err)
		}
	}
	use() // warm up lazily created runtime state (threads, buffers)
	waitCollected(t, 0)
	fds := countFDs(t)
	all, ours := mapsLines(t, f.Name(), size)
	hs := HostStats()
	for i := 0; i < 1000; i++ {
		use()
	}
	// Closed spaces keep their views reserved until they are unreachable.
	waitCollected(t, hs.ReservedBytes)
	if got := HostStats(); got.Mappings != hs.Mappings || got.Committed != hs.Committed {
		t.Errorf("host account: %+v before, %+v after", hs, got)
	}
	if got := countFDs(t); got != fds {
		t.Errorf("open descriptors: %d before, %d after", fds, got)
	}
	gotAll, gotOurs := mapsLines(t, f.Name(), size)
	if gotOurs != ours || ours != 0 {
		t.Errorf("address-space mappings in /proc/self/maps: %d before, %d after", ours, gotOurs)
	}
	// The Go runtime (and the race detector's shadow memory) may map more
	// as the heap grows (closed spaces wait for the collector); allow it a
	// little.
	if gotAll > all+16 {
		t.Errorf("/proc/self/maps lines: %d before, %d after", all, gotAll)
	}
}
