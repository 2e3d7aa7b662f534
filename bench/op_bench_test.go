package bench

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
	gsafecopy "gvisor.dev/gvisor/pkg/safecopy"
)

// stringLen is the length of the string CopyStringIn reads, and
// stringMaxLen the limit it is given (Linux's PATH_MAX).
const (
	stringLen    = 64
	stringMaxLen = 4096
)

// An opImpl is one implementation of a single operation (a row of the
// operations table).
type opImpl struct {
	op, impl string
	run      func(b *testing.B)
}

// stringFixture returns a page of simulated memory holding a NUL-terminated
// string of stringLen bytes at its start.
func stringFixture(b *testing.B) (*fixture, string) {
	fx := getFixture(b, stringMaxLen, 2)
	want := bytes.Repeat([]byte("/usr/lib/mmsim"), stringLen)[:stringLen]
	clear(fx.view)
	copy(fx.view, want)
	return fx, string(want)
}

func checkString(b *testing.B, got, want string) {
	if got != want {
		b.Fatalf("got string %q, want %q", got, want)
	}
}

var opImpls = []opImpl{
	{"CopyStringIn64", "go", func(b *testing.B) {
		// What a Go program does with a NUL-terminated string in its own
		// memory: find the NUL, convert.
		fx, want := stringFixture(b)
		var s string
		for b.Loop() {
			mem := fx.view[:stringMaxLen]
			s = string(mem[:bytes.IndexByte(mem, 0)])
		}
		checkString(b, s, want)
	}},
	{"CopyStringIn64", "mmsim", func(b *testing.B) {
		fx, want := stringFixture(b)
		ctx := context.Background()
		var s string
		for b.Loop() {
			var err error
			if s, err = usermem.CopyStringIn(ctx, fx.as, fx.addr, stringMaxLen, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
		}
		checkString(b, s, want)
	}},
	{"CopyStringIn64", "BytesIO", func(b *testing.B) {
		fx, want := stringFixture(b)
		ctx, bio := context.Background(), &usermem.BytesIO{Bytes: fx.view}
		var s string
		for b.Loop() {
			var err error
			if s, err = usermem.CopyStringIn(ctx, bio, 0, stringMaxLen, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
		}
		checkString(b, s, want)
	}},
	{"SwapUint32", "atomic", func(b *testing.B) {
		p := (*uint32)(ptr(getFixture(b, 4096, 2).view))
		var i uint32
		for b.Loop() {
			i++
			atomic.SwapUint32(p, i)
		}
		checkSwapped(b, atomic.LoadUint32(p), i)
	}},
	{"SwapUint32", "mmsim", func(b *testing.B) {
		fx := getFixture(b, 4096, 2)
		ctx, as, addr := context.Background(), fx.as, fx.addr
		var i uint32
		for b.Loop() {
			i++
			if _, err := as.SwapUint32(ctx, addr, i, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
		}
		checkSwapped(b, atomic.LoadUint32((*uint32)(ptr(fx.view))), i)
	}},
	{"SwapUint32", "safemem", func(b *testing.B) {
		fx := getFixture(b, 4096, 2)
		blk := safemem.BlockFromUnsafeSlice(fx.view[:4])
		var i uint32
		for b.Loop() {
			i++
			if _, err := safemem.SwapUint32(blk, i); err != nil {
				b.Fatal(err)
			}
		}
		checkSwapped(b, atomic.LoadUint32((*uint32)(ptr(fx.view))), i)
	}},
	{"SwapUint32", "gvisor", func(b *testing.B) {
		fx := getFixture(b, 4096, 2)
		p := ptr(fx.view)
		var i uint32
		for b.Loop() {
			i++
			if _, err := gsafecopy.SwapUint32(p, i); err != nil {
				b.Fatal(err)
			}
		}
		checkSwapped(b, atomic.LoadUint32((*uint32)(p)), i)
	}},
	{"MmapMunmap4KiB", "host", func(b *testing.B) {
		// The raw system calls (unix.Mmap would add its own bookkeeping).
		for b.Loop() {
			p, err := unix.MmapPtr(-1, 0, nil, hostarch.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				b.Fatal(err)
			}
			if err := unix.MunmapPtr(p, hostarch.PageSize); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"MmapMunmap4KiB", "mmsim", func(b *testing.B) {
		suiteMu.Lock()
		as := theAS(b)
		suiteMu.Unlock()
		before := len(as.Mappings())
		opts := addrspace.MmapOpts{Length: hostarch.PageSize, Perms: hostarch.ReadWrite}
		for b.Loop() {
			addr, err := as.Mmap(opts)
			if err != nil {
				b.Fatal(err)
			}
			if err := as.Munmap(addr, hostarch.PageSize); err != nil {
				b.Fatal(err)
			}
		}
		if after := len(as.Mappings()); after != before {
			b.Fatalf("%d mappings after the loop, %d before", after, before)
		}
	}},
}

func checkSwapped(b *testing.B, got, want uint32) {
	if got != want {
		b.Fatalf("memory holds %d after the loop, want %d", got, want)
	}
}

func BenchmarkOp(b *testing.B) {
	all := append(append([]opImpl{}, opImpls...), budgetOpImpls...)
	for _, i := range shuffled(len(all)) {
		o := all[i]
		b.Run(fmt.Sprintf("op=%s/impl=%s", o.op, o.impl), func(b *testing.B) {
			b.ReportAllocs()
			o.run(b)
		})
	}
}

// parallelSizes and parallelGoroutines are the cells of BenchmarkParallel.
var (
	parallelSizes      = []int{4 << 10, 1 << 20}
	parallelGoroutines = []int{1, 2}
)

// BenchmarkParallel copies with g goroutines at once, each from its own
// simulated range to its own buffer; ns/op is wall time per copy, so the
// throughput (MB/s) is the total of the goroutines.
func BenchmarkParallel(b *testing.B) {
	type cell struct {
		n, g int
		impl string
	}
	var cells []cell
	for _, n := range parallelSizes {
		for _, g := range parallelGoroutines {
			for _, impl := range []string{"copy", "mmsim"} {
				cells = append(cells, cell{n, g, impl})
			}
		}
	}
	for _, i := range shuffled(len(cells)) {
		c := cells[i]
		b.Run(fmt.Sprintf("size=%s/goroutines=%d/impl=%s", sizeName(c.n), c.g, c.impl), func(b *testing.B) {
			fxs := make([]*fixture, c.g)
			for j := range fxs {
				fxs[j] = getFixture(b, c.n, j)
				prepare(fxs[j].buf, fxs[j].view)
			}
			b.SetBytes(int64(c.n))
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			ran := fxs[:min(b.N, c.g)]
			for j, fx := range ran {
				// b.N copies in all, shared out as evenly as can be.
				iters := b.N / c.g
				if j < b.N%c.g {
					iters++
				}
				wg.Go(func() {
					if c.impl == "copy" {
						for range iters {
							copy(fx.buf, fx.view)
						}
						return
					}
					ctx := context.Background()
					for range iters {
						if _, err := fx.as.CopyIn(ctx, fx.addr, fx.buf, usermem.IOOpts{}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			for _, fx := range ran {
				checkCopied(b, fx.buf, fx.view)
			}
		})
	}
}
