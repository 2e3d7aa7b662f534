//go:build linux && amd64

package safecopy

import "testing"

// BenchmarkStrategies times each large-size path of memcpy and memclr at the
// sizes where the choice between them changes; setTuning's thresholds come
// from it. Compare with benchstat -col /path.
func BenchmarkStrategies(b *testing.B) {
	saved := strategy{avx2: useAVX2, copyRep: copyRepMin, copyNT: copyNTMin, zeroRep: zeroRepMin, zeroNT: zeroNTMin}
	defer func() {
		useAVX2, copyRepMin, copyNTMin, zeroRepMin, zeroNTMin = saved.avx2, saved.copyRep, saved.copyNT, saved.zeroRep, saved.zeroNT
	}()
	for _, n := range []int{1 << 10, 2 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20, 12 << 20, 16 << 20, 64 << 20} {
		dst, src := benchBuffers(b, n)
		d, s := dst.addr(), src.addr()
		for _, st := range strategies() {
			useAVX2, copyRepMin, copyNTMin, zeroRepMin, zeroNTMin = st.avx2, st.copyRep, st.copyNT, st.zeroRep, st.zeroNT
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
