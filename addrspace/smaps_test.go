package addrspace

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// smapText renders one smaps entry as Linux 6.18 prints it, from the values
// a test expects (kB).
func smapText(header string, size, rss, pss, pssDirty, sharedDirty, privClean, privDirty, anon, locked uint64, flags string) string {
	var b strings.Builder
	b.WriteString(header + "\n")
	for _, f := range []struct {
		name string
		v    uint64
	}{
		{"Size", size}, {"KernelPageSize", 4}, {"MMUPageSize", 4}, {"Rss", rss}, {"Pss", pss}, {"Pss_Dirty", pssDirty},
		{"Shared_Clean", 0}, {"Shared_Dirty", sharedDirty}, {"Private_Clean", privClean}, {"Private_Dirty", privDirty},
		{"Referenced", rss}, {"Anonymous", anon}, {"KSM", 0}, {"LazyFree", 0}, {"AnonHugePages", 0}, {"ShmemPmdMapped", 0},
		{"FilePmdMapped", 0}, {"Shared_Hugetlb", 0}, {"Private_Hugetlb", 0}, {"Swap", 0}, {"SwapPss", 0}, {"Locked", locked},
	} {
		fmt.Fprintf(&b, "%-16s%8d kB\n", f.name+":", f.v)
	}
	b.WriteString("THPeligible:           0\nVmFlags: " + flags + "\n")
	return b.String()
}

func smapsOf(t *testing.T, as *AddressSpace) string {
	t.Helper()
	var b bytes.Buffer
	if err := as.WriteSmaps(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestWriteSmapsExact checks WriteSmaps byte for byte for known states:
// private anonymous pages written, shared with a clone and copied, a file
// mapping, a named mapping, and a locked one.
func TestWriteSmapsExact(t *testing.T) {
	as := newAS(t, 1<<20)
	a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 4 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, a, string(pattern(2*pg, 1))) // two of four pages
	const anonHeader = "00010000-00014000 rw-p 00000000 00:00 0 "
	const anonFlags = "rd wr mr mw me ac "
	if got, want := smapsOf(t, as), smapText(anonHeader, 16, 8, 8, 8, 0, 0, 8, 8, 0, anonFlags); got != want {
		t.Fatalf("smaps\n%swant\n%s", got, want)
	}

	// After Clone both spaces share the two pages: Shared_Dirty, and Pss
	// half of each.
	c := mustClone(t, as)
	shared := smapText(anonHeader, 16, 8, 4, 4, 8, 0, 0, 8, 0, anonFlags)
	for name, x := range map[string]*AddressSpace{"parent": as, "clone": c} {
		if got := smapsOf(t, x); got != shared {
			t.Errorf("%s after Clone:\n%swant\n%s", name, got, shared)
		}
	}
	// The clone's write copies the run of shared pages around it (both):
	// each space owns its pages again.
	writeAt(t, c, a, "x")
	private := smapText(anonHeader, 16, 8, 8, 8, 0, 0, 8, 8, 0, anonFlags)
	for name, x := range map[string]*AddressSpace{"parent": as, "clone": c} {
		if got := smapsOf(t, x); got != private {
			t.Errorf("%s after the clone's write:\n%swant\n%s", name, got, private)
		}
	}

	// A file mapping's pages are Private_Clean, not Anonymous; a private
	// copy is Anonymous and dirty.
	f := tempFile(t, pattern(2*pg, 2), os.O_RDWR)
	fa := mustMmap(t, as, MmapOpts{Addr: 0x20000, Length: 2 * pg, Fixed: true, Perms: hostarch.Read, File: f})
	readAt(t, as, fa, 2*pg)
	pf := mustMmap(t, as, MmapOpts{Addr: 0x30000, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, File: f})
	writeAt(t, as, pf, "copy")
	var st unix.Stat_t
	unix.Fstat(int(f.Fd()), &st)
	hdr := func(addr uint64, perms string) string {
		h := fmt.Sprintf("%08x-%08x %s 00000000 %02x:%02x %d ", addr, addr+uint64(map[uint64]int{0x20000: 2, 0x30000: 1}[addr])*pg, perms,
			devMajor(uint64(st.Dev)), devMinor(uint64(st.Dev)), st.Ino)
		return h + strings.Repeat(" ", max(73-len(h), 0)) + f.Name()
	}
	got := smapsOf(t, as)
	for _, want := range []string{
		smapText(hdr(0x20000, "r--s"), 8, 8, 8, 0, 0, 8, 0, 0, 0, "rd sh mr mw me ms "),
		smapText(hdr(0x30000, "rw-p"), 4, 4, 4, 4, 0, 0, 4, 4, 0, "rd wr mr mw me ac "),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("smaps\n%slacks\n%s", got, want)
		}
	}

	// A named mapping, and Locked (Pss) for a locked one.
	n := mustMmap(t, as, MmapOpts{Addr: 0x40000, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true, Name: "buf"})
	writeAt(t, as, n, "n")
	setLocked(as, n)
	h := "00040000-00041000 rw-p 00000000 00:00 0 "
	h += strings.Repeat(" ", 73-len(h)) + "[anon:buf]"
	if got, want := smapsOf(t, as), smapText(h, 4, 4, 4, 4, 0, 0, 4, 4, 4, "rd wr mr mw me lo ac "); !strings.Contains(got, want) {
		t.Errorf("smaps\n%slacks\n%s", got, want)
	}

	// The same lines as WriteMaps, in the same order.
	var maps bytes.Buffer
	as.WriteMaps(&maps)
	var headers []string
	for _, l := range strings.Split(smapsOf(t, as), "\n") {
		if l != "" && !strings.Contains(l, ":  ") && !strings.HasPrefix(l, "VmFlags:") && !strings.HasPrefix(l, "Private_Hugetlb:") {
			headers = append(headers, l)
		}
	}
	if strings.Join(headers, "\n")+"\n" != maps.String() {
		t.Errorf("smaps headers\n%s\nmaps\n%s", strings.Join(headers, "\n"), maps.String())
	}
}

// TestWriteSmapsEmptyAndPss checks an untouched mapping (all zero but
// Size) and Pss's fixed-point division among three spaces.
func TestWriteSmapsEmptyAndPss(t *testing.T) {
	as := newAS(t, 1<<20)
	a := mustMmap(t, as, MmapOpts{Addr: 0x10000, Length: 3 * pg, Fixed: true, Perms: hostarch.Read, Private: true})
	if got, want := smapsOf(t, as), smapText("00010000-00013000 r--p 00000000 00:00 0 ", 12, 0, 0, 0, 0, 0, 0, 0, 0, "rd mr mw me "); got != want {
		t.Fatalf("untouched mapping\n%swant\n%s", got, want)
	}
	if err := as.Mprotect(a, 3*pg, hostarch.ReadWrite); err != nil {
		t.Fatal(err)
	}
	writeAt(t, as, a, string(pattern(3*pg, 4)))
	c1, c2 := mustClone(t, as), mustClone(t, as)
	// 3 pages each shared by 3 spaces: Pss = 3*((4096<<12)/3) >> 12 >> 10
	// = 4095 bytes, shown as 3 kB, as Linux's fixed point rounds down.
	want := smapText("00010000-00013000 rw-p 00000000 00:00 0 ", 12, 12, 3, 3, 12, 0, 0, 12, 0, "rd wr mr mw me ac ")
	for i, x := range []*AddressSpace{as, c1, c2} {
		if got := smapsOf(t, x); got != want {
			t.Errorf("space %d:\n%swant\n%s", i, got, want)
		}
	}
}

type failWriter struct{}

var errWrite = errors.New("write failed")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

// TestWriteSmapsErrors checks the writer's error and ErrClosed.
func TestWriteSmapsErrors(t *testing.T) {
	as, err := New(Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.Read})
	if err := as.WriteSmaps(failWriter{}); !errors.Is(err, errWrite) {
		t.Errorf("WriteSmaps to a failing writer = %v", err)
	}
	as.Close()
	if err := as.WriteSmaps(&bytes.Buffer{}); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteSmaps after Close = %v; want ErrClosed", err)
	}
}

// TestWriteSmapsConcurrent runs WriteSmaps beside copies, Mmap, Munmap,
// Madvise and Clone (run with -race).
func TestWriteSmapsConcurrent(t *testing.T) {
	as := newAS(t, 1<<24)
	a := mustMmap(t, as, MmapOpts{Addr: 0x100000, Length: 64 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := bytes.Repeat([]byte{byte(w)}, pg)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				switch w {
				case 0:
					as.CopyOut(ctx, a+hostarch.Addr(i%64)*pg, buf, noOpt)
				case 1:
					b := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, Private: true})
					as.CopyOut(ctx, b, buf, noOpt)
					as.Madvise(b, pg, unix.MADV_DONTFORK)
					as.Munmap(b, 2*pg)
				case 2:
					if c, err := as.Clone(); err == nil {
						c.WriteSmaps(&bytes.Buffer{})
						c.Close()
					}
				}
			}
		}(w)
	}
	for i := 0; i < 200; i++ {
		if err := as.WriteSmaps(&bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// BenchmarkWriteSmaps measures WriteSmaps against WriteMaps over 256
// mappings of 16 pages, half of them written.
func BenchmarkWriteSmaps(b *testing.B) {
	as := newAS(b, 1<<30)
	buf := make([]byte, 8*pg)
	for i := 0; i < 256; i++ {
		perms := hostarch.ReadWrite
		if i%2 == 1 {
			perms = hostarch.Read // neighbours differ: 256 mappings
		}
		a := mustMmap(b, as, MmapOpts{Addr: hostarch.Addr(0x100000 + i*16*pg), Length: 16 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
		as.CopyOut(ctx, a, buf, noOpt)
		as.Mprotect(a, 16*pg, perms)
	}
	for _, bc := range []struct {
		name string
		f    func(io.Writer) error
	}{{"smaps", as.WriteSmaps}, {"maps", as.WriteMaps}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := bc.f(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
