package addrspace

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
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

// TestVecIORandom compares the vectored path with the per-range loop over
// random sequences (over pages dirty-tracked, so a write faults and is
// resolved): ranges of 1 to 64 bytes in two thirds of them (whole
// batches of small ranges), 0 to 100 in the rest, some near 2^64, in pages never touched, read-only, unmapped or past Size, a
// buffer shorter or longer than the sequence, in both directions. Counts,
// errors, the buffer and the memory must agree.
func TestVecIORandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		seed := rng.Uint64()
		write := iter%2 == 1
		small := iter%3 != 0 // every range 1 to 64 bytes: whole batches take the one-call path
		run := func(vec bool) (n int, buf, mem []byte, err error) {
			r := rand.New(rand.NewPCG(seed, 3))
			as := newAS(t, 64*pg)
			a := mustMmap(t, as, MmapOpts{Addr: 8 * pg, Length: 32 * pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
			// Half the pages written (backed), the rest never touched.
			for p := 0; p < 32; p += 2 {
				writeAt(t, as, a+hostarch.Addr(p*pg), string(pattern(pg, byte(p))))
			}
			mustMprotect(t, as, a+20*pg, 2*pg, hostarch.Read)
			// Writes to write-protected (dirty-tracked) pages fault and are
			// resolved: the vectored path resumes after them.
			if err := as.ClearDirty(hostarch.AddrRange{Start: a, End: a + 16*pg}); err != nil {
				t.Fatal(err)
			}
			if err := as.Munmap(a+30*pg, pg); err != nil {
				t.Fatal(err)
			}
			var ars []hostarch.AddrRange
			total := 0
			for range 1 + r.IntN(40) {
				start := hostarch.Addr(6*pg + r.IntN(60*pg))
				n := r.IntN(101)
				if small {
					n = 1 + r.IntN(64)
				} else if r.IntN(10) == 0 {
					n = 0
				}
				if r.IntN(50) == 0 {
					start = ^hostarch.Addr(0) - 100 - hostarch.Addr(r.IntN(64)) // near 2^64, far past Size
				}
				ars = append(ars, hostarch.AddrRange{Start: start, End: start + hostarch.Addr(n)})
				total += n
			}
			buf = pattern(max(0, total+r.IntN(64)-32), 0x77)
			var io usermem.IO = as
			if !vec {
				io = plainIO{as}
			}
			seq := usermem.IOSequence{IO: io, Addrs: hostarch.AddrRangeSeqFromSlice(ars)}
			if write {
				n, err = seq.CopyOut(ctx, buf)
			} else {
				n, err = seq.CopyIn(ctx, buf)
			}
			mem = make([]byte, 64*pg)
			as.CopyIn(ctx, 0, mem, usermem.IOOpts{IgnorePermissions: true})
			return n, buf, mem, err
		}
		n1, buf1, mem1, err1 := run(true)
		n2, buf2, mem2, err2 := run(false)
		if n1 != n2 || fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("seed %d write %v: vectored %d, %v; per range %d, %v", seed, write, n1, err1, n2, err2)
		}
		if !bytes.Equal(buf1, buf2) || !bytes.Equal(mem1, mem2) {
			t.Fatalf("seed %d write %v: bytes differ between the vectored and the per-range copy", seed, write)
		}
	}
}

// TestVecIOEdges feeds the vectored path ranges a guest controls at their
// edges: a range of 2^62 bytes, one ending at 2^64-1, one at address 0,
// each after a small range that copies. The vectored path and the
// per-range loop give the same count and error, and the first range's
// bytes only.
func TestVecIOEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  hostarch.AddrRange
	}{
		{"2^62 bytes (unmapped; cut to the buffer)", hostarch.AddrRange{Start: 20 * pg, End: 20*pg + 1<<62}},
		{"ends at 2^64-1", hostarch.AddrRange{Start: ^hostarch.Addr(0) - 8, End: ^hostarch.Addr(0)}},
		{"at address 0", hostarch.AddrRange{Start: 0, End: 8}},
	} {
		for _, write := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/write%v", tc.name, write), func(t *testing.T) {
				run := func(vec bool) (int, []byte, error) {
					as := newAS(t, 64*pg)
					a := mustMmap(t, as, MmapOpts{Addr: 8 * pg, Length: pg, Fixed: true, Perms: hostarch.ReadWrite, Private: true})
					writeAt(t, as, a, string(pattern(pg, 3)))
					ars := []hostarch.AddrRange{{Start: a + 10, End: a + 18}, tc.bad, {Start: a + 40, End: a + 48}}
					var io usermem.IO = as
					if !vec {
						io = plainIO{as}
					}
					seq := usermem.IOSequence{IO: io, Addrs: hostarch.AddrRangeSeqFromSlice(ars)}
					buf := bytes.Repeat([]byte{0x5a}, 24)
					var n int
					var err error
					if write {
						n, err = seq.CopyOut(ctx, buf)
						buf = make([]byte, pg)
						as.CopyIn(ctx, a, buf, noOpt)
					} else {
						n, err = seq.CopyIn(ctx, buf)
					}
					return n, buf, err
				}
				n1, b1, err1 := run(true)
				n2, b2, err2 := run(false)
				if n1 != 8 || !errors.Is(err1, unix.EFAULT) {
					t.Errorf("vectored = %d, %v; want 8, EFAULT", n1, err1)
				}
				if n1 != n2 || fmt.Sprint(err1) != fmt.Sprint(err2) || !bytes.Equal(b1, b2) {
					t.Errorf("vectored %d, %v; per range %d, %v (or bytes differ)", n1, err1, n2, err2)
				}
			})
		}
	}
}
