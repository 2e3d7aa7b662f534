//go:build linux && (amd64 || arm64)

package safecopy

import (
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

// region is an anonymous host mapping for tests.
type region struct {
	b []byte
}

func mapRegion(t testing.TB, pages int) region {
	t.Helper()
	b, err := unix.Mmap(-1, 0, pages*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return region{b}
}

func (r region) addr() uintptr { return uintptr(unsafe.Pointer(&r.b[0])) }

// protect sets the protection of pages [first, first+count).
func (r region) protect(t testing.TB, first, count, prot int) {
	t.Helper()
	if err := unix.Mprotect(r.b[first*pageSize:(first+count)*pageSize], prot); err != nil {
		t.Fatalf("mprotect: %v", err)
	}
}

// ptr converts a host address outside the Go heap (mmap'ed memory) to a
// pointer; spelled so because vet cannot know the memory is not Go's.
func ptr(addr uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&addr)) }

// bytesAt views n bytes of host memory at addr.
func bytesAt(addr, n uintptr) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(ptr(addr)), n)
}

func fill(b []byte, seed byte) {
	for i := range b {
		b[i] = byte(i*7) + seed
	}
}

// copyCase is one Copy whose first inaccessible byte is at index want (want
// >= n means none).
type copyCase struct {
	dst, src, n, want uintptr
	badSide           string // "src" or "dst"
	wantSig           unix.Signal
}

func (c copyCase) check(t *testing.T) {
	t.Helper()
	// Give the accessible destination bytes a value the copy must replace.
	end := min(c.n, c.want)
	for i := uintptr(0); i < end; i++ {
		*(*byte)(ptr(c.dst + i)) = ^*(*byte)(ptr(c.src + i))
	}
	done, fault, sig := uCopy(c.dst, c.src, c.n)
	if c.want >= c.n {
		if done != c.n || fault != 0 || sig != 0 {
			t.Fatalf("uCopy(%#x, %#x, %d) = (%d, %#x, %v), want (%d, 0, 0)", c.dst, c.src, c.n, done, fault, sig, c.n)
		}
	} else {
		wantFault := c.src + c.want
		if c.badSide == "dst" {
			wantFault = c.dst + c.want
		}
		if done != c.want || fault != wantFault || sig != c.wantSig {
			t.Fatalf("uCopy(%#x, %#x, %d) = (%d, %#x, %v), want (%d, %#x, %v)", c.dst, c.src, c.n, done, fault, sig, c.want, wantFault, c.wantSig)
		}
	}
	if !bytes.Equal(bytesAt(c.dst, end), bytesAt(c.src, end)) {
		t.Fatalf("uCopy(%#x, %#x, %d): the %d bytes before the fault differ", c.dst, c.src, c.n, end)
	}
}

// smallOffsets are the distances from a buffer's start to the bad page used
// by the small-length sweeps: every one up to 80, then a stride.
func smallOffsets() []uintptr {
	var o []uintptr
	for i := uintptr(0); i <= 300; i++ {
		if i <= 80 || i%7 == 0 || i == 255 || i == 256 || i == 257 {
			o = append(o, i)
		}
	}
	return o
}

// TestCopySmall sweeps every length 0..300 and offsets of the bad page
// 0..300 bytes into the buffer, with the bad page on either side.
func TestCopySmall(t *testing.T) {
	withStrategies(t, func(t *testing.T) {
		for _, tc := range []struct {
			side string
			prot int
		}{{"src", unix.PROT_NONE}, {"dst", unix.PROT_NONE}, {"dst", unix.PROT_READ}} {
			t.Run(fmt.Sprintf("%s-prot%d", tc.side, tc.prot), func(t *testing.T) {
				r := mapRegion(t, 4) // [good good bad good]
				r.protect(t, 2, 1, tc.prot)
				other := mapRegion(t, 1)
				fill(r.b[:2*pageSize], 3)
				fill(other.b, 5)
				boundary := r.addr() + 2*pageSize
				for _, off := range smallOffsets() {
					for n := uintptr(0); n <= 300; n++ {
						c := copyCase{n: n, want: off, badSide: tc.side, wantSig: unix.SIGSEGV}
						if tc.side == "src" {
							c.src, c.dst = boundary-off, other.addr()
						} else {
							c.src, c.dst = other.addr(), boundary-off
						}
						c.check(t)
					}
				}
			})
		}
	})
}

// TestCopyLarge puts the bad page at the start, middle and end of 4 KiB to
// 1 MiB buffers, at several in-page offsets of the buffer.
func TestCopyLarge(t *testing.T) {
	withStrategies(t, func(t *testing.T) {
		for _, n := range []uintptr{4 << 10, 8 << 10, 64 << 10, 1 << 20} {
			pages := int(n/pageSize) + 3
			src, dst := mapRegion(t, pages), mapRegion(t, pages)
			fill(src.b, 9)
			for _, side := range []string{"src", "dst"} {
				bad := src
				if side == "dst" {
					bad = dst
				}
				for _, shift := range []uintptr{0, 1, 100, 4095} {
					for _, where := range []string{"start", "middle", "end", "none"} {
						start := uintptr(pageSize) + shift
						var at uintptr // byte index (in the buffer) whose page goes bad
						switch where {
						case "start":
							at = 0
						case "middle":
							at = n / 2
						case "end":
							at = n - 1
						}
						want := n
						page := -1
						if where != "none" {
							page = int((start + at) / pageSize)
							want = uintptr(page)*pageSize - start
							if uintptr(page)*pageSize < start {
								want = 0
							}
							bad.protect(t, page, 1, unix.PROT_NONE)
						}
						c := copyCase{dst: dst.addr() + start, src: src.addr() + start, n: n, want: want, badSide: side, wantSig: unix.SIGSEGV}
						t.Run(fmt.Sprintf("n%d-%s-shift%d-%s", n, side, shift, where), func(t *testing.T) {
							c.check(t)
						})
						if page >= 0 {
							bad.protect(t, page, 1, unix.PROT_READ|unix.PROT_WRITE)
						}
					}
				}
			}
		}
	})
}

func checkZero(t *testing.T, dst, n, want uintptr, wantSig unix.Signal) {
	t.Helper()
	end := min(n, want)
	for i := uintptr(0); i < end; i++ {
		*(*byte)(ptr(dst + i)) = 0xa5
	}
	done, fault, sig := uZero(dst, n)
	if want >= n {
		if done != n || fault != 0 || sig != 0 {
			t.Fatalf("uZero(%#x, %d) = (%d, %#x, %v), want (%d, 0, 0)", dst, n, done, fault, sig, n)
		}
	} else if done != want || fault != dst+want || sig != wantSig {
		t.Fatalf("uZero(%#x, %d) = (%d, %#x, %v), want (%d, %#x, %v)", dst, n, done, fault, sig, want, dst+want, wantSig)
	}
	for i, b := range bytesAt(dst, end) {
		if b != 0 {
			t.Fatalf("uZero(%#x, %d): byte %d is %#x", dst, n, i, b)
		}
	}
}

func TestZeroSmall(t *testing.T) {
	withStrategies(t, func(t *testing.T) {
		for _, prot := range []int{unix.PROT_NONE, unix.PROT_READ} {
			r := mapRegion(t, 4)
			r.protect(t, 2, 1, prot)
			boundary := r.addr() + 2*pageSize
			for _, off := range smallOffsets() {
				for n := uintptr(0); n <= 300; n++ {
					checkZero(t, boundary-off, n, off, unix.SIGSEGV)
				}
			}
		}
	})
}

func TestZeroLarge(t *testing.T) {
	withStrategies(t, func(t *testing.T) {
		for _, n := range []uintptr{4 << 10, 8 << 10, 64 << 10, 1 << 20} {
			r := mapRegion(t, int(n/pageSize)+3)
			for _, shift := range []uintptr{0, 1, 100, 4095} {
				for _, at := range []uintptr{0, n / 2, n - 1, n} {
					start := uintptr(pageSize) + shift
					want := n
					page := -1
					if at < n {
						page = int((start + at) / pageSize)
						want = max(uintptr(page)*pageSize, start) - start
						r.protect(t, page, 1, unix.PROT_NONE)
					}
					checkZero(t, r.addr()+start, n, want, unix.SIGSEGV)
					if page >= 0 {
						r.protect(t, page, 1, unix.PROT_READ|unix.PROT_WRITE)
					}
				}
			}
		}
	})
}

// TestSIGBUS maps a file MAP_SHARED and truncates it: the page holding the
// new EOF stays accessible, the pages past it raise SIGBUS.
func TestSIGBUS(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "sigbus")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(4 * pageSize); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, 4*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	fill(b, 1)
	if err := f.Truncate(pageSize + 100); err != nil {
		t.Fatal(err)
	}
	base := uintptr(unsafe.Pointer(&b[0]))
	boundary := base + 2*pageSize // first byte of the first page past EOF
	other := mapRegion(t, 1)
	withStrategies(t, func(t *testing.T) {
		for _, off := range []uintptr{0, 1, 7, 8, 31, 32, 100, 255, 256, 4000} {
			for _, n := range []uintptr{1, 8, 9, 33, 200, 256, 257, 4096, 8192} {
				copyCase{src: boundary - off, dst: other.addr(), n: n, want: off, badSide: "src", wantSig: unix.SIGBUS}.check(t)
				copyCase{src: other.addr(), dst: boundary - off, n: min(n, pageSize), want: off, badSide: "dst", wantSig: unix.SIGBUS}.check(t)
				checkZero(t, boundary-off, n, off, unix.SIGBUS)
			}
		}
	})
	if _, fault, sig := uLoadUint32(boundary + 8); fault != boundary+8 || sig != unix.SIGBUS {
		t.Errorf("LoadUint32 past EOF = (%#x, %v), want (%#x, SIGBUS)", fault, sig, boundary+8)
	}
	if _, fault, sig := uSwapUint64(boundary, 1); fault != boundary || sig != unix.SIGBUS {
		t.Errorf("SwapUint64 past EOF = (%#x, %v), want (%#x, SIGBUS)", fault, sig, boundary)
	}
}

// TestAtomics checks each atomic on good memory and on a faulting page.
func TestAtomics(t *testing.T) {
	r := mapRegion(t, 3) // [rw, none, ro]
	r.protect(t, 1, 1, unix.PROT_NONE)
	r.protect(t, 2, 1, unix.PROT_READ)
	good, none, ro := r.addr()+64, r.addr()+pageSize+64, r.addr()+2*pageSize+64

	w32 := (*uint32)(ptr(good))
	w64 := (*uint64)(ptr(good))
	*w64 = 0x1111111122222222
	if v, f, s := uLoadUint64(good); v != 0x1111111122222222 || f != 0 || s != 0 {
		t.Errorf("LoadUint64 = (%#x, %#x, %v)", v, f, s)
	}
	if v, f, s := uSwapUint64(good, 7); v != 0x1111111122222222 || f != 0 || s != 0 || *w64 != 7 {
		t.Errorf("SwapUint64 = (%#x, %#x, %v), now %#x", v, f, s, *w64)
	}
	if v, _, _ := uCompareAndSwapUint64(good, 6, 9); v != 7 || *w64 != 7 {
		t.Errorf("failing CompareAndSwapUint64 = %d, now %d", v, *w64)
	}
	if v, _, _ := uCompareAndSwapUint64(good, 7, 9); v != 7 || *w64 != 9 {
		t.Errorf("CompareAndSwapUint64 = %d, now %d", v, *w64)
	}
	if f, s := uStoreUint64(good, 1<<40); f != 0 || s != 0 || *w64 != 1<<40 {
		t.Errorf("StoreUint64 = (%#x, %v), now %#x", f, s, *w64)
	}
	*w32 = 5
	if v, f, s := uLoadUint32(good); v != 5 || f != 0 || s != 0 {
		t.Errorf("LoadUint32 = (%d, %#x, %v)", v, f, s)
	}
	if v, _, _ := uSwapUint32(good, 6); v != 5 || *w32 != 6 {
		t.Errorf("SwapUint32 = %d, now %d", v, *w32)
	}
	if v, _, _ := uCompareAndSwapUint32(good, 5, 8); v != 6 || *w32 != 6 {
		t.Errorf("failing CompareAndSwapUint32 = %d, now %d", v, *w32)
	}
	if v, _, _ := uCompareAndSwapUint32(good, 6, 8); v != 6 || *w32 != 8 {
		t.Errorf("CompareAndSwapUint32 = %d, now %d", v, *w32)
	}
	if f, s := uStoreUint32(good, 3); f != 0 || s != 0 || *w32 != 3 {
		t.Errorf("StoreUint32 = (%#x, %v), now %d", f, s, *w32)
	}

	type op struct {
		name  string
		write bool
		do    func(addr uintptr) (uintptr, unix.Signal)
	}
	ops := []op{
		{"LoadUint32", false, func(a uintptr) (uintptr, unix.Signal) { _, f, s := uLoadUint32(a); return f, s }},
		{"LoadUint64", false, func(a uintptr) (uintptr, unix.Signal) { _, f, s := uLoadUint64(a); return f, s }},
		{"SwapUint32", true, func(a uintptr) (uintptr, unix.Signal) { _, f, s := uSwapUint32(a, 1); return f, s }},
		{"SwapUint64", true, func(a uintptr) (uintptr, unix.Signal) { _, f, s := uSwapUint64(a, 1); return f, s }},
		{"CompareAndSwapUint32", true, func(a uintptr) (uintptr, unix.Signal) { _, f, s := uCompareAndSwapUint32(a, 0, 1); return f, s }},
		{"CompareAndSwapUint64", true, func(a uintptr) (uintptr, unix.Signal) { _, f, s := uCompareAndSwapUint64(a, 0, 1); return f, s }},
		{"StoreUint32", true, func(a uintptr) (uintptr, unix.Signal) { return uStoreUint32(a, 1) }},
		{"StoreUint64", true, func(a uintptr) (uintptr, unix.Signal) { return uStoreUint64(a, 1) }},
	}
	for _, o := range ops {
		if f, s := o.do(none); f != none || s != unix.SIGSEGV {
			t.Errorf("%s on PROT_NONE = (%#x, %v), want (%#x, SIGSEGV)", o.name, f, s, none)
		}
		wantF, wantS := uintptr(0), unix.Signal(0)
		if o.write {
			wantF, wantS = ro, unix.SIGSEGV
		}
		if f, s := o.do(ro); f != wantF || s != wantS {
			t.Errorf("%s on PROT_READ = (%#x, %v), want (%#x, %v)", o.name, f, s, wantF, wantS)
		}
	}
}

// TestCompareAndSwapFailingFaults checks that a CompareAndSwap whose
// comparison fails is still a write access: on a read-only page it faults
// and changes nothing (addrspace probes writability this way).
func TestCompareAndSwapFailingFaults(t *testing.T) {
	r := mapRegion(t, 1)
	*(*uint64)(ptr(r.addr())) = 0x0000000700000007
	r.protect(t, 0, 1, unix.PROT_READ)
	a := r.addr()
	if v, f, s := uCompareAndSwapUint32(a, 1, 2); f != a || s != unix.SIGSEGV {
		t.Errorf("failing CompareAndSwapUint32 on PROT_READ = (%d, %#x, %v), want a SIGSEGV at %#x", v, f, s, a)
	}
	if v, f, s := uCompareAndSwapUint64(a, 1, 2); f != a || s != unix.SIGSEGV {
		t.Errorf("failing CompareAndSwapUint64 on PROT_READ = (%d, %#x, %v), want a SIGSEGV at %#x", v, f, s, a)
	}
	if v, f, s := uCompareAndSwapUint32(a+4, 7, 7); f != a+4 || s != unix.SIGSEGV {
		t.Errorf("CompareAndSwapUint32(v, v) on PROT_READ = (%d, %#x, %v), want a SIGSEGV at %#x", v, f, s, a+4)
	}
	if v := *(*uint64)(ptr(a)); v != 0x0000000700000007 {
		t.Errorf("the read-only word changed to %#x", v)
	}
}

func TestAtomicMisalignedPanics(t *testing.T) {
	r := mapRegion(t, 1)
	defer func() {
		if recover() == nil {
			t.Error("LoadUint64 of a misaligned address did not panic")
		}
	}()
	uLoadUint64(r.addr() + 4)
}

func describe(f, boundary uintptr) string {
	if f >= boundary {
		return fmt.Sprintf("page+%d", f-boundary)
	}
	return fmt.Sprintf("page-%d", boundary-f)
}

// TestConcurrentFaults has several goroutines fault (and not) at once.
func TestConcurrentFaults(t *testing.T) {
	r := mapRegion(t, 4)
	r.protect(t, 2, 1, unix.PROT_NONE)
	boundary := r.addr() + 2*pageSize
	dsts := mapRegion(t, 16)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := dsts.addr() + uintptr(g)*2*pageSize
			for i := 0; i < 2000; i++ {
				off := uintptr((i*31 + g*17) % 600)
				n := uintptr((i*13+g)%700) + 1
				done, fault, sig := uCopy(d, boundary-off, n)
				wantDone := min(n, off)
				if done != wantDone || (n > off) != (sig == unix.SIGSEGV) || (n > off && fault != boundary) {
					t.Errorf("goroutine %d: uCopy(n=%d, off=%d) = (%d, %#x, %v)", g, n, off, done, fault, sig)
					return
				}
				if i%3 == 0 {
					if done, _, _ := uZero(boundary-off, n); done != wantDone {
						t.Errorf("goroutine %d: uZero(n=%d, off=%d) = %d", g, n, off, done)
						return
					}
				}
				if _, fault, _ := uLoadUint32(boundary + uintptr(i%1024)*4); fault == 0 {
					t.Errorf("goroutine %d: LoadUint32 on PROT_NONE did not fault", g)
					return
				}
			}
		}()
	}
	wg.Wait()
}

const childEnv = "SAFECOPY_TEST_GO_FAULT_CHILD"

// TestGoFaultNotSwallowed checks that a fault in ordinary Go code still
// reaches the Go runtime: in a child process it crashes the program.
func TestGoFaultNotSwallowed(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		b, err := unix.Mmap(-1, 0, pageSize, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			fmt.Println("mmap:", err)
			os.Exit(3)
		}
		p := &b[0]
		fmt.Println("read", *p)
		fmt.Println("survived a fault")
		os.Exit(0)
	}
	cmd := selfCommand("-test.run=^TestGoFaultNotSwallowed$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		t.Fatalf("child exited 0; stdout %q", out)
	}
	if strings.Contains(string(out), "survived") {
		t.Fatalf("child survived the fault: %q", out)
	}
	msg := stderr.String()
	if !strings.Contains(msg, "unexpected fault address") || !strings.Contains(msg, "SIGSEGV") {
		t.Fatalf("child did not die of the Go runtime's fault crash: %v\n%s", err, msg)
	}
}

// TestGoFaultPanicOnFault checks that the Go runtime's handler still sees the
// right context: with SetPanicOnFault a Go fault becomes a recoverable panic
// naming the address.
func TestGoFaultPanicOnFault(t *testing.T) {
	r := mapRegion(t, 1)
	r.protect(t, 0, 1, unix.PROT_NONE)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		e := recover()
		re, ok := e.(interface{ Addr() uintptr })
		if !ok || re.Addr() != r.addr()+8 {
			t.Errorf("recovered %v, want a fault at %#x", e, r.addr()+8)
		}
	}()
	p := (*byte)(ptr(r.addr() + 8))
	t.Errorf("read %d from a PROT_NONE page", *p)
}

// TestCopyBothSidesBad puts a bad page in both buffers at different indexes:
// the first inaccessible byte on either side bounds the count. Copies of up
// to 256 bytes load everything before storing, so a later src fault is seen
// first and the wrapper's retry must find the earlier dst one.
func TestCopyBothSidesBad(t *testing.T) {
	withStrategies(t, func(t *testing.T) {
		for _, n := range []uintptr{16, 64, 200, 256, 300, 5000, 70000} {
			for _, offs := range [][2]uintptr{{10, 5}, {5, 10}, {n - 1, n / 2}, {n / 2, n - 1}, {n / 3, n / 3}} {
				sOff, dOff := offs[0], offs[1]
				pages := int(n/pageSize) + 4
				src, dst := mapRegion(t, pages), mapRegion(t, pages)
				fill(src.b, 1)
				// Put the buffers so that index sOff of src and dOff of dst
				// are the first bytes of bad pages.
				sBad, dBad := pages-1, pages-1
				src.protect(t, sBad, 1, unix.PROT_NONE)
				dst.protect(t, dBad, 1, unix.PROT_NONE)
				s := src.addr() + uintptr(sBad)*pageSize - sOff
				d := dst.addr() + uintptr(dBad)*pageSize - dOff
				done, fault, sig := uCopy(d, s, n)
				want := min(sOff, dOff)
				okFault := (sOff <= dOff && fault == s+want) || (dOff <= sOff && fault == d+want)
				if done != want || !okFault || sig != unix.SIGSEGV {
					t.Errorf("n=%d src bad at %d, dst bad at %d: Copy = (%d, %#x, %v), want done %d", n, sOff, dOff, done, fault, sig, want)
					continue
				}
				if !bytes.Equal(bytesAt(d, done), bytesAt(s, done)) {
					t.Errorf("n=%d src bad at %d, dst bad at %d: copied bytes differ", n, sOff, dOff)
				}
			}
		}
	})
}

// TestFaultAddressBelowPage hands the exact-count wrappers a reported fault
// address below the inaccessible page, as arm64 may report for an access
// that crosses into it: the counts must still be exact.
func TestFaultAddressBelowPage(t *testing.T) {
	r := mapRegion(t, 4)
	r.protect(t, 2, 1, unix.PROT_NONE)
	other := mapRegion(t, 1)
	boundary := r.addr() + 2*pageSize
	for _, off := range []uintptr{1, 8, 100, pageSize} {
		start := boundary - off
		for _, f := range []uintptr{start, boundary - 1, boundary - off/2} {
			want := Fault{boundary, unix.SIGSEGV}
			done, flt := copyFault(ptr(other.addr()), ptr(start), 2*off, f, 0, int32(unix.SIGSEGV))
			if done != off || flt != want {
				t.Errorf("copyFault(src bad at %d, reported %#x) = (%d, %+v), want (%d, %+v)", off, f, done, flt, off, want)
			}
			done, flt = zeroFault(ptr(start), 2*off, f, 0, int32(unix.SIGSEGV))
			if done != off || flt != want {
				t.Errorf("zeroFault(bad at %d, reported %#x) = (%d, %+v), want (%d, %+v)", off, f, done, flt, off, want)
			}
		}
	}
}
