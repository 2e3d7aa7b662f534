package bench

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/mmsim/mmsim/bench/internal/unicorn"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	gsafecopy "gvisor.dev/gvisor/pkg/safecopy"
	gsafemem "gvisor.dev/gvisor/pkg/safemem"
)

// A copyPath is one column of the copy table: a way to move fx.n bytes
// between the simulated memory (fx.view, fx.addr) and the host buffer
// (fx.buf). run times it with b.Loop and checks the bytes afterwards.
type copyPath struct {
	name string
	run  func(b *testing.B, fx *fixture)
}

// copyPaths are the columns of the copy table. Each loop body is written
// out (no closure per call), so that every path pays only its own cost.
var copyPaths = []copyPath{
	{"copy", func(b *testing.B, fx *fixture) {
		prepare(fx.buf, fx.view)
		for b.Loop() {
			copy(fx.buf, fx.view)
		}
		checkCopied(b, fx.buf, fx.view)
	}},
	{"BytesIO", func(b *testing.B, fx *fixture) {
		ctx, bio := context.Background(), &usermem.BytesIO{Bytes: fx.view}
		prepare(fx.buf, fx.view)
		for b.Loop() {
			if _, err := bio.CopyIn(ctx, 0, fx.buf, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.buf, fx.view)
	}},
	{"safemem.Copy", func(b *testing.B, fx *fixture) {
		dst, src := safemem.BlockFromUnsafeSlice(fx.buf), safemem.BlockFromUnsafeSlice(fx.view)
		prepare(fx.buf, fx.view)
		for b.Loop() {
			if _, err := safemem.Copy(dst, src); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.buf, fx.view)
	}},
	{"safemem.CopySeq", func(b *testing.B, fx *fixture) {
		dst := safemem.BlockSeqOf(safemem.BlockFromUnsafeSlice(fx.buf))
		src := safemem.BlockSeqOf(safemem.BlockFromUnsafeSlice(fx.view))
		prepare(fx.buf, fx.view)
		for b.Loop() {
			if _, err := safemem.CopySeq(dst, src); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.buf, fx.view)
	}},
	{"CopyIn", func(b *testing.B, fx *fixture) {
		ctx, as, addr := context.Background(), fx.as, fx.addr
		prepare(fx.buf, fx.view)
		for b.Loop() {
			if _, err := as.CopyIn(ctx, addr, fx.buf, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.buf, fx.view)
	}},
	{"CopyOut", func(b *testing.B, fx *fixture) {
		ctx, as, addr := context.Background(), fx.as, fx.addr
		prepare(fx.view, fx.buf)
		for b.Loop() {
			if _, err := as.CopyOut(ctx, addr, fx.buf, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.view, fx.buf)
	}},
	{"IgnorePerms", func(b *testing.B, fx *fixture) {
		ctx, as, addr := context.Background(), fx.as, fx.addr
		opts := usermem.IOOpts{IgnorePermissions: true}
		prepare(fx.buf, fx.view)
		for b.Loop() {
			if _, err := as.CopyIn(ctx, addr, fx.buf, opts); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.buf, fx.view)
	}},
	{"IOSeq16", func(b *testing.B, fx *fixture) {
		// The region cut into 16 ranges (as equal as can be; some are empty
		// below 16 bytes), listed last piece first, so that no two
		// consecutive ranges are contiguous.
		const pieces = 16
		var ranges []hostarch.AddrRange
		var want []byte
		prepare(fx.buf, fx.view)
		for i := pieces - 1; i >= 0; i-- {
			lo, hi := i*fx.n/pieces, (i+1)*fx.n/pieces
			ranges = append(ranges, hostarch.AddrRange{Start: fx.addr + hostarch.Addr(lo), End: fx.addr + hostarch.Addr(hi)})
			want = append(want, fx.view[lo:hi]...)
		}
		ctx := context.Background()
		seq := usermem.IOSequence{IO: fx.as, Addrs: hostarch.AddrRangeSeqFromSlice(ranges)}
		for b.Loop() {
			if _, err := seq.CopyIn(ctx, fx.buf); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.buf, want)
	}},
	{"ZeroOut", func(b *testing.B, fx *fixture) {
		ctx, as, addr, n := context.Background(), fx.as, fx.addr, int64(fx.n)
		prepare(fx.buf, fx.view)
		for b.Loop() {
			if _, err := as.ZeroOut(ctx, addr, n, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
		}
		clear(fx.buf)
		checkCopied(b, fx.view, fx.buf)
	}},
	{"gvisor.CopyIn", func(b *testing.B, fx *fixture) {
		src := ptr(fx.view)
		prepare(fx.buf, fx.view)
		for b.Loop() {
			if _, err := gsafecopy.CopyIn(fx.buf, src); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.buf, fx.view)
	}},
	{"gvisor.CopyOut", func(b *testing.B, fx *fixture) {
		dst := ptr(fx.view)
		prepare(fx.view, fx.buf)
		for b.Loop() {
			if _, err := gsafecopy.CopyOut(dst, fx.buf); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.view, fx.buf)
	}},
	{"gvisor.CopySeq", func(b *testing.B, fx *fixture) {
		dst := gsafemem.BlockSeqOf(gsafemem.BlockFromUnsafeSlice(fx.buf))
		src := gsafemem.BlockSeqOf(gsafemem.BlockFromUnsafeSlice(fx.view))
		prepare(fx.buf, fx.view)
		for b.Loop() {
			if _, err := gsafemem.CopySeq(dst, src); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.buf, fx.view)
	}},
	{"unicorn.read", func(b *testing.B, fx *fixture) {
		uc, guest := fx.unicorn(b)
		dst, n := ptr(fx.buf), uintptr(fx.n)
		prepare(fx.buf, fx.view)
		for b.Loop() {
			if err := uc.Read(guest, dst, n); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.buf, fx.view)
	}},
	{"unicorn.write", func(b *testing.B, fx *fixture) {
		uc, guest := fx.unicorn(b)
		src, n := ptr(fx.buf), uintptr(fx.n)
		prepare(fx.view, fx.buf)
		for b.Loop() {
			if err := uc.Write(guest, src, n); err != nil {
				b.Fatal(err)
			}
		}
		checkCopied(b, fx.view, fx.buf)
	}},
}

// checkCopied fails b unless got holds want.
func checkCopied(tb testing.TB, got, want []byte) {
	tb.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		tb.Fatalf("wrong bytes after the timed loop: first difference at offset %d of %d", i, len(want))
	}
}

// unicornGuestAddr is where the fixture's view is mapped in Unicorn's guest.
const unicornGuestAddr = 0x10000000

// unicorn returns an engine with fx.view mapped at unicornGuestAddr (with
// uc_mem_map_ptr, so that Unicorn reads and writes the same host bytes),
// or skips b if Unicorn is not built in.
func (fx *fixture) unicorn(b *testing.B) (*unicorn.Engine, uint64) {
	if !unicorn.Available {
		b.Skip(unicorn.ErrUnavailable)
	}
	suiteMu.Lock()
	defer suiteMu.Unlock()
	if fx.uc == nil {
		uc, err := unicorn.New()
		if err != nil {
			b.Fatal(err)
		}
		pages := uintptr(fx.n+hostarch.PageSize-1) &^ (hostarch.PageSize - 1)
		if err := uc.MapPtr(unicornGuestAddr, ptr(fx.view), pages); err != nil {
			b.Fatal(err)
		}
		fx.uc = uc
	}
	return fx.uc, unicornGuestAddr
}

func BenchmarkCopy(b *testing.B) {
	type cell struct {
		n    int
		path copyPath
	}
	var cells []cell
	for _, n := range benchSizes {
		for _, p := range copyPaths {
			cells = append(cells, cell{n, p})
		}
	}
	for _, i := range shuffled(len(cells)) {
		c := cells[i]
		b.Run(fmt.Sprintf("size=%s/path=%s", sizeName(c.n), c.path.name), func(b *testing.B) {
			fx := getFixture(b, c.n, 0)
			b.SetBytes(int64(c.n))
			b.ReportAllocs()
			c.path.run(b, fx)
		})
	}
}
