package addrspace

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// SaveVersion is the version of the save format that Save writes and
// Restore reads, described here.
//
// # FORMAT
//
// A save is a header followed by records, all integers little-endian.
//
// Header (84 bytes):
//
//	magic       [8]byte  "MMSIMSAV"
//	version     u32      SaveVersion (1)
//	kind        u32      1: full save; 2: increment (see SaveOptions.Incremental)
//	pageSize    u32      the host page size of the saving process
//	reserved    u32      0
//	size        u64      Options.Size
//	brkStart    u64      the heap's start (Linux's start_brk)
//	brk         u64      the program break
//	nextAnonID  u64      the last anon_vma identity handed out
//	maxMapCount u64      Options.MaxMapCount
//	id          u64      this save's identity (random)
//	parent      u64      for an increment, the id of the save it follows; else 0
//	crc         u32      CRC-32C (Castagnoli) of the 80 bytes before it
//
// Each record is
//
//	type    u32
//	length  u32      the payload's length, at most 16 + 256 pages
//	payload [length]byte
//	crc     u32      CRC-32C of type, length and payload
//
// Record types and payloads, in the order a save writes them:
//
//	1 FILE  idx u32, dev u64, ino u64, writable u8, nameLen u16, name
//	        A mapped file, by the reference the caller resolves on restore
//	        (RestoreOptions.Resolve). idx counts from 0 in record order.
//	2 SHM   idx u32, size u64
//	        The shared-memory object of shared anonymous mappings (its
//	        pages follow as PAGES records of space 1).
//	3 VMA   start u64, end u64, perms u8, maxPerms u8 (bit 0 read, 1 write,
//	        2 execute), private u8, kind u8 (0 anonymous, 1 file, 2 SHM),
//	        obj u32 (the FILE or SHM idx), off u64, pgoff u64, account u8,
//	        anonID u64, advice i32, flags u32, nameLen u16, name
//	        One mapping, in address order; mappings do not overlap.
//	4 DISCARD start u64, end u64 (increments only)
//	        The private pages of [start, end) revert to unbacked (zero for
//	        anonymous memory, the file for a private file mapping), before
//	        the increment's PAGES records apply.
//	5 PAGES space u8 (0: the private pages of the mapping at addr; 1: SHM
//	        object obj at offset addr), obj u32, addr u64, then whole pages
//	        of data (at most 256). Private pages are those the
//	        space backs with its own memory: the pages of private anonymous
//	        memory written or touched, and the copies of a private file
//	        mapping's pages made on write. Pages that were never touched,
//	        and anonymous pages that read as zero, take no record.
//	6 END   records u64 (the number of records before it), pages u64 (the
//	        number of pages in PAGES records)
//
// An increment carries the whole mapping table (FILE, SHM and VMA records)
// and, for memory, only what changed since the save it follows: see
// SaveOptions.Incremental. Restore reads up to the END record and no
// further.
//
// Restore checks every field (alignment, bounds, overlaps, references to
// objects, record order, checksums, counts) before it acts on it and
// allocates memory only as the input provides the bytes: a record is at
// most 16 bytes and 256 pages, the mappings and objects are at most
// MaxMapCount. Any error wraps ErrBadSave and unix.EINVAL, except where the
// host or the resolver fails (their errors are wrapped as they are).
const SaveVersion = 1

const (
	saveMagic        = "MMSIMSAV"
	saveHeaderLen    = 84
	maxRecordPages   = 256
	maxRecordPayload = 16 + maxRecordPages*hostarch.PageSize
	maxFileName      = 4096

	kindFull      = 1
	kindIncrement = 2

	recFile    = 1
	recShm     = 2
	recVMA     = 3
	recDiscard = 4
	recPages   = 5
	recEnd     = 6

	vmaAnon = 0
	vmaFile = 1
	vmaShm  = 2

	allVMFlags = vmLocked | vmLockOnFault | vmGrowsDown | vmDontCopy | vmWipeOnFork | vmHugePage | vmNoHugePage
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrBadSave is wrapped by the errors of Restore for input that is not a
// well-formed save: a bad magic, version, checksum or field, a truncated
// file, records out of order. Those errors also wrap unix.EINVAL.
var ErrBadSave = errors.New("addrspace: malformed save")

type badSaveError struct{ msg string }

func (e *badSaveError) Error() string {
	return "addrspace: malformed save: " + e.msg + ": " + unix.EINVAL.Error()
}
func (e *badSaveError) Is(target error) bool { return target == ErrBadSave || target == unix.EINVAL }

func badSave(format string, args ...any) error {
	return &badSaveError{msg: fmt.Sprintf(format, args...)}
}

// FileRef identifies a mapped file in a save: what Save knew of it. Restore
// hands it to RestoreOptions.Resolve.
type FileRef struct {
	// Name is the name the file was opened with (os.File.Name).
	Name string
	// Dev and Ino are its device and inode numbers when it was saved.
	Dev, Ino uint64
	// Writable is whether the saved space's descriptor was open for
	// writing (and the file not write-sealed): shared mappings that may be
	// made writable need a writable file back.
	Writable bool
}

// SaveOptions are the options of Save.
type SaveOptions struct {
	// Incremental writes an increment: the mappings, and the memory that
	// changed since the last Save of this address space (which must have
	// set Track): private pages written since (as the dirty tracker
	// reports them), private pages discarded since, the whole of
	// mappings that are not the same mapping as at the last save, and
	// every shared anonymous mapping's object in full. Restore applies it
	// after the saves it follows (RestoreOptions.Increments).
	Incremental bool

	// Track starts (or restarts) dirty tracking of the whole space when
	// the save is taken, so that a later Save with Incremental can follow
	// this one. It costs a write fault on the first write to each page
	// afterwards.
	Track bool
}

// RestoreOptions are the options of Restore.
type RestoreOptions struct {
	// Resolve returns the file to map for a saved file mapping. Restore
	// keeps a duplicate of its descriptor and closes the file returned
	// before it returns. It must return a regular file open for reading
	// (and for writing where ref.Writable and a shared mapping may be
	// written). An error from it fails the Restore, wrapped. Resolve may be
	// nil if the save maps no file.
	Resolve func(ref FileRef) (*os.File, error)

	// Increments are applied in order after the save Restore reads: each
	// must have been saved with SaveOptions.Incremental right after the one
	// before it (Restore checks the chain of ids).
	Increments []io.Reader

	// Lazy restores private anonymous memory lazily, as userfaultfd-based
	// restores do: Restore reads the mappings and indexes the pages, and
	// each page is read from r (which must then be an io.ReaderAt, and is
	// kept) the first time it is touched, through the mappings' PageFiller
	// (see MmapOpts.Fill). Its record's checksum is checked then: a
	// corrupted page fails that access with EFAULT (a *FaultError whose
	// Cause wraps ErrBadSave), and a read error of r fails it likewise.
	// r must stay readable and unchanged while the space may fill pages.
	// Private file copies, shared memory and the increments' pages are
	// restored eagerly. A lazily restored space cannot be saved (its
	// mappings have a filler).
	Lazy bool
}

// Save writes the address space to w in the format described in FORMAT
// (see the source of this file and the package documentation): its
// mappings with their permissions, sharing, names, advice and flags, the
// heap's bounds, mapped files by reference (FileRef), and the contents of
// private and shared anonymous memory and of the private copies of file
// pages, sparsely.
//
// Save holds the address space's locks while it writes: w must not call
// into this address space. The image is consistent if no other goroutine
// writes the space's memory during Save (copies take no lock; a write
// racing with Save may or may not be in it).
//
// Errors: an error wrapping EINVAL if the space has a mapping with a
// PageFiller (MmapOpts.Fill; its pages may not exist yet), or, for
// Incremental, if no Save with Track preceded this one; w's errors,
// wrapped; the host's errors reading memory; ErrClosed after Close.
func (as *AddressSpace) Save(w io.Writer, opts SaveOptions) error {
	as.activeMu.Lock()
	defer as.activeMu.Unlock()
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return errClosedMgmt
	}
	return as.saveLocked(w, opts)
}

// saveState is what an address space remembers of its last tracked save,
// for the next increment.
type saveState struct {
	id uint64
	// vmas are the mappings at the last save (copies; file pointers only
	// compared).
	vmas []vma
	// backed are the private pages backed at the last save.
	backed []hostarch.AddrRange
}

// saveWriter writes records.
type saveWriter struct {
	w       *bufio.Writer
	err     error
	records uint64
	pages   uint64
	buf     []byte // payloads
}

func (sw *saveWriter) record(typ uint32, payload ...[]byte) {
	if sw.err != nil {
		return
	}
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:], typ)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(n))
	crc := crc32.Update(0, crcTable, hdr[:])
	for _, p := range payload {
		crc = crc32.Update(crc, crcTable, p)
	}
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], crc)
	if _, err := sw.w.Write(hdr[:]); err != nil {
		sw.err = fmt.Errorf("addrspace: save: %w", err)
		return
	}
	for _, p := range payload {
		if _, err := sw.w.Write(p); err != nil {
			sw.err = fmt.Errorf("addrspace: save: %w", err)
			return
		}
	}
	if _, err := sw.w.Write(tail[:]); err != nil {
		sw.err = fmt.Errorf("addrspace: save: %w", err)
		return
	}
	sw.records++
}

func permBits(p hostarch.AccessType) byte {
	var b byte
	if p.Read {
		b |= 1
	}
	if p.Write {
		b |= 2
	}
	if p.Execute {
		b |= 4
	}
	return b
}

func bitsPerm(b byte) hostarch.AccessType {
	return hostarch.AccessType{Read: b&1 != 0, Write: b&2 != 0, Execute: b&4 != 0}
}

// saveLocked is Save.
//
// Preconditions: as.activeMu and as.mu are held; as is open.
func (as *AddressSpace) saveLocked(w io.Writer, opts SaveOptions) error {
	var vmas []*vma
	as.vmas.Ascend(func(v *vma) bool { vmas = append(vmas, v); return true })
	for _, v := range vmas {
		if v.lazy != nil {
			return fmt.Errorf("addrspace: save: [%#x, %#x) is a lazily filled mapping: %w", v.start, v.end, unix.EINVAL)
		}
	}
	prev := as.lastSave
	if opts.Incremental && prev == nil {
		return fmt.Errorf("addrspace: incremental save with no tracked save before it: %w", unix.EINVAL)
	}
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return fmt.Errorf("addrspace: save: %w", err)
	}
	id := binary.LittleEndian.Uint64(idb[:]) | 1
	sw := &saveWriter{w: bufio.NewWriterSize(w, 256<<10), buf: make([]byte, 0, maxRecordPayload)}

	kind := uint32(kindFull)
	var parent uint64
	if opts.Incremental {
		kind, parent = kindIncrement, prev.id
	}
	le := binary.LittleEndian
	hdr := encodeHeader(kind, as.size, uint64(as.brkStart), uint64(as.brk), as.nextAnonID, uint64(as.maxMapCount), id, parent)
	if _, err := sw.w.Write(hdr); err != nil {
		return fmt.Errorf("addrspace: save: %w", err)
	}

	// Objects.
	fileIdx := map[*fileRef]uint32{}
	shmIdx := map[*fileRef]uint32{}
	var shms []*fileRef
	for _, v := range vmas {
		r := v.file
		if r == nil {
			continue
		}
		if r.shm {
			if _, ok := shmIdx[r]; !ok {
				shmIdx[r] = uint32(len(shms))
				shms = append(shms, r)
			}
			continue
		}
		if _, ok := fileIdx[r]; ok {
			continue
		}
		fileIdx[r] = uint32(len(fileIdx))
		name := r.name
		if len(name) > maxFileName {
			name = name[:maxFileName]
		}
		p := sw.buf[:0]
		p = le.AppendUint32(p, fileIdx[r])
		p = le.AppendUint64(p, r.dev)
		p = le.AppendUint64(p, r.ino)
		p = append(p, boolByte(r.writable))
		p = le.AppendUint16(p, uint16(len(name)))
		p = append(p, name...)
		sw.record(recFile, p)
	}
	shmSize := make([]uint64, len(shms))
	for i, r := range shms {
		var st unix.Stat_t
		if err := unix.Fstat(r.fd(), &st); err != nil {
			return fmt.Errorf("addrspace: save: sizing a shared-memory object: %w", err)
		}
		shmSize[i] = uint64(st.Size)
		p := sw.buf[:0]
		p = le.AppendUint32(p, uint32(i))
		p = le.AppendUint64(p, shmSize[i])
		sw.record(recShm, p)
	}
	// Mappings.
	for _, v := range vmas {
		p := sw.buf[:0]
		p = le.AppendUint64(p, uint64(v.start))
		p = le.AppendUint64(p, uint64(v.end))
		p = append(p, permBits(v.perms), permBits(v.maxPerms), boolByte(v.private))
		var kind byte
		var obj uint32
		switch {
		case v.file == nil:
			kind = vmaAnon
		case v.file.shm:
			kind, obj = vmaShm, shmIdx[v.file]
		default:
			kind, obj = vmaFile, fileIdx[v.file]
		}
		p = append(p, kind)
		p = le.AppendUint32(p, obj)
		p = le.AppendUint64(p, v.off)
		p = le.AppendUint64(p, v.pgoff)
		p = append(p, boolByte(v.account))
		p = le.AppendUint64(p, v.anonID)
		p = le.AppendUint32(p, uint32(int32(v.advice)))
		p = le.AppendUint32(p, uint32(v.flags))
		p = le.AppendUint16(p, uint16(len(v.name)))
		p = append(p, v.name...)
		sw.record(recVMA, p)
	}
	// Private memory: everything backed (full save, or mappings that
	// changed), or what was written or discarded since the last save.
	var backedNow []hostarch.AddrRange
	for _, v := range vmas {
		if !v.private {
			continue
		}
		as.pt.OwnedRuns(uint64(v.start), uint64(v.end), func(addr, _, length uint64) bool {
			backedNow = appendRange(backedNow, hostarch.AddrRange{Start: hostarch.Addr(addr), End: hostarch.Addr(addr + length)})
			return true
		})
	}
	type pageRun struct {
		v  *vma
		ar hostarch.AddrRange
	}
	var discards []hostarch.AddrRange
	var runs []pageRun
	for _, v := range vmas {
		if !v.private {
			continue
		}
		if !opts.Incremental || !prev.sameVMA(v) {
			if opts.Incremental {
				discards = append(discards, v.ar())
			}
			runs = append(runs, pageRun{v, v.ar()})
			continue
		}
		// The same mapping as at the last save: pages backed then and not
		// now are discarded; pages written since are saved (a dirty page
		// not backed now was discarded after the write, or never backed).
		discards = append(discards, subtractRanges(intersectRanges(prev.backed, v.ar()), intersectRanges(backedNow, v.ar()))...)
		dirty, err := as.dirtyLocked(v.ar())
		if err != nil {
			return err
		}
		for _, ar := range dirty {
			// A dirty run is discarded, then its backed pages saved (but
			// for anonymous pages that read as zero, which the discard
			// restores).
			if ar = ar.Intersect(v.ar()); ar.Length() != 0 {
				discards = append(discards, ar)
				runs = append(runs, pageRun{v, ar})
			}
		}
	}
	if opts.Track {
		// Pages written from here on are dirty for the next increment
		// (after the dirty runs above are taken); a write racing with the
		// copy below is in both.
		if err := as.clearDirtyAll(); err != nil {
			return err
		}
	}
	for _, ar := range discards {
		p := le.AppendUint64(sw.buf[:0], uint64(ar.Start))
		p = le.AppendUint64(p, uint64(ar.End))
		sw.record(recDiscard, p)
	}
	for _, r := range runs {
		if err := as.savePrivate(sw, r.v, r.ar); err != nil {
			return err
		}
	}
	for i, r := range shms {
		if err := savePagesOf(sw, r.fd(), 0, shmSize[i], 1, uint32(i), 0, true); err != nil {
			return err
		}
	}
	p := le.AppendUint64(sw.buf[:0], sw.records)
	p = le.AppendUint64(p, sw.pages)
	sw.record(recEnd, p)
	if sw.err != nil {
		return sw.err
	}
	if err := sw.w.Flush(); err != nil {
		return fmt.Errorf("addrspace: save: %w", err)
	}
	if opts.Track {
		st := &saveState{id: id, backed: backedNow}
		for _, v := range vmas {
			st.vmas = append(st.vmas, *v)
		}
		as.lastSave = st
	}
	return nil
}

func encodeHeader(kind uint32, size, brkStart, brk, nextAnonID, maxMapCount, id, parent uint64) []byte {
	le := binary.LittleEndian
	h := make([]byte, 0, saveHeaderLen)
	h = append(h, saveMagic...)
	h = le.AppendUint32(h, SaveVersion)
	h = le.AppendUint32(h, kind)
	h = le.AppendUint32(h, hostarch.PageSize)
	h = le.AppendUint32(h, 0)
	h = le.AppendUint64(h, size)
	h = le.AppendUint64(h, brkStart)
	h = le.AppendUint64(h, brk)
	h = le.AppendUint64(h, nextAnonID)
	h = le.AppendUint64(h, maxMapCount)
	h = le.AppendUint64(h, id)
	h = le.AppendUint64(h, parent)
	h = le.AppendUint32(h, crc32.Checksum(h, crcTable))
	return h
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// savePrivate writes the private pages that back ar, part of v.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) savePrivate(sw *saveWriter, v *vma, ar hostarch.AddrRange) error {
	var err error
	as.pt.OwnedRuns(uint64(ar.Start), uint64(ar.End), func(addr, off, length uint64) bool {
		err = savePagesOf(sw, as.mem.FD(), off, length, 0, 0, addr, v.file == nil)
		return err == nil
	})
	return err
}

// savePagesOf writes the length bytes of fd at off as PAGES records of
// space for object obj at address (or offset) addr, skipping the file's
// holes and, if skipZero, pages that read as zero.
func savePagesOf(sw *saveWriter, fd int, off, length uint64, space byte, obj uint32, addr uint64, skipZero bool) error {
	le := binary.LittleEndian
	end := off + length
	for cur := off; cur < end && sw.err == nil; {
		if skipZero {
			data, err := unix.Seek(fd, int64(cur), unix.SEEK_DATA)
			if err == unix.ENXIO || (err == nil && uint64(data) >= end) {
				return sw.err
			}
			if err == nil && uint64(data) > cur {
				cur = uint64(data) &^ (hostarch.PageSize - 1)
			}
		}
		n := min(end-cur, maxRecordPages*hostarch.PageSize)
		p := sw.buf[:16+n]
		if err := preadFull(fd, p[16:], cur); err != nil {
			return err
		}
		// Emit runs of non-zero pages (all pages unless skipZero).
		data := p[16:]
		for i := uint64(0); i < n; {
			if skipZero && allZero(data[i:i+hostarch.PageSize]) {
				i += hostarch.PageSize
				continue
			}
			j := i + hostarch.PageSize
			for j < n && (!skipZero || !allZero(data[j:j+hostarch.PageSize])) {
				j += hostarch.PageSize
			}
			var meta [13]byte
			meta[0] = space
			le.PutUint32(meta[1:], obj)
			le.PutUint64(meta[5:], addr+(cur-off)+i)
			sw.record(recPages, meta[:], data[i:j])
			sw.pages += (j - i) / hostarch.PageSize
			i = j
		}
		cur += n
	}
	return sw.err
}

func preadFull(fd int, p []byte, off uint64) error {
	for len(p) > 0 {
		k, err := unix.Pread(fd, p, int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("addrspace: save: reading memory: %w", err)
		}
		if k == 0 {
			clear(p) // beyond the end of the file: zero
			return nil
		}
		p, off = p[k:], off+uint64(k)
	}
	return nil
}

// zeroPage is a page of zeros, for allZero's comparison (bytes.Equal is
// the vectorised memequal).
var zeroPage [hostarch.PageSize]byte

// allZero reports whether p, at most a page, is all zero.
func allZero(p []byte) bool { return bytes.Equal(p, zeroPage[:len(p)]) }

// sameVMA reports whether the last save had exactly the mapping v (the
// same range and attributes, the same object): its pages there are the
// base an increment builds on.
func (st *saveState) sameVMA(v *vma) bool {
	for i := range st.vmas {
		p := &st.vmas[i]
		if p.start == v.start {
			return p.end == v.end && p.perms == v.perms && p.maxPerms == v.maxPerms && p.private == v.private &&
				p.file == v.file && p.off == v.off && p.pgoff == v.pgoff && p.name == v.name &&
				p.advice == v.advice && p.flags == v.flags && p.account == v.account && p.anonID == v.anonID
		}
	}
	return false
}

// appendRange appends ar to rs (sorted, disjoint), joining it to the last.
func appendRange(rs []hostarch.AddrRange, ar hostarch.AddrRange) []hostarch.AddrRange {
	if n := len(rs); n > 0 && rs[n-1].End == ar.Start {
		rs[n-1].End = ar.End
		return rs
	}
	return append(rs, ar)
}

// intersectRanges returns the parts of rs (sorted, disjoint) inside ar.
func intersectRanges(rs []hostarch.AddrRange, ar hostarch.AddrRange) []hostarch.AddrRange {
	var out []hostarch.AddrRange
	for _, r := range rs {
		if i := r.Intersect(ar); i.Start < i.End {
			out = append(out, i)
		}
	}
	return out
}

// subtractRanges returns the parts of a not in b (both sorted, disjoint).
func subtractRanges(a, b []hostarch.AddrRange) []hostarch.AddrRange {
	var out []hostarch.AddrRange
	for _, r := range a {
		cur := r.Start
		for _, s := range b {
			if s.End <= cur || s.Start >= r.End {
				continue
			}
			if s.Start > cur {
				out = append(out, hostarch.AddrRange{Start: cur, End: s.Start})
			}
			cur = max(cur, s.End)
		}
		if cur < r.End {
			out = append(out, hostarch.AddrRange{Start: cur, End: r.End})
		}
	}
	return out
}
