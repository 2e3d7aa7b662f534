package addrspace

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

func TestMincoreInto(t *testing.T) {
	const size = 1 << 30
	as := newAS(t, size)
	a := mustMmap(t, as, MmapOpts{Addr: 0x100000, Fixed: true, Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	// A second mapping right after, so that the range crosses two VMAs.
	mustMmap(t, as, MmapOpts{Addr: a + 4*pg, Fixed: true, Length: 2 * pg, Perms: hostarch.Read})
	writeAt(t, as, a+2*pg, "touch")
	writeAt(t, as, a, "touch")
	for _, tc := range []struct {
		name   string
		addr   hostarch.Addr
		length uint64
		vecLen int
		want   unix.Errno
		res    []byte // the first pages of vec (the rest stays 0xee)
	}{
		{"all", a, 6 * pg, 6, 0, []byte{1, 0, 1, 0, 0, 0}},
		{"longer vector", a, 6 * pg, 9, 0, []byte{1, 0, 1, 0, 0, 0}},
		{"partial page length", a + 2*pg, 1, 1, 0, []byte{1}},
		{"zero length", a, 0, 0, 0, nil},
		{"zero length unmapped", 0x800000, 0, 0, 0, nil},
		{"unaligned", a + 1, pg, 1, unix.EINVAL, nil},
		{"short vector", a, 6 * pg, 5, unix.EFAULT, nil},
		{"nil vector", a, pg, 0, unix.EFAULT, nil},
		{"hole after", a, 7 * pg, 7, unix.ENOMEM, nil},
		{"hole before", a - pg, 2 * pg, 2, unix.ENOMEM, nil},
		{"unmapped", 0x800000, pg, 1, unix.ENOMEM, nil},
		{"beyond Size", size - pg, 2 * pg, 2, unix.ENOMEM, nil},
		{"at Size", size, pg, 1, unix.ENOMEM, nil},
		{"length overflows", a, 1<<64 - 1, 0, unix.ENOMEM, nil},
		{"address 2^64-page", hostarch.Addr(1<<64 - pg), pg, 1, unix.ENOMEM, nil},
		{"huge length, tiny vector", a, 1 << 62, 1, unix.ENOMEM, nil},
	} {
		vec := bytes.Repeat([]byte{0xee}, tc.vecLen)
		err := as.MincoreInto(tc.addr, tc.length, vec)
		if got := errnoOf(err); got != tc.want {
			t.Errorf("%s: MincoreInto(%#x, %#x, [%d]) = %v; want errno %v", tc.name, tc.addr, tc.length, tc.vecLen, err, tc.want)
			continue
		}
		want := bytes.Repeat([]byte{0xee}, tc.vecLen)
		copy(want, tc.res)
		if !bytes.Equal(vec, want) {
			t.Errorf("%s: vec = %v; want %v", tc.name, vec, want)
		}
		// Mincore agrees.
		if tc.want == unix.EFAULT {
			continue
		}
		res, err := as.Mincore(tc.addr, tc.length)
		if got := errnoOf(err); got != tc.want {
			t.Errorf("%s: Mincore = %v; want errno %v", tc.name, err, tc.want)
		}
		if err == nil && (res == nil || len(res) != len(tc.res)) {
			t.Errorf("%s: Mincore = %v; want %d pages", tc.name, res, len(tc.res))
		}
		for i := range res {
			if res[i] != (tc.res[i] == 1) {
				t.Errorf("%s: Mincore = %v; want %v", tc.name, res, tc.res)
				break
			}
		}
	}
	as.Close()
	if err := as.MincoreInto(a, pg, make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("MincoreInto after Close = %v; want ErrClosed", err)
	}
}

// TestMincoreLarge: a query over a large mapped range holds the lock only
// per chunk (another goroutine's Mmap is not held up for the whole query),
// and MincoreInto allocates nothing, Mincore one byte per page.
func TestMincoreLarge(t *testing.T) {
	const length = 64 << 30 // 16 Mi pages
	as, err := New(Options{Size: 2 * length})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	a := mustMmap(t, as, MmapOpts{Length: length, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, a+length-pg, "x")
	const pages = length / pg

	measure := func(name string, query func() error) {
		var stop atomic.Bool
		var worst time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				t0 := time.Now()
				b, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.Read, Private: true})
				if err == nil {
					err = as.Munmap(b, pg)
				}
				if err != nil {
					t.Error(err)
					return
				}
				worst = max(worst, time.Since(t0))
				time.Sleep(time.Millisecond)
			}
		}()
		t0 := time.Now()
		err := query()
		took := time.Since(t0)
		stop.Store(true)
		wg.Wait()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s of %d pages: %v, Mmap+Munmap waited at most %v", name, pages, took, worst)
		if worst > took/2 && worst > 100*time.Millisecond {
			t.Errorf("%s took %v and held Mmap up for %v", name, took, worst)
		}
	}
	vec := make([]byte, pages)
	measure("MincoreInto", func() error {
		if err := as.MincoreInto(a, length, vec); err != nil {
			return err
		}
		if vec[pages-1] != 1 || vec[0] != 0 {
			t.Errorf("MincoreInto: first, last = %d, %d; want 0, 1", vec[0], vec[pages-1])
		}
		return nil
	})
	var res []bool
	measure("Mincore", func() error {
		var err error
		res, err = as.Mincore(a, length)
		return err
	})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	as.Mincore(a, length)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(pages)+(1<<20) {
		t.Errorf("Mincore of %d pages allocated %d bytes; want at most one per page", pages, alloc)
	}
	if len(res) != int(pages) || !res[pages-1] || res[0] {
		t.Errorf("Mincore: %d pages, last %v", len(res), res[len(res)-1])
	}
	// Allocations (the tree's lookups) do not grow with the length.
	small := testing.AllocsPerRun(3, func() { as.MincoreInto(a, 64*pg, vec) })
	large := testing.AllocsPerRun(3, func() { as.MincoreInto(a, 4*mincoreChunk*pg, vec) })
	if small > 8 || large > 4*small {
		t.Errorf("MincoreInto allocates %v times for 64 pages, %v for %d; want a few, not growing", small, large, 4*mincoreChunk)
	}
}
