package addrspace

import (
	"testing"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/internal/safecopy"
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
//     the host's own page fault on the memory file, then the copy resumed;
//   - op=first-touch-exact: the same, resolved as CopyIn did before it
//     resumed at the reported page: the count made exact first (a one-byte
//     retry, a second host signal), then the fault resolved and the copy
//     resumed. The baseline for op=first-touch in the same run.
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
	// exactFirst is CopyIn resolving faults the way it did before
	// finishRaw.
	exactFirst := func(as *AddressSpace, addr hostarch.Addr, dst []byte) (int, error) {
		src := unsafe.Add(as.appBase, addr)
		lb, fault, sig := safecopy.Memcpy(unsafe.Pointer(unsafe.SliceData(dst)), src, uintptr(len(dst)))
		if sig == 0 {
			return len(dst), nil
		}
		done, f := safecopy.FinishCopy(unsafe.Pointer(unsafe.SliceData(dst)), src, uintptr(len(dst)), lb, fault, sig)
		if f.Sig == 0 {
			return len(dst), nil
		}
		n, err := as.finish(as.appBase, uintptr(len(dst)), done, f, hostarch.Read, noOpt, func(from uintptr) (uintptr, safecopy.Fault) {
			return safecopy.Copy(unsafe.Pointer(unsafe.SliceData(dst[from:])), unsafe.Add(src, from), uintptr(len(dst))-from)
		}, nil)
		return int(n), err
	}
	firstTouch := func(b *testing.B, copyIn func(as *AddressSpace, addr hostarch.Addr, dst []byte) (int, error)) {
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
			if n, err := copyIn(as, base+hostarch.Addr(2*i*pg), buf); n != len(buf) || err != nil {
				b.Fatal(n, err)
			}
			i++
		}
	}
	b.Run("op=first-touch", func(b *testing.B) {
		firstTouch(b, func(as *AddressSpace, addr hostarch.Addr, dst []byte) (int, error) {
			return as.CopyIn(ctx, addr, dst, noOpt)
		})
	})
	b.Run("op=first-touch-exact", func(b *testing.B) { firstTouch(b, exactFirst) })
}
