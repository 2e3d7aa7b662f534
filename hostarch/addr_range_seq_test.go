package hostarch

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// seqModel is the plain-slice reference model of AddrRangeSeq: the remaining
// ranges (the first already advanced past dropped bytes) and a byte limit.
// Ranges past the limit are kept but iterate as zero-length ranges. A model
// holding exactly one range stores it as [Start, Start+limit), which is how
// AddrRangeSeq represents a single range.
type seqModel struct {
	rs    []AddrRange
	limit int64
}

func modelFromSlice(rs []AddrRange) seqModel {
	m := seqModel{rs: append([]AddrRange(nil), rs...)}
	for _, r := range rs {
		m.limit += int64(r.Length())
	}
	return m.norm()
}

func (m seqModel) norm() seqModel {
	if len(m.rs) == 1 {
		m.rs = []AddrRange{{m.rs[0].Start, m.rs[0].Start + Addr(m.limit)}}
	}
	return m
}

// ranges returns the ranges as iterated (each clipped to the limit).
func (m seqModel) ranges() []AddrRange {
	var out []AddrRange
	left := m.limit
	for _, r := range m.rs {
		n := int64(r.Length())
		if n > left {
			n = left
		}
		out = append(out, AddrRange{r.Start, r.Start + Addr(n)})
		left -= n
	}
	return out
}

func (m seqModel) tail() seqModel {
	t := seqModel{rs: m.rs[1:], limit: m.limit - int64(m.rs[0].Length())}
	if t.limit < 0 {
		t.limit = 0
	}
	if len(t.rs) == 0 {
		return seqModel{}
	}
	return t.norm()
}

func (m seqModel) dropFirst(n int64) seqModel {
	if n > m.limit || len(m.rs) == 0 || (len(m.rs) == 1 && m.limit == 0) {
		return seqModel{}
	}
	if len(m.rs) > 1 && m.rs[0].Length() == 0 {
		m = m.tail()
	}
	m.rs = append([]AddrRange(nil), m.rs...)
	for n != 0 {
		head := int64(m.rs[0].Length())
		if n < head {
			m.rs[0].Start += Addr(n)
			m.limit -= n
			return m
		}
		n -= head
		m = m.tail()
		m.rs = append([]AddrRange(nil), m.rs...)
	}
	return m
}

func (m seqModel) takeFirst(n int64) seqModel {
	if n < m.limit {
		m.limit = n
		if len(m.rs) == 1 {
			m = m.norm()
		}
	}
	return m
}

func checkSeq(t *testing.T, what string, got AddrRangeSeq, m seqModel) {
	t.Helper()
	want := m.ranges()
	if got.NumRanges() != len(want) || got.IsEmpty() != (len(want) == 0) || got.NumBytes() != m.limit {
		t.Fatalf("%s: got %v (%d ranges, %d bytes), want %v (%d bytes)", what, got, got.NumRanges(), got.NumBytes(), want, m.limit)
	}
	i := 0
	for s := got; !s.IsEmpty(); s = s.Tail() {
		if h := s.Head(); h != want[i] {
			t.Fatalf("%s: range %d = %v, want %v (seq %v)", what, i, h, want[i], got)
		}
		i++
	}
	// All yields the same ranges, and stops when asked.
	i = 0
	for ar := range got.All() {
		if i >= len(want) || ar != want[i] {
			t.Fatalf("%s: All's range %d = %v, want %v", what, i, ar, want)
		}
		i++
	}
	if i != len(want) {
		t.Fatalf("%s: All yields %d ranges, want %d", what, i, len(want))
	}
	for range got.All() {
		break
	}
	// Next walks the same ranges in batches of any size, and the rest it
	// returns holds the bytes not yet walked.
	for _, size := range []int{1, 2, 3, 16} {
		buf := make([]AddrRange, size)
		var walked []AddrRange
		left := m.limit
		for s := got; ; {
			n, rest := s.Next(buf)
			if n == 0 {
				if !s.IsEmpty() {
					t.Fatalf("%s: Next(%d) of %v copied nothing", what, size, s)
				}
				break
			}
			for _, ar := range buf[:n] {
				left -= int64(ar.Length())
			}
			walked = append(walked, buf[:n]...)
			if rest.NumBytes() != left || rest.NumRanges() != s.NumRanges()-n {
				t.Fatalf("%s: Next(%d) leaves %v (%d bytes, %d ranges), want %d bytes, %d ranges", what, size, rest, rest.NumBytes(), rest.NumRanges(), left, s.NumRanges()-n)
			}
			s = rest
		}
		if fmt.Sprint(walked) != fmt.Sprint(want) {
			t.Fatalf("%s: Next(%d) walks %v, want %v", what, size, walked, want)
		}
	}
	if n, rest := got.Next(nil); n != 0 || rest != got {
		t.Fatalf("%s: Next(nil) = %d, %v", what, n, rest)
	}
}

func TestAddrRangeSeqTable(t *testing.T) {
	rs := []AddrRange{{0x1000, 0x1010}, {0x2000, 0x2000}, {0x3000, 0x3020}, {0x4000, 0x4008}}
	seq := AddrRangeSeqFromSlice(rs)
	for _, tc := range []struct {
		name string
		got  AddrRangeSeq
		want string
		n    int64
	}{
		{"whole", seq, "[[0x1000, 0x1010) [0x2000, 0x2000) [0x3000, 0x3020) [0x4000, 0x4008)]", 0x38},
		{"drop within head", seq.DropFirst(4), "[[0x1004, 0x1010) [0x2000, 0x2000) [0x3000, 0x3020) [0x4000, 0x4008)]", 0x34},
		{"drop exactly head keeps empty range", seq.DropFirst(0x10), "[[0x2000, 0x2000) [0x3000, 0x3020) [0x4000, 0x4008)]", 0x28},
		{"drop zero past empty head", seq.DropFirst(0x10).DropFirst(0), "[[0x3000, 0x3020) [0x4000, 0x4008)]", 0x28},
		{"drop across boundary", seq.DropFirst(0x11), "[[0x3001, 0x3020) [0x4000, 0x4008)]", 0x27},
		{"drop all", seq.DropFirst64(0x38), "[]", 0},
		{"drop too many", seq.DropFirst(0x39), "[]", 0},
		{"take across boundary", seq.TakeFirst(0x14), "[[0x1000, 0x1010) [0x2000, 0x2000) [0x3000, 0x3004) [0x4000, 0x4000)]", 0x14},
		{"take zero", seq.TakeFirst64(0), "[[0x1000, 0x1000) [0x2000, 0x2000) [0x3000, 0x3000) [0x4000, 0x4000)]", 0},
		{"take more", seq.TakeFirst(1 << 40), "[[0x1000, 0x1010) [0x2000, 0x2000) [0x3000, 0x3020) [0x4000, 0x4008)]", 0x38},
		{"take then drop", seq.TakeFirst(0x20).DropFirst(0x18), "[[0x3008, 0x3010) [0x4000, 0x4000)]", 8},
		{"single", AddrRangeSeqOf(AddrRange{5, 9}).DropFirst(1).TakeFirst(2), "[[0x6, 0x8)]", 2},
		{"single empty dropped", AddrRangeSeqOf(AddrRange{5, 5}).DropFirst(0), "[]", 0},
		{"single empty kept", AddrRangeSeqOf(AddrRange{5, 5}), "[[0x5, 0x5)]", 0},
		{"zero value", AddrRangeSeq{}, "[]", 0},
		{"from empty slice", AddrRangeSeqFromSlice(nil), "[]", 0},
	} {
		if s := tc.got.String(); s != tc.want || tc.got.NumBytes() != tc.n {
			t.Errorf("%s: got %s (%d bytes), want %s (%d bytes)", tc.name, s, tc.got.NumBytes(), tc.want, tc.n)
		}
	}
}

func TestAddrRangeSeqPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"Head of empty":     func() { AddrRangeSeq{}.Head() },
		"Tail of empty":     func() { AddrRangeSeq{}.Tail() },
		"negative drop":     func() { AddrRangeSeqOf(AddrRange{0, 1}).DropFirst(-1) },
		"negative drop64":   func() { AddrRangeSeqOf(AddrRange{0, 1}).DropFirst64(-1) },
		"negative take":     func() { AddrRangeSeqOf(AddrRange{0, 1}).TakeFirst(-1) },
		"negative take64":   func() { AddrRangeSeqOf(AddrRange{0, 1}).TakeFirst64(-1) },
		"overflowing range": func() { AddrRangeSeqFromSlice([]AddrRange{{0, 1 << 63}, {0, 1}}) },
		"overflowing total": func() { AddrRangeSeqFromSlice([]AddrRange{{0, 1 << 62}, {0, 1 << 62}, {0, 1 << 62}}) },
		"ill-formed range":  func() { AddrRangeSeqFromSlice([]AddrRange{{2, 1}, {0, 1}}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			f()
		})
	}
}

func TestAddrRangeSeqNoAlloc(t *testing.T) {
	var sink AddrRangeSeq
	n := testing.AllocsPerRun(100, func() {
		s := AddrRangeSeqOf(AddrRange{0x1000, 0x3000})
		sink = s.DropFirst(10).TakeFirst(100).Tail()
		sink = AddrRangeSeqFromSlice(nil)
	})
	if n != 0 {
		t.Errorf("AllocsPerRun = %v, want 0", n)
	}
	_ = sink
}

// FuzzAddrRangeSeq applies a fuzzer-chosen sequence of DropFirst, TakeFirst
// and Tail to a fuzzer-chosen slice of ranges and compares every step with
// the plain slice model.
func FuzzAddrRangeSeq(f *testing.F) {
	f.Add([]byte{3, 0, 16, 0, 0, 0, 32, 1, 5, 2, 7, 0, 3})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{5, 1, 1, 0, 0, 2, 2, 0, 0, 1, 2, 0, 4, 1, 1, 0, 2, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		nr := int(data[0] % 8)
		data = data[1:]
		rs := make([]AddrRange, 0, nr)
		start := Addr(0x10000)
		for i := 0; i < nr && len(data) >= 2; i++ {
			length := Addr(binary.LittleEndian.Uint16(data[:2]) % 300)
			if data[0]&1 == 0 {
				length = 0
			}
			rs = append(rs, AddrRange{start, start + length})
			start += 0x1000
			data = data[2:]
		}
		seq := AddrRangeSeqFromSlice(rs)
		m := modelFromSlice(rs)
		checkSeq(t, "initial", seq, m)
		for step := 0; len(data) >= 2; step++ {
			op, arg := data[0]%3, int64(data[1])%400
			data = data[2:]
			var what string
			switch op {
			case 0:
				what = fmt.Sprintf("step %d DropFirst(%d)", step, arg)
				seq, m = seq.DropFirst64(arg), m.dropFirst(arg)
			case 1:
				what = fmt.Sprintf("step %d TakeFirst(%d)", step, arg)
				seq, m = seq.TakeFirst64(arg), m.takeFirst(arg)
			case 2:
				if seq.IsEmpty() {
					continue
				}
				what = fmt.Sprintf("step %d Tail", step)
				seq, m = seq.Tail(), m.tail()
			}
			checkSeq(t, what, seq, m)
		}
	})
}
