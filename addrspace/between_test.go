package addrspace

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

func seqOf(rs ...hostarch.AddrRange) hostarch.AddrRangeSeq { return hostarch.AddrRangeSeqFromSlice(rs) }

func rng(start hostarch.Addr, n uint64) hostarch.AddrRange {
	return hostarch.AddrRange{Start: start, End: start + hostarch.Addr(n)}
}

// TestCopyBetween copies between two spaces with vectors on both sides and
// faults on either side, checking exact counts, which side faulted and the
// bytes.
func TestCopyBetween(t *testing.T) {
	src := newAS(t, 1<<30)
	dst := newAS(t, 1<<30)
	sa := mustMmap(t, src, MmapOpts{Addr: 0x100000, Fixed: true, Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	data := pattern(4*pg, 3)
	writeAt(t, src, sa, string(data))
	da := mustMmap(t, dst, MmapOpts{Addr: 0x200000, Fixed: true, Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	// A clone shares dst's pages: the copy must break copy-on-write in dst
	// only.
	writeAt(t, dst, da, string(make([]byte, 4*pg)))
	dstClone := mustClone(t, dst)
	mustMprotect(t, src, sa+3*pg, pg, hostarch.NoAccess)
	mustMprotect(t, dst, da+3*pg, pg, hostarch.Read)
	for _, tc := range []struct {
		name     string
		dsts     hostarch.AddrRangeSeq
		srcs     hostarch.AddrRangeSeq
		want     int64
		fault    hostarch.Addr // 0: no error
		inSource bool
	}{
		{"one range", seqOf(rng(da, 100)), seqOf(rng(sa+10, 100)), 100, 0, false},
		{"vectors both sides", seqOf(rng(da, 10), rng(da+pg, 0), rng(da+50, 30)), seqOf(rng(sa, 25), rng(sa+pg, 100)), 40, 0, false},
		{"source fault", seqOf(rng(da, 2*pg)), seqOf(rng(sa+3*pg-7, 20)), 7, sa + 3*pg, true},
		{"destination fault", seqOf(rng(da+3*pg-5, 20)), seqOf(rng(sa, 20)), 5, da + 3*pg, false},
		{"source beyond the space", seqOf(rng(da, 10)), seqOf(rng(1<<30-4, 10)), 0, 1<<30 - 4, true},
		{"destination unmapped", seqOf(rng(da-3, 10)), seqOf(rng(sa, 10)), 0, da - 3, false},
		{"empty", seqOf(), seqOf(rng(sa, 10)), 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := readAt(t, dstClone, da, 3*pg)
			n, err := CopyBetween(ctx, dst, tc.dsts, src, tc.srcs)
			if n != tc.want {
				t.Fatalf("CopyBetween = %d, %v; want %d", n, err, tc.want)
			}
			var fe *FaultError
			switch {
			case tc.fault == 0 && err != nil:
				t.Fatalf("error %v", err)
			case tc.fault != 0 && (!errors.As(err, &fe) || fe.Addr != tc.fault || fe.InSource != tc.inSource || !errors.Is(err, unix.EFAULT)):
				t.Fatalf("error %#v, want a fault at %#x, in the source: %v", err, tc.fault, tc.inSource)
			}
			// The bytes: the destination's ranges hold the source's, in order.
			var want []byte
			for s := tc.srcs; !s.IsEmpty() && int64(len(want)) < n; s = s.Tail() {
				r := s.Head()
				k := min(int64(r.Length()), n-int64(len(want)))
				want = append(want, data[r.Start-sa:r.Start-sa+hostarch.Addr(k)]...)
			}
			var got []byte
			for d := tc.dsts; !d.IsEmpty() && int64(len(got)) < n; d = d.Tail() {
				r := d.Head()
				k := min(int64(r.Length()), n-int64(len(got)))
				got = append(got, readAt(t, dst, r.Start, int(k))...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("destination holds %q, want %q", got, want)
			}
			if !bytes.Equal(readAt(t, dstClone, da, 3*pg), before) {
				t.Fatal("the destination's clone changed")
			}
		})
	}
	// The same space on both sides.
	if n, err := CopyBetween(ctx, src, seqOf(rng(sa+2*pg, 64)), src, seqOf(rng(sa, 64))); n != 64 || err != nil {
		t.Fatalf("within one space = %d, %v", n, err)
	}
	if got := readAt(t, src, sa+2*pg, 64); !bytes.Equal(got, data[:64]) {
		t.Fatal("within one space: wrong bytes")
	}
	dst.Close()
	if n, err := CopyBetween(ctx, dst, seqOf(rng(da, 8)), src, seqOf(rng(sa, 8))); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("to a closed space = %d, %v", n, err)
	}
}
