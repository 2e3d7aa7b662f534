package safemem

import (
	"fmt"
	"strings"
)

// A BlockSeq represents a sequence of Blocks, each of non-zero length.
//
// BlockSeqs are immutable and may be copied by value. The zero value of
// BlockSeq is an empty sequence. A BlockSeq of one Block never allocates;
// a longer one refers to the caller's slice, which must not be modified
// while the sequence is in use.
type BlockSeq struct {
	// Invariants:
	//	- limit == 0 iff the sequence is empty, and then head and rest are zero.
	//	- Otherwise 0 < head.length <= limit, and limit - head.length is at
	//	  most the number of bytes in rest; rest holds the Blocks after head
	//	  (possibly including empty ones, which iteration skips) and bytes of
	//	  rest beyond limit - head.length are not part of the sequence.
	head  Block
	rest  []Block
	limit uint64
}

// BlockSeqOf returns a BlockSeq representing the single Block b.
func BlockSeqOf(b Block) BlockSeq {
	if b.length == 0 {
		return BlockSeq{}
	}
	return BlockSeq{head: b, limit: uint64(b.length)}
}

// BlockSeqFromSlice returns a BlockSeq representing all Blocks in slice.
// Blocks of zero length are skipped during iteration. The result may refer
// to slice, which must not be modified while the sequence is used.
//
// Preconditions: the total length of the Blocks fits in a uint64 (it panics
// otherwise).
func BlockSeqFromSlice(slice []Block) BlockSeq {
	var limit uint64
	for _, b := range slice {
		sum := limit + uint64(b.length)
		if sum < limit {
			panic("safemem: BlockSeq length overflows uint64")
		}
		limit = sum
	}
	return blockSeqFromSliceLimited(slice, limit)
}

// Preconditions: the total length of slice is at least limit.
func blockSeqFromSliceLimited(slice []Block, limit uint64) BlockSeq {
	if limit == 0 {
		return BlockSeq{}
	}
	for i, b := range slice {
		if b.length == 0 {
			continue
		}
		return BlockSeq{head: b.TakeFirst64(limit), rest: slice[i+1:], limit: limit}
	}
	panic("safemem: BlockSeq limit exceeds its blocks")
}

// IsEmpty returns true if bs contains no Blocks.
//
// Invariant: bs.IsEmpty() == (bs.NumBytes() == 0). (This is false for
// hostarch.AddrRangeSeq, which keeps zero-length ranges.)
func (bs BlockSeq) IsEmpty() bool {
	return bs.limit == 0
}

// NumBlocks returns the number of Blocks in bs. It takes time linear in the
// number of Blocks.
func (bs BlockSeq) NumBlocks() int {
	var n int
	for ; !bs.IsEmpty(); bs = bs.Tail() {
		n++
	}
	return n
}

// NumBytes returns the sum of Block.Len() for all Blocks in bs.
func (bs BlockSeq) NumBytes() uint64 {
	return bs.limit
}

// Head returns the first Block in bs.
//
// Preconditions: !bs.IsEmpty() (it panics otherwise).
func (bs BlockSeq) Head() Block {
	if bs.limit == 0 {
		panic("safemem: Head of empty BlockSeq")
	}
	return bs.head
}

// Tail returns a BlockSeq consisting of all Blocks in bs after the first.
//
// Preconditions: !bs.IsEmpty() (it panics otherwise).
func (bs BlockSeq) Tail() BlockSeq {
	if bs.limit == 0 {
		panic("safemem: Tail of empty BlockSeq")
	}
	return blockSeqFromSliceLimited(bs.rest, bs.limit-uint64(bs.head.length))
}

// DropFirst returns a BlockSeq equivalent to bs, but with the first n bytes
// omitted. If n > bs.NumBytes(), DropFirst returns an empty BlockSeq.
//
// Preconditions: n >= 0 (it panics otherwise).
func (bs BlockSeq) DropFirst(n int) BlockSeq {
	if n < 0 {
		panic(fmt.Sprintf("safemem: DropFirst(%d)", n))
	}
	return bs.DropFirst64(uint64(n))
}

// DropFirst64 is equivalent to DropFirst but takes a uint64.
func (bs BlockSeq) DropFirst64(n uint64) BlockSeq {
	if n >= bs.limit {
		return BlockSeq{}
	}
	for n >= uint64(bs.head.length) {
		n -= uint64(bs.head.length)
		bs = bs.Tail()
	}
	bs.head = bs.head.DropFirst64(n)
	bs.limit -= n
	return bs
}

// TakeFirst returns a BlockSeq equivalent to the first n bytes of bs.
//
// Preconditions: n >= 0 (it panics otherwise).
func (bs BlockSeq) TakeFirst(n int) BlockSeq {
	if n < 0 {
		panic(fmt.Sprintf("safemem: TakeFirst(%d)", n))
	}
	return bs.TakeFirst64(uint64(n))
}

// TakeFirst64 is equivalent to TakeFirst but takes a uint64.
func (bs BlockSeq) TakeFirst64(n uint64) BlockSeq {
	if n == 0 {
		return BlockSeq{}
	}
	if n < bs.limit {
		bs.limit = n
		bs.head = bs.head.TakeFirst64(n)
	}
	return bs
}

// String implements fmt.Stringer.String: the Blocks in order, space
// separated, in brackets.
func (bs BlockSeq) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for sep := ""; !bs.IsEmpty(); bs = bs.Tail() {
		b.WriteString(sep)
		sep = " "
		b.WriteString(bs.Head().String())
	}
	b.WriteByte(']')
	return b.String()
}

// CopySeq copies min(dsts.NumBytes(), srcs.NumBytes()) bytes from srcs to
// dsts and returns the number of bytes copied.
//
// It stops at the first fault: it returns the total number of bytes copied
// before the first byte that could not be accessed, and the fault's error.
func CopySeq(dsts, srcs BlockSeq) (uint64, error) {
	// One Block each side (the common case: a syscall's one buffer) is one
	// Copy, without walking the sequences.
	if dsts.limit == uint64(dsts.head.length) && srcs.limit == uint64(srcs.head.length) {
		n, err := Copy(dsts.head, srcs.head)
		return uint64(n), err
	}
	var done uint64
	for !dsts.IsEmpty() && !srcs.IsEmpty() {
		n, err := Copy(dsts.head, srcs.head)
		done += uint64(n)
		if err != nil {
			return done, err
		}
		dsts = dsts.DropFirst(n)
		srcs = srcs.DropFirst(n)
	}
	return done, nil
}

// ZeroSeq sets all bytes in dsts to 0 and returns the number of bytes
// zeroed. It stops at the first fault, returning the total zeroed before it
// and the fault's error.
func ZeroSeq(dsts BlockSeq) (uint64, error) {
	if dsts.limit == uint64(dsts.head.length) {
		n, err := Zero(dsts.head)
		return uint64(n), err
	}
	var done uint64
	for !dsts.IsEmpty() {
		n, err := Zero(dsts.head)
		done += uint64(n)
		if err != nil {
			return done, err
		}
		dsts = dsts.Tail()
	}
	return done, nil
}
