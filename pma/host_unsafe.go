package pma

import (
	"sync/atomic"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// mincore sets out[i] to 1 for each resident page of the host range [addr,
// addr+length), which is mapped.
func mincore(addr uintptr, length uint64, out []byte) {
	var buf [256]byte
	for length > 0 {
		n := min(length/hostarch.PageSize, uint64(len(buf)))
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, addr, uintptr(n*hostarch.PageSize), uintptr(unsafe.Pointer(&buf[0]))); e == 0 {
			for i := uint64(0); i < n; i++ {
				out[i] |= buf[i] & 1
			}
		}
		out = out[n:]
		addr += uintptr(n * hostarch.PageSize)
		length -= n * hostarch.PageSize
	}
}

// fileResident sets out[i] to 1 for each page of [off, off+length) of fd
// that holds data (SEEK_DATA), for memory-file pages no view maps.
func fileResident(fd int, off, length uint64, out []byte) {
	dataRuns(fd, off, length, func(doff, dlen uint64) {
		for p := doff; p < doff+dlen; p += hostarch.PageSize {
			out[(p-off)/hostarch.PageSize] = 1
		}
	})
}

// dataRuns calls f, in order, for each run of whole pages of [off,
// off+length) of fd (page-aligned) that holds data: holes are skipped
// without visiting their pages. Where the file system cannot say
// (SEEK_DATA fails other than with ENXIO), the whole range is one run.
func dataRuns(fd int, off, length uint64, f func(off, length uint64)) {
	dataRunsCached(fd, off, length, nil, f)
}

// A runCache remembers the last run of data that SEEK_HOLE found in one
// file, for scans that come back into the same long run (copy-on-write
// faults across a large cloned mapping, a window at a time): SEEK_HOLE
// scans from its offset to the end of the run, however far that is. Data
// becomes a hole only where the file's owner punches one, which counts
// punched up and so retires the run; a hole filled meanwhile only makes
// the run end early.
type runCache struct {
	last    atomic.Pointer[dataRun]
	punched atomic.Uint64
}

// A dataRun is a range of a file that was all data when its runCache's
// punched count was gen.
type dataRun struct{ start, end, gen uint64 }

// dataRunsCached is dataRuns, with c (if not nil) remembering the run
// SEEK_HOLE finds for the next scan of fd.
func dataRunsCached(fd int, off, length uint64, c *runCache, f func(off, length uint64)) {
	end := off + length
	for cur := off; cur < end; {
		var gen uint64
		if c != nil {
			gen = c.punched.Load()
			if r := c.last.Load(); r != nil && r.gen == gen && r.start <= cur && cur < r.end {
				de := min((r.end+hostarch.PageSize-1)&^(hostarch.PageSize-1), end)
				f(cur, de-cur)
				cur = de
				continue
			}
		}
		data, err := unix.Seek(fd, int64(cur), unix.SEEK_DATA)
		if err == unix.ENXIO {
			return // no data from cur on
		}
		if err != nil {
			f(cur, end-cur)
			return
		}
		if uint64(data) >= end {
			return
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = int64(end)
		} else if c != nil {
			c.last.Store(&dataRun{uint64(data), uint64(hole), gen})
		}
		ds := max(uint64(data)&^(hostarch.PageSize-1), cur)
		de := min((uint64(hole)+hostarch.PageSize-1)&^(hostarch.PageSize-1), end)
		if de > ds {
			f(ds, de-ds)
		}
		cur = max(de, ds+hostarch.PageSize)
	}
}

// populateHost prefaults the host range [addr, addr+length) of a view
// (MADV_POPULATE_WRITE or _READ, Linux 5.14): the pages are allocated and
// their page-table entries filled. Best effort.
func populateHost(addr uintptr, length uint64, write bool) {
	advice := unix.MADV_POPULATE_READ
	if write {
		advice = unix.MADV_POPULATE_WRITE
	}
	unix.Syscall(unix.SYS_MADVISE, addr, uintptr(length), uintptr(advice))
}
