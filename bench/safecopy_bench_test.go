package bench

// Fault-safe copy and zero throughput: mmsim's internal/safecopy against the
// builtin copy/clear and gVisor's pkg/safecopy, on the same mmap'ed host
// memory. Compare with
//
//	go test -run '^$' -bench 'Safecopy' -count 6 . | tee out.txt
//	benchstat -col /impl -row .name/size out.txt

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/mmsim/mmsim/internal/safecopy"
	"golang.org/x/sys/unix"
	gsafecopy "gvisor.dev/gvisor/pkg/safecopy"
)

var safecopyBenchSizes = []int{8, 64, 512, 4 << 10, 64 << 10, 1 << 20, 16 << 20}

func safecopySizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// safecopyMap maps n bytes (whole pages) of anonymous host memory, touched
// so that no first-touch page faults are timed.
func safecopyMap(b *testing.B, n int) []byte {
	size := (n + 4095) &^ 4095
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Munmap(m) })
	for i := range m {
		m[i] = byte(i)
	}
	return m[:n]
}

func BenchmarkSafecopyCopy(b *testing.B) {
	impls := []struct {
		name string
		run  func(b *testing.B, dst, src []byte)
	}{
		{"mmsim", func(b *testing.B, dst, src []byte) {
			d, s, n := unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), uintptr(len(dst))
			for b.Loop() {
				if _, f := safecopy.Copy(d, s, n); f.Sig != 0 {
					b.Fatal(f)
				}
			}
		}},
		{"gocopy", func(b *testing.B, dst, src []byte) {
			for b.Loop() {
				copy(dst, src)
			}
		}},
		{"gvisor", func(b *testing.B, dst, src []byte) {
			s := unsafe.Pointer(&src[0])
			for b.Loop() {
				if _, err := gsafecopy.CopyIn(dst, s); err != nil {
					b.Fatal(err)
				}
			}
		}},
	}
	for _, n := range safecopyBenchSizes {
		for _, impl := range impls {
			b.Run(fmt.Sprintf("size=%s/impl=%s", safecopySizeName(n), impl.name), func(b *testing.B) {
				dst, src := safecopyMap(b, n), safecopyMap(b, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				impl.run(b, dst, src)
			})
		}
	}
}

func BenchmarkSafecopyZero(b *testing.B) {
	impls := []struct {
		name string
		run  func(b *testing.B, dst []byte)
	}{
		{"mmsim", func(b *testing.B, dst []byte) {
			d, n := unsafe.Pointer(&dst[0]), uintptr(len(dst))
			for b.Loop() {
				if _, f := safecopy.Zero(d, n); f.Sig != 0 {
					b.Fatal(f)
				}
			}
		}},
		{"goclear", func(b *testing.B, dst []byte) {
			for b.Loop() {
				clear(dst)
			}
		}},
		{"gvisor", func(b *testing.B, dst []byte) {
			d, n := unsafe.Pointer(&dst[0]), uintptr(len(dst))
			for b.Loop() {
				if _, err := gsafecopy.ZeroOut(d, n); err != nil {
					b.Fatal(err)
				}
			}
		}},
	}
	for _, n := range safecopyBenchSizes {
		for _, impl := range impls {
			b.Run(fmt.Sprintf("size=%s/impl=%s", safecopySizeName(n), impl.name), func(b *testing.B) {
				dst := safecopyMap(b, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				impl.run(b, dst)
			})
		}
	}
}
