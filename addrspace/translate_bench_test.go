package addrspace

import (
	"testing"

	"github.com/mmsim/mmsim/hostarch"
)

// BenchmarkTranslate is the cost of a TLB fill: a page already backed, of
// anonymous memory and of a private file mapping (one fstat).
func BenchmarkTranslate(b *testing.B) {
	for _, file := range []bool{false, true} {
		name := "anon"
		if file {
			name = "file"
		}
		b.Run(name, func(b *testing.B) {
			as := newAS(b, 1<<30)
			o := MmapOpts{Length: 64 * ps, Perms: hostarch.AccessType{Read: true, Execute: true}, Private: true}
			if file {
				o.File = tempFile(b, pattern(64*int(ps), 1), 0)
			}
			a := mustMmap(b, as, o)
			if _, err := as.Translate(a, hostarch.Read); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := as.Translate(a+5*ps, hostarch.Execute); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
