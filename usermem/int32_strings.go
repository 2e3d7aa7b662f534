package usermem

import (
	"context"
	"math"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/hostarch"
)

// isASCIIWhitespace reports whether b is whitespace for
// CopyInt32StringsInVec: ' ', '\t', '\n', '\v', '\f' or '\r' (Linux's
// isspace() over ASCII; compare include/linux/ctype.h, lib/ctype.c).
func isASCIIWhitespace(b byte) bool {
	return b == ' ' || (b >= '\t' && b <= '\r')
}

// CopyInt32StringsInVec copies up to len(dsts) whitespace-separated decimal
// strings from the memory mapped at ars in uio and converts them to int32
// values in dsts. It returns the number of bytes read, in
// [0, ars.NumBytes()]; see below for what counts as read.
//
// CopyInt32StringsInVec shares the following properties with Linux's
// kernel/sysctl.c:proc_dointvec(write=1):
//
//   - If any read value overflows the range of int32, or any invalid characters
//     are encountered during the read, CopyInt32StringsInVec returns EINVAL.
//
//   - If, upon reaching the end of ars, fewer than len(dsts) values have been
//     read, CopyInt32StringsInVec returns no error if at least 1 value was read
//     and EINVAL otherwise.
//
//   - Trailing whitespace after the last successfully read value is counted in
//     the number of bytes read.
//
// Unlike proc_dointvec():
//
//   - CopyInt32StringsInVec does not implicitly limit ars.NumBytes() to
//     PageSize-1; callers that require this must do so explicitly.
//
//   - CopyInt32StringsInVec returns EINVAL if ars.NumBytes() == 0.
//
// The exact rules, which are gVisor's:
//
//   - len(dsts) == 0 returns 0, nil without reading anything; otherwise
//     ars.NumBytes() == 0 returns 0, EINVAL.
//   - The bytes of ars are one string: a value split across ranges is
//     parsed as one.
//   - Whitespace is ' ', '\t', '\n', '\v', '\f' and '\r'. A value is a
//     maximal run of other bytes; it must be an optional '+' or '-' followed
//     by one or more decimal digits (leading zeros allowed) whose value lies
//     in [math.MinInt32, math.MaxInt32] (the syntax of strconv.ParseInt with
//     base 10; note that Linux itself rejects '+'). Anything else ("-" alone,
//     "1x", "0x10", "1_000", NUL, an out-of-range value) returns EINVAL with
//     the byte count up to the start of that value; values before it have
//     already been stored.
//   - Values are stored in dsts in order; dsts beyond the values read are
//     left unchanged. Once len(dsts) values are read, only the whitespace
//     that follows the last one is consumed; later bytes are not parsed, so
//     they may be anything.
//   - The byte count is the offset just past the whitespace after the last
//     value consumed (all of ars if nothing but whitespace follows).
//   - All of ars is read (as by CopyInVec), even past the last value needed,
//     so a fault anywhere in ars returns the IO's error (EFAULT) with the
//     byte count of what was parsed before it, unless an invalid value
//     before the fault was found first (EINVAL). A value cut short by the
//     fault is parsed as if it ended there.
//
// Preconditions: Same as CopyInVec.
func CopyInt32StringsInVec(ctx context.Context, uio IO, ars hostarch.AddrRangeSeq, dsts []int32, opts IOOpts) (int64, error) {
	if len(dsts) == 0 {
		return 0, nil
	}
	if ars.NumBytes() == 0 {
		return 0, unix.EINVAL
	}

	scratch := scratchPool.Get().(*[scratchLen]byte)
	defer scratchPool.Put(scratch)
	p := int32Parser{dsts: dsts}
	var cperr error
	for ars.NumBytes() > 0 {
		want := int(min(int64(scratchLen), ars.NumBytes()))
		n, err := CopyInVec(ctx, uio, ars, scratch[:want], opts)
		err = checkProgress(n, want, err)
		if !p.parse(scratch[:n]) {
			return p.result(), unix.EINVAL
		}
		if err != nil {
			cperr = err
			break
		}
		ars = ars.DropFirst(n)
	}
	if !p.end() {
		return p.result(), unix.EINVAL
	}
	if cperr != nil {
		return p.result(), cperr
	}
	if p.j == 0 {
		return p.result(), unix.EINVAL
	}
	return p.result(), nil
}

// int32Parser parses the values of CopyInt32StringsInVec incrementally, a
// chunk at a time, so that values split across chunks (and ranges) parse
// as one.
//
// Invariants: j <= len(dsts); inValue implies j < len(dsts); stopped implies
// j == len(dsts).
type int32Parser struct {
	dsts []int32
	j    int   // values stored
	pos  int64 // offset of the next byte to parse

	// The value being parsed, if inValue.
	inValue bool
	start   int64  // offset of its first byte
	neg     bool   // it began with '-'
	digits  int    // number of digits so far
	mag     uint64 // magnitude so far; at most 1<<31 (larger is an error)

	// stopped is set when, with dsts full, a non-whitespace byte is found at
	// offset stop; bytes from there on are ignored.
	stopped bool
	stop    int64
}

// result returns the byte count to report: on an invalid value, the offset
// of its start; otherwise the offset past the last byte consumed.
func (p *int32Parser) result() int64 {
	if p.inValue {
		return p.start
	}
	if p.stopped {
		return p.stop
	}
	return p.pos
}

// parse consumes buf. It returns false, with p.inValue set, on an invalid
// value.
func (p *int32Parser) parse(buf []byte) bool {
	for _, c := range buf {
		switch {
		case p.stopped:
			return true
		case p.inValue:
			if isASCIIWhitespace(c) {
				if !p.endValue() {
					return false
				}
			} else if !p.addByte(c) {
				return false
			}
		case isASCIIWhitespace(c):
			// Leading whitespace, or trailing whitespace once dsts is full.
		case p.j == len(p.dsts):
			p.stopped, p.stop = true, p.pos
			return true
		default:
			p.inValue, p.start, p.neg, p.digits, p.mag = true, p.pos, false, 0, 0
			if c == '-' || c == '+' {
				p.neg = c == '-'
			} else if !p.addByte(c) {
				return false
			}
		}
		p.pos++
	}
	return true
}

// addByte adds a byte other than the first to the current value.
func (p *int32Parser) addByte(c byte) bool {
	if c < '0' || c > '9' {
		return false
	}
	p.digits++
	p.mag = p.mag*10 + uint64(c-'0')
	limit := uint64(math.MaxInt32)
	if p.neg {
		limit++
	}
	return p.mag <= limit
}

// endValue stores the current value, which has ended.
func (p *int32Parser) endValue() bool {
	if p.digits == 0 {
		return false
	}
	if p.neg {
		p.dsts[p.j] = int32(-int64(p.mag))
	} else {
		p.dsts[p.j] = int32(p.mag)
	}
	p.j++
	p.inValue = false
	return true
}

// end ends parsing at the end of the data, ending any value in progress.
func (p *int32Parser) end() bool {
	if p.inValue {
		return p.endValue()
	}
	return true
}

// CopyInt32StringInVec is equivalent to CopyInt32StringsInVec, but copies at
// most one int32: *dst is set only if a value is read.
//
// Preconditions: Same as CopyInt32StringsInVec, plus dst != nil.
func CopyInt32StringInVec(ctx context.Context, uio IO, ars hostarch.AddrRangeSeq, dst *int32, opts IOOpts) (int64, error) {
	dsts := [1]int32{*dst}
	n, err := CopyInt32StringsInVec(ctx, uio, ars, dsts[:], opts)
	*dst = dsts[0]
	return n, err
}
