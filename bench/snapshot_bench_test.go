package bench

import (
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

// Snapshots (the snapshots issue): Reset of a 256 MiB space after 16 pages
// were written, against copying those 16 pages' bytes (the target's
// baseline), Clone of the space and copying all 256 MiB; and a
// fuzzing-style loop (reset, write a few pages, read some), whose
// iterations per second are reported as a metric.
const (
	snapSize  = 256 << 20 // the space's populated private mapping
	snapPages = 16        // pages written between resets
)

// snapSpace returns an address space with a populated private mapping of
// snapSize bytes, a snapshot of it (a Clone), and the mapping's address.
// It resets the space once, as a fuzzer does before its first iteration.
func snapSpace(b *testing.B) (*addrspace.AddressSpace, *addrspace.AddressSpace, hostarch.Addr) {
	as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { as.Close() })
	a, err := as.Mmap(addrspace.MmapOpts{Length: snapSize, Perms: hostarch.ReadWrite, Private: true})
	if err != nil {
		b.Fatal(err)
	}
	// Every page backed and written (ZeroOut writes: no Go buffer).
	if _, err := as.ZeroOut(context.Background(), a, snapSize, usermem.IOOpts{}); err != nil {
		b.Fatal(err)
	}
	snap, err := as.Clone()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { snap.Close() })
	if err := as.Reset(snap); err != nil {
		b.Fatal(err)
	}
	return as, snap, a
}

// snapPagesAt returns snapPages page addresses scattered over the mapping
// at a (a fixed set: the loop writes the same places each time, as a
// fuzzer's target mostly does).
func snapPagesAt(a hostarch.Addr, seed int64) []hostarch.Addr {
	rng := rand.New(rand.NewSource(seed))
	out := make([]hostarch.Addr, snapPages)
	for i := range out {
		out[i] = a + hostarch.Addr(rng.Intn(snapSize/hostarch.PageSize))*hostarch.PageSize
	}
	return out
}

var snapshotOpImpls = []opImpl{
	{"Reset256MiB", "copy16", func(b *testing.B) {
		// The target's baseline: copying 16 pages' bytes (memmove).
		src := make([]byte, snapPages*hostarch.PageSize)
		dst := make([]byte, len(src))
		for i := range src {
			src[i] = byte(i)
		}
		for b.Loop() {
			copy(dst, src)
		}
		if dst[len(dst)-1] != src[len(src)-1] {
			b.Fatal("copy did not copy")
		}
	}},
	{"Reset256MiB", "mmsim", func(b *testing.B) {
		as, snap, a := snapSpace(b)
		ctx := context.Background()
		pages := snapPagesAt(a, 1)
		word := []byte{1, 2, 3, 4, 5, 6, 7, 8}
		// Warm up (untimed): the first writes break copy-on-write.
		for _, p := range pages {
			if _, err := as.CopyOut(ctx, p+64, word, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := as.Reset(snap); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			b.StopTimer()
			for _, p := range pages {
				if _, err := as.CopyOut(ctx, p+64, word, usermem.IOOpts{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			if err := as.Reset(snap); err != nil {
				b.Fatal(err)
			}
		}
		got := make([]byte, len(word))
		if _, err := as.CopyIn(ctx, pages[0]+64, got, usermem.IOOpts{}); err != nil || got[0] != 0 {
			b.Fatalf("after Reset the page reads %v, %v; want zeroes", got, err)
		}
	}},
	{"Reset256MiB", "clone", func(b *testing.B) {
		as, _, _ := snapSpace(b)
		for b.Loop() {
			c, err := as.Clone()
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			c.Close()
			b.StartTimer()
		}
	}},
	{"Reset256MiB", "copy256MiB", func(b *testing.B) {
		src := make([]byte, snapSize)
		dst := make([]byte, snapSize)
		for i := 0; i < len(src); i += hostarch.PageSize {
			src[i], dst[i] = 1, 2 // both resident before the timer
		}
		for b.Loop() {
			copy(dst, src)
		}
	}},
	{"FuzzLoop256MiB", "mmsim", func(b *testing.B) {
		// One fuzzing iteration: reset to the snapshot, write 4 pages
		// (the target's stores), read 16 (its loads).
		as, snap, a := snapSpace(b)
		ctx := context.Background()
		writes, reads := snapPagesAt(a, 2)[:4], snapPagesAt(a, 3)
		buf := make([]byte, 256)
		iteration := func(n int) {
			if err := as.Reset(snap); err != nil {
				b.Fatal(err)
			}
			for i, p := range writes {
				buf[0] = byte(n + i)
				if _, err := as.CopyOut(ctx, p+hostarch.Addr(i*256), buf, usermem.IOOpts{}); err != nil {
					b.Fatal(err)
				}
			}
			for _, p := range reads {
				if _, err := as.CopyIn(ctx, p, buf, usermem.IOOpts{}); err != nil {
					b.Fatal(err)
				}
			}
		}
		// Warm up (untimed): the first iterations break copy-on-write and
		// map the pages read.
		for n := 0; n < 3; n++ {
			iteration(n)
		}
		start := time.Now()
		n := 0
		for b.Loop() {
			iteration(n)
			n++
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "iters/s")
	}},
}

func init() {
	budgetOpImpls = append(budgetOpImpls, snapshotOpImpls...)
}
