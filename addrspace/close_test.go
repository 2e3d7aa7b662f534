package addrspace

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// TestCloseDuringBlockedTransfer closes an address space while a
// CopyOutFrom reader (or CopyInTo writer) is blocked in a pipe, then
// creates and maps new spaces at once: when the transfer resumes it must
// not touch them, and it must fail.
func TestCloseDuringBlockedTransfer(t *testing.T) {
	const n = 1 << 20
	for _, tc := range []struct {
		name string
		run  func(as *AddressSpace, ars hostarch.AddrRangeSeq, r, w *os.File) (int64, error)
	}{
		{"CopyOutFrom", func(as *AddressSpace, ars hostarch.AddrRangeSeq, r, w *os.File) (int64, error) {
			return as.CopyOutFrom(ctx, ars, safemem.FromIOReader{Reader: r}, usermem.IOOpts{})
		}},
		{"CopyInTo", func(as *AddressSpace, ars hostarch.AddrRangeSeq, r, w *os.File) (int64, error) {
			// The writer blocks on a full pipe before it reads the blocks.
			return as.CopyInTo(ctx, ars, safemem.WriterFunc(func(srcs safemem.BlockSeq) (uint64, error) {
				<-blockCh
				return safemem.FromIOWriter{Writer: w}.WriteFromBlocks(srcs)
			}), usermem.IOOpts{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blockCh = make(chan struct{})
			as, err := New(Options{Size: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			a := mustMmap(t, as, MmapOpts{Length: n, Perms: hostarch.ReadWrite, Private: true})
			writeAt(t, as, a, string(pattern(n, 3)))
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := tc.run(as, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + n}), r, w)
				done <- result{n, err}
			}()
			time.Sleep(20 * time.Millisecond) // let the transfer block
			if err := as.Close(); err != nil {
				t.Fatal(err)
			}
			// New spaces, mapped and written at once.
			var others []*AddressSpace
			for i := 0; i < 4; i++ {
				o := newAS(t, 1<<30)
				b := mustMmap(t, o, MmapOpts{Addr: a, Fixed: true, Length: n, Perms: hostarch.ReadWrite, Private: true})
				writeAt(t, o, b, string(pattern(n, byte(10+i))))
				others = append(others, o)
			}
			// Resume the transfer.
			close(blockCh)
			if tc.name == "CopyOutFrom" {
				go w.Write(bytes.Repeat([]byte{0xee}, n))
			} else {
				go func() {
					buf := make([]byte, n)
					for {
						if _, err := r.Read(buf); err != nil {
							return
						}
					}
				}()
			}
			var res result
			select {
			case res = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the transfer did not return")
			}
			if res.err == nil || !errors.Is(res.err, ErrClosed) || !errors.Is(res.err, unix.EFAULT) {
				t.Fatalf("%s after Close = %d, %v; want an error wrapping ErrClosed and EFAULT", tc.name, res.n, res.err)
			}
			for i, o := range others {
				if got := readAt(t, o, a, n); !bytes.Equal(got, pattern(n, byte(10+i))) {
					t.Fatalf("space %d changed by the closed space's transfer", i)
				}
			}
		})
	}
}

var blockCh chan struct{}

// TestTransferDoesNotStallMapping gives CopyOutFrom a large copy-on-write
// destination and a reader that delivers 16 bytes: faulting the range in
// takes the mapping lock one window at a time, so an Mmap on another
// goroutine completes while the transfer is still faulting pages in.
func TestTransferDoesNotStallMapping(t *testing.T) {
	const n = 256 << 20
	as := newAS(t, 1<<30)
	a := mustMmap(t, as, MmapOpts{Length: n, Perms: hostarch.ReadWrite, Private: true})
	// Pages of data (a ZeroOut would leave holes, whose copy on write
	// costs nothing).
	chunk := pattern(1<<20, 1)
	for off := hostarch.Addr(0); off < n; off += 1 << 20 {
		if _, err := as.CopyOut(ctx, a+off, chunk, usermem.IOOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	child := mustClone(t, as)
	defer child.Close()
	transferDone := make(chan struct{})
	mmapDone := make(chan struct{})
	started := make(chan struct{})
	go func() {
		defer close(transferDone)
		close(started)
		got, err := as.CopyOutFrom(ctx, hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + n}),
			safemem.FromIOReader{Reader: bytes.NewReader([]byte("sixteen bytes!!!"))}, usermem.IOOpts{})
		if got != 16 || err != nil {
			t.Errorf("CopyOutFrom = %d, %v; want 16, nil", got, err)
		}
	}()
	<-started
	time.Sleep(5 * time.Millisecond)
	go func() {
		defer close(mmapDone)
		if _, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.Read, Private: true}); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-mmapDone:
	case <-transferDone:
		<-mmapDone
		t.Fatal("Mmap waited for the whole transfer")
	}
	<-transferDone
	if got := readAt(t, as, a, 16); string(got) != "sixteen bytes!!!" {
		t.Fatalf("reads %q", got)
	}
}
