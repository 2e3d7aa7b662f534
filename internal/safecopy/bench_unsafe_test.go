//go:build linux && (amd64 || arm64)

package safecopy

import (
	"fmt"
	"testing"
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

// benchBuffers maps page-aligned source and destination host buffers of n
// bytes (touched, so no first-touch faults are timed).
func benchBuffers(b *testing.B, n int) (dst, src region) {
	pages := (n + pageSize - 1) / pageSize
	dst, src = mapRegion(b, pages), mapRegion(b, pages)
	fill(src.b, 1)
	fill(dst.b, 2)
	return dst, src
}

func BenchmarkCopy(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			dst, src := benchBuffers(b, n)
			d, s := dst.addr(), src.addr()
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, sig := uCopy(d, s, uintptr(n)); sig != 0 {
					b.Fatal(sig)
				}
			}
		})
	}
}

// BenchmarkGoCopy is the builtin copy on the same memory, for comparison.
func BenchmarkGoCopy(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			dst, src := benchBuffers(b, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(dst.b[:n], src.b[:n])
			}
		})
	}
}

func BenchmarkZero(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			dst, _ := benchBuffers(b, n)
			d := dst.addr()
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, sig := uZero(d, uintptr(n)); sig != 0 {
					b.Fatal(sig)
				}
			}
		})
	}
}

// BenchmarkGoClear is the builtin clear on the same memory, for comparison.
func BenchmarkGoClear(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			dst, _ := benchBuffers(b, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				clear(dst.b[:n])
			}
		})
	}
}

// BenchmarkCopyFault is the cost of a copy that faults (one signal).
func BenchmarkCopyFault(b *testing.B) {
	r := mapRegion(b, 2)
	r.protect(b, 1, 1, 0)
	other := mapRegion(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		uCopy(other.addr(), r.addr()+pageSize-64, 128)
	}
}
