package addrspace

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// Restore builds a new address space from a save that Save wrote to r
// (format: see SaveVersion), then applies opts.Increments in order. It
// reads r up to the save's END record; with opts.Lazy it reads only the
// mappings and the pages' record headers, and each page's data when the
// page is first touched (see RestoreOptions.Lazy).
//
// Mapped files come back through opts.Resolve. The new space has the
// saved Size, MaxMapCount, heap bounds, mappings (the same VMAs, with the
// same permissions, names, advice and flags) and memory; it shares nothing
// with the space that was saved.
//
// Errors: for input that is not a well-formed save (truncated, corrupted,
// out of bounds, records out of order, an increment that does not follow
// the save before it), an error wrapping ErrBadSave and unix.EINVAL; the
// errors of Resolve, of r and of the host (ENOMEM when the host or the
// process-wide host budget cannot provide the space, or descriptors run
// out), wrapped; EINVAL for Lazy with an r that is not an io.ReaderAt. On error
// nothing is built: every host mapping, descriptor and memory-file page
// that Restore took is released (the views' address space once the
// unreachable space is collected, as after Close), and every file that
// Resolve returned is closed.
func Restore(r io.Reader, opts RestoreOptions) (*AddressSpace, error) {
	rs := &restorer{opts: opts, buf: make([]byte, 0, 4096)}
	defer rs.closeResolved()
	as, err := rs.restoreBase(r)
	if err != nil {
		return nil, err
	}
	for i, inc := range opts.Increments {
		if err := rs.apply(as, inc); err != nil {
			as.Close()
			return nil, fmt.Errorf("addrspace: restore: increment %d: %w", i, err)
		}
	}
	return as, nil
}

// restorer holds the state of one Restore.
type restorer struct {
	opts     RestoreOptions
	buf      []byte
	resolved []*os.File
	lastID   uint64
	// lazy is set for RestoreOptions.Lazy: the private anonymous pages go
	// to its index instead of into the space.
	lazy *lazyRestore
}

func (rs *restorer) closeResolved() {
	for _, f := range rs.resolved {
		f.Close()
	}
}

// restoreBase reads the full save and builds the space.
func (rs *restorer) restoreBase(r io.Reader) (*AddressSpace, error) {
	var br io.Reader = bufio.NewReaderSize(r, 256<<10)
	if rs.opts.Lazy {
		ra, ok := r.(io.ReaderAt)
		if !ok {
			return nil, fmt.Errorf("addrspace: lazy restore from a %T, which is not an io.ReaderAt: %w", r, unix.EINVAL)
		}
		pr := &posReader{ra: ra}
		rs.lazy = &lazyRestore{rd: pr}
		br = pr
	}
	h, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	if h.kind != kindFull {
		return nil, badSave("the first save is an increment")
	}
	if h.maxMapCount > 1<<31 {
		return nil, badSave("MaxMapCount %d", h.maxMapCount)
	}
	as, err := New(Options{Size: h.size, BrkStart: hostarch.Addr(h.brkStart), MaxMapCount: int(h.maxMapCount)})
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			return nil, badSave("%v", err)
		}
		return nil, fmt.Errorf("addrspace: restore: %w", err)
	}
	as.mu.Lock()
	err = rs.applyLocked(as, br, h, true)
	if err == nil && rs.lazy != nil {
		rs.lazy.attach(as)
	}
	as.mu.Unlock()
	if err != nil {
		as.Close()
		return nil, err
	}
	return as, nil
}

// apply applies the increment in r to as.
func (rs *restorer) apply(as *AddressSpace, r io.Reader) error {
	br := bufio.NewReaderSize(r, 256<<10)
	h, err := readHeader(br)
	if err != nil {
		return err
	}
	if h.kind != kindIncrement || h.parent != rs.lastID {
		return badSave("not the increment that follows save %#x", rs.lastID)
	}
	if h.size != as.size || h.maxMapCount != uint64(as.maxMapCount) {
		return badSave("increment for a space of %#x bytes, restoring one of %#x", h.size, as.size)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	return rs.applyLocked(as, br, h, false)
}

type saveHeader struct {
	kind                                                     uint32
	size, brkStart, brk, nextAnonID, maxMapCount, id, parent uint64
}

func readHeader(r io.Reader) (saveHeader, error) {
	var h saveHeader
	b := make([]byte, saveHeaderLen)
	if _, err := io.ReadFull(r, b); err != nil {
		return h, readErr(err, "header")
	}
	le := binary.LittleEndian
	if string(b[:8]) != saveMagic {
		return h, badSave("bad magic %q", b[:8])
	}
	if crc32.Checksum(b[:saveHeaderLen-4], crcTable) != le.Uint32(b[saveHeaderLen-4:]) {
		return h, badSave("header checksum")
	}
	if v := le.Uint32(b[8:]); v != SaveVersion {
		return h, badSave("version %d (this build reads %d)", v, SaveVersion)
	}
	h.kind = le.Uint32(b[12:])
	if h.kind != kindFull && h.kind != kindIncrement {
		return h, badSave("kind %d", h.kind)
	}
	if ps := le.Uint32(b[16:]); ps != hostarch.PageSize {
		return h, badSave("page size %d (the host's is %d)", ps, hostarch.PageSize)
	}
	h.size = le.Uint64(b[24:])
	h.brkStart = le.Uint64(b[32:])
	h.brk = le.Uint64(b[40:])
	h.nextAnonID = le.Uint64(b[48:])
	h.maxMapCount = le.Uint64(b[56:])
	h.id = le.Uint64(b[64:])
	h.parent = le.Uint64(b[72:])
	if h.brk < h.brkStart || h.brk > h.size || h.brkStart%hostarch.PageSize != 0 {
		return h, badSave("break %#x outside [%#x, %#x)", h.brk, h.brkStart, h.size)
	}
	return h, nil
}

// readErr converts a read error: a short input is a malformed save.
func readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badSave("truncated in the %s", what)
	}
	return fmt.Errorf("addrspace: restore: reading the %s: %w", what, err)
}

// decoder reads the fields of one payload; a short payload sets bad.
type decoder struct {
	p   []byte
	bad bool
}

func (d *decoder) take(n int) []byte {
	if d.bad || len(d.p) < n {
		d.bad = true
		return make([]byte, n)
	}
	b := d.p[:n]
	d.p = d.p[n:]
	return b
}
func (d *decoder) u8() byte    { return d.take(1)[0] }
func (d *decoder) u16() uint16 { return binary.LittleEndian.Uint16(d.take(2)) }
func (d *decoder) u32() uint32 { return binary.LittleEndian.Uint32(d.take(4)) }
func (d *decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.take(8)) }
func (d *decoder) str() string { return string(d.take(int(d.u16()))) }

// restoredObj is a FILE or SHM object of the save being applied.
type restoredObj struct {
	ref  *fileRef
	fr   FileRef
	size uint64 // SHM only
}

// applyLocked reads the records of a save whose header is h and applies
// them to as: a fresh space (full) or one restored from the saves h
// follows (an increment). On error, as is left for the caller to close.
//
// Preconditions: as.mu is held.
func (rs *restorer) applyLocked(as *AddressSpace, r io.Reader, h saveHeader, full bool) error {
	var (
		files, shms []restoredObj
		newVMAs     []*vma
		stage       = recFile
		records     uint64
		pages       uint64
		vmasDone    bool
		hdr         [8]byte
		tail        [4]byte
		payload     = make([]byte, maxRecordPayload)
	)
	// Objects opened here hold one reference each until the end, when the
	// mappings hold theirs.
	defer func() {
		for _, o := range append(files, shms...) {
			if o.ref != nil {
				as.dropFile(o.ref)
			}
		}
	}()
	le := binary.LittleEndian
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return readErr(err, "record header")
		}
		typ, n := le.Uint32(hdr[:]), le.Uint32(hdr[4:])
		if n > maxRecordPayload {
			return badSave("record %d of %d bytes", records, n)
		}
		p := payload[:n]
		if typ > recVMA && typ <= recEnd && int(typ) >= stage && !vmasDone {
			if err := rs.installVMAs(as, newVMAs, full); err != nil {
				return err
			}
			vmasDone = true
		}
		if rs.lazy != nil && full && typ == recPages && vmasDone && n > 13 {
			// The page data of private anonymous memory stays in the
			// save until a fill reads (and checks) it.
			if _, err := io.ReadFull(r, p[:13]); err != nil {
				return readErr(err, "record payload")
			}
			done, err := rs.lazy.index(as, p[:13], n, records)
			if err != nil {
				return err
			}
			if done {
				pages += uint64(n-13) / hostarch.PageSize
				records++
				continue
			}
			if _, err := io.ReadFull(r, p[13:]); err != nil {
				return readErr(err, "record payload")
			}
		} else if _, err := io.ReadFull(r, p); err != nil {
			return readErr(err, "record payload")
		}
		if _, err := io.ReadFull(r, tail[:]); err != nil {
			return readErr(err, "record checksum")
		}
		crc := crc32.Update(crc32.Update(0, crcTable, hdr[:]), crcTable, p)
		if crc != le.Uint32(tail[:]) {
			return badSave("record %d checksum", records)
		}
		if int(typ) < stage || typ > recEnd {
			return badSave("record %d: type %d out of order", records, typ)
		}
		if typ > recVMA && !vmasDone {
			if err := rs.installVMAs(as, newVMAs, full); err != nil {
				return err
			}
			vmasDone = true
		}
		stage = int(typ)
		if typ == recDiscard && full {
			return badSave("record %d: DISCARD in a full save", records)
		}
		d := &decoder{p: p}
		var err error
		switch typ {
		case recFile:
			fr := FileRef{}
			idx := d.u32()
			fr.Dev, fr.Ino, fr.Writable = d.u64(), d.u64(), d.u8() != 0
			fr.Name = d.str()
			if d.bad || len(d.p) != 0 || idx != uint32(len(files)) || len(fr.Name) > maxFileName {
				return badSave("record %d: FILE", records)
			}
			if len(files) >= as.maxMapCount {
				return badSave("more files than MaxMapCount")
			}
			o := restoredObj{fr: fr}
			o.ref, err = rs.resolve(as, fr)
			if err != nil {
				return err
			}
			files = append(files, o)
		case recShm:
			idx, size := d.u32(), d.u64()
			if d.bad || len(d.p) != 0 || idx != uint32(len(shms)) || size == 0 || size%hostarch.PageSize != 0 || size > as.size {
				return badSave("record %d: SHM", records)
			}
			if len(shms) >= as.maxMapCount {
				return badSave("more shared-memory objects than MaxMapCount")
			}
			ref, err := as.newShm(size)
			if err != nil {
				return fmt.Errorf("addrspace: restore: %w", err)
			}
			shms = append(shms, restoredObj{ref: ref, size: size})
		case recVMA:
			v, err := decodeVMA(d, as, files, shms, newVMAs)
			if err != nil {
				return badSave("record %d: VMA: %v", records, err)
			}
			if len(newVMAs) >= as.maxMapCount {
				return badSave("more mappings than MaxMapCount")
			}
			newVMAs = append(newVMAs, v)
		case recPages:
			space, obj, addr := d.u8(), d.u32(), d.u64()
			data := d.p
			if d.bad || len(data) == 0 || len(data)%hostarch.PageSize != 0 || addr%hostarch.PageSize != 0 {
				return badSave("record %d: PAGES", records)
			}
			if err := rs.pages(as, space, obj, addr, data, shms, full); err != nil {
				if errors.Is(err, ErrBadSave) {
					return badSave("record %d: %v", records, err)
				}
				return err
			}
			pages += uint64(len(data)) / hostarch.PageSize
		case recDiscard:
			start, end := d.u64(), d.u64()
			if d.bad || len(d.p) != 0 || start%hostarch.PageSize != 0 || end%hostarch.PageSize != 0 || start >= end || end > as.size {
				return badSave("record %d: DISCARD", records)
			}
			ar := hostarch.AddrRange{Start: hostarch.Addr(start), End: hostarch.Addr(end)}
			if !as.privateCovered(ar) {
				return badSave("record %d: DISCARD of [%#x, %#x) outside a private mapping", records, start, end)
			}
			if err := as.pt.Unmap(start, end); err != nil {
				return fmt.Errorf("addrspace: restore: %w", err)
			}
			if v := as.find(ar.Start); rs.lazy != nil && v.lazy != nil {
				rs.lazy.drop(ar) // the base's pages there are gone
			}
		case recEnd:
			nrec, npages := d.u64(), d.u64()
			if d.bad || len(d.p) != 0 || nrec != records || npages != pages {
				return badSave("END record: %d records and %d pages, read %d and %d", nrec, npages, records, pages)
			}
			as.brkStart, as.brk = hostarch.Addr(h.brkStart), hostarch.Addr(h.brk)
			as.nextAnonID = max(as.nextAnonID, h.nextAnonID)
			rs.lastID = h.id
			return nil
		}
		records++
	}
}

// resolve opens the file of a FILE record through opts.Resolve.
func (rs *restorer) resolve(as *AddressSpace, fr FileRef) (*fileRef, error) {
	if rs.opts.Resolve == nil {
		return nil, fmt.Errorf("addrspace: restore: the save maps %s and RestoreOptions.Resolve is nil: %w", fr.Name, unix.EINVAL)
	}
	f, err := rs.opts.Resolve(fr)
	if err != nil {
		return nil, fmt.Errorf("addrspace: restore: resolving %s: %w", fr.Name, err)
	}
	if f == nil {
		return nil, fmt.Errorf("addrspace: restore: resolving %s returned no file: %w", fr.Name, unix.EBADF)
	}
	rs.resolved = append(rs.resolved, f)
	ref, err := as.openFile(f, false)
	if err != nil {
		return nil, fmt.Errorf("addrspace: restore: %w", err)
	}
	if fr.Writable && !ref.writable {
		as.dropFile(ref)
		return nil, fmt.Errorf("addrspace: restore: %s was saved writable and resolved read-only: %w", fr.Name, unix.EACCES)
	}
	return ref, nil
}

// decodeVMA decodes and checks a VMA record against the objects and the
// mappings before it.
func decodeVMA(d *decoder, as *AddressSpace, files, shms []restoredObj, prev []*vma) (*vma, error) {
	v := &vma{}
	v.start, v.end = hostarch.Addr(d.u64()), hostarch.Addr(d.u64())
	pb, mb, priv, kind := d.u8(), d.u8(), d.u8(), d.u8()
	obj := d.u32()
	v.off, v.pgoff = d.u64(), d.u64()
	acct := d.u8()
	v.anonID = d.u64()
	v.advice = int(int32(d.u32()))
	v.flags = vmFlags(d.u32())
	v.name = d.str()
	if d.bad || len(d.p) != 0 {
		return nil, errors.New("short or long payload")
	}
	if v.start >= v.end || !v.start.IsPageAligned() || !v.end.IsPageAligned() || v.start < MinAddr || uint64(v.end) > as.size {
		return nil, fmt.Errorf("range [%#x, %#x)", v.start, v.end)
	}
	if n := len(prev); n > 0 && prev[n-1].end > v.start {
		return nil, fmt.Errorf("[%#x, %#x) overlaps or precedes the mapping before it", v.start, v.end)
	}
	if pb > 7 || mb > 7 || priv > 1 || acct > 1 {
		return nil, errors.New("flag byte out of range")
	}
	v.perms, v.maxPerms, v.private, v.account = bitsPerm(pb), bitsPerm(mb), priv == 1, acct == 1
	if !v.maxPerms.SupersetOf(v.perms) {
		return nil, errors.New("perms exceed maxPerms")
	}
	switch v.advice {
	case 0, unix.MADV_RANDOM, unix.MADV_SEQUENTIAL:
	default:
		return nil, fmt.Errorf("advice %d", v.advice)
	}
	if v.flags&^allVMFlags != 0 {
		return nil, fmt.Errorf("flags %#x", v.flags)
	}
	if v.name != heapName {
		if err := checkName(v.name); err != nil {
			return nil, err
		}
	}
	if v.off%hostarch.PageSize != 0 || v.off+v.length() < v.off || v.off+v.length() > 1<<63 {
		return nil, fmt.Errorf("offset %#x", v.off)
	}
	switch kind {
	case vmaAnon:
		if !v.private || obj != 0 {
			return nil, errors.New("anonymous mapping that is shared or has an object")
		}
	case vmaFile:
		if int(obj) >= len(files) || v.name != "" {
			return nil, fmt.Errorf("file %d", obj)
		}
		v.file = files[obj].ref
		if !v.private && v.maxPerms.Write && !v.file.writable {
			return nil, errors.New("writable shared mapping of a read-only file")
		}
	case vmaShm:
		// (A mapping grown by Mremap may reach past its object: SIGBUS there.)
		if int(obj) >= len(shms) || v.private {
			return nil, fmt.Errorf("shared-memory object %d", obj)
		}
		v.file = shms[obj].ref
	default:
		return nil, fmt.Errorf("kind %d", kind)
	}
	return v, nil
}

// installVMAs makes the mapping table of as the saved one, vs: in a fresh
// space it inserts them; applying an increment it keeps the mappings that
// are the same (and their memory) and replaces the others.
//
// Preconditions: as.mu is held.
func (rs *restorer) installVMAs(as *AddressSpace, vs []*vma, full bool) error {
	keep := map[*vma]bool{}
	if !full {
		var old []*vma
		as.vmas.Ascend(func(v *vma) bool { old = append(old, v); return true })
		j := 0
		for _, o := range old {
			for j < len(vs) && vs[j].start < o.start {
				j++
			}
			if j < len(vs) && o.private && sameRestored(o, vs[j]) {
				keep[vs[j]] = true
				continue
			}
			if err := as.pt.Unmap(uint64(o.start), uint64(o.end)); err != nil {
				return fmt.Errorf("addrspace: restore: %w", err)
			}
			as.removeRange(o.ar())
		}
	}
	if err := as.admit(len(vs) - as.vmas.Len()); err != nil {
		return fmt.Errorf("addrspace: restore: %w", err)
	}
	for _, v := range vs {
		if keep[v] {
			continue
		}
		if v.file != nil {
			v.file.refs++
		}
		as.insert(v)
	}
	as.settle()
	return nil
}

// sameRestored reports whether mapping o of the space being restored is
// the mapping v of the increment being applied.
func sameRestored(o, v *vma) bool {
	if o.file != v.file {
		return false
	}
	return o.start == v.start && o.end == v.end && o.perms == v.perms && o.maxPerms == v.maxPerms &&
		o.private == v.private && o.off == v.off && o.pgoff == v.pgoff && o.name == v.name &&
		o.advice == v.advice && o.flags == v.flags && o.account == v.account && o.anonID == v.anonID
}

// privateCovered reports whether ar lies inside one private mapping.
//
// Preconditions: as.mu is held.
func (as *AddressSpace) privateCovered(ar hostarch.AddrRange) bool {
	v := as.find(ar.Start)
	return v != nil && v.private && v.end >= ar.End
}

// pages applies a PAGES record.
//
// Preconditions: as.mu is held; the mappings are installed.
func (rs *restorer) pages(as *AddressSpace, space byte, obj uint32, addr uint64, data []byte, shms []restoredObj, full bool) error {
	n := uint64(len(data))
	switch space {
	case 0:
		if obj != 0 || addr+n < addr || addr+n > as.size {
			return badSave("PAGES at %#x", addr)
		}
		ar := hostarch.AddrRange{Start: hostarch.Addr(addr), End: hostarch.Addr(addr + n)}
		v := as.find(ar.Start)
		if v == nil || !v.private || v.end < ar.End {
			return badSave("PAGES [%#x, %#x) outside a private mapping", ar.Start, ar.End)
		}
		if as.pt.MissingUpTo(addr, addr+n) != addr+n {
			if full {
				return badSave("PAGES [%#x, %#x) given twice", ar.Start, ar.End)
			}
			// An increment's pages replace what the base had.
			if err := as.pt.Unmap(addr, addr+n); err != nil {
				return fmt.Errorf("addrspace: restore: %w", err)
			}
		}
		if err := as.pt.Install(as.mapping(v), addr, data); err != nil {
			return fmt.Errorf("addrspace: restore: %w", err)
		}
	case 1:
		if int(obj) >= len(shms) || addr+n < addr || addr+n > shms[obj].size {
			return badSave("PAGES of shared-memory object %d at %#x", obj, addr)
		}
		for b, off := data, int64(addr); len(b) > 0; {
			k, err := unix.Pwrite(shms[obj].ref.fd(), b, off)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("addrspace: restore: writing shared memory: %v: %w", err, unix.ENOMEM)
			}
			b, off = b[k:], off+int64(k)
		}
	default:
		return badSave("PAGES of space %d", space)
	}
	return nil
}
