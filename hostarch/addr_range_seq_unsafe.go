package hostarch

import (
	"fmt"
	"iter"
	"strings"
	"unsafe"
)

// An AddrRangeSeq represents a sequence of AddrRanges.
//
// AddrRangeSeqs are immutable and may be copied by value. The zero value of
// AddrRangeSeq represents an empty sequence.
//
// An AddrRangeSeq may contain AddrRanges with a length of 0; they are kept,
// not skipped, so that zero-length I/O can still be told from no I/O (see
// IOSequence.NumBytes in package usermem).
//
// AddrRangeSeqs of zero or one range never allocate; a longer one refers to
// the caller's slice, which must not be modified while the sequence is used.
type AddrRangeSeq struct {
	// If length is 0, data and offset are unused.
	//
	// If length is 1, data is unused and offset is the address of the single
	// range; its length is limit.
	//
	// Otherwise, data points to an array of AddrRanges of that length,
	// offset is the number of bytes already dropped from the first of them,
	// and limit caps the number of bytes in the whole sequence (ranges
	// beyond it are truncated, possibly to zero length, but still counted).
	data   unsafe.Pointer
	length int
	offset Addr
	limit  Addr
}

// AddrRangeSeqOf returns an AddrRangeSeq representing the single AddrRange
// ar.
//
// Preconditions: ar.WellFormed().
func AddrRangeSeqOf(ar AddrRange) AddrRangeSeq {
	return AddrRangeSeq{
		length: 1,
		offset: ar.Start,
		limit:  ar.Length(),
	}
}

// AddrRangeSeqFromSlice returns an AddrRangeSeq representing all AddrRanges
// in slice. The result refers to slice, which must not be modified while it
// is in use.
//
// Preconditions: every range is well-formed, and the total length of all
// ranges fits in an int64 (it panics otherwise).
func AddrRangeSeqFromSlice(slice []AddrRange) AddrRangeSeq {
	var limit int64
	for _, ar := range slice {
		len64 := int64(ar.Length())
		if len64 < 0 || !ar.WellFormed() {
			panic(fmt.Sprintf("hostarch: length of AddrRange %v overflows int64", ar))
		}
		sum := limit + len64
		if sum < limit {
			panic(fmt.Sprintf("hostarch: total length of AddrRanges %v overflows int64", slice))
		}
		limit = sum
	}
	return addrRangeSeqFromSliceLimited(slice, limit)
}

// Preconditions: the number of bytes in slice is at least limit, and limit is
// non-negative.
func addrRangeSeqFromSliceLimited(slice []AddrRange, limit int64) AddrRangeSeq {
	switch len(slice) {
	case 0:
		return AddrRangeSeq{}
	case 1:
		return AddrRangeSeq{
			length: 1,
			offset: slice[0].Start,
			limit:  Addr(limit),
		}
	default:
		return AddrRangeSeq{
			data:   unsafe.Pointer(&slice[0]),
			length: len(slice),
			limit:  Addr(limit),
		}
	}
}

// IsEmpty returns true if ars.NumRanges() == 0.
//
// Note that since AddrRangeSeq may contain AddrRanges with a length of zero,
// an AddrRange representing 0 bytes (AddrRangeSeq.NumBytes() == 0) is not
// necessarily empty.
func (ars AddrRangeSeq) IsEmpty() bool {
	return ars.length == 0
}

// NumRanges returns the number of AddrRanges in ars.
func (ars AddrRangeSeq) NumRanges() int {
	return ars.length
}

// NumBytes returns the number of bytes represented by ars.
func (ars AddrRangeSeq) NumBytes() int64 {
	return int64(ars.limit)
}

// Head returns the first AddrRange in ars.
//
// Preconditions: !ars.IsEmpty().
func (ars AddrRangeSeq) Head() AddrRange {
	if ars.length == 0 {
		panic("hostarch: Head of empty AddrRangeSeq")
	}
	if ars.length == 1 {
		return AddrRange{ars.offset, ars.offset + ars.limit}
	}
	ar := *(*AddrRange)(ars.data)
	ar.Start += ars.offset
	if ar.Length() > ars.limit {
		ar.End = ar.Start + ars.limit
	}
	return ar
}

// All returns an iterator over the AddrRanges of ars in order, zero-length
// ones included: the ranges that Head yields along Tail, without building
// each tail (a vectored copy's loop).
func (ars AddrRangeSeq) All() iter.Seq[AddrRange] {
	return func(yield func(AddrRange) bool) {
		switch ars.length {
		case 0:
			return
		case 1:
			yield(AddrRange{ars.offset, ars.offset + ars.limit})
			return
		}
		limit := ars.limit
		for i, ar := range unsafe.Slice((*AddrRange)(ars.data), ars.length) {
			if i == 0 {
				ar.Start += ars.offset
			}
			if ar.Length() > limit {
				ar.End = ar.Start + limit
			}
			limit -= ar.Length()
			if !yield(ar) {
				return
			}
		}
	}
}

// Next copies the first ranges of ars into dst, as many as fit, each as All
// yields it (the first without the bytes dropped from it, every one capped
// by the sequence's byte count, zero-length ones included), and returns how
// many it copied and the sequence of the ranges after them. It walks a
// sequence in batches with plain loops: no call per range, as All's loop
// body is.
func (ars AddrRangeSeq) Next(dst []AddrRange) (int, AddrRangeSeq) {
	if len(dst) == 0 || ars.length == 0 {
		return 0, ars
	}
	if ars.length == 1 {
		dst[0] = AddrRange{ars.offset, ars.offset + ars.limit}
		return 1, AddrRangeSeq{}
	}
	src := unsafe.Slice((*AddrRange)(ars.data), ars.length)
	n := min(len(dst), len(src))
	limit := ars.limit
	for i, ar := range src[:n] {
		if i == 0 {
			ar.Start += ars.offset
		}
		if ar.Length() > limit {
			ar.End = ar.Start + limit
		}
		limit -= ar.Length()
		dst[i] = ar
	}
	return n, addrRangeSeqFromSliceLimited(src[n:], int64(limit))
}

// Tail returns an AddrRangeSeq consisting of all AddrRanges in ars after the
// first.
//
// Preconditions: !ars.IsEmpty().
func (ars AddrRangeSeq) Tail() AddrRangeSeq {
	if ars.length == 0 {
		panic("hostarch: Tail of empty AddrRangeSeq")
	}
	if ars.length == 1 {
		return AddrRangeSeq{}
	}
	return ars.externalTail()
}

// Preconditions: ars.length >= 2.
func (ars AddrRangeSeq) externalTail() AddrRangeSeq {
	data := (*AddrRange)(ars.data)
	headLen := data.Length() - ars.offset
	var tailLimit int64
	if ars.limit > headLen {
		tailLimit = int64(ars.limit - headLen)
	}
	return addrRangeSeqFromSliceLimited(unsafe.Slice(data, ars.length)[1:], tailLimit)
}

// DropFirst returns an AddrRangeSeq equivalent to ars, but with the first n
// bytes omitted. If n > ars.NumBytes(), DropFirst returns an empty
// AddrRangeSeq.
//
// If !ars.IsEmpty() and ars.Head().Length() == 0, DropFirst will always omit
// at least ars.Head(), even if n == 0. This guarantees that the basic pattern
// of:
//
//	for !ars.IsEmpty() {
//	  n, err = doIOWith(ars.Head())
//	  if err != nil {
//	    return err
//	  }
//	  ars = ars.DropFirst(n)
//	}
//
// works even in the presence of zero-length AddrRanges.
//
// Preconditions: n >= 0 (it panics otherwise).
func (ars AddrRangeSeq) DropFirst(n int) AddrRangeSeq {
	if n < 0 {
		panic(fmt.Sprintf("hostarch: DropFirst(%d)", n))
	}
	return ars.DropFirst64(int64(n))
}

// DropFirst64 is equivalent to DropFirst but takes an int64.
func (ars AddrRangeSeq) DropFirst64(n int64) AddrRangeSeq {
	if n < 0 {
		panic(fmt.Sprintf("hostarch: DropFirst64(%d)", n))
	}
	if Addr(n) > ars.limit {
		return AddrRangeSeq{}
	}

	// Handle initial empty AddrRange.
	switch ars.length {
	case 0:
		return AddrRangeSeq{}
	case 1:
		if ars.limit == 0 {
			return AddrRangeSeq{}
		}
	default:
		if rawHeadLen := (*AddrRange)(ars.data).Length(); ars.offset == rawHeadLen {
			ars = ars.externalTail()
		}
	}

	for n != 0 {
		// Calculate the length of the first AddrRange.
		var headLen Addr
		if ars.length == 1 {
			headLen = ars.limit
		} else {
			headLen = (*AddrRange)(ars.data).Length() - ars.offset
		}

		// If it is at least as long as n, drop n bytes from it and stop.
		if Addr(n) < headLen {
			ars.offset += Addr(n)
			ars.limit -= Addr(n)
			return ars
		}

		// Otherwise drop it whole and go on with the rest.
		n -= int64(headLen)
		ars = ars.Tail()
	}
	return ars
}

// TakeFirst returns an AddrRangeSeq equivalent to ars, but iterating at most
// n bytes. TakeFirst never removes AddrRanges from ars; AddrRanges beyond the
// first n bytes are reduced to a length of zero.
//
// Preconditions: n >= 0 (it panics otherwise).
func (ars AddrRangeSeq) TakeFirst(n int) AddrRangeSeq {
	if n < 0 {
		panic(fmt.Sprintf("hostarch: TakeFirst(%d)", n))
	}
	return ars.TakeFirst64(int64(n))
}

// TakeFirst64 is equivalent to TakeFirst but takes an int64.
func (ars AddrRangeSeq) TakeFirst64(n int64) AddrRangeSeq {
	if n < 0 {
		panic(fmt.Sprintf("hostarch: TakeFirst64(%d)", n))
	}
	if ars.limit > Addr(n) {
		ars.limit = Addr(n)
	}
	return ars
}

// String implements fmt.Stringer.String: the ranges in order, space
// separated, in brackets.
func (ars AddrRangeSeq) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for sep := ""; !ars.IsEmpty(); ars = ars.Tail() {
		b.WriteString(sep)
		sep = " "
		b.WriteString(ars.Head().String())
	}
	b.WriteByte(']')
	return b.String()
}
