package usermem

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/hostarch"
)

// sentinel fills dsts beforehand, to show which were written.
const sentinel = int32(-999)

// piecesIO lays pieces out in a BytesIO with 3 bytes of 'Z' between them,
// and returns the IO and the ranges covering the pieces in order (a
// zero-length piece is a zero-length range). With fault, one more range of
// 8 bytes lies beyond the end of the BytesIO.
func piecesIO(pieces []string, fault bool) (IO, hostarch.AddrRangeSeq) {
	var mem []byte
	var rs []hostarch.AddrRange
	for _, p := range pieces {
		mem = append(mem, "ZZZ"...)
		start := hostarch.Addr(len(mem))
		mem = append(mem, p...)
		rs = append(rs, hostarch.AddrRange{Start: start, End: hostarch.Addr(len(mem))})
	}
	mem = append(mem, "ZZZ"...)
	if fault {
		end := hostarch.Addr(len(mem))
		rs = append(rs, hostarch.AddrRange{Start: end, End: end + 8})
	}
	return &BytesIO{Bytes: mem}, hostarch.AddrRangeSeqFromSlice(rs)
}

func filled(n int) []int32 {
	d := make([]int32, n)
	for i := range d {
		d[i] = sentinel
	}
	return d
}

func TestCopyInt32StringsInVec(t *testing.T) {
	S := sentinel
	for _, tc := range []struct {
		name   string
		pieces []string // the ranges' contents, in order
		fault  bool     // a faulting range follows the pieces
		ndsts  int
		want   []int32 // dsts afterwards
		n      int64
		err    error
	}{
		// Single values and signs.
		{"one", []string{"1"}, false, 1, []int32{1}, 1, nil},
		{"leading whitespace and newline", []string{"  42\n"}, false, 1, []int32{42}, 5, nil},
		{"negative", []string{"-7"}, false, 1, []int32{-7}, 2, nil},
		{"plus", []string{"+5"}, false, 1, []int32{5}, 2, nil},
		{"minus zero", []string{"-0"}, false, 1, []int32{0}, 2, nil},
		{"leading zeros", []string{"007"}, false, 1, []int32{7}, 3, nil},
		{"max int32", []string{"2147483647"}, false, 1, []int32{math.MaxInt32}, 10, nil},
		{"min int32", []string{"-2147483648"}, false, 1, []int32{math.MinInt32}, 11, nil},
		{"many leading zeros", []string{"-000000000000000000002147483648"}, false, 1, []int32{math.MinInt32}, 31, nil},

		// Invalid values: EINVAL, count up to the value's start.
		{"minus alone", []string{"-"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"plus alone", []string{"+"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"minus alone after whitespace", []string{"  - 1"}, false, 1, []int32{S}, 2, unix.EINVAL},
		{"two signs", []string{"+-1"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"double minus", []string{"--1"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"trailing minus", []string{"1-"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"letter after digit", []string{"1x"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"hex", []string{"0x10"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"underscore", []string{"1_000"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"NUL is not whitespace", []string{"1\x00"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"NBSP is not whitespace", []string{"1\xa0"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"overflow", []string{"2147483648"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"negative overflow", []string{"-2147483649"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"huge", []string{" 99999999999999999999999"}, false, 1, []int32{S}, 1, unix.EINVAL},
		{"invalid second value", []string{"1 x"}, false, 2, []int32{1, S}, 2, unix.EINVAL},
		{"overflowing second value", []string{"1 2147483648 3"}, false, 3, []int32{1, S, S}, 2, unix.EINVAL},

		// No values.
		{"no bytes", []string{""}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"no ranges", nil, false, 1, []int32{S}, 0, unix.EINVAL},
		{"only whitespace", []string{"   \t\n"}, false, 1, []int32{S}, 5, unix.EINVAL},
		{"no dsts", []string{"abc"}, false, 0, []int32{}, 0, nil},
		{"no dsts, no bytes", nil, false, 0, []int32{}, 0, nil},

		// Several values; fewer than len(dsts); stopping once dsts is full.
		{"several", []string{"1 2 3"}, false, 3, []int32{1, 2, 3}, 5, nil},
		{"fewer values than dsts", []string{"1 2"}, false, 3, []int32{1, 2, S}, 3, nil},
		{"fewer values, trailing whitespace", []string{"1 2 \n"}, false, 4, []int32{1, 2, S, S}, 5, nil},
		{"more values than dsts", []string{"1 2 3"}, false, 2, []int32{1, 2}, 4, nil},
		{"garbage after dsts full", []string{"1 x"}, false, 1, []int32{1}, 2, nil},
		{"overflow after dsts full", []string{"1\t\t9999999999999"}, false, 1, []int32{1}, 3, nil},
		{"trailing whitespace counted", []string{"5   "}, false, 1, []int32{5}, 4, nil},
		{"trailing whitespace, then value", []string{"1 2 "}, false, 1, []int32{1}, 2, nil},
		{"whitespace set", []string{" \t\n\v\f\r7\r\f\v\n\t 8"}, false, 2, []int32{7, 8}, 14, nil},
		{"each whitespace separates", []string{"1\v2\f3\r4"}, false, 4, []int32{1, 2, 3, 4}, 7, nil},

		// Values split across ranges.
		{"number split", []string{"12", "34"}, false, 1, []int32{1234}, 4, nil},
		{"sign split", []string{"-", "5"}, false, 1, []int32{-5}, 2, nil},
		{"split with zero-length ranges", []string{"1", "", "2", " ", "", "3"}, false, 2, []int32{12, 3}, 4, nil},
		{"split by whitespace range", []string{"1", " ", "2"}, false, 2, []int32{1, 2}, 3, nil},
		{"overflow split", []string{"21474", "83648"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"invalid split", []string{"4", "2", "x"}, false, 1, []int32{S}, 0, unix.EINVAL},
		{"value across scratch chunks", []string{strings.Repeat(" ", 254) + "12345 "}, false, 1, []int32{12345}, 260, nil},
		{"whitespace across scratch chunks", []string{strings.Repeat(" ", 300) + "9"}, false, 1, []int32{9}, 301, nil},
		{"invalid after scratch chunk", []string{strings.Repeat("1 ", 200) + "x"}, false, 201, slices.Concat(slices.Repeat([]int32{1}, 200), []int32{S}), 400, unix.EINVAL},

		// A fault in ars: the values before it, and the IO's error unless an
		// invalid value came first.
		{"fault after value", []string{"12"}, true, 1, []int32{12}, 2, unix.EFAULT},
		{"fault cuts a value", []string{"12"}, true, 2, []int32{12, S}, 2, unix.EFAULT},
		{"fault after whitespace", []string{"3 "}, true, 2, []int32{3, S}, 2, unix.EFAULT},
		{"fault after dsts full", []string{"1 2"}, true, 1, []int32{1}, 2, unix.EFAULT},
		{"fault with no values", []string{"   "}, true, 1, []int32{S}, 3, unix.EFAULT},
		{"fault at once", nil, true, 1, []int32{S}, 0, unix.EFAULT},
		{"invalid before fault", []string{"1x"}, true, 1, []int32{S}, 0, unix.EINVAL},
		{"sign before fault", []string{"7 -"}, true, 2, []int32{7, S}, 2, unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uio, ars := piecesIO(tc.pieces, tc.fault)
			dsts := filled(tc.ndsts)
			n, err := CopyInt32StringsInVec(context.Background(), uio, ars, dsts, IOOpts{})
			if n != tc.n || !errIs(err, tc.err) || !slices.Equal(dsts, tc.want) {
				t.Errorf("CopyInt32StringsInVec(%q, %d dsts) = %v, %d, %v; want %v, %d, %v",
					tc.pieces, tc.ndsts, dsts, n, err, tc.want, tc.n, tc.err)
			}
		})
	}
}

func TestCopyInt32StringInVec(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		in   string
		want int32
		n    int64
		err  error
	}{
		{"  -12 \n", -12, 7, nil},
		{"3 4", 3, 2, nil},
		{"x", sentinel, 0, unix.EINVAL},
		{"", sentinel, 0, unix.EINVAL},
	} {
		uio, ars := piecesIO([]string{tc.in}, false)
		dst := sentinel
		n, err := CopyInt32StringInVec(ctx, uio, ars, &dst, IOOpts{})
		if dst != tc.want || n != tc.n || !errIs(err, tc.err) {
			t.Errorf("CopyInt32StringInVec(%q) = %d, %d, %v; want %d, %d, %v", tc.in, dst, n, err, tc.want, tc.n, tc.err)
		}
	}
}

// refParse is the reference for the fuzz target: the rules of
// CopyInt32StringsInVec applied to the whole input at once, value by value
// with strconv. noValues reports an EINVAL that comes from reading no value
// at all (rather than from an invalid one).
func refParse(in []byte, ndsts int) (vals []int32, n int64, err error, noValues bool) {
	if ndsts == 0 {
		return nil, 0, nil, false
	}
	isSpace := func(c byte) bool { return strings.IndexByte(" \t\n\v\f\r", c) >= 0 }
	fields := 0
	i := 0
	for fields < ndsts {
		for i < len(in) && isSpace(in[i]) {
			i++
		}
		if i == len(in) {
			break
		}
		end := i
		for end < len(in) && !isSpace(in[end]) {
			end++
		}
		v, perr := strconv.ParseInt(string(in[i:end]), 10, 32)
		if perr != nil {
			return vals, int64(i), unix.EINVAL, false
		}
		vals = append(vals, int32(v))
		fields++
		i = end
	}
	for i < len(in) && isSpace(in[i]) {
		i++
	}
	if fields == 0 {
		return vals, int64(i), unix.EINVAL, true
	}
	return vals, int64(i), nil, false
}

// FuzzCopyInt32StringsInVec compares CopyInt32StringsInVec with refParse on
// fuzzer-chosen input, number of dsts and split of the input into ranges
// (each byte of splits is the length, mod 9, of the next range; zero-length
// ranges included; the rest of the input is the last range). With fault, a
// faulting range follows the input: the result must be refParse's, except
// that EFAULT replaces success and the no-values EINVAL.
func FuzzCopyInt32StringsInVec(f *testing.F) {
	for _, s := range []string{
		"1", "  42\n", "-7", "+5", "-", "1x", "1 x", "1 2 3", "2147483648",
		"-2147483648", " \t\n\v\f\r7 8", "1\x00", "", "   ", "007 -0 +0",
		strings.Repeat(" ", 254) + "12345 6",
	} {
		f.Add([]byte(s), uint8(2), []byte{1, 0, 2, 3}, false)
		f.Add([]byte(s), uint8(1), []byte{}, true)
	}
	f.Fuzz(func(t *testing.T, in []byte, ndsts uint8, splits []byte, fault bool) {
		if len(in) > 4096 {
			in = in[:4096]
		}
		nd := int(ndsts % 8)
		var pieces []string
		rest := in
		for _, s := range splits {
			k := min(int(s%9), len(rest))
			pieces = append(pieces, string(rest[:k]))
			rest = rest[k:]
		}
		pieces = append(pieces, string(rest))

		uio, ars := piecesIO(pieces, fault)
		dsts := filled(nd)
		n, err := CopyInt32StringsInVec(context.Background(), uio, ars, dsts, IOOpts{})

		vals, wantN, wantErr, noValues := refParse(in, nd)
		if fault && nd > 0 && (wantErr == nil || noValues) {
			wantErr = unix.EFAULT
		}
		wantDsts := filled(nd)
		copy(wantDsts, vals)
		if n != wantN || !errIs(err, wantErr) || (err != nil) != (wantErr != nil) || !slices.Equal(dsts, wantDsts) {
			t.Fatalf("CopyInt32StringsInVec(%q split %q, %d dsts, fault %v) = %v, %d, %v; reference %v, %d, %v",
				in, pieces, nd, fault, dsts, n, err, wantDsts, wantN, wantErr)
		}
	})
}

func TestRefParseSelfCheck(t *testing.T) {
	// A few spot checks that the fuzz reference itself follows the rules.
	for _, tc := range []struct {
		in   string
		nd   int
		want string
	}{
		{"1 2 3", 2, "[1 2] 4 <nil> false"},
		{"  ", 1, "[] 2 invalid argument true"},
		{"1 -", 2, "[1] 2 invalid argument false"},
	} {
		vals, n, err, nv := refParse([]byte(tc.in), tc.nd)
		if got := fmt.Sprintf("%v %d %v %v", append([]int32{}, vals...), n, err, nv); got != tc.want {
			t.Errorf("refParse(%q, %d) = %s, want %s", tc.in, tc.nd, got, tc.want)
		}
	}
}
