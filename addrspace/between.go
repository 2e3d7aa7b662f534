package addrspace

import (
	"context"
	"errors"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/internal/safecopy"
)

// CopyBetween copies bytes from the memory mapped at srcRanges in src to the
// memory mapped at dstRanges in dst, as process_vm_readv and
// process_vm_writev do between two processes: min(dstRanges.NumBytes(),
// srcRanges.NumBytes()) bytes, the ranges of each side consumed in order,
// zero-length ranges skipped. Each piece moves straight from src's view to
// dst's, with no bounce buffer; faults resolve on their own side (a write
// fault in dst breaks its copy-on-write, say) and the copy resumes. dst and
// src may be the same address space.
//
// It returns the exact number of bytes copied. If that is less than the
// most, the error says why: a *FaultError (errors.Is EFAULT) for the first
// byte that could not be read (InSource set; Addr is src's) or written
// (Addr is dst's), including ranges that overflow or end beyond Size;
// ErrClosed if either space is closed. ctx is not consulted.
func CopyBetween(ctx context.Context, dst *AddressSpace, dstRanges hostarch.AddrRangeSeq, src *AddressSpace, srcRanges hostarch.AddrRangeSeq) (int64, error) {
	var done int64
	for !dstRanges.IsEmpty() && !srcRanges.IsEmpty() {
		d, s := dstRanges.Head(), srcRanges.Head()
		if d.Length() == 0 {
			dstRanges = dstRanges.Tail()
			continue
		}
		if s.Length() == 0 {
			srcRanges = srcRanges.Tail()
			continue
		}
		n := uint64(min(d.Length(), s.Length()))
		if !src.ioRange(s.Start, n) {
			return done, inSource(src.ioRangeErr(s.Start, hostarch.Read))
		}
		if !dst.ioRange(d.Start, n) {
			return done, dst.ioRangeErr(d.Start, hostarch.Write)
		}
		k, err := copyBetween(dst, d.Start, src, s.Start, uintptr(n))
		done += int64(k)
		if err != nil {
			return done, err
		}
		dstRanges, srcRanges = dstRanges.DropFirst64(int64(n)), srcRanges.DropFirst64(int64(n))
	}
	return done, nil
}

// inSource marks a *FaultError as the source's.
func inSource(err error) error {
	var fe *FaultError
	if errors.As(err, &fe) {
		c := *fe
		c.InSource = true
		return &c
	}
	return err
}

// copyBetween copies n bytes from src's simulated address sa to dst's da,
// resolving faults on the side where they happen.
func copyBetween(dst *AddressSpace, da hostarch.Addr, src *AddressSpace, sa hostarch.Addr, n uintptr) (uintptr, error) {
	dp, sp := unsafe.Add(dst.appBase, da), unsafe.Add(src.appBase, sa)
	var done uintptr
	stuck := 0
	var last safecopy.Fault
	for done < n {
		k, f := safecopy.Copy(unsafe.Add(dp, done), unsafe.Add(sp, done), n-done)
		done += k
		if f.Sig == 0 {
			return n, nil
		}
		if k == 0 && f == last {
			if stuck++; stuck > maxNoProgress {
				return done, &FaultError{Addr: da + hostarch.Addr(done), Access: hostarch.Write, Reason: FaultProtection}
			}
		} else {
			stuck = 0
		}
		last = f
		var err error
		if d := uintptr(dp); f.Addr >= d+done && f.Addr < d+n {
			err = dst.resolve(dst.appBase, f, hostarch.Write, false)
		} else {
			err = inSource(src.resolve(src.appBase, f, hostarch.Read, false))
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
