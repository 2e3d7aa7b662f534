package usermem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
)

// hostIO is a minimal IO over real host memory: address a is Mem[a]. Its
// CopyIn copies fault-safely and turns a SIGSEGV into EFAULT. It records
// every CopyIn as a range, to check how CopyStringIn reads.
type hostIO struct {
	*BytesIO // for the methods CopyStringIn does not use
	Mem      []byte
	reads    []hostarch.AddrRange
	segvs    int // CopyIns that hit a SIGSEGV
}

func (h *hostIO) CopyIn(ctx context.Context, addr hostarch.Addr, dst []byte, opts IOOpts) (int, error) {
	h.reads = append(h.reads, hostarch.AddrRange{Start: addr, End: addr + hostarch.Addr(len(dst))})
	if uint64(addr) > uint64(len(h.Mem)) {
		return 0, unix.EFAULT
	}
	src := h.Mem[addr:]
	n, err := safemem.Copy(safemem.BlockFromSafeSlice(dst), safemem.BlockFromUnsafeSlice(src))
	var segv safemem.SegvError
	if errors.As(err, &segv) {
		h.segvs++
		return n, unix.EFAULT
	}
	if err == nil && n < len(dst) {
		return n, unix.EFAULT
	}
	return n, err
}

// mapTwoPages maps two pages, the second PROT_NONE, and returns the whole
// mapping; the first page is filled with 'a'..'z' repeated.
func mapTwoPages(t testing.TB) []byte {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, 2*hostarch.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	if err := unix.Mprotect(mem[hostarch.PageSize:], unix.PROT_NONE); err != nil {
		t.Fatalf("mprotect: %v", err)
	}
	for i := range hostarch.PageSize {
		mem[i] = 'a' + byte(i%26)
	}
	return mem
}

func TestCopyStringInHostMemory(t *testing.T) {
	const page = hostarch.PageSize
	letters := func(start, n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteByte('a' + byte((start+i)%26))
		}
		return b.String()
	}
	for _, tc := range []struct {
		name   string
		addr   int
		nul    int // offset of the NUL in page 0, or -1 for none
		maxlen int
		want   string
		err    error
	}{
		{"short", 0, 5, 64, "abcde", nil},
		{"empty", 7, 7, 64, "", nil},
		{"empty maxlen 1", 7, 7, 1, "", nil},
		{"exactly fits", 0, 5, 6, "abcde", nil},
		{"one over", 0, 5, 5, "abcde", unix.ENAMETOOLONG},
		{"maxlen 0", 0, 5, 0, "", unix.ENAMETOOLONG},
		{"NUL last byte before bad page, first chunk", page - 100, page - 1, 4096, letters(page-100, 99), nil},
		{"NUL last byte before bad page, whole page", 0, page - 1, 8192, letters(0, page-1), nil},
		{"NUL last byte before bad page, exactly fits", page - 300, page - 1, 300, letters(page-300, 299), nil},
		{"into bad page, first chunk", page - 100, -1, 4096, letters(page-100, 100), unix.EFAULT},
		{"into bad page, whole page", 0, -1, 8192, letters(0, page), unix.EFAULT},
		{"maxlen stops before bad page", page - 100, -1, 100, letters(page-100, 100), unix.ENAMETOOLONG},
		{"maxlen one past bad page", page - 100, -1, 101, letters(page-100, 100), unix.EFAULT},
		{"long, exactly fits", 0, 1000, 1001, letters(0, 1000), nil},
		{"long, one over", 0, 1000, 1000, letters(0, 1000), unix.ENAMETOOLONG},
		{"long, truncated in first chunk", 0, 1000, 200, letters(0, 200), unix.ENAMETOOLONG},
		{"long, truncated at chunk boundary", 0, 1000, 256, letters(0, 256), unix.ENAMETOOLONG},
		{"long, truncated after chunk", 0, 1000, 257, letters(0, 257), unix.ENAMETOOLONG},
		{"NUL at chunk boundary", 0, 256, 4096, letters(0, 256), nil},
		{"NUL just before chunk boundary", 0, 255, 4096, letters(0, 255), nil},
		{"start in bad page", page, -1, 64, "", unix.EFAULT},
		{"start beyond the mapping", 3 * page, -1, 64, "", unix.EFAULT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := mapTwoPages(t)
			if tc.nul >= 0 {
				mem[tc.nul] = 0
			}
			h := &hostIO{Mem: mem}
			addr := hostarch.Addr(tc.addr)
			got, err := CopyStringIn(context.Background(), h, addr, tc.maxlen, IOOpts{})
			if got != tc.want || !errIs(err, tc.err) {
				t.Fatalf("CopyStringIn(%#x, %d) = %q (%d bytes), %v; want %q (%d bytes), %v",
					addr, tc.maxlen, abbrev(got), len(got), err, abbrev(tc.want), len(tc.want), tc.err)
			}
			// Faults inside the mapping come from the PROT_NONE page itself.
			if wantSegv := errors.Is(tc.err, unix.EFAULT) && tc.addr < 2*page; (h.segvs == 1) != wantSegv || h.segvs > 1 {
				t.Errorf("%d reads hit SIGSEGV, want %v", h.segvs, wantSegv)
			}
			// No read crosses a page boundary or reaches addr+maxlen.
			limit := addr + hostarch.Addr(tc.maxlen)
			for _, r := range h.reads {
				if r.Length() == 0 {
					t.Errorf("empty read %v", r)
				}
				if r.Start.RoundDown() != (r.End - 1).RoundDown() {
					t.Errorf("read %v crosses a page boundary", r)
				}
				if r.End > limit {
					t.Errorf("read %v reaches beyond addr+maxlen %#x", r, limit)
				}
			}
		})
	}
}

func abbrev(s string) string {
	if len(s) > 20 {
		return s[:8] + "..." + s[len(s)-8:]
	}
	return s
}

func TestCopyStringInBytesIO(t *testing.T) {
	ctx := context.Background()
	b := &BytesIO{Bytes: []byte("hello\x00world")}
	if s, err := CopyStringIn(ctx, b, 0, 100, IOOpts{}); s != "hello" || err != nil {
		t.Errorf("CopyStringIn = %q, %v", s, err)
	}
	// Running off the end of the slice: the bytes so far and EFAULT.
	if s, err := CopyStringIn(ctx, b, 6, 100, IOOpts{}); s != "world" || !errors.Is(err, unix.EFAULT) {
		t.Errorf("CopyStringIn past end = %q, %v; want world, EFAULT", s, err)
	}
	// A read that would wrap past the top of the address space: EFAULT.
	for _, addr := range []hostarch.Addr{maxAddr, maxAddr - 10, maxAddr - hostarch.PageSize + 1} {
		if s, err := CopyStringIn(ctx, b, addr, 100, IOOpts{}); s != "" || !errors.Is(err, unix.EFAULT) {
			t.Errorf("CopyStringIn(%#x) = %q, %v; want \"\", EFAULT", addr, s, err)
		}
	}
}

// TestCopyStringInWrap: memory up to the top is readable (zeroFreeIO),
// so the string is read up to the last page boundary below the top, and the
// next read, which would end at 2^64, fails with EFAULT.
func TestCopyStringInWrap(t *testing.T) {
	addr := maxAddr - 2*hostarch.PageSize + 1 - 10
	s, err := CopyStringIn(context.Background(), zeroFreeIO{}, addr, 1<<20, IOOpts{})
	if len(s) != hostarch.PageSize+10 || !errors.Is(err, unix.EFAULT) {
		t.Errorf("CopyStringIn near the top = %d bytes, %v; want %d bytes, EFAULT", len(s), err, hostarch.PageSize+10)
	}
}

// zeroFreeIO reads 'x' everywhere.
type zeroFreeIO struct{ *BytesIO }

func (zeroFreeIO) CopyIn(ctx context.Context, addr hostarch.Addr, dst []byte, opts IOOpts) (int, error) {
	if _, ok := addr.AddLength(uint64(len(dst))); !ok {
		panic(fmt.Sprintf("read [%#x, +%d) wraps", addr, len(dst)))
	}
	copy(dst, bytes.Repeat([]byte{'x'}, len(dst)))
	return len(dst), nil
}

func TestCopyStringInNegativeMaxlen(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("CopyStringIn with maxlen -1 did not panic")
		}
	}()
	CopyStringIn(context.Background(), &BytesIO{Bytes: []byte{0}}, 0, -1, IOOpts{})
}

func TestCopyStringInAllocs(t *testing.T) {
	b := &BytesIO{Bytes: append(bytes.Repeat([]byte{'p'}, 64), 0)}
	allocs := testing.AllocsPerRun(100, func() {
		if s, err := CopyStringIn(context.Background(), b, 0, 4096, IOOpts{}); len(s) != 64 || err != nil {
			t.Fatalf("CopyStringIn = %d bytes, %v", len(s), err)
		}
	})
	// One allocation: the string. (sync.Pool may drop the scratch buffer
	// now and then, notably under the race detector.)
	if allocs > 1.5 {
		t.Errorf("CopyStringIn of 64 bytes: %v allocations, want 1", allocs)
	}
}
