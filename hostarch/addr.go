package hostarch

import "fmt"

// Addr is a simulated (user) virtual address.
type Addr uintptr

// AddLength adds the given length to start and returns the result. ok is true
// iff adding the length did not overflow the range of Addr.
//
// Note: This function is usually used to get the end of an address range
// defined by its start address and length. Since the resulting end is
// exclusive, end == 0 is technically valid, and corresponds to a range that
// extends to the end of the address space, but ok will be false. This isn't
// expected to ever come up in practice.
func (v Addr) AddLength(length uint64) (end Addr, ok bool) {
	end = v + Addr(length)
	// The second half of the following check is needed in case uintptr is
	// smaller than 64 bits.
	ok = end >= v && length <= uint64(^Addr(0))
	return
}

// RoundDown returns the address rounded down to the nearest page boundary.
func (v Addr) RoundDown() Addr {
	return v & ^Addr(PageSize-1)
}

// RoundUp returns the address rounded up to the nearest page boundary. ok is
// true iff rounding up did not wrap around.
func (v Addr) RoundUp() (addr Addr, ok bool) {
	addr = Addr(v + PageSize - 1).RoundDown()
	ok = addr >= v
	return
}

// MustRoundUp is equivalent to RoundUp, but panics if rounding up wraps
// around.
func (v Addr) MustRoundUp() Addr {
	addr, ok := v.RoundUp()
	if !ok {
		panic(fmt.Sprintf("hostarch.Addr(%d).RoundUp() wraps", v))
	}
	return addr
}

// PageOffset returns the offset of v into the current page.
func (v Addr) PageOffset() uint64 {
	return uint64(v & Addr(PageSize-1))
}

// IsPageAligned returns true if v.PageOffset() == 0.
func (v Addr) IsPageAligned() bool {
	return v.PageOffset() == 0
}

// ToRange returns [v, v+length). ok is false if v+length overflows, in which
// case the returned range is unspecified.
func (v Addr) ToRange(length uint64) (ar AddrRange, ok bool) {
	end, ok := v.AddLength(length)
	return AddrRange{v, end}, ok
}

// MustToRange is equivalent to ToRange, but panics if the end of the range
// wraps around.
func (v Addr) MustToRange(length uint64) AddrRange {
	ar, ok := v.ToRange(length)
	if !ok {
		panic(fmt.Sprintf("hostarch.Addr(%#x).ToRange(%d) wraps", v, length))
	}
	return ar
}

// PageRoundDown returns x rounded down to a page boundary.
func PageRoundDown(x uint64) uint64 {
	return x &^ (PageSize - 1)
}

// PageRoundUp returns x rounded up to a page boundary. ok is false if the
// result would overflow a uint64.
func PageRoundUp(x uint64) (rounded uint64, ok bool) {
	rounded = PageRoundDown(x + PageSize - 1)
	return rounded, rounded >= x
}
