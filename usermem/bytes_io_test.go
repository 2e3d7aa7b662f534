package usermem

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
)

const maxAddr = ^hostarch.Addr(0)

// seqBytes returns n bytes with values 1, 2, 3, ... (mod 256), so that
// misplaced copies show.
func seqBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i + 1)
	}
	return b
}

// errIs reports whether got matches want: both nil, or errors.Is(got, want).
func errIs(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

// accessCases are the single-address cases shared by CopyIn, CopyOut and
// ZeroOut over a 16-byte BytesIO.
var accessCases = []struct {
	name   string
	addr   hostarch.Addr
	length int
	want   int
	err    error
}{
	{"start", 0, 4, 4, nil},
	{"middle", 5, 6, 6, nil},
	{"whole", 0, 16, 16, nil},
	{"ending at end", 12, 4, 4, nil},
	{"straddling end", 14, 4, 2, unix.EFAULT},
	{"straddling end by one", 0, 17, 16, unix.EFAULT},
	{"last byte", 15, 1, 1, nil},
	{"at end", 16, 1, 0, unix.EFAULT},
	{"far beyond", 1 << 40, 8, 0, unix.EFAULT},
	{"overflowing", maxAddr - 1, 4, 0, unix.EFAULT},
	{"top byte", maxAddr, 1, 0, unix.EFAULT},
	{"zero length", 3, 0, 0, nil},
	{"zero length at end", 16, 0, 0, nil},
	{"zero length far beyond", maxAddr, 0, 0, nil},
}

func TestBytesIOCopyIn(t *testing.T) {
	ctx := context.Background()
	for _, tc := range accessCases {
		t.Run(tc.name, func(t *testing.T) {
			mem := seqBytes(16)
			b := &BytesIO{Bytes: mem}
			dst := bytes.Repeat([]byte{0xee}, tc.length)
			n, err := b.CopyIn(ctx, tc.addr, dst, IOOpts{})
			if n != tc.want || !errIs(err, tc.err) {
				t.Fatalf("CopyIn(%#x, %d) = %d, %v; want %d, %v", tc.addr, tc.length, n, err, tc.want, tc.err)
			}
			want := bytes.Repeat([]byte{0xee}, tc.length)
			if n > 0 {
				copy(want, mem[tc.addr:int(tc.addr)+n])
			}
			if !bytes.Equal(dst, want) {
				t.Errorf("dst = %v, want %v", dst, want)
			}
			if !bytes.Equal(mem, seqBytes(16)) {
				t.Errorf("CopyIn changed memory: %v", mem)
			}
		})
	}
}

func TestBytesIOCopyOut(t *testing.T) {
	ctx := context.Background()
	for _, tc := range accessCases {
		t.Run(tc.name, func(t *testing.T) {
			mem := seqBytes(16)
			b := &BytesIO{Bytes: mem}
			src := bytes.Repeat([]byte{0xee}, tc.length)
			n, err := b.CopyOut(ctx, tc.addr, src, IOOpts{})
			if n != tc.want || !errIs(err, tc.err) {
				t.Fatalf("CopyOut(%#x, %d) = %d, %v; want %d, %v", tc.addr, tc.length, n, err, tc.want, tc.err)
			}
			want := seqBytes(16)
			if n > 0 {
				copy(want[tc.addr:int(tc.addr)+n], src)
			}
			if !bytes.Equal(mem, want) {
				t.Errorf("memory = %v, want %v", mem, want)
			}
		})
	}
}

func TestBytesIOZeroOut(t *testing.T) {
	ctx := context.Background()
	cases := append(accessCases[:len(accessCases):len(accessCases)], struct {
		name   string
		addr   hostarch.Addr
		length int
		want   int
		err    error
	}{"negative", 0, -1, 0, unix.EINVAL})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := seqBytes(16)
			b := &BytesIO{Bytes: mem}
			n, err := b.ZeroOut(ctx, tc.addr, int64(tc.length), IOOpts{})
			if n != int64(tc.want) || !errIs(err, tc.err) {
				t.Fatalf("ZeroOut(%#x, %d) = %d, %v; want %d, %v", tc.addr, tc.length, n, err, tc.want, tc.err)
			}
			want := seqBytes(16)
			if n > 0 {
				clear(want[tc.addr : int(tc.addr)+int(n)])
			}
			if !bytes.Equal(mem, want) {
				t.Errorf("memory = %v, want %v", mem, want)
			}
		})
	}
}

func TestBytesIOAtomics(t *testing.T) {
	ctx := context.Background()
	type op int
	const (
		swap op = iota
		cas
		load
	)
	for _, tc := range []struct {
		name     string
		op       op
		addr     hostarch.Addr
		old, new uint32
		want     uint32
		err      error
		stored   bool // whether new is stored at addr
	}{
		{"swap start", swap, 0, 0, 0xdeadbeef, 0x04030201, nil, true},
		{"swap last word", swap, 12, 0, 7, 0x100f0e0d, nil, true},
		{"swap straddling end", swap, 16, 0, 7, 0, unix.EFAULT, false},
		{"swap beyond", swap, 1 << 20, 0, 7, 0, unix.EFAULT, false},
		{"swap overflowing", swap, maxAddr &^ 3, 0, 7, 0, unix.EFAULT, false},
		{"swap misaligned 1", swap, 1, 0, 7, 0, unix.EINVAL, false},
		{"swap misaligned 2", swap, 2, 0, 7, 0, unix.EINVAL, false},
		{"swap misaligned 3", swap, 3, 0, 7, 0, unix.EINVAL, false},
		{"swap misaligned at end", swap, 14, 0, 7, 0, unix.EINVAL, false},
		{"cas equal", cas, 4, 0x08070605, 9, 0x08070605, nil, true},
		{"cas unequal", cas, 4, 1, 9, 0x08070605, nil, false},
		{"cas beyond", cas, 16, 0, 9, 0, unix.EFAULT, false},
		{"cas misaligned", cas, 5, 0x09080706, 9, 0, unix.EINVAL, false},
		{"load", load, 8, 0, 0, 0x0c0b0a09, nil, false},
		{"load last word", load, 12, 0, 0, 0x100f0e0d, nil, false},
		{"load beyond", load, 20, 0, 0, 0, unix.EFAULT, false},
		{"load misaligned", load, 7, 0, 0, 0, unix.EINVAL, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := seqBytes(16)
			b := &BytesIO{Bytes: mem}
			var got uint32
			var err error
			switch tc.op {
			case swap:
				got, err = b.SwapUint32(ctx, tc.addr, tc.new, IOOpts{})
			case cas:
				got, err = b.CompareAndSwapUint32(ctx, tc.addr, tc.old, tc.new, IOOpts{})
			case load:
				got, err = b.LoadUint32(ctx, tc.addr, IOOpts{})
			}
			if got != tc.want || !errIs(err, tc.err) {
				t.Fatalf("got %#x, %v; want %#x, %v", got, err, tc.want, tc.err)
			}
			want := seqBytes(16)
			if tc.stored {
				hostarch.ByteOrder.PutUint32(want[tc.addr:], tc.new)
			}
			if !bytes.Equal(mem, want) {
				t.Errorf("memory = %v, want %v", mem, want)
			}
		})
	}
}

// TestBytesIOAtomicHostMisaligned checks that an aligned offset into a
// slice that is misaligned in host memory is refused, not torn.
func TestBytesIOAtomicHostMisaligned(t *testing.T) {
	ctx := context.Background()
	backing := seqBytes(20)
	b := &BytesIO{Bytes: backing[1:]}
	_, err := b.SwapUint32(ctx, 0, 0xffffffff, IOOpts{})
	var ae safemem.AlignmentError
	if !errors.Is(err, unix.EINVAL) || !errors.As(err, &ae) || ae.Alignment != 4 {
		t.Fatalf("SwapUint32 on a misaligned host address: err = %v, want an AlignmentError (EINVAL)", err)
	}
	if !bytes.Equal(backing, seqBytes(20)) {
		t.Errorf("memory changed: %v", backing)
	}
	if _, err := b.LoadUint32(ctx, 4, IOOpts{}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("LoadUint32: err = %v, want EINVAL", err)
	}
	if _, err := b.CompareAndSwapUint32(ctx, 8, 0, 1, IOOpts{}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("CompareAndSwapUint32: err = %v, want EINVAL", err)
	}
}

// seqOf returns an AddrRangeSeq of the given [start, end) pairs.
func seqOf(pairs ...hostarch.Addr) hostarch.AddrRangeSeq {
	var rs []hostarch.AddrRange
	for i := 0; i < len(pairs); i += 2 {
		rs = append(rs, hostarch.AddrRange{Start: pairs[i], End: pairs[i+1]})
	}
	return hostarch.AddrRangeSeqFromSlice(rs)
}

// gather returns the bytes of mem that ars covers, up to n bytes.
func gather(mem []byte, ars hostarch.AddrRangeSeq, n int) []byte {
	var out []byte
	for ; !ars.IsEmpty() && len(out) < n; ars = ars.Tail() {
		ar := ars.Head()
		for a := ar.Start; a < ar.End && len(out) < n; a++ {
			out = append(out, mem[a])
		}
	}
	return out
}

// vecCases are the multi-range cases shared by the BytesIO stream methods
// and the Vec helpers, over a 32-byte BytesIO.
var vecCases = []struct {
	name string
	ars  hostarch.AddrRangeSeq
	want int // bytes transferred when the other side has room for all
	err  error
}{
	{"empty", hostarch.AddrRangeSeq{}, 0, nil},
	{"single", seqOf(4, 12), 8, nil},
	{"single zero-length", seqOf(4, 4), 0, nil},
	{"single zero-length beyond", seqOf(100, 100), 0, nil},
	{"several", seqOf(0, 2, 10, 14, 30, 32), 8, nil},
	{"zero-length ranges", seqOf(3, 3, 0, 2, 9, 9, 10, 14, 100, 100, 31, 32), 7, nil},
	{"straddling end", seqOf(0, 4, 28, 36, 0, 4), 8, unix.EFAULT},
	{"beyond end", seqOf(0, 4, 40, 44, 8, 12), 4, unix.EFAULT},
	{"all beyond end", seqOf(32, 40), 0, unix.EFAULT},
	{"at the top of the address space", seqOf(8, 10, maxAddr-3, maxAddr), 2, unix.EFAULT},
}

func TestBytesIOCopyInTo(t *testing.T) {
	ctx := context.Background()
	for _, tc := range vecCases {
		t.Run(tc.name, func(t *testing.T) {
			mem := seqBytes(32)
			b := &BytesIO{Bytes: mem}
			var out bytes.Buffer
			calls := 0
			w := safemem.WriterFunc(func(srcs safemem.BlockSeq) (uint64, error) {
				calls++
				return safemem.FromIOWriter{Writer: &out}.WriteFromBlocks(srcs)
			})
			n, err := b.CopyInTo(ctx, tc.ars, w, IOOpts{})
			if n != int64(tc.want) || !errIs(err, tc.err) {
				t.Fatalf("CopyInTo(%v) = %d, %v; want %d, %v", tc.ars, n, err, tc.want, tc.err)
			}
			if want := gather(mem, tc.ars, tc.want); !bytes.Equal(out.Bytes(), want) {
				t.Errorf("wrote %v, want %v", out.Bytes(), want)
			}
			if wantCalls := 1; tc.want == 0 && tc.err != nil {
				if calls != 0 {
					t.Errorf("writer called %d times with nothing accessible, want 0", calls)
				}
			} else if calls != wantCalls {
				t.Errorf("writer called %d times, want %d", calls, wantCalls)
			}
		})
	}
}

func TestBytesIOCopyOutFrom(t *testing.T) {
	ctx := context.Background()
	for _, tc := range vecCases {
		t.Run(tc.name, func(t *testing.T) {
			mem := make([]byte, 32)
			b := &BytesIO{Bytes: mem}
			src := seqBytes(64)
			r := &safemem.BlockSeqReader{Blocks: safemem.BlockSeqOf(safemem.BlockFromSafeSlice(src))}
			n, err := b.CopyOutFrom(ctx, tc.ars, r, IOOpts{})
			if n != int64(tc.want) || !errIs(err, tc.err) {
				t.Fatalf("CopyOutFrom(%v) = %d, %v; want %d, %v", tc.ars, n, err, tc.want, tc.err)
			}
			if got := gather(mem, tc.ars, tc.want); !bytes.Equal(got, src[:tc.want]) {
				t.Errorf("memory at ranges = %v, want %v", got, src[:tc.want])
			}
		})
	}
}

func TestBytesIOStreamErrors(t *testing.T) {
	ctx := context.Background()
	b := &BytesIO{Bytes: make([]byte, 16)}
	boom := errors.New("boom")

	// The reader's own error wins over the range error.
	r := safemem.ReaderFunc(func(dsts safemem.BlockSeq) (uint64, error) { return 3, boom })
	if n, err := b.CopyOutFrom(ctx, seqOf(0, 32), r, IOOpts{}); n != 3 || err != boom {
		t.Errorf("CopyOutFrom with failing reader = %d, %v; want 3, boom", n, err)
	}
	// A short read without an error stays without an error when the ranges
	// are all accessible...
	short := safemem.ReaderFunc(func(dsts safemem.BlockSeq) (uint64, error) { return 5, nil })
	if n, err := b.CopyOutFrom(ctx, seqOf(0, 16), short, IOOpts{}); n != 5 || err != nil {
		t.Errorf("CopyOutFrom with short reader = %d, %v; want 5, nil", n, err)
	}
	// ... and carries the range error otherwise, as in gVisor.
	if n, err := b.CopyOutFrom(ctx, seqOf(0, 32), short, IOOpts{}); n != 5 || !errors.Is(err, unix.EFAULT) {
		t.Errorf("CopyOutFrom with short reader beyond end = %d, %v; want 5, EFAULT", n, err)
	}
	// io.EOF from an exhausted reader is reported.
	eof := &safemem.BlockSeqReader{}
	if n, err := b.CopyOutFrom(ctx, seqOf(0, 8), eof, IOOpts{}); n != 0 || err != io.EOF {
		t.Errorf("CopyOutFrom from empty reader = %d, %v; want 0, EOF", n, err)
	}
	w := safemem.WriterFunc(func(srcs safemem.BlockSeq) (uint64, error) { return 2, boom })
	if n, err := b.CopyInTo(ctx, seqOf(0, 32), w, IOOpts{}); n != 2 || err != boom {
		t.Errorf("CopyInTo with failing writer = %d, %v; want 2, boom", n, err)
	}
}

func TestBytesIOSequence(t *testing.T) {
	buf := []byte("hello")
	s := BytesIOSequence(buf)
	if s.NumBytes() != 5 || s.Addrs.NumRanges() != 1 || s.Addrs.Head() != (hostarch.AddrRange{Start: 0, End: 5}) {
		t.Fatalf("BytesIOSequence = %+v", s)
	}
	if s.Opts != (IOOpts{}) {
		t.Errorf("Opts = %+v, want zero", s.Opts)
	}
	if _, err := s.CopyOut(context.Background(), []byte("J")); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "Jello" {
		t.Errorf("BytesIOSequence copied its buffer: %q", buf)
	}
	if e := BytesIOSequence(nil); e.NumBytes() != 0 || e.Addrs.IsEmpty() {
		t.Errorf("BytesIOSequence(nil) = %v, want one zero-length range", e.Addrs)
	}
}

func fromIOWriter(w io.Writer) safemem.Writer { return safemem.FromIOWriter{Writer: w} }
func fromIOReader(r io.Reader) safemem.Reader { return safemem.FromIOReader{Reader: r} }
