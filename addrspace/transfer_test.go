package addrspace

import (
	"bytes"
	"context"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
)

// countingReader fills at most limit bytes of the blocks it is given,
// once, and records how many bytes it was offered.
type countingReader struct {
	limit   uint64
	offered uint64
	calls   int
}

func (r *countingReader) ReadToBlocks(dsts safemem.BlockSeq) (uint64, error) {
	r.calls++
	r.offered = dsts.NumBytes()
	return safemem.FromIOReader{Reader: bytes.NewReader(bytes.Repeat([]byte{0x5a}, int(min(r.limit, r.offered))))}.ReadToBlocks(dsts)
}

// TestTransferFaultLimit checks that a zero-copy transfer does at most
// TransferFaultLimit bytes of faults (plus the last fault-around window)
// before its reader or writer runs, whatever length the guest asks for,
// and that memory already accessible is handed over whole.
func TestTransferFaultLimit(t *testing.T) {
	const (
		big    = 64 << 20
		window = 2 << 20 // the largest fault-around window
	)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// setup returns the space to transfer into and the mapping.
		setup func(t *testing.T) (*AddressSpace, hostarch.Addr)
		write bool
		// whole: the transfer must cover the whole range.
		whole bool
	}{
		{"CopyOutFrom after Clone", func(t *testing.T) (*AddressSpace, hostarch.Addr) {
			as := newAS(t, 1<<30)
			a := mustMmap(t, as, MmapOpts{Length: big, Perms: hostarch.ReadWrite, Private: true})
			if _, err := as.CopyOut(ctx, a, make([]byte, big), noOpt); err != nil {
				t.Fatal(err)
			}
			c, err := as.Clone()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return as, a
		}, true, false},
		{"CopyOutFrom into untouched memory", func(t *testing.T) (*AddressSpace, hostarch.Addr) {
			as := newAS(t, 1<<30)
			return as, mustMmap(t, as, MmapOpts{Length: big, Perms: hostarch.ReadWrite, Private: true})
		}, true, false},
		{"CopyInTo from untouched memory", func(t *testing.T) (*AddressSpace, hostarch.Addr) {
			as := newAS(t, 1<<30)
			return as, mustMmap(t, as, MmapOpts{Length: big, Perms: hostarch.ReadWrite, Private: true})
		}, false, false},
		{"CopyOutFrom into resident memory", func(t *testing.T) (*AddressSpace, hostarch.Addr) {
			as := newAS(t, 1<<30)
			a := mustMmap(t, as, MmapOpts{Length: big, Perms: hostarch.ReadWrite, Private: true})
			if _, err := as.CopyOut(ctx, a, make([]byte, big), noOpt); err != nil {
				t.Fatal(err)
			}
			return as, a
		}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as, a := tc.setup(t)
			before := mustStats(t, as)
			ars := hostarch.AddrRangeSeqOf(hostarch.AddrRange{Start: a, End: a + big})
			var n, offered int64
			var err error
			if tc.write {
				r := &countingReader{limit: 16}
				n, err = as.CopyOutFrom(ctx, ars, r, noOpt)
				offered = int64(r.offered)
				if r.calls != 1 {
					t.Fatalf("reader called %d times, want 1", r.calls)
				}
				if n != 16 || err != nil {
					t.Fatalf("CopyOutFrom = %d, %v; want 16, nil", n, err)
				}
			} else {
				w := &safemem.BlockSeqWriter{Blocks: safemem.BlockSeqOf(safemem.BlockFromSafeSlice(make([]byte, big)))}
				n, err = as.CopyInTo(ctx, ars, w, noOpt)
				offered = n
				if err != nil {
					t.Fatalf("CopyInTo = %d, %v", n, err)
				}
			}
			after := mustStats(t, as)
			if tc.whole {
				if offered != big {
					t.Fatalf("offered %d bytes of resident memory, want all %d", offered, big)
				}
				if after.MemoryFileBytes != before.MemoryFileBytes {
					t.Fatalf("memory file grew from %d to %d", before.MemoryFileBytes, after.MemoryFileBytes)
				}
				return
			}
			if offered < TransferFaultLimit || offered > TransferFaultLimit+window || offered%pg != 0 {
				t.Fatalf("offered %d bytes, want a page multiple in [%d, %d]", offered, TransferFaultLimit, TransferFaultLimit+window)
			}
			// The work done is the range offered: no page beyond it was
			// copied or backed.
			if grown := after.MemoryFileBytes - before.MemoryFileBytes; grown > uint64(offered)+window {
				t.Fatalf("memory file grew by %d bytes for a transfer of %d", grown, offered)
			}
			if tc.write && before.PrivateCopies+int(offered/pg) != after.PrivateCopies {
				t.Fatalf("PrivateCopies %d -> %d, want %d more", before.PrivateCopies, after.PrivateCopies, offered/pg)
			}
			// Bytes past the written 16 are unchanged (zero).
			got := make([]byte, 32)
			if _, err := as.CopyIn(ctx, a, got, noOpt); err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 32)
			if tc.write {
				copy(want, bytes.Repeat([]byte{0x5a}, 16))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("bytes = %x, want %x", got, want)
			}
		})
	}
}
