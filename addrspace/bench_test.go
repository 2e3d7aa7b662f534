package addrspace

import (
	"fmt"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

var benchSizes = []int{8, 64, 512, 4 << 10, 64 << 10, 1 << 20, 16 << 20}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// BenchmarkCopy compares CopyIn and CopyOut through an AddressSpace with
// copy() between two host mappings of the same size (the limit).
func BenchmarkCopy(b *testing.B) {
	for _, n := range benchSizes {
		length := uint64(n+pg-1) &^ (pg - 1)
		b.Run("size="+sizeName(n), func(b *testing.B) {
			as := newAS(b, 0)
			addr := mustMmap(b, as, MmapOpts{Length: length, Perms: hostarch.ReadWrite, Private: true})
			if _, err := as.ZeroOut(ctx, addr, int64(length), noOpt); err != nil {
				b.Fatal(err)
			}
			host := hostBuf(b, int(length))[:n]
			other := hostBuf(b, int(length))[:n]
			b.Run("op=copy", func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					copy(host, other)
				}
			})
			b.Run("op=CopyIn", func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := as.CopyIn(ctx, addr, host, noOpt); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("op=CopyOut", func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := as.CopyOut(ctx, addr, host, noOpt); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func hostBuf(b *testing.B, n int) []byte {
	m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Munmap(m) })
	for i := range m {
		m[i] = byte(i)
	}
	return m
}

// BenchmarkMmapMunmap compares Mmap+Munmap of one anonymous page with the
// host's mmap+munmap.
func BenchmarkMmapMunmap(b *testing.B) {
	b.Run("op=host", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, err := unix.Mmap(-1, 0, pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				b.Fatal(err)
			}
			unix.Munmap(m)
		}
	})
	b.Run("op=addrspace", func(b *testing.B) {
		as := newAS(b, 0)
		b.ReportAllocs()
		for b.Loop() {
			a, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
			if err != nil {
				b.Fatal(err)
			}
			if err := as.Munmap(a, pg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCOWFault measures the first write to a private file page: one
// fault, a page copy and a remap.
func BenchmarkCOWFault(b *testing.B) {
	f := tempFile(b, pattern(64*pg, 1), 0)
	as := newAS(b, 0)
	buf := []byte{1}
	for b.Loop() {
		a := mustMmap(b, as, MmapOpts{Length: 64 * pg, Perms: hostarch.ReadWrite, Private: true, File: f})
		for p := hostarch.Addr(0); p < 64*pg; p += pg {
			as.CopyOut(ctx, a+p, buf, noOpt)
		}
		as.Munmap(a, 64*pg)
	}
}

// BenchmarkClone clones an address space of N mappings with M bytes
// touched: the cost must follow N, not M.
func BenchmarkClone(b *testing.B) {
	for _, tc := range []struct {
		maps    int
		touched uint64
	}{{100, 1 << 20}, {100, 256 << 20}, {1000, 1 << 20}, {10000, 1 << 20}} {
		b.Run(fmt.Sprintf("maps=%d/touched=%dMiB", tc.maps, tc.touched>>20), func(b *testing.B) {
			as := newAS(b, 1<<36)
			per := tc.touched / uint64(tc.maps)
			per = (per + pg - 1) &^ (pg - 1)
			for i := 0; i < tc.maps; i++ {
				a := mustMmap(b, as, MmapOpts{Length: per, Perms: hostarch.ReadWrite, Private: true, Name: fmt.Sprint(i)})
				if _, err := as.ZeroOut(ctx, a, int64(per), noOpt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				c, err := as.Clone()
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				c.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkWriteAfterClone measures the first write to a private page after
// Clone (one fault and one page copy), against a write to the same page
// once it is the address space's own.
func BenchmarkWriteAfterClone(b *testing.B) {
	const pages = 256
	as := newAS(b, 1<<30)
	a := mustMmap(b, as, MmapOpts{Length: pages * pg, Perms: hostarch.ReadWrite, Private: true})
	as.ZeroOut(ctx, a, pages*pg, noOpt)
	buf := []byte{1}
	b.Run("op=first-write", func(b *testing.B) {
		b.ReportAllocs()
		var c *AddressSpace
		i := 0
		for b.Loop() {
			if i%pages == 0 {
				b.StopTimer()
				if c != nil {
					c.Close()
				}
				var err error
				if c, err = as.Clone(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			if _, err := c.CopyOut(ctx, a+hostarch.Addr(i%pages)*pg, buf, noOpt); err != nil {
				b.Fatal(err)
			}
			i++
		}
		c.Close()
	})
	b.Run("op=later-write", func(b *testing.B) {
		for b.Loop() {
			if _, err := as.CopyOut(ctx, a, buf, noOpt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMremap moves a touched 64 MiB mapping back and forth: no byte is
// copied, so the cost is that of remapping, against copy() of 64 MiB.
func BenchmarkMremap(b *testing.B) {
	const n = 64 << 20
	b.Run("op=mremap", func(b *testing.B) {
		as := newAS(b, 1<<34)
		a := mustMmap(b, as, MmapOpts{Addr: 1 << 30, Fixed: true, Length: n, Perms: hostarch.ReadWrite, Private: true})
		as.ZeroOut(ctx, a, n, noOpt)
		other := hostarch.Addr(4 << 30)
		for b.Loop() {
			na, err := as.Mremap(a, n, n, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, other)
			if err != nil {
				b.Fatal(err)
			}
			a, other = na, a
		}
	})
	b.Run("op=copy", func(b *testing.B) {
		src, dst := hostBuf(b, n), hostBuf(b, n)
		for b.Loop() {
			copy(dst, src)
		}
	})
}
