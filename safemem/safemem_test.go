package safemem

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

// hostPages maps n pages of host memory, filled with a pattern, and makes
// the pages listed in bad PROT_NONE.
func hostPages(t testing.TB, n int, bad ...int) []byte {
	t.Helper()
	m, err := unix.Mmap(-1, 0, n*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	for i := range m {
		m[i] = byte(i*7 + 1)
	}
	for _, p := range bad {
		if err := unix.Mprotect(m[p*pageSize:(p+1)*pageSize], unix.PROT_NONE); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func TestBlock(t *testing.T) {
	buf := make([]byte, 10)
	b := BlockFromSafeSlice(buf)
	u := BlockFromUnsafeSlice(buf)
	for _, tc := range []struct {
		name      string
		got       Block
		addr, len int
		unsafe    bool
	}{
		{"safe", b, 0, 10, false},
		{"unsafe", u, 0, 10, true},
		{"drop", u.DropFirst(3), 3, 7, true},
		{"drop all", b.DropFirst64(10), -1, 0, false},
		{"drop more", b.DropFirst(11), -1, 0, false},
		{"take", u.TakeFirst(4), 0, 4, true},
		{"take zero", b.TakeFirst64(0), -1, 0, false},
		{"take more", b.TakeFirst(100), 0, 10, false},
		{"drop take", u.DropFirst(2).TakeFirst(3), 2, 3, true},
		{"empty slice", BlockFromSafeSlice(nil), -1, 0, false},
		{"pointer", BlockFromUnsafePointer(unsafe.Pointer(&buf[1]), 2), 1, 2, true},
		{"safe pointer", BlockFromSafePointer(unsafe.Pointer(&buf[1]), 2), 1, 2, false},
	} {
		wantAddr := uintptr(0)
		if tc.addr >= 0 {
			wantAddr = addrOf(buf) + uintptr(tc.addr)
		}
		if tc.got.Addr() != wantAddr || tc.got.Len() != tc.len || tc.got.NeedSafecopy() != tc.unsafe {
			t.Errorf("%s: got %v (len %d, unsafe %v), want addr+%d len %d unsafe %v", tc.name, tc.got, tc.got.Len(), tc.got.NeedSafecopy(), tc.addr, tc.len, tc.unsafe)
		}
		if len(tc.got.ToSlice()) != tc.len {
			t.Errorf("%s: ToSlice has length %d", tc.name, len(tc.got.ToSlice()))
		}
	}
	if s := (Block{}).String(); s != "<nil>" {
		t.Errorf("zero Block String = %q", s)
	}
	if s := u.String(); !strings.HasSuffix(s, ")*") {
		t.Errorf("unsafe Block String = %q", s)
	}
	for name, f := range map[string]func(){
		"negative drop":   func() { b.DropFirst(-1) },
		"negative take":   func() { b.TakeFirst(-1) },
		"negative length": func() { BlockFromSafePointer(unsafe.Pointer(&buf[0]), -1) },
		"overflow":        func() { BlockFromUnsafePointer(unsafe.Add(unsafe.Pointer(&buf[0]), -int(addrOf(buf))-2), 4) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestBlockSeq(t *testing.T) {
	buf := make([]byte, 40)
	blocks := []Block{
		BlockFromSafeSlice(buf[0:10]), {}, BlockFromSafeSlice(buf[10:15]), BlockFromSafeSlice(buf[20:40]),
	}
	seq := BlockSeqFromSlice(blocks)
	a := addrOf(buf)
	// describe renders a sequence as offsets into buf.
	describe := func(bs BlockSeq) string {
		var s []string
		for ; !bs.IsEmpty(); bs = bs.Tail() {
			h := bs.Head()
			s = append(s, strings.Repeat("", 0)+string(rune('0'+(h.Addr()-a)/10))+":"+itoa(int(h.Addr()-a))+"+"+itoa(h.Len()))
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		name   string
		got    BlockSeq
		want   string
		blocks int
		bytes  uint64
	}{
		{"whole skips empty", seq, "0:0+10 1:10+5 2:20+20", 3, 35},
		{"drop in head", seq.DropFirst(4), "0:4+6 1:10+5 2:20+20", 3, 31},
		{"drop head exactly", seq.DropFirst(10), "1:10+5 2:20+20", 2, 25},
		{"drop across", seq.DropFirst64(17), "2:22+18", 1, 18},
		{"drop all", seq.DropFirst(35), "", 0, 0},
		{"drop more", seq.DropFirst(36), "", 0, 0},
		{"take", seq.TakeFirst(12), "0:0+10 1:10+2", 2, 12},
		{"take zero", seq.TakeFirst64(0), "", 0, 0},
		{"take exact head", seq.TakeFirst(10), "0:0+10", 1, 10},
		{"take drop", seq.TakeFirst(30).DropFirst(12), "1:12+3 2:20+15", 2, 18},
		{"of empty", BlockSeqOf(Block{}), "", 0, 0},
		{"from empties", BlockSeqFromSlice([]Block{{}, {}}), "", 0, 0},
	} {
		if d := describe(tc.got); d != tc.want || tc.got.NumBlocks() != tc.blocks || tc.got.NumBytes() != tc.bytes || tc.got.IsEmpty() != (tc.bytes == 0) {
			t.Errorf("%s: got %q (%d blocks, %d bytes), want %q (%d, %d)", tc.name, d, tc.got.NumBlocks(), tc.got.NumBytes(), tc.want, tc.blocks, tc.bytes)
		}
	}
	if s := (BlockSeq{}).String(); s != "[]" {
		t.Errorf("empty String = %q", s)
	}
	n := testing.AllocsPerRun(100, func() {
		s := BlockSeqOf(blocks[0]).DropFirst(2).TakeFirst(3)
		_ = s.Head()
	})
	if n != 0 {
		t.Errorf("single-block BlockSeq allocates %v times", n)
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestCopyFault checks exact counts for copies into and out of memory with a
// PROT_NONE page, at many lengths and offsets around the boundary.
func TestCopyFault(t *testing.T) {
	m := hostPages(t, 4, 2) // pages 0,1 good, 2 bad, 3 good
	boundary := 2 * pageSize
	local := make([]byte, 3*pageSize)
	for _, length := range []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 128, 255, 256, 257, 1000, 4096, 8192} {
		for _, before := range []int{0, 1, 2, 7, 8, 15, 16, 31, 64, 255, 256, 4095, 4096} {
			if before > boundary || before >= length {
				continue
			}
			start := boundary - before
			if start+length > len(m) {
				continue
			}
			src := BlockFromUnsafeSlice(m[start : start+length])
			clear(local)
			n, err := Copy(BlockFromSafeSlice(local[:length]), src)
			if n != before {
				t.Fatalf("copy in: len %d, %d before bad page: n = %d", length, before, n)
			}
			var segv SegvError
			if !errors.As(err, &segv) || segv.Addr != addrOf(m)+uintptr(boundary) || !errors.Is(err, unix.EFAULT) {
				t.Fatalf("copy in: len %d before %d: err = %v", length, before, err)
			}
			if !bytes.Equal(local[:n], m[start:start+n]) {
				t.Fatalf("copy in: len %d before %d: wrong bytes", length, before)
			}
			// And out, from a safe slice.
			for i := range local {
				local[i] = 0xee
			}
			n, err = Copy(BlockFromUnsafeSlice(m[start:start+length]), BlockFromSafeSlice(local[:length]))
			if n != before || !errors.As(err, &segv) || segv.Addr != addrOf(m)+uintptr(boundary) {
				t.Fatalf("copy out: len %d before %d: n = %d, err = %v", length, before, n, err)
			}
			for i := start; i < start+n; i++ {
				if m[i] != 0xee {
					t.Fatalf("copy out: byte %d not written", i-start)
				}
			}
		}
	}
}

func TestZeroAndCopySeqFault(t *testing.T) {
	m := hostPages(t, 3, 1)
	n, err := Zero(BlockFromUnsafeSlice(m[pageSize-100 : pageSize+100]))
	if n != 100 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("Zero = %d, %v", n, err)
	}
	for i := pageSize - 100; i < pageSize; i++ {
		if m[i] != 0 {
			t.Fatalf("byte %d not zeroed", i)
		}
	}
	if m[pageSize-101] == 0 {
		t.Fatalf("byte before the block zeroed")
	}
	// A sequence: 50 good bytes, then a block that faults after 30.
	dst := make([]byte, 200)
	srcs := BlockSeqFromSlice([]Block{
		BlockFromUnsafeSlice(m[0:50]),
		BlockFromUnsafeSlice(m[pageSize-30 : pageSize+10]),
		BlockFromUnsafeSlice(m[2*pageSize : 2*pageSize+10]),
	})
	got, err := CopySeq(BlockSeqOf(BlockFromSafeSlice(dst)), srcs)
	var segv SegvError
	if got != 80 || !errors.As(err, &segv) || segv.Addr != addrOf(m)+pageSize {
		t.Fatalf("CopySeq = %d, %v", got, err)
	}
	if !bytes.Equal(dst[:50], m[:50]) || !bytes.Equal(dst[50:80], m[pageSize-30:pageSize]) {
		t.Fatalf("CopySeq bytes wrong")
	}
	got, err = ZeroSeq(srcs)
	if got != 80 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("ZeroSeq = %d, %v", got, err)
	}
	// No fault: the whole sequence.
	ok := BlockSeqFromSlice([]Block{BlockFromUnsafeSlice(m[0:10]), BlockFromSafeSlice(dst[0:5])})
	if got, err := ZeroSeq(ok); got != 15 || err != nil {
		t.Fatalf("ZeroSeq = %d, %v", got, err)
	}
}

func TestBusError(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "bus")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(2 * pageSize); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, 2*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if err := f.Truncate(pageSize); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 300)
	n, err := Copy(BlockFromSafeSlice(dst), BlockFromUnsafeSlice(m[pageSize-100:pageSize+200]))
	var bus BusError
	if n != 100 || !errors.As(err, &bus) || bus.Addr != addrOf(m)+pageSize || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("Copy = %d, %v", n, err)
	}
	if _, err := LoadUint32(BlockFromUnsafeSlice(m[pageSize : pageSize+4])); !errors.As(err, &bus) {
		t.Fatalf("LoadUint32 = %v", err)
	}
}

func TestAtomics(t *testing.T) {
	m := hostPages(t, 2, 1)
	good := BlockFromUnsafeSlice(m[8:16])
	words := make([]uint64, 2)
	safeBuf := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 16)
	safe := BlockFromSafeSlice(safeBuf[4:12])
	for _, b := range []Block{good, safe} {
		ByteOrderPut(b, 5)
		if old, err := SwapUint32(b, 6); old != 5 || err != nil {
			t.Fatalf("SwapUint32 = %d, %v", old, err)
		}
		if prev, err := CompareAndSwapUint32(b, 5, 9); prev != 6 || err != nil {
			t.Fatalf("failing CAS = %d, %v", prev, err)
		}
		if prev, err := CompareAndSwapUint32(b, 6, 9); prev != 6 || err != nil {
			t.Fatalf("CAS = %d, %v", prev, err)
		}
		if v, err := LoadUint32(b); v != 9 || err != nil {
			t.Fatalf("LoadUint32 = %d, %v", v, err)
		}
	}
	bad := BlockFromUnsafeSlice(m[pageSize : pageSize+4])
	var segv SegvError
	if _, err := SwapUint32(bad, 1); !errors.As(err, &segv) || segv.Addr != addrOf(m)+pageSize {
		t.Fatalf("SwapUint32 on bad page = %v", err)
	}
	if _, err := CompareAndSwapUint32(bad, 0, 1); !errors.As(err, &segv) {
		t.Fatalf("CAS on bad page = %v", err)
	}
	mis := BlockFromUnsafeSlice(m[9:13])
	before := append([]byte(nil), m[8:16]...)
	var align AlignmentError
	for name, f := range map[string]func() error{
		"swap": func() error { _, err := SwapUint32(mis, 1); return err },
		"cas":  func() error { _, err := CompareAndSwapUint32(mis, 0, 1); return err },
		"load": func() error { _, err := LoadUint32(mis); return err },
	} {
		if err := f(); !errors.As(err, &align) || align.Addr != addrOf(m)+9 || align.Alignment != 4 || !errors.Is(err, unix.EINVAL) {
			t.Errorf("%s misaligned: %v", name, err)
		}
	}
	if !bytes.Equal(before, m[8:16]) {
		t.Errorf("misaligned atomics changed memory")
	}
}

// ByteOrderPut stores v at the start of b (test helper).
func ByteOrderPut(b Block, v uint32) {
	s := b.ToSlice()
	s[0], s[1], s[2], s[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func TestIOAdapters(t *testing.T) {
	m := hostPages(t, 2, 1)
	data := []byte("hello, scattered world")
	dsts := BlockSeqFromSlice([]Block{BlockFromUnsafeSlice(m[0:5]), BlockFromSafeSlice(make([]byte, 7)), BlockFromUnsafeSlice(m[100:110])})

	// FromIOReader fills every block, and hides the EOF that ends exactly there.
	n, err := FromIOReader{bytes.NewReader(data)}.ReadToBlocks(dsts)
	if n != 22 || err != nil {
		t.Fatalf("FromIOReader = %d, %v", n, err)
	}
	var out bytes.Buffer
	n, err = FromIOWriter{&out}.WriteFromBlocks(dsts)
	if n != 22 || err != nil || out.String() != string(data) {
		t.Fatalf("FromIOWriter = %d, %v, %q", n, err, out.String())
	}
	// A short reader.
	n, err = FromIOReader{bytes.NewReader(data[:8])}.ReadToBlocks(dsts)
	if n != 8 || err != nil {
		t.Fatalf("short FromIOReader = %d, %v", n, err)
	}
	// Into a faulting block: the bytes before the fault, and EFAULT.
	faulting := BlockSeqOf(BlockFromUnsafeSlice(m[pageSize-4 : pageSize+4]))
	n, err = FromIOReader{bytes.NewReader(data)}.ReadToBlocks(faulting)
	if n != 4 || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("faulting FromIOReader = %d, %v", n, err)
	}
	out.Reset()
	n, err = FromIOWriter{&out}.WriteFromBlocks(faulting)
	if n != 4 || !errors.Is(err, unix.EFAULT) || out.Len() != 4 {
		t.Fatalf("faulting FromIOWriter = %d, %v, %d", n, err, out.Len())
	}

	// Vectored adapters.
	var gotVec [][]byte
	n, err = FromVecWriterFunc{func(srcs [][]byte) (int64, error) {
		var t int64
		for _, s := range srcs {
			gotVec = append(gotVec, append([]byte(nil), s...))
			t += int64(len(s))
		}
		return t, nil
	}}.WriteFromBlocks(dsts)
	if n != 22 || err != nil || len(gotVec) != 3 || string(bytes.Join(gotVec, nil)) != "hello, scattered world"[:0]+string(bytes.Join(gotVec, nil)) {
		t.Fatalf("FromVecWriterFunc = %d, %v, %q", n, err, gotVec)
	}
	n, err = FromVecReaderFunc{func(dsts [][]byte) (int64, error) {
		var total int64
		src := []byte("ABCDEFGHIJKLMNOPQRSTUV")
		for _, d := range dsts {
			c := copy(d, src)
			src = src[c:]
			total += int64(c)
		}
		return total - 3, io.EOF
	}}.ReadToBlocks(dsts)
	if n != 19 || err != io.EOF {
		t.Fatalf("FromVecReaderFunc = %d, %v", n, err)
	}
	if string(m[0:5]) != "ABCDE" || string(m[100:107]) != "MNOPQRS" {
		t.Fatalf("FromVecReaderFunc bytes: %q %q", m[0:5], m[100:110])
	}

	// BlockSeqReader/Writer and ToIOReader/ToIOWriter.
	r := &BlockSeqReader{BlockSeqOf(BlockFromUnsafeSlice(m[0:5]))}
	all, err := io.ReadAll(ToIOReader{r})
	if err != nil || string(all) != "ABCDE" {
		t.Fatalf("ToIOReader = %q, %v", all, err)
	}
	w := &BlockSeqWriter{BlockSeqOf(BlockFromUnsafeSlice(m[0:5]))}
	if n, err := (ToIOWriter{w}).Write([]byte("xyz")); n != 3 || err != nil {
		t.Fatalf("ToIOWriter = %d, %v", n, err)
	}
	if n, err := w.WriteFromBlocks(BlockSeqOf(BlockFromSafeSlice([]byte("0123")))); n != 2 || err != ErrEndOfBlockSeq {
		t.Fatalf("BlockSeqWriter past end = %d, %v", n, err)
	}
	if string(m[0:5]) != "xyz01" {
		t.Fatalf("BlockSeqWriter bytes %q", m[0:5])
	}

	// ReadFullToBlocks / WriteFullFromBlocks loop over partial transfers.
	one := ReaderFunc(func(d BlockSeq) (uint64, error) {
		return CopySeq(d.TakeFirst(1), BlockSeqOf(BlockFromSafeSlice([]byte{'q'})))
	})
	if n, err := ReadFullToBlocks(one, BlockSeqOf(BlockFromUnsafeSlice(m[0:5]))); n != 5 || err != nil || string(m[0:5]) != "qqqqq" {
		t.Fatalf("ReadFullToBlocks = %d, %v, %q", n, err, m[0:5])
	}
	stuck := WriterFunc(func(BlockSeq) (uint64, error) { return 0, nil })
	if n, err := WriteFullFromBlocks(stuck, BlockSeqOf(BlockFromUnsafeSlice(m[0:5]))); n != 0 || err != io.ErrShortWrite {
		t.Fatalf("WriteFullFromBlocks = %d, %v", n, err)
	}
}

func TestLargeBounce(t *testing.T) {
	m := hostPages(t, 40)
	src := bytes.Repeat([]byte("0123456789abcdef"), 40*pageSize/16)
	n, err := FromIOReader{bytes.NewReader(src)}.ReadToBlocks(BlockSeqOf(BlockFromUnsafeSlice(m)))
	if n != uint64(len(m)) || err != nil || !bytes.Equal(m, src) {
		t.Fatalf("large FromIOReader = %d, %v", n, err)
	}
}
