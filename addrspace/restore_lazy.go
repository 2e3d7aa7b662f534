package addrspace

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"sync"

	"github.com/mmsim/mmsim/hostarch"
)

// posReader reads an io.ReaderAt sequentially, and can skip.
type posReader struct {
	ra  io.ReaderAt
	pos int64
}

func (r *posReader) Read(p []byte) (int, error) {
	n, err := r.ra.ReadAt(p, r.pos)
	r.pos += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// lazyEntry is a PAGES record of private anonymous memory left in the
// save: its pages' address and length, and where the record starts.
type lazyEntry struct {
	addr, length uint64
	recOff       int64
	n            uint32 // the record's payload length
}

// lazyRestore is the PageFiller of a lazily restored space's private
// anonymous mappings: the page at (restored) address a is read from the
// PAGES record that holds it, or is zero.
type lazyRestore struct {
	rd      *posReader
	entries []lazyEntry // ascending, disjoint

	mu sync.Mutex
	// dropped are the ranges of restored addresses whose pages an
	// increment discarded: they fill as zero (sorted, disjoint).
	dropped  []hostarch.AddrRange
	cacheOff int64  // the record in cache (-1: none)
	buf      []byte // the record in cache, whole
	cache    []byte // its page data
}

// index takes a PAGES record whose 13-byte head is meta, of payload length
// n, into the index if its pages are private anonymous memory, and then
// skips its data and checksum (done). Otherwise the caller reads it.
//
// Preconditions: as.mu is held; the mappings are installed.
func (l *lazyRestore) index(as *AddressSpace, meta []byte, n uint32, rec uint64) (done bool, err error) {
	le := binary.LittleEndian
	space, obj, addr := meta[0], le.Uint32(meta[1:]), le.Uint64(meta[5:])
	length := uint64(n - 13)
	if space != 0 {
		return false, nil
	}
	if obj != 0 || length%hostarch.PageSize != 0 || addr%hostarch.PageSize != 0 || addr+length < addr || addr+length > as.size {
		return false, badSave("record %d: PAGES", rec)
	}
	v := as.find(hostarch.Addr(addr))
	if v == nil || !v.private || uint64(v.end) < addr+length {
		return false, badSave("record %d: PAGES [%#x, %#x) outside a private mapping", rec, addr, addr+length)
	}
	if v.file != nil {
		return false, nil // a private file page's copy: restored now
	}
	if k := len(l.entries); k > 0 && l.entries[k-1].addr+l.entries[k-1].length > addr {
		return false, badSave("record %d: PAGES [%#x, %#x) not after the pages before it", rec, addr, addr+length)
	}
	l.entries = append(l.entries, lazyEntry{addr: addr, length: length, recOff: l.rd.pos - 8 - 13, n: n})
	l.rd.pos += int64(length) + 4
	return true, nil
}

// attach makes the private anonymous mappings with indexed pages lazily
// filled from the save: the offset of a page is its address as restored.
//
// Preconditions: as.mu is held.
func (l *lazyRestore) attach(as *AddressSpace) {
	l.cacheOff = -1
	as.vmas.Ascend(func(v *vma) bool {
		if v.private && v.file == nil && l.has(uint64(v.start), uint64(v.end)) {
			v.lazy = &lazySource{filler: l, origin: v.pgoff - uint64(v.start)}
		}
		return true
	})
}

// first returns the index of the first entry that ends after a.
func (l *lazyRestore) first(a uint64) int {
	return sort.Search(len(l.entries), func(i int) bool { return l.entries[i].addr+l.entries[i].length > a })
}

func (l *lazyRestore) has(start, end uint64) bool {
	i := l.first(start)
	return i < len(l.entries) && l.entries[i].addr < end
}

// FillPages implements PageFiller: off is the restored address of dst.
func (l *lazyRestore) FillPages(_ context.Context, off uint64, dst []byte) error {
	clear(dst)
	end := off + uint64(len(dst))
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := l.first(off); i < len(l.entries) && l.entries[i].addr < end; i++ {
		e := &l.entries[i]
		data, err := l.record(e)
		if err != nil {
			return err
		}
		s, en := max(e.addr, off), min(e.addr+e.length, end)
		copy(dst[s-off:en-off], data[s-e.addr:en-e.addr])
	}
	for _, d := range intersectRanges(l.dropped, hostarch.AddrRange{Start: hostarch.Addr(off), End: hostarch.Addr(end)}) {
		clear(dst[uint64(d.Start)-off : uint64(d.End)-off])
	}
	return nil
}

// drop records that an increment discarded the pages of ar.
func (l *lazyRestore) drop(ar hostarch.AddrRange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rs := append(l.dropped, ar)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	l.dropped = out
}

// record returns the page data of e's record, read and checked.
//
// Preconditions: l.mu is held.
func (l *lazyRestore) record(e *lazyEntry) ([]byte, error) {
	if l.cacheOff == e.recOff {
		return l.cache, nil
	}
	l.cacheOff = -1
	if l.buf == nil {
		l.buf = make([]byte, maxRecordPayload+12)
	}
	buf := l.buf[:int(e.n)+12]
	if _, err := l.rd.ra.ReadAt(buf, e.recOff); err != nil {
		return nil, fmt.Errorf("addrspace: lazy restore: reading the pages at %#x: %w", e.addr, err)
	}
	le := binary.LittleEndian
	if le.Uint32(buf) != recPages || le.Uint32(buf[4:]) != e.n ||
		crc32.Checksum(buf[:8+e.n], crcTable) != le.Uint32(buf[8+e.n:]) {
		return nil, badSave("lazy restore: the record of the pages at %#x changed or is corrupted", e.addr)
	}
	l.cache, l.cacheOff = buf[8+13:8+e.n], e.recOff
	return l.cache, nil
}
