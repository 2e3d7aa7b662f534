package usermem

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/hostarch"
)

// limitIO wraps an IO and fails every access at or beyond Limit with EFAULT,
// transferring the bytes before it: a fault midway through an address range.
type limitIO struct {
	BytesIO
	Limit hostarch.Addr
}

func (l *limitIO) clip(addr hostarch.Addr, n int) (int, error) {
	if addr >= l.Limit {
		if n == 0 {
			return 0, nil
		}
		return 0, unix.EFAULT
	}
	if uint64(n) > uint64(l.Limit-addr) {
		return int(l.Limit - addr), unix.EFAULT
	}
	return n, nil
}

func (l *limitIO) CopyIn(ctx context.Context, addr hostarch.Addr, dst []byte, opts IOOpts) (int, error) {
	n, lerr := l.clip(addr, len(dst))
	done, err := l.BytesIO.CopyIn(ctx, addr, dst[:n], opts)
	if err == nil {
		err = lerr
	}
	return done, err
}

func (l *limitIO) CopyOut(ctx context.Context, addr hostarch.Addr, src []byte, opts IOOpts) (int, error) {
	n, lerr := l.clip(addr, len(src))
	done, err := l.BytesIO.CopyOut(ctx, addr, src[:n], opts)
	if err == nil {
		err = lerr
	}
	return done, err
}

func (l *limitIO) ZeroOut(ctx context.Context, addr hostarch.Addr, toZero int64, opts IOOpts) (int64, error) {
	n, lerr := l.clip(addr, int(toZero))
	done, err := l.BytesIO.ZeroOut(ctx, addr, int64(n), opts)
	if err == nil {
		err = lerr
	}
	return done, err
}

// vecHelperCases run over a 64-byte memory whose accesses fault from 40 on.
var vecHelperCases = []struct {
	name   string
	ars    hostarch.AddrRangeSeq
	length int // len(dst), len(src) or toZero
	want   int
	err    error
}{
	{"no ranges", hostarch.AddrRangeSeq{}, 8, 0, nil},
	{"zero-length buffer", seqOf(0, 8), 0, 0, nil},
	{"single", seqOf(2, 10), 8, 8, nil},
	{"buffer shorter than ranges", seqOf(0, 4, 8, 16), 6, 6, nil},
	{"buffer longer than ranges", seqOf(0, 4, 8, 16), 20, 12, nil},
	{"zero-length ranges", seqOf(5, 5, 0, 3, 7, 7, 7, 7, 10, 12, 63, 63), 10, 5, nil},
	{"only zero-length ranges", seqOf(5, 5, 50, 50), 10, 0, nil},
	{"fault midway through a range", seqOf(0, 4, 36, 48, 20, 24), 20, 8, unix.EFAULT},
	{"fault at the start of a range", seqOf(0, 4, 40, 48), 20, 4, unix.EFAULT},
	{"fault beyond the buffer is not reached", seqOf(0, 4, 36, 48), 6, 6, nil},
	{"zero-length range in faulting memory", seqOf(0, 4, 50, 50, 8, 12), 20, 8, nil},
	{"straddling the slice end", seqOf(60, 70), 10, 4, unix.EFAULT},
}

func newLimitIO() *limitIO {
	return &limitIO{BytesIO: BytesIO{Bytes: seqBytes(64)}, Limit: 40}
}

func TestCopyInVec(t *testing.T) {
	ctx := context.Background()
	for _, tc := range vecHelperCases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimitIO()
			if tc.name == "straddling the slice end" {
				l.Limit = 1 << 20
			}
			dst := bytes.Repeat([]byte{0xee}, tc.length)
			n, err := CopyInVec(ctx, l, tc.ars, dst, IOOpts{})
			if n != tc.want || !errIs(err, tc.err) {
				t.Fatalf("CopyInVec(%v, %d) = %d, %v; want %d, %v", tc.ars, tc.length, n, err, tc.want, tc.err)
			}
			if want := gather(l.Bytes, tc.ars, n); !bytes.Equal(dst[:n], want) {
				t.Errorf("dst = %v, want %v", dst[:n], want)
			}
			// Through IOSequence.CopyIn too.
			dst2 := make([]byte, tc.length)
			s := IOSequence{IO: l, Addrs: tc.ars}
			if n2, err2 := s.CopyIn(ctx, dst2); n2 != n || !errIs(err2, tc.err) || !bytes.Equal(dst2[:n2], dst[:n]) {
				t.Errorf("IOSequence.CopyIn = %d, %v; want %d, %v", n2, err2, n, err)
			}
		})
	}
}

func TestCopyOutVec(t *testing.T) {
	ctx := context.Background()
	for _, tc := range vecHelperCases {
		for _, viaSeq := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				l := newLimitIO()
				if tc.name == "straddling the slice end" {
					l.Limit = 1 << 20
				}
				clear(l.Bytes)
				src := seqBytes(tc.length)
				var n int
				var err error
				if viaSeq {
					n, err = IOSequence{IO: l, Addrs: tc.ars}.CopyOut(ctx, src)
				} else {
					n, err = CopyOutVec(ctx, l, tc.ars, src, IOOpts{})
				}
				if n != tc.want || !errIs(err, tc.err) {
					t.Fatalf("CopyOutVec(%v, %d) = %d, %v; want %d, %v", tc.ars, tc.length, n, err, tc.want, tc.err)
				}
				if got := gather(l.Bytes, tc.ars, n); !bytes.Equal(got, src[:n]) {
					t.Errorf("memory at ranges = %v, want %v", got, src[:n])
				}
				if nz := len(l.Bytes) - bytes.Count(l.Bytes, []byte{0}); nz > n {
					t.Errorf("%d bytes written, want at most %d", nz, n)
				}
			})
		}
	}
}

func TestZeroOutVec(t *testing.T) {
	ctx := context.Background()
	cases := append(vecHelperCases[:len(vecHelperCases):len(vecHelperCases)], struct {
		name   string
		ars    hostarch.AddrRangeSeq
		length int
		want   int
		err    error
	}{"negative", seqOf(0, 8), -1, 0, nil})
	for _, tc := range cases {
		for _, viaSeq := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				l := newLimitIO()
				if tc.name == "straddling the slice end" {
					l.Limit = 1 << 20
				}
				var n int64
				var err error
				if viaSeq {
					n, err = IOSequence{IO: l, Addrs: tc.ars}.ZeroOut(ctx, int64(tc.length))
				} else {
					n, err = ZeroOutVec(ctx, l, tc.ars, int64(tc.length), IOOpts{})
				}
				if n != int64(tc.want) || !errIs(err, tc.err) {
					t.Fatalf("ZeroOutVec(%v, %d) = %d, %v; want %d, %v", tc.ars, tc.length, n, err, tc.want, tc.err)
				}
				if got := gather(l.Bytes, tc.ars, int(n)); !bytes.Equal(got, make([]byte, n)) {
					t.Errorf("memory at ranges = %v, want zeroes", got)
				}
				if z := bytes.Count(l.Bytes, []byte{0}); z != int(n) {
					t.Errorf("%d bytes zeroed, want %d", z, n)
				}
			})
		}
	}
}

func TestIOSequenceSlicing(t *testing.T) {
	l := newLimitIO()
	opts := IOOpts{IgnorePermissions: true}
	s := IOSequence{IO: l, Addrs: seqOf(0, 4, 10, 10, 20, 28), Opts: opts}
	for _, tc := range []struct {
		name string
		got  IOSequence
		want string
		n    int64
	}{
		{"whole", s, "[[0x0, 0x4) [0xa, 0xa) [0x14, 0x1c)]", 12},
		{"DropFirst", s.DropFirst(2), "[[0x2, 0x4) [0xa, 0xa) [0x14, 0x1c)]", 10},
		{"DropFirst64 head", s.DropFirst64(4), "[[0xa, 0xa) [0x14, 0x1c)]", 8},
		{"DropFirst past empty", s.DropFirst(5), "[[0x15, 0x1c)]", 7},
		{"TakeFirst", s.TakeFirst(6), "[[0x0, 0x4) [0xa, 0xa) [0x14, 0x16)]", 6},
		{"TakeFirst64 zero", s.TakeFirst64(0), "[[0x0, 0x0) [0xa, 0xa) [0x14, 0x14)]", 0},
	} {
		if got := tc.got.Addrs.String(); got != tc.want || tc.got.NumBytes() != tc.n {
			t.Errorf("%s: %s (%d bytes), want %s (%d bytes)", tc.name, got, tc.got.NumBytes(), tc.want, tc.n)
		}
		if tc.got.IO != s.IO || tc.got.Opts != opts {
			t.Errorf("%s: IO or Opts not kept", tc.name)
		}
	}
}

func TestIOSequenceStreams(t *testing.T) {
	ctx := context.Background()
	l := newLimitIO()
	s := IOSequence{IO: l, Addrs: seqOf(0, 4, 10, 10, 20, 28)}
	var out bytes.Buffer
	n, err := s.CopyInTo(ctx, fromIOWriter(&out))
	if n != 12 || err != nil || !bytes.Equal(out.Bytes(), gather(l.Bytes, s.Addrs, 12)) {
		t.Errorf("CopyInTo = %d, %v, %v", n, err, out.Bytes())
	}
	n, err = s.CopyOutFrom(ctx, fromIOReader(bytes.NewReader(bytes.Repeat([]byte{0}, 12))))
	if n != 12 || err != nil || !bytes.Equal(gather(l.Bytes, s.Addrs, 12), make([]byte, 12)) {
		t.Errorf("CopyOutFrom = %d, %v", n, err)
	}
}

func TestIOSequenceReader(t *testing.T) {
	ctx := context.Background()
	l := newLimitIO()
	ars := seqOf(0, 3, 5, 5, 10, 15, 20, 21)
	want := gather(l.Bytes, ars, 9)

	// Read in pieces of every size; the last read returns io.EOF.
	for size := 1; size <= 10; size++ {
		r := IOSequence{IO: l, Addrs: ars}.Reader(ctx)
		if r.Len() != 9 {
			t.Fatalf("Len = %d, want 9", r.Len())
		}
		var got []byte
		buf := make([]byte, size)
		for i := 0; ; i++ {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil || n != size {
				t.Fatalf("size %d: Read = %d, %v", size, n, err)
			}
			if i > 20 {
				t.Fatalf("size %d: no EOF", size)
			}
		}
		if !bytes.Equal(got, want) || r.Len() != 0 {
			t.Errorf("size %d: read %v (Len %d), want %v", size, got, r.Len(), want)
		}
		if n, err := r.Read(buf); n != 0 || err != io.EOF {
			t.Errorf("size %d: Read after end = %d, %v; want 0, EOF", size, n, err)
		}
	}

	// io.ReadAll sees the whole sequence.
	got, err := io.ReadAll(IOSequence{IO: l, Addrs: ars}.Reader(ctx))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("ReadAll = %v, %v", got, err)
	}

	// A fault is returned with the bytes before it.
	r := IOSequence{IO: l, Addrs: seqOf(0, 2, 36, 50)}.Reader(ctx)
	buf := make([]byte, 10)
	n, err := r.Read(buf)
	if n != 6 || !errors.Is(err, unix.EFAULT) || r.Len() != 10 {
		t.Errorf("Read over a fault = %d, %v (Len %d); want 6, EFAULT (Len 10)", n, err, r.Len())
	}
}

func TestIOSequenceWriter(t *testing.T) {
	ctx := context.Background()
	l := newLimitIO()
	clear(l.Bytes)
	ars := seqOf(0, 3, 5, 5, 10, 15)
	w := IOSequence{IO: l, Addrs: ars}.Writer(ctx)
	if n, err := w.Write([]byte("ab")); n != 2 || err != nil || w.Len() != 6 {
		t.Fatalf("Write = %d, %v (Len %d); want 2, nil (Len 6)", n, err, w.Len())
	}
	if n, err := w.Write([]byte("cdefg")); n != 5 || err != nil || w.Len() != 1 {
		t.Fatalf("Write = %d, %v (Len %d); want 5, nil (Len 1)", n, err, w.Len())
	}
	if n, err := w.Write([]byte("hij")); n != 1 || err != ErrEndOfIOSequence {
		t.Fatalf("Write past end = %d, %v; want 1, ErrEndOfIOSequence", n, err)
	}
	if n, err := w.Write([]byte("k")); n != 0 || err != ErrEndOfIOSequence {
		t.Fatalf("Write at end = %d, %v; want 0, ErrEndOfIOSequence", n, err)
	}
	if n, err := w.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty Write at end = %d, %v; want 0, nil", n, err)
	}
	if got := string(gather(l.Bytes, ars, 8)); got != "abcdefgh" {
		t.Errorf("memory = %q, want %q", got, "abcdefgh")
	}

	// A fault is returned with the bytes before it, not ErrEndOfIOSequence.
	w = IOSequence{IO: l, Addrs: seqOf(38, 50)}.Writer(ctx)
	if n, err := w.Write([]byte("xyz")); n != 2 || !errors.Is(err, unix.EFAULT) {
		t.Errorf("Write over a fault = %d, %v; want 2, EFAULT", n, err)
	}
}

func TestIOReadWriter(t *testing.T) {
	ctx := context.Background()
	l := newLimitIO()
	rw := &IOReadWriter{Ctx: ctx, IO: l, Addr: 30}
	buf := make([]byte, 4)
	if n, err := rw.Read(buf); n != 4 || err != nil || rw.Addr != 34 || !bytes.Equal(buf, l.Bytes[30:34]) {
		t.Fatalf("Read = %d, %v, Addr %#x, %v", n, err, rw.Addr, buf)
	}
	if n, err := rw.Write([]byte{0xaa, 0xbb}); n != 2 || err != nil || rw.Addr != 36 || l.Bytes[34] != 0xaa || l.Bytes[35] != 0xbb {
		t.Fatalf("Write = %d, %v, Addr %#x", n, err, rw.Addr)
	}
	// Straddling the fault at 40: partial count, EFAULT, Addr advanced by n.
	if n, err := rw.Read(make([]byte, 8)); n != 4 || !errors.Is(err, unix.EFAULT) || rw.Addr != 40 {
		t.Fatalf("Read over fault = %d, %v, Addr %#x; want 4, EFAULT, 0x28", n, err, rw.Addr)
	}
	if n, err := rw.Write([]byte{1}); n != 0 || !errors.Is(err, unix.EFAULT) || rw.Addr != 40 {
		t.Fatalf("Write at fault = %d, %v, Addr %#x; want 0, EFAULT, 0x28", n, err, rw.Addr)
	}
	rw.Addr = 0
	if n, err := io.ReadFull(rw, make([]byte, 50)); n != 40 || !errors.Is(err, unix.EFAULT) {
		t.Errorf("ReadFull = %d, %v; want 40, EFAULT", n, err)
	}

	// An advance that would wrap stops at the top of the address space.
	top := &IOReadWriter{Ctx: ctx, IO: anyIO{}, Addr: maxAddr - 1}
	if n, err := top.Read(make([]byte, 1)); n != 1 || err != nil || top.Addr != maxAddr {
		t.Errorf("Read below top = %d, %v, Addr %#x", n, err, top.Addr)
	}
	if n, err := top.Read(make([]byte, 1)); n != 1 || err != nil || top.Addr != maxAddr {
		t.Errorf("Read of top byte = %d, %v, Addr %#x; want 1, nil, top", n, err, top.Addr)
	}
	top.Addr = maxAddr
	if n, err := top.Write(make([]byte, 3)); n != 1 || !errors.Is(err, unix.EFAULT) || top.Addr != maxAddr {
		t.Errorf("Write wrapping = %d, %v, Addr %#x; want 1, EFAULT, top", n, err, top.Addr)
	}
}

// anyIO accepts reads and writes at every address up to the top of the
// address space, reporting EIO for bytes beyond it.
type anyIO struct{ *BytesIO }

func (anyIO) span(addr hostarch.Addr, n int) (int, error) {
	if room := uint64(maxAddr-addr) + 1; uint64(n) > room {
		return int(room), unix.EIO
	}
	return n, nil
}

func (a anyIO) CopyIn(ctx context.Context, addr hostarch.Addr, dst []byte, opts IOOpts) (int, error) {
	return a.span(addr, len(dst))
}

func (a anyIO) CopyOut(ctx context.Context, addr hostarch.Addr, src []byte, opts IOOpts) (int, error) {
	return a.span(addr, len(src))
}

func TestIOCopyContext(t *testing.T) {
	l := newLimitIO()
	cc := &IOCopyContext{Ctx: context.Background(), IO: l}
	buf := cc.CopyScratchBuffer(6)
	if len(buf) != 6 || !bytes.Equal(buf, make([]byte, 6)) {
		t.Fatalf("CopyScratchBuffer(6) = %v", buf)
	}
	if len(cc.CopyScratchBuffer(0)) != 0 {
		t.Errorf("CopyScratchBuffer(0) not empty")
	}
	if n, err := cc.CopyInBytes(36, buf); n != 4 || !errors.Is(err, unix.EFAULT) || !bytes.Equal(buf[:4], l.Bytes[36:40]) {
		t.Errorf("CopyInBytes = %d, %v; want 4, EFAULT", n, err)
	}
	if n, err := cc.CopyOutBytes(8, []byte("hi")); n != 2 || err != nil || string(l.Bytes[8:10]) != "hi" {
		t.Errorf("CopyOutBytes = %d, %v", n, err)
	}
	if n, err := cc.CopyOutBytes(39, []byte("hi")); n != 1 || !errors.Is(err, unix.EFAULT) {
		t.Errorf("CopyOutBytes over fault = %d, %v; want 1, EFAULT", n, err)
	}
}
