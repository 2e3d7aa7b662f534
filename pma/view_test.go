package pma

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"golang.org/x/sys/unix"
)

func reserveT(t *testing.T, size uint64) *View {
	t.Helper()
	v, err := Reserve(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Release() })
	return v
}

func viewBlock(v *View, off uint64, n int) safemem.Block {
	addr := v.Base() + uintptr(off)
	// The view is not Go memory: convert without vet's unsafeptr check.
	return safemem.BlockFromUnsafePointer(*(*unsafe.Pointer)(unsafe.Pointer(&addr)), n)
}

// probeRead reads n bytes at view offset off without crashing.
func probeRead(v *View, off uint64, n int) ([]byte, int, error) {
	buf := make([]byte, n)
	got, err := safemem.Copy(safemem.BlockFromSafeSlice(buf), viewBlock(v, off, n))
	return buf, got, err
}

// probeWrite writes data at view offset off without crashing.
func probeWrite(v *View, off uint64, data []byte) (int, error) {
	return safemem.Copy(viewBlock(v, off, len(data)), safemem.BlockFromSafeSlice(data))
}

func memfd(t *testing.T, size int64) int {
	t.Helper()
	fd, err := unix.MemfdCreate("view-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	return fd
}

func wantSegv(t *testing.T, what string, n int, err error, wantN int, wantAddr uintptr) {
	t.Helper()
	var se safemem.SegvError
	if n != wantN || !errors.As(err, &se) || se.Addr != wantAddr {
		t.Fatalf("%s = %d, %v; want %d, SIGSEGV at %#x", what, n, err, wantN, wantAddr)
	}
}

func TestViewReserve(t *testing.T) {
	v := reserveT(t, 8*pg)
	if v.Size() != 8*pg || v.Base() == 0 || v.Base()%pg != 0 {
		t.Fatalf("Size %#x Base %#x", v.Size(), v.Base())
	}
	// Nothing is accessible in a fresh reservation.
	for _, off := range []uint64{0, 3 * pg, 8*pg - 1} {
		_, n, err := probeRead(v, off, 1)
		wantSegv(t, fmt.Sprintf("read at %#x", off), n, err, 0, v.Base()+uintptr(off))
		n, err = probeWrite(v, off, []byte{1})
		wantSegv(t, fmt.Sprintf("write at %#x", off), n, err, 0, v.Base()+uintptr(off))
	}
}

func TestViewMapFileProtectClear(t *testing.T) {
	v := reserveT(t, 8*pg)
	fd := memfd(t, 4*pg)
	data := make([]byte, 4*pg)
	for i := range data {
		data[i] = byte(i / pg * 16)
	}
	if _, err := unix.Pwrite(fd, data, 0); err != nil {
		t.Fatal(err)
	}
	// File pages 1..3 at view pages 2..4.
	if err := v.MapFile(2*pg, 3*pg, fd, pg, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		t.Fatal(err)
	}
	got, n, err := probeRead(v, 2*pg, 3*pg)
	if n != 3*pg || err != nil || string(got) != string(data[pg:]) {
		t.Fatalf("read mapped pages = %d, %v", n, err)
	}
	// A read across the end of the mapping stops at the exact byte.
	_, n, err = probeRead(v, 4*pg+100, 2*pg)
	wantSegv(t, "read across the end", n, err, pg-100, v.Base()+5*pg)
	// Writes through the view reach the file.
	if n, err := probeWrite(v, 3*pg+5, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	fbuf := make([]byte, 5)
	if _, err := unix.Pread(fd, fbuf, 2*pg+5); err != nil || string(fbuf) != "hello" {
		t.Fatalf("file has %q, %v", fbuf, err)
	}
	// Writes to the file show through the view.
	if _, err := unix.Pwrite(fd, []byte("world"), 3*pg); err != nil {
		t.Fatal(err)
	}
	if got, _, err := probeRead(v, 4*pg, 5); err != nil || string(got) != "world" {
		t.Fatalf("view has %q, %v", got, err)
	}

	for _, tc := range []struct {
		prot        int
		read, write bool
		name        string
	}{
		{unix.PROT_READ, true, false, "r"},
		{unix.PROT_NONE, false, false, "none"},
		{unix.PROT_READ | unix.PROT_WRITE, true, true, "rw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := v.Protect(3*pg, pg, tc.prot); err != nil {
				t.Fatal(err)
			}
			a := v.Base() + 3*pg
			_, n, err := probeRead(v, 3*pg, 8)
			if tc.read {
				if n != 8 || err != nil {
					t.Fatalf("read = %d, %v", n, err)
				}
			} else {
				wantSegv(t, "read", n, err, 0, a)
			}
			n, err = probeWrite(v, 3*pg, []byte("X"))
			if tc.write {
				if n != 1 || err != nil {
					t.Fatalf("write = %d, %v", n, err)
				}
			} else {
				wantSegv(t, "write", n, err, 0, a)
			}
			// A write from the page before stops exactly at the boundary.
			buf := make([]byte, 2*pg)
			n, err = probeWrite(v, 2*pg, buf)
			if tc.write {
				if n != 2*pg || err != nil {
					t.Fatalf("2-page write = %d, %v", n, err)
				}
			} else {
				wantSegv(t, "2-page write", n, err, pg, a)
			}
			// Neighbours keep their protection.
			if n, err := probeWrite(v, 4*pg, []byte("world")); n != 5 || err != nil {
				t.Fatalf("neighbour write = %d, %v", n, err)
			}
		})
	}

	// Clear: inaccessible again; remapping shows the file's bytes.
	if err := v.Clear(2*pg, 3*pg); err != nil {
		t.Fatal(err)
	}
	_, n, err = probeRead(v, 2*pg, 1)
	wantSegv(t, "read after Clear", n, err, 0, v.Base()+2*pg)
	if err := v.MapFile(6*pg, pg, fd, 3*pg, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	if got, _, err := probeRead(v, 6*pg, 5); err != nil || string(got) != "world" {
		t.Fatalf("remapped view has %q, %v", got, err)
	}
	n, err = probeWrite(v, 6*pg, []byte("x"))
	wantSegv(t, "write to read-only mapping", n, err, 0, v.Base()+6*pg)
	// Length 0 is a no-op for every method.
	if err := v.MapFile(pg, 0, -1, 0, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	if err := v.Clear(pg, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Protect(8*pg, 0, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	// A bad descriptor fails with the host's error.
	if err := v.MapFile(0, pg, -1, 0, unix.PROT_READ); !errors.Is(err, unix.EBADF) {
		t.Fatalf("MapFile(fd -1) = %v, want EBADF", err)
	}
}

func TestViewSIGBUS(t *testing.T) {
	v := reserveT(t, 4*pg)
	fd := memfd(t, 2*pg)
	if err := v.MapFile(0, 2*pg, fd, 0, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, pg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2*pg)
	n, err := safemem.Copy(safemem.BlockFromSafeSlice(buf), viewBlock(v, 0, 2*pg))
	var be safemem.BusError
	if n != pg || !errors.As(err, &be) || be.Addr != v.Base()+pg {
		t.Fatalf("read past EOF = %d, %v", n, err)
	}
}

func TestViewRelease(t *testing.T) {
	v, err := Reserve(4 * pg)
	if err != nil {
		t.Fatal(err)
	}
	base := v.Base()
	if err := v.Release(); err != nil {
		t.Fatal(err)
	}
	if v.Size() != 0 {
		t.Fatalf("Size after Release = %#x", v.Size())
	}
	if err := v.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	// The range is gone from the process: mincore says ENOMEM.
	vec := make([]byte, 4)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, base, 4*pg, uintptr(unsafe.Pointer(&vec[0]))); e != unix.ENOMEM {
		t.Fatalf("mincore of released view: %v", e)
	}
	expectPanic(t, "MapFile after Release", func() { v.MapFile(0, pg, -1, 0, 0) })
	expectPanic(t, "Protect after Release", func() { v.Protect(0, pg, 0) })
}

func TestViewPreconditions(t *testing.T) {
	for _, size := range []uint64{0, 1, pg - 1, pg + 1} {
		expectPanic(t, fmt.Sprintf("Reserve(%#x)", size), func() { Reserve(size) })
	}
	v := reserveT(t, 4*pg)
	for _, c := range []struct{ off, length uint64 }{
		{1, pg}, {pg, 1}, {pg, pg + 1}, {5 * pg, 0}, {4*pg + pg, pg}, {3 * pg, 2 * pg},
		{pg, ^uint64(0) &^ (pg - 1)}, {^uint64(0) &^ (pg - 1), 2 * pg},
	} {
		expectPanic(t, fmt.Sprintf("MapFile(%#x, %#x)", c.off, c.length), func() { v.MapFile(c.off, c.length, -1, 0, 0) })
		expectPanic(t, fmt.Sprintf("Clear(%#x, %#x)", c.off, c.length), func() { v.Clear(c.off, c.length) })
		expectPanic(t, fmt.Sprintf("Protect(%#x, %#x)", c.off, c.length), func() { v.Protect(c.off, c.length, 0) })
	}
	// The edges themselves are fine.
	if err := v.Clear(0, 4*pg); err != nil {
		t.Fatal(err)
	}
	if err := v.Clear(4*pg, 0); err != nil {
		t.Fatal(err)
	}
}

func TestHostProt(t *testing.T) {
	const r, w = unix.PROT_READ, unix.PROT_WRITE
	for _, tc := range []struct {
		perms hostarch.AccessType
		want  int
	}{
		{hostarch.NoAccess, unix.PROT_NONE},
		{hostarch.Read, r},
		{hostarch.Write, r | w},
		{hostarch.Execute, r},
		{hostarch.ReadWrite, r | w},
		{hostarch.AnyAccess, r | w},
		{hostarch.AccessType{Read: true, Execute: true}, r},
		{hostarch.AccessType{Write: true, Execute: true}, r | w},
	} {
		if got := HostProt(tc.perms); got != tc.want {
			t.Errorf("HostProt(%v) = %#x, want %#x", tc.perms, got, tc.want)
		}
	}
}

func TestMapCountError(t *testing.T) {
	err := hostLimitErr(unix.ENOMEM)
	if !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("%v does not wrap ENOMEM", err)
	}
	if want := "vm.max_map_count"; !strings.Contains(err.Error(), want) {
		t.Fatalf("%q does not mention %s", err, want)
	}
	if err := hostLimitErr(unix.EACCES); err != unix.EACCES {
		t.Fatalf("EACCES became %v", err)
	}
}
