package addrspace

import (
	"testing"

	"github.com/mmsim/mmsim/hostarch"
)

// BenchmarkFault measures what a fault costs a copy, against the same copy
// on a page already backed (the figures in the package documentation):
//
//   - op=backed: CopyIn of 8 bytes from a backed page: a bounds check and
//     a memmove, no signal;
//   - op=unmapped: CopyIn of 8 bytes from a hole: the host SIGSEGV, the
//     handler's return to the copy, the lock and the VMA lookup, and the
//     EFAULT;
//   - op=first-touch: CopyIn of 8 bytes from a private anonymous page never
//     touched (lazily unbacked): the host SIGSEGV, the lookup, backing the
//     page (a memory-file page, and a host mmap of it into the view) and
//     the host's own page fault on the memory file, then the copy resumed.
//
// Each first-touch page is a one-page mapping of its own, so fault-around
// has no neighbours to take in: one fault backs one page.
func BenchmarkFault(b *testing.B) {
	b.Run("op=backed", func(b *testing.B) {
		as := newAS(b, 1<<30)
		a := mustMmap(b, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
		buf := make([]byte, 8)
		if _, err := as.CopyOut(ctx, a, buf, noOpt); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := as.CopyIn(ctx, a, buf, noOpt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=unmapped", func(b *testing.B) {
		as := newAS(b, 1<<30)
		a := mustMmap(b, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
		buf := make([]byte, 8)
		b.ReportAllocs()
		for b.Loop() {
			if n, err := as.CopyIn(ctx, a-pg, buf, noOpt); n != 0 || err == nil {
				b.Fatalf("CopyIn of a hole = %d, %v", n, err)
			}
		}
	})
	b.Run("op=first-touch", func(b *testing.B) {
		const batch = 256
		as := newAS(b, 1<<30)
		base := mustMmap(b, as, MmapOpts{Length: 2 * batch * pg, Perms: hostarch.ReadWrite, Private: true})
		buf := make([]byte, 8)
		// fresh maps batch one-page mappings, a hole between each two.
		fresh := func() {
			if err := as.Munmap(base, 2*batch*pg); err != nil {
				b.Fatal(err)
			}
			for i := range batch {
				mustMmap(b, as, MmapOpts{Addr: base + hostarch.Addr(2*i*pg), Fixed: true, Length: pg, Perms: hostarch.ReadWrite, Private: true})
			}
		}
		fresh()
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			if i == batch {
				b.StopTimer()
				fresh()
				i = 0
				b.StartTimer()
			}
			if _, err := as.CopyIn(ctx, base+hostarch.Addr(2*i*pg), buf, noOpt); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
