package addrspace

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// TestVecIOFaults checks CopyInSeq and CopyOutSeq against the per-range
// loop with the fault at every offset near a page boundary, in the first,
// a middle and the last of 16 ranges: the same counts, errors and bytes.
func TestVecIOFaults(t *testing.T) {
	const ranges = 16
	for _, where := range []int{0, ranges / 2, ranges - 1} {
		for off := -9; off <= 9; off++ {
			for _, write := range []bool{false, true} {
				t.Run(fmt.Sprintf("range%d/off%d/write%v", where, off, write), func(t *testing.T) {
					check := func(vec bool) (n int, buf, mem []byte, err error) {
						as := newAS(t, 1<<30)
						a := mustMmap(t, as, MmapOpts{Length: 64 * pg, Perms: hostarch.ReadWrite, Private: true})
						writeAt(t, as, a, string(pattern(64*pg, 9)))
						// Ranges of 24 bytes, 2 pages apart, last first; the
						// chosen one straddles the end of its page, whose
						// next page is read-only (for writes) or unmapped.
						var ars []hostarch.AddrRange
						for i := ranges - 1; i >= 0; i-- {
							start := a + hostarch.Addr(i*2*pg+pg-12)
							if ranges-1-i == where {
								start = a + hostarch.Addr(i*2*pg+pg) + hostarch.Addr(off) - 12
								if write {
									mustMprotect(t, as, a+hostarch.Addr((i*2+1)*pg), pg, hostarch.Read)
								} else if err := as.Munmap(a+hostarch.Addr((i*2+1)*pg), pg); err != nil {
									t.Fatal(err)
								}
							}
							ars = append(ars, hostarch.AddrRange{Start: start, End: start + 24})
						}
						var io usermem.IO = as
						if !vec {
							io = plainIO{as}
						}
						seq := usermem.IOSequence{IO: io, Addrs: hostarch.AddrRangeSeqFromSlice(ars)}
						buf = bytes.Repeat([]byte{0x5a}, ranges*24)
						if write {
							n, err = seq.CopyOut(ctx, buf)
						} else {
							n, err = seq.CopyIn(ctx, buf)
						}
						// Reads change no memory: mem stays nil.
						if write {
							// Bytes in the read-only page read back through the
							// max view.
							full := make([]byte, 64*pg)
							as.CopyIn(ctx, a, full, usermem.IOOpts{IgnorePermissions: true})
							mem = full
						}
						return n, buf, mem, err
					}
					n1, buf1, mem1, err1 := check(true)
					n2, buf2, mem2, err2 := check(false)
					var f1, f2 *FaultError
					errors.As(err1, &f1)
					errors.As(err2, &f2)
					if n1 != n2 || (err1 == nil) != (err2 == nil) || (f1 == nil) != (f2 == nil) || (f1 != nil && *f1 != *f2) {
						t.Fatalf("vectored %d, %v; per range %d, %v", n1, err1, n2, err2)
					}
					if err1 != nil && !errors.Is(err1, unix.EFAULT) {
						t.Fatalf("error %v is not EFAULT", err1)
					}
					if !bytes.Equal(buf1[:n1], buf2[:n2]) || !bytes.Equal(mem1, mem2) {
						t.Fatal("bytes differ between the vectored and the per-range copy")
					}
				})
			}
		}
	}
}

func mustMprotect(t *testing.T, as *AddressSpace, addr hostarch.Addr, length uint64, perms hostarch.AccessType) {
	t.Helper()
	if err := as.Mprotect(addr, length, perms); err != nil {
		t.Fatal(err)
	}
}
