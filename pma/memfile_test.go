package pma

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

const pg = hostarch.PageSize

func newMF(t *testing.T) *MemoryFile {
	t.Helper()
	m, err := NewMemoryFile("pma-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Drop every holder left.
		for m.Shared() {
			m.Close()
		}
		m.Close()
	})
	return m
}

func mustAlloc(t *testing.T, m *MemoryFile, length, hint uint64) uint64 {
	t.Helper()
	off, err := m.Allocate(length, hint)
	if err != nil {
		t.Fatalf("Allocate(%#x, %#x): %v", length, hint, err)
	}
	return off
}

func fileSize(t *testing.T, m *MemoryFile) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(m.FD(), &st); err != nil {
		t.Fatal(err)
	}
	return st.Size
}

func expectPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", name)
		}
	}()
	f()
}

func TestAllocatePlacement(t *testing.T) {
	type step struct {
		length, hint uint64 // in pages
		want         uint64 // in pages
		free         []uint64
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"hint zero is first fit from 0", []step{
			{length: 2, hint: 0, want: 0},
			{length: 1, hint: 0, want: 2},
			{length: 3, hint: 0, want: 3},
		}},
		{"free hint is honoured", []step{
			{length: 1, hint: 10, want: 10},
			{length: 2, hint: 20, want: 20},
			{length: 1, hint: 0, want: 0},
			{length: 4, hint: 5, want: 5}, // [5, 9) free
			{length: 2, hint: 8, want: 1}, // 8 taken: first fit [1, 5)
		}},
		{"hint range partly taken falls back to first fit", []step{
			{length: 1, hint: 3, want: 3},
			{length: 3, hint: 1, want: 0},    // [1,4) overlaps 3; first fit [0,3)
			{length: 2, hint: 2, want: 4},    // taken: first fit after 3
			{length: 1, hint: 99, want: 99},  // far hint
			{length: 95, hint: 7, want: 100}, // [7,102) overlaps 99; [6,99) too small
			{length: 1, hint: 0, want: 6},
		}},
		{"first fit skips holes too small", []step{
			{length: 8, hint: 0, want: 0},
			{length: 1, hint: 0, want: 8},
			{length: 2, hint: 0, want: 9},
			{length: 3, hint: 0, want: 11},
			{length: 1, hint: 0, want: 14},
			// free 1-page hole at 8 and 3-page hole at 11
			{length: 0, free: []uint64{8, 1, 11, 3}},
			{length: 2, hint: 0, want: 11},
			{length: 2, hint: 0, want: 15},
			{length: 1, hint: 0, want: 8},
			{length: 1, hint: 0, want: 13},
			{length: 1, hint: 0, want: 17},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMF(t)
			var inUse uint64
			for i, s := range tc.steps {
				if s.free != nil {
					for j := 0; j < len(s.free); j += 2 {
						if err := m.DecRef(s.free[j]*pg, s.free[j+1]*pg); err != nil {
							t.Fatal(err)
						}
						inUse -= s.free[j+1] * pg
					}
					continue
				}
				got := mustAlloc(t, m, s.length*pg, s.hint*pg)
				if got != s.want*pg {
					t.Fatalf("step %d: Allocate(%d pages, hint %d) = page %d, want %d", i, s.length, s.hint, got/pg, s.want)
				}
				inUse += s.length * pg
				if m.InUse() != inUse {
					t.Fatalf("step %d: InUse = %#x, want %#x", i, m.InUse(), inUse)
				}
			}
		})
	}
}

func TestAllocateGrowsFile(t *testing.T) {
	m := newMF(t)
	if got := fileSize(t, m); got != 0 {
		t.Fatalf("new file size %d", got)
	}
	// The file grows with a slack of growSlack (or a quarter of its size,
	// up to 256 MiB), and to exactly what is needed beyond that.
	slack := uint64(growSlack / pg)
	for i, s := range []struct{ length, hint, wantSize uint64 }{
		{1, 0, slack},
		{1, 1, slack}, // fits
		{1, slack, 2 * slack},
		{1, 100 * slack, 100*slack + 1},
		{2, 50, 100*slack + 1}, // fits
	} {
		mustAlloc(t, m, s.length*pg, s.hint*pg)
		if got := fileSize(t, m); got != int64(s.wantSize*pg) {
			t.Fatalf("step %d: file size %d pages, want %d", i, got/int64(pg), s.wantSize)
		}
	}
	// Freeing the top shrinks the file to the highest page in use (page
	// slack), rounded up to growSlack.
	if err := m.DecRef(100*slack*pg, pg); err != nil {
		t.Fatal(err)
	}
	if got, want := fileSize(t, m), int64(2*growSlack); got != want {
		t.Fatalf("after free: size %#x, want %#x", got, want)
	}
}

func TestAllocateExhaustion(t *testing.T) {
	m := newMF(t)
	if _, err := m.Allocate(maxFileSize+pg, 0); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Allocate(max+pg) err = %v, want ENOMEM", err)
	}
	if m.InUse() != 0 || fileSize(t, m) != 0 {
		t.Fatalf("failed Allocate changed state: InUse %#x size %#x", m.InUse(), fileSize(t, m))
	}
	// Leave one page free at the very end, and one at page 1.
	mustAlloc(t, m, pg, 0)
	big := mustAlloc(t, m, maxFileSize-3*pg, 2*pg)
	if big != 2*pg {
		t.Fatalf("big at %#x", big)
	}
	for _, l := range []uint64{2 * pg, 3 * pg, 1 << 40} {
		if off, err := m.Allocate(l, 0); !errors.Is(err, unix.ENOMEM) {
			t.Fatalf("Allocate(%#x) = %#x, %v; want ENOMEM", l, off, err)
		}
	}
	if got := mustAlloc(t, m, pg, maxFileSize-pg); got != maxFileSize-pg {
		t.Fatalf("hinted last page at %#x", got)
	}
	if got := mustAlloc(t, m, pg, maxFileSize-pg); got != pg {
		t.Fatalf("first fit at %#x, want page 1", got)
	}
	if off, err := m.Allocate(pg, 0); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("full file: Allocate = %#x, %v", off, err)
	}
	if m.InUse() != maxFileSize {
		t.Fatalf("InUse %#x", m.InUse())
	}
	// Free the big range in the middle and allocate it again.
	if err := m.DecRef(2*pg, maxFileSize-3*pg); err != nil {
		t.Fatal(err)
	}
	if got := mustAlloc(t, m, 4*pg, 0); got != 2*pg {
		t.Fatalf("after free: %#x", got)
	}
}

func TestAllocatePreconditions(t *testing.T) {
	m := newMF(t)
	for _, tc := range []struct{ length, hint uint64 }{
		{0, 0}, {1, 0}, {pg + 1, 0}, {pg, 1}, {pg, pg - 1},
	} {
		expectPanic(t, fmt.Sprintf("Allocate(%#x, %#x)", tc.length, tc.hint), func() { m.Allocate(tc.length, tc.hint) })
	}
	if m.InUse() != 0 {
		t.Fatal("InUse changed")
	}
}

// refsOf returns Refs for pages [0, n).
func refsOf(m *MemoryFile, n uint64) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = m.Refs(uint64(i) * pg)
	}
	return r
}

func TestRefCounts(t *testing.T) {
	type op struct {
		inc        bool
		start, len uint64 // pages
	}
	for _, tc := range []struct {
		name   string
		ops    []op
		want   []int // refs of pages 0..7 (0 means freed)
		shared uint64
	}{
		{"none", nil, []int{1, 1, 1, 1, 1, 1, 1, 1}, 0},
		{"one inc", []op{{true, 2, 3}}, []int{1, 1, 2, 2, 2, 1, 1, 1}, 3},
		{"overlapping incs", []op{{true, 2, 4}, {true, 4, 4}}, []int{1, 1, 2, 2, 3, 3, 2, 2}, 6},
		{"adjacent incs join", []op{{true, 0, 2}, {true, 2, 2}, {true, 4, 4}}, []int{2, 2, 2, 2, 2, 2, 2, 2}, 8},
		{"nested", []op{{true, 0, 8}, {true, 1, 6}, {true, 2, 4}, {true, 3, 2}}, []int{2, 3, 4, 5, 5, 4, 3, 2}, 8},
		{"inc then dec middle", []op{{true, 0, 8}, {false, 3, 2}}, []int{2, 2, 2, 1, 1, 2, 2, 2}, 6},
		{"dec frees", []op{{true, 2, 2}, {false, 0, 3}}, []int{0, 0, 1, 2, 1, 1, 1, 1}, 1},
		{"dec all", []op{{true, 1, 6}, {false, 0, 8}, {false, 1, 6}}, []int{0, 0, 0, 0, 0, 0, 0, 0}, 0},
		{"staircase", []op{{true, 0, 1}, {true, 0, 2}, {true, 0, 3}, {false, 1, 2}, {false, 0, 1}}, []int{3, 2, 1, 1, 1, 1, 1, 1}, 2},
		{"split then rejoin", []op{{true, 0, 8}, {true, 3, 1}, {false, 3, 1}}, []int{2, 2, 2, 2, 2, 2, 2, 2}, 8},
		{"zero length is a no-op", []op{{true, 3, 0}, {false, 3, 0}}, []int{1, 1, 1, 1, 1, 1, 1, 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMF(t)
			mustAlloc(t, m, 8*pg, 0)
			for _, o := range tc.ops {
				if o.inc {
					m.IncRef(o.start*pg, o.len*pg)
				} else if err := m.DecRef(o.start*pg, o.len*pg); err != nil {
					t.Fatal(err)
				}
			}
			var live uint64
			for i, w := range tc.want {
				if w == 0 {
					continue
				}
				live++
				if got := m.Refs(uint64(i) * pg); got != w {
					t.Errorf("Refs(page %d) = %d, want %d (all: %v)", i, got, w, refsOf(m, 8))
				}
			}
			if got := m.SharedBytes(0, 8*pg); got != tc.shared*pg {
				t.Errorf("SharedBytes = %d pages, want %d", got/pg, tc.shared)
			}
			if got := m.InUse(); got != live*pg {
				t.Errorf("InUse = %d pages, want %d", got/pg, live)
			}
			// SharedBytes of every sub-range, including unaligned ones.
			for s := uint64(0); s < 8; s++ {
				for e := s; e <= 8; e++ {
					var want uint64
					for p := s; p < e; p++ {
						if tc.want[p] > 1 {
							want += pg
						}
					}
					if got := m.SharedBytes(s*pg, (e-s)*pg); got != want {
						t.Errorf("SharedBytes(page %d, %d pages) = %d, want %d", s, e-s, got, want)
					}
				}
			}
			for _, c := range []struct{ off, n uint64 }{{100, 10}, {pg - 10, 20}, {pg + 1, 3*pg - 2}} {
				var want uint64
				for b := c.off; b < c.off+c.n; b++ {
					if tc.want[b/pg] > 1 {
						want++
					}
				}
				if got := m.SharedBytes(c.off, c.n); got != want {
					t.Errorf("SharedBytes(%#x, %#x) = %d, want %d", c.off, c.n, got, want)
				}
			}
		})
	}
}

func mapMF(t *testing.T, m *MemoryFile, off, length uint64) []byte {
	t.Helper()
	b, err := unix.Mmap(m.FD(), int64(off), int(length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func TestFreedPagesReadZero(t *testing.T) {
	m := newMF(t)
	off := mustAlloc(t, m, 4*pg, 0)
	b := mapMF(t, m, off, 4*pg)
	for i := range b {
		b[i] = 0xa5
	}
	if res, err := m.Resident(); err != nil || res != 4*pg {
		t.Fatalf("Resident = %#x, %v; want %#x", res, err, 4*pg)
	}
	m.IncRef(off+pg, 2*pg)
	if err := m.DecRef(off, 4*pg); err != nil {
		t.Fatal(err)
	}
	// Pages 0 and 3 are freed: not resident, and zero. 1 and 2 survive.
	if m.InUse() != 2*pg {
		t.Fatalf("InUse %#x", m.InUse())
	}
	if res, _ := m.Resident(); res != 2*pg {
		t.Fatalf("Resident after partial free = %#x, want %#x", res, 2*pg)
	}
	// Read through pread, which does not fill holes (a read fault through
	// a shared mapping would allocate the page again).
	buf := make([]byte, 4*pg)
	if n, err := unix.Pread(m.FD(), buf, int64(off)); n != len(buf) || err != nil {
		t.Fatalf("pread = %d, %v", n, err)
	}
	for p := 0; p < 4; p++ {
		want := byte(0xa5)
		if p == 0 || p == 3 {
			want = 0
		}
		for i := p * pg; i < (p+1)*pg; i++ {
			if buf[i] != want {
				t.Fatalf("page %d byte %d = %#x, want %#x", p, i%pg, buf[i], want)
			}
		}
	}
	// Reallocating page 0 gives it back, zeroed, through the old mapping.
	if got := mustAlloc(t, m, pg, 0); got != off {
		t.Fatalf("reallocated at %#x", got)
	}
	for i := 0; i < pg; i++ {
		if b[i] != 0 {
			t.Fatalf("reallocated page byte %d = %#x", i, b[i])
		}
	}
	b[0] = 1
	if err := m.DecRef(off+pg, 2*pg); err != nil {
		t.Fatal(err)
	}
	if err := m.DecRef(off, pg); err != nil {
		t.Fatal(err)
	}
	if m.InUse() != 0 {
		t.Fatalf("InUse %#x", m.InUse())
	}
	if res, _ := m.Resident(); res != 0 {
		t.Fatalf("Resident = %#x after freeing all", res)
	}
	// Reallocate all four pages: they read zero through the mapping.
	if got := mustAlloc(t, m, 4*pg, 0); got != off {
		t.Fatalf("reallocated at %#x", got)
	}
	for i := range b {
		if b[i] != 0 {
			t.Fatalf("byte %d = %#x after reallocation", i, b[i])
		}
	}
}

func TestDecommit(t *testing.T) {
	m := newMF(t)
	off := mustAlloc(t, m, 2*pg, 0)
	b := mapMF(t, m, off, 2*pg)
	b[0], b[pg] = 1, 2
	if err := m.Decommit(off, pg); err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 || b[pg] != 2 {
		t.Fatalf("after Decommit: %d %d", b[0], b[pg])
	}
	if m.InUse() != 2*pg || m.Refs(off) != 1 {
		t.Fatal("Decommit changed allocation")
	}
	// Beyond the file's size, and of length 0: nothing to do.
	if err := m.Decommit(1<<40, pg); err != nil {
		t.Fatal(err)
	}
	if err := m.Decommit(off, 0); err != nil {
		t.Fatal(err)
	}
}

func TestShareClose(t *testing.T) {
	m, err := NewMemoryFile("pma-share")
	if err != nil {
		t.Fatal(err)
	}
	fd := m.FD()
	if m.Shared() {
		t.Fatal("new file Shared")
	}
	if s1, s2 := m.Share(), m.Share(); s1 != m || s2 != m {
		t.Fatal("Share returned another file")
	}
	if !m.Shared() {
		t.Fatal("not Shared with 3 holders")
	}
	alive := func() bool {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		return err == nil
	}
	for i, wantShared := range []bool{true, false} {
		if err := m.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
		if m.Shared() != wantShared {
			t.Fatalf("after Close %d: Shared = %v", i, m.Shared())
		}
		if !alive() || m.FD() != fd {
			t.Fatalf("fd closed after Close %d", i)
		}
	}
	// Allocation still works with one holder left.
	off := mustAlloc(t, m, pg, 0)
	b := mapMF(t, m, off, pg)
	b[0] = 7
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.FD() != -1 {
		t.Fatalf("FD after last Close = %d", m.FD())
	}
	// Memory still mapped stays valid.
	if b[0] != 7 {
		t.Fatal("mapping lost after Close")
	}
}

// TestRefModel checks the allocator and the reference counts against a
// per-page model over thousands of random operations.
func TestRefModel(t *testing.T) {
	const pages = 48
	for _, seed := range []int64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			m := newMF(t)
			rng := rand.New(rand.NewSource(seed))
			refs := map[uint64]int{} // page -> refs; absent: free
			free := func(p, n uint64) bool {
				for i := p; i < p+n; i++ {
					if refs[i] != 0 {
						return false
					}
				}
				return true
			}
			// allocRun picks a run of allocated pages.
			allocRun := func() (uint64, uint64, bool) {
				var alloc []uint64
				for p := range refs {
					alloc = append(alloc, p)
				}
				slices.Sort(alloc)
				if len(alloc) == 0 {
					return 0, 0, false
				}
				p := alloc[rng.Intn(len(alloc))]
				n := uint64(1)
				for max := uint64(1 + rng.Intn(10)); n < max && refs[p+n] != 0; n++ {
				}
				return p, n, true
			}
			for i := 0; i < 2000; i++ {
				switch k := rng.Intn(10); {
				case k < 3 || len(refs) == 0:
					n := uint64(1 + rng.Intn(6))
					hint := uint64(rng.Intn(pages))
					want := hint
					if !free(hint, n) {
						for want = 0; !free(want, n); want++ {
						}
					}
					got := mustAlloc(t, m, n*pg, hint*pg)
					if got != want*pg {
						t.Fatalf("op %d: Allocate(%d, hint %d) = page %d, want %d", i, n, hint, got/pg, want)
					}
					for p := want; p < want+n; p++ {
						refs[p] = 1
					}
				case k < 6:
					p, n, _ := allocRun()
					m.IncRef(p*pg, n*pg)
					for j := p; j < p+n; j++ {
						refs[j]++
					}
				default:
					p, n, _ := allocRun()
					if err := m.DecRef(p*pg, n*pg); err != nil {
						t.Fatal(err)
					}
					for j := p; j < p+n; j++ {
						if refs[j]--; refs[j] == 0 {
							delete(refs, j)
						}
					}
				}
				var shared uint64
				var top uint64
				for p, r := range refs {
					if got := m.Refs(p * pg); got != r {
						t.Fatalf("op %d: Refs(page %d) = %d, want %d", i, p, got, r)
					}
					if r > 1 {
						shared++
					}
					top = max(top, p+1)
				}
				if got := m.SharedBytes(0, (top+8)*pg); got != shared*pg {
					t.Fatalf("op %d: SharedBytes = %d pages, want %d", i, got/pg, shared)
				}
				if got := m.InUse(); got != uint64(len(refs))*pg {
					t.Fatalf("op %d: InUse = %d pages, want %d", i, got/pg, len(refs))
				}
				s, n := uint64(rng.Intn(int(top+1))), uint64(rng.Intn(12))
				var want uint64
				for p := s; p < s+n; p++ {
					if refs[p] > 1 {
						want++
					}
				}
				if got := m.SharedBytes(s*pg, n*pg); got != want*pg {
					t.Fatalf("op %d: SharedBytes(page %d, %d pages) = %d pages, want %d", i, s, n, got/pg, want)
				}
			}
		})
	}
}

func TestConcurrentRefs(t *testing.T) {
	m := newMF(t)
	const workers, rounds = 4, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				off, err := m.Allocate(2*pg, 0)
				if err != nil {
					errs <- err
					return
				}
				m.IncRef(off, pg)
				if r := m.Refs(off); r != 2 {
					errs <- fmt.Errorf("Refs = %d", r)
					return
				}
				if err := m.DecRef(off, 2*pg); err != nil {
					errs <- err
					return
				}
				if err := m.DecRef(off, pg); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if m.InUse() != 0 || m.SharedBytes(0, 1<<30) != 0 {
		t.Fatalf("InUse %#x", m.InUse())
	}
}

// TestCopyFromHoles: copies out of the memory file skip its holes (the
// destination's pages there stay holes), including after a run of data
// was found and remembered and then had a page punched out of it.
func TestCopyFromHoles(t *testing.T) {
	m := newMF(t)
	src := mustAlloc(t, m, 16*pg, 0)
	data := func(pages ...uint64) {
		for _, p := range pages {
			if _, err := unix.Pwrite(m.FD(), bytes.Repeat([]byte{byte(p + 1)}, pg), int64(src+p*pg)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// holes returns which of the n pages at off are holes.
	holes := func(off, n uint64) string {
		var b strings.Builder
		for p := range n {
			d, err := unix.Seek(m.FD(), int64(off+p*pg), unix.SEEK_DATA)
			if err == nil && uint64(d) == off+p*pg {
				b.WriteByte('d')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	data(0, 1, 2, 3, 4, 5, 6, 7, 10, 11)
	for _, step := range []struct {
		name       string
		punch      []uint64 // pages of src to decommit first
		from, n    uint64   // pages of src to copy
		wantHoles  string   // of the copy
		wantSource string   // of src[from:from+n] afterwards
	}{
		{"a run of data", nil, 0, 3, "ddd", "ddd"},
		{"further into the run found", nil, 3, 4, "dddd", "dddd"},
		{"a page punched out of the run found", []uint64{5}, 4, 4, "d.dd", "d.dd"},
		{"across holes and runs", nil, 6, 8, "dd..dd..", "dd..dd.."},
	} {
		t.Run(step.name, func(t *testing.T) {
			for _, p := range step.punch {
				if err := m.Decommit(src+p*pg, pg); err != nil {
					t.Fatal(err)
				}
			}
			dst := mustAlloc(t, m, step.n*pg, 0)
			if err := m.copyFrom(dst, m.FD(), src+step.from*pg, step.n*pg, true); err != nil {
				t.Fatal(err)
			}
			if got := holes(dst, step.n); got != step.wantHoles {
				t.Errorf("copy's pages %q, want %q (d: data, .: hole)", got, step.wantHoles)
			}
			if got := holes(src+step.from*pg, step.n); got != step.wantSource {
				t.Errorf("source's pages %q, want %q", got, step.wantSource)
			}
			got := make([]byte, step.n*pg)
			want := make([]byte, step.n*pg)
			unix.Pread(m.FD(), got, int64(dst))
			unix.Pread(m.FD(), want, int64(src+step.from*pg))
			if !bytes.Equal(got, want) {
				t.Errorf("the copy differs from its source")
			}
		})
	}
}
