//go:build linux && amd64

package safecopy

import "testing"

// BenchmarkStrategies times each large-size path of memcpy and memclr at the
// sizes where the choice between them changes; setTuning's thresholds come
// from it. Compare with benchstat -col /path.
func BenchmarkStrategies(b *testing.B) {
	defer currentTuning().apply()
	for _, n := range []int{1 << 10, 2 << 10, 3 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 48 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20, 12 << 20, 16 << 20, 64 << 20} {
		dst, src := benchBuffers(b, n)
		d, s := dst.addr(), src.addr()
		for _, st := range strategies() {
			st.apply()
			b.Run("op=copy/size="+sizeName(n)+"/path="+st.name, func(b *testing.B) {
				b.SetBytes(int64(n))
				for b.Loop() {
					uCopy(d, s, uintptr(n))
				}
			})
			b.Run("op=zero/size="+sizeName(n)+"/path="+st.name, func(b *testing.B) {
				b.SetBytes(int64(n))
				for b.Loop() {
					uZero(d, uintptr(n))
				}
			})
		}
	}
}
