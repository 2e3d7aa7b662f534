package addrspace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/pma"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// resolverFor returns a RestoreOptions.Resolve that reopens files by name,
// read-write where the saved reference was writable.
func resolverFor(t testing.TB) func(FileRef) (*os.File, error) {
	return func(ref FileRef) (*os.File, error) {
		flag := os.O_RDONLY
		if ref.Writable {
			flag = os.O_RDWR
		}
		return os.OpenFile(ref.Name, flag, 0)
	}
}

// saveBytes saves as and returns the bytes.
func saveBytes(t testing.TB, as *AddressSpace, opts SaveOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := as.Save(&b, opts); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return b.Bytes()
}

// sameMappings compares the mappings of two spaces, but for the device and
// inode of shared-memory objects (a restored space has its own).
func sameMappings(a, b []Mapping) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d mappings, want %d:\n%+v\n%+v", len(b), len(a), b, a)
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.FileName == "" {
			x.Dev, x.Inode, y.Dev, y.Inode = 0, 0, 0, 0
		}
		if x != y {
			return fmt.Errorf("mapping %d: %+v, want %+v", i, y, x)
		}
	}
	return nil
}

// TestSaveRestoreModel runs random operations of the reference model (on a
// family of clones), then saves and restores every space of the family
// and checks every byte, every mapping and the page table's private pages
// of the restored space against the model, and its vmas against the
// saved space's.
func TestSaveRestoreModel(t *testing.T) {
	seeds, ops := 12, 1500
	if testing.Short() {
		seeds = 4
	}
	for seed := 0; seed < seeds; seed++ {
		r := newModelRunForTest(t, rand.NewSource(int64(100+seed)))
		for i := 0; i < ops; i++ {
			r.step()
		}
		for k := range r.fam {
			orig := r.fam[k]
			data := saveBytes(t, orig, SaveOptions{})
			got, err := Restore(bytes.NewReader(data), RestoreOptions{Resolve: resolverFor(t)})
			if err != nil {
				t.Fatalf("seed %d space %d: Restore: %v", seed, k, err)
			}
			if err := sameMappings(orig.Mappings(), got.Mappings()); err != nil {
				t.Fatalf("seed %d space %d: %v", seed, k, err)
			}
			if orig.brk != got.brk || orig.brkStart != got.brkStart || orig.size != got.size {
				t.Fatalf("seed %d space %d: brk %#x-%#x size %#x, want %#x-%#x %#x", seed, k, got.brkStart, got.brk, got.size, orig.brkStart, orig.brk, orig.size)
			}
			var ov, gv []vma
			orig.vmas.Ascend(func(v *vma) bool { c := *v; c.file = nil; ov = append(ov, c); return true })
			got.vmas.Ascend(func(v *vma) bool { c := *v; c.file = nil; gv = append(gv, c); return true })
			if fmt.Sprint(ov) != fmt.Sprint(gv) {
				t.Fatalf("seed %d space %d: vmas\n%+v\nwant\n%+v", seed, k, gv, ov)
			}
			r.as, r.m = got, r.fm[k]
			r.compareAll()
			// The restored space is a working space, and a save of it holds
			// the same pages (in records split where its backing is).
			again := saveBytes(t, got, SaveOptions{})
			if p1, p2 := savedPages(data), savedPages(again); p1 != p2 {
				t.Fatalf("seed %d space %d: a save of the restored space holds %d pages, the original's %d", seed, k, p2, p1)
			}
			got.Close()
		}
		for _, c := range r.fam {
			c.Close()
		}
	}
}

// newModelRunForTest sets up a model run as modelRunWith does, without
// running it: the caller steps it.
func newModelRunForTest(t *testing.T, src rand.Source) *modelRun {
	size := uint64(48 * pg)
	as, err := New(Options{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rng := rand.New(src)
	r := &modelRun{t: t, as: as, m: &refModel{size: size, pages: map[uint64]*refPage{}, brkStart: size / 8, brk: size / 8}, rng: rng, ctx: ctx, byF: map[*os.File]*refFile{}}
	r.fam, r.fm = []*AddressSpace{as}, []*refModel{r.m}
	for i, spec := range []struct {
		writable bool
		size     uint64
	}{{true, 10 * pg}, {false, 6*pg - 1000}} {
		name := filepath.Join(dir, fmt.Sprintf("f%d", i))
		data := make([]byte, spec.size)
		rand.New(rand.NewSource(int64(i))).Read(data)
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		flag := os.O_RDONLY
		if spec.writable {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(name, flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		cache := make([]byte, 16*pg)
		copy(cache, data)
		rf := &refFile{f: f, writable: spec.writable, size: spec.size, cache: cache}
		r.files = append(r.files, rf)
		r.byF[f] = rf
	}
	return r
}

// saveFixture builds a space with every kind of mapping and memory and
// returns it with its file.
func saveFixture(t testing.TB) (*AddressSpace, *os.File) {
	t.Helper()
	f := tempFile(t, pattern(4*pg, 3), os.O_RDWR)
	as, err := New(Options{Size: 1 << 26})
	if err != nil {
		t.Fatal(err)
	}
	a := mustMmap(t, as, MmapOpts{Length: 8 * pg, Perms: hostarch.ReadWrite, Private: true, Name: "data"})
	as.CopyOut(ctx, a+pg, pattern(2*pg, 9), noOpt)
	b := mustMmap(t, as, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true, File: f})
	as.CopyOut(ctx, b+2*pg, []byte("private copy"), noOpt)
	c := mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite})
	as.CopyOut(ctx, c+100, []byte("shared anonymous"), noOpt)
	mustMmap(t, as, MmapOpts{Length: 2 * pg, Perms: hostarch.Read, File: f, Offset: pg})
	if err := as.Mprotect(a+4*pg, pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	if _, err := as.Brk(as.brkStart + 3*pg); err != nil {
		t.Fatal(err)
	}
	as.CopyOut(ctx, as.brkStart, []byte("heap"), noOpt)
	return as, f
}

// TestSaveSparse: untouched pages take no space, anonymous zero pages none
// either; a private file page's copy is saved even when it is zero.
func TestSaveSparse(t *testing.T) {
	as, err := New(Options{Size: 1 << 36})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	a := mustMmap(t, as, MmapOpts{Length: 1 << 34, Perms: hostarch.ReadWrite, Private: true})
	for _, off := range []uint64{0, 1 << 20, 1<<34 - pg} {
		if _, err := as.CopyOut(ctx, a+hostarch.Addr(off)+7, []byte{1}, noOpt); err != nil {
			t.Fatal(err)
		}
	}
	// Read-touched pages are backed but zero: no space either.
	if _, err := as.CopyIn(ctx, a+5<<20, make([]byte, 64*pg), noOpt); err != nil {
		t.Fatal(err)
	}
	data := saveBytes(t, as, SaveOptions{})
	// Header, one VMA record, three PAGES records of one page, END.
	// start, end, perms, maxPerms, private, kind, obj, off, pgoff,
	// account, anonID, advice, flags, nameLen; with the record's type,
	// length and checksum.
	const vmaRec = 8 + (8 + 8 + 1 + 1 + 1 + 1 + 4 + 8 + 8 + 1 + 8 + 4 + 4 + 2) + 4
	const pagesRec = 8 + 1 + 4 + 8 + pg + 4
	const endRec = 8 + 16 + 4
	if want := saveHeaderLen + vmaRec + 3*pagesRec + endRec; len(data) != want {
		t.Fatalf("save of 3 written pages in 16 GiB is %d bytes, want %d", len(data), want)
	}
	got, err := Restore(bytes.NewReader(data), RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for _, off := range []uint64{0, 1 << 20, 1<<34 - pg} {
		buf := make([]byte, pg)
		if n, err := got.CopyIn(ctx, a+hostarch.Addr(off), buf, noOpt); n != pg || err != nil || buf[7] != 1 || bytes.Count(buf, []byte{0}) != pg-1 {
			t.Fatalf("page %#x: %d, %v, %v", off, n, err, buf[:8])
		}
	}
	if st, _ := got.Stats(); st.ResidentBytes > 3*pg {
		t.Fatalf("restored space has %d resident bytes, want at most 3 pages", st.ResidentBytes)
	}
}

// TestRestoreFixture restores every kind of mapping.
func TestRestoreFixture(t *testing.T) {
	as, _ := saveFixture(t)
	defer as.Close()
	data := saveBytes(t, as, SaveOptions{})
	got, err := Restore(bytes.NewReader(data), RestoreOptions{Resolve: resolverFor(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if err := sameMappings(as.Mappings(), got.Mappings()); err != nil {
		t.Fatal(err)
	}
	for _, m := range as.Mappings() {
		n := int(m.Range.Length())
		want, gotb := make([]byte, n), make([]byte, n)
		k1, e1 := as.CopyIn(ctx, m.Range.Start, want, usermem.IOOpts{IgnorePermissions: true})
		k2, e2 := got.CopyIn(ctx, m.Range.Start, gotb, usermem.IOOpts{IgnorePermissions: true})
		if k1 != k2 || (e1 == nil) != (e2 == nil) || !bytes.Equal(want, gotb) {
			t.Fatalf("mapping %+v: restored reads %d, %v; saved %d, %v; equal %v", m, k2, e2, k1, e1, bytes.Equal(want, gotb))
		}
	}
	// Shared anonymous memory is the restored space's own.
	sh := as.Mappings()[2]
	got.CopyOut(ctx, sh.Range.Start, []byte("X"), noOpt)
	b := make([]byte, 1)
	as.CopyIn(ctx, sh.Range.Start, b, noOpt)
	if b[0] == 'X' {
		t.Fatal("restored shared anonymous memory is shared with the saved space")
	}
}

// TestRestoreBadInput truncates the save at every offset and flips a bit
// at every offset: every one is rejected with ErrBadSave and EINVAL, and
// no descriptor, host mapping, reservation or memory is left behind.
func TestRestoreBadInput(t *testing.T) {
	as, _ := saveFixture(t)
	data := saveBytes(t, as, SaveOptions{})
	as.Close()
	try := func(in []byte) error {
		got, err := Restore(bytes.NewReader(in), RestoreOptions{Resolve: resolverFor(t)})
		if err == nil {
			got.Close()
			return errors.New("accepted")
		}
		if !errors.Is(err, ErrBadSave) || !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("error %v does not wrap ErrBadSave and EINVAL", err)
		}
		return nil
	}
	try(data[:len(data)/2]) // warm up
	fds, hs := settleHost(t)
	// Every offset outside page data, and every 61st inside it (each
	// record's checksum covers its data alike); every offset with
	// MMSIM_SAVE_EVERY_OFFSET set (about 30 s, several minutes under -race).
	offs := saveOffsets(data, 61)
	if os.Getenv("MMSIM_SAVE_EVERY_OFFSET") != "" {
		offs = saveOffsets(data, 1)
	} else if testing.Short() {
		offs = saveOffsets(data, 4093)
	}
	for _, n := range offs {
		if err := try(data[:n]); err != nil {
			t.Fatalf("truncated to %d of %d bytes: %v", n, len(data), err)
		}
	}
	bad := bytes.Clone(data)
	for _, i := range offs {
		bad[i] ^= 0x10
		if err := try(bad); err != nil {
			t.Fatalf("bit 4 of byte %d flipped: %v", i, err)
		}
		bad[i] = data[i]
	}
	waitCollected(t, hs.ReservedBytes)
	if got := countFDs(t); got != fds {
		t.Errorf("%d descriptors after the failed restores, %d before", got, fds)
	}
	if got := HostStats(); got.Mappings != hs.Mappings || got.Committed != hs.Committed || got.ReservedBytes != hs.ReservedBytes {
		t.Errorf("host account %+v after the failed restores, %+v before", got, hs)
	}
	// The intact save still restores.
	got, err := Restore(bytes.NewReader(data), RestoreOptions{Resolve: resolverFor(t)})
	if err != nil {
		t.Fatal(err)
	}
	got.Close()
}

// hostileSave builds a save from raw records, with valid checksums.
func hostileSave(size uint64, maxMap uint64, recs ...[]byte) []byte {
	out := encodeHeader(kindFull, size, size/8, size/8, 0, maxMap, 1, 0)
	for _, r := range recs {
		out = append(out, r...)
	}
	return out
}

func rawRecord(typ uint32, payload []byte) []byte {
	var b bytes.Buffer
	h := make([]byte, 8)
	putU32(h, typ)
	putU32(h[4:], uint32(len(payload)))
	b.Write(h)
	b.Write(payload)
	crc := crcOf(h, payload)
	t := make([]byte, 4)
	putU32(t, crc)
	b.Write(t)
	return b.Bytes()
}

func vmaPayload(start, end uint64, kind byte, obj uint32, priv byte) []byte {
	p := le64(nil, start)
	p = le64(p, end)
	p = append(p, 3, 7, priv, kind)
	p = le32(p, obj)
	p = le64(p, 0)
	p = le64(p, start)
	p = append(p, 1)
	p = le64(p, 1)
	p = le32(p, 0)
	p = le32(p, 0)
	return append(p, 0, 0)
}

// TestRestoreHostile: well-checksummed saves with hostile fields are
// rejected without allocating what they ask for.
func TestRestoreHostile(t *testing.T) {
	const size = 1 << 30
	page := func(addr uint64) []byte {
		p := append([]byte{0}, le32(nil, 0)...)
		p = le64(p, addr)
		return append(p, make([]byte, pg)...)
	}
	end := func(recs, pages uint64) []byte { return rawRecord(recEnd, le64(le64(nil, recs), pages)) }
	cases := []struct {
		name string
		in   []byte
	}{
		{"huge record length", append(hostileSave(size, 0), []byte{recVMA, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}...)},
		{"overlapping mappings", hostileSave(size, 0, rawRecord(recVMA, vmaPayload(pg, 4*pg, 0, 0, 1)), rawRecord(recVMA, vmaPayload(3*pg, 5*pg, 0, 0, 1)), end(2, 0))},
		{"mappings out of order", hostileSave(size, 0, rawRecord(recVMA, vmaPayload(8*pg, 9*pg, 0, 0, 1)), rawRecord(recVMA, vmaPayload(pg, 2*pg, 0, 0, 1)), end(2, 0))},
		{"mapping beyond the space", hostileSave(size, 0, rawRecord(recVMA, vmaPayload(pg, size+pg, 0, 0, 1)), end(1, 0))},
		{"mapping at page 0", hostileSave(size, 0, rawRecord(recVMA, vmaPayload(0, pg, 0, 0, 1)), end(1, 0))},
		{"shared anonymous without object", hostileSave(size, 0, rawRecord(recVMA, vmaPayload(pg, 2*pg, vmaShm, 0, 0)), end(1, 0))},
		{"file without FILE record", hostileSave(size, 0, rawRecord(recVMA, vmaPayload(pg, 2*pg, vmaFile, 3, 1)), end(1, 0))},
		{"shared-memory object larger than the space", hostileSave(size, 0, rawRecord(recShm, le64(le32(nil, 0), 1<<40)), end(1, 0))},
		{"more mappings than MaxMapCount", hostileSave(size, 1, rawRecord(recVMA, vmaPayload(pg, 2*pg, 0, 0, 1)), rawRecord(recVMA, vmaPayload(3*pg, 4*pg, 0, 0, 1)), end(2, 0))},
		{"pages outside a mapping", hostileSave(size, 0, rawRecord(recVMA, vmaPayload(pg, 2*pg, 0, 0, 1)), rawRecord(recPages, page(2*pg)), end(2, 1))},
		{"pages given twice", hostileSave(size, 0, rawRecord(recVMA, vmaPayload(pg, 2*pg, 0, 0, 1)), rawRecord(recPages, page(pg)), rawRecord(recPages, page(pg)), end(3, 2))},
		{"END count wrong", hostileSave(size, 0, rawRecord(recVMA, vmaPayload(pg, 2*pg, 0, 0, 1)), end(5, 0))},
		{"DISCARD in a full save", hostileSave(size, 0, rawRecord(recDiscard, le64(le64(nil, pg), 2*pg)), end(1, 0))},
		{"space size not a page multiple", hostileSave(size+1, 0, end(0, 0))},
		{"break beyond the space", encodeHeader(kindFull, size, pg, size+pg, 0, 0, 1, 0)},
		{"increment first", encodeHeader(kindIncrement, size, pg, pg, 0, 0, 1, 2)},
	}
	fds, hs := settleHost(t)
	for _, c := range cases {
		got, err := Restore(bytes.NewReader(c.in), RestoreOptions{})
		if err == nil {
			got.Close()
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !errors.Is(err, ErrBadSave) || !errors.Is(err, unix.EINVAL) {
			t.Errorf("%s: %v, want ErrBadSave and EINVAL", c.name, err)
		}
	}
	// A well-formed one restores.
	ok := hostileSave(size, 0, rawRecord(recVMA, vmaPayload(pg, 2*pg, 0, 0, 1)), rawRecord(recPages, page(pg)), end(2, 1))
	got, err := Restore(bytes.NewReader(ok), RestoreOptions{})
	if err != nil {
		t.Fatalf("well-formed: %v", err)
	}
	got.Close()
	waitCollected(t, hs.ReservedBytes)
	if got := countFDs(t); got != fds {
		t.Errorf("%d descriptors after, %d before", got, fds)
	}
	if got := HostStats(); got.Mappings != hs.Mappings || got.Committed != hs.Committed {
		t.Errorf("host account %+v after, %+v before", got, hs)
	}
}

// TestRestoreResolverErrors: a resolver's error fails the restore, wrapped,
// and the files it returned are closed.
func TestRestoreResolverErrors(t *testing.T) {
	as, f := saveFixture(t)
	data := saveBytes(t, as, SaveOptions{})
	as.Close()
	sentinel := errors.New("no such file here")
	if _, err := Restore(bytes.NewReader(data), RestoreOptions{Resolve: func(FileRef) (*os.File, error) { return nil, sentinel }}); !errors.Is(err, sentinel) {
		t.Fatalf("Restore with a failing resolver: %v", err)
	}
	if _, err := Restore(bytes.NewReader(data), RestoreOptions{}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Restore without a resolver: %v", err)
	}
	var handed []*os.File
	ro := func(ref FileRef) (*os.File, error) {
		g, err := os.Open(f.Name())
		handed = append(handed, g)
		return g, err
	}
	if _, err := Restore(bytes.NewReader(data), RestoreOptions{Resolve: ro}); !errors.Is(err, unix.EACCES) {
		t.Fatalf("Restore with a read-only file for a writable one: %v", err)
	}
	for _, g := range handed {
		if _, err := g.Stat(); err == nil {
			t.Fatal("a file the resolver returned was left open")
		}
	}
}

// TestSaveLazyRefused: a lazily filled mapping cannot be saved.
func TestSaveLazyRefused(t *testing.T) {
	as, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true, Fill: fillFunc(func(off uint64, dst []byte) error { return nil })})
	if err := as.Save(&bytes.Buffer{}, SaveOptions{}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Save of a lazy mapping: %v, want EINVAL", err)
	}
}

// FuzzRestore feeds Restore arbitrary input, seeded with valid saves: it
// must never panic, accept only what then works as a space, and reject the
// rest with an error.
func FuzzRestore(f *testing.F) {
	as, _ := saveFixture(f)
	f.Add(saveBytes(f, as, SaveOptions{}))
	as.Close()
	f.Add(hostileSave(1<<30, 0, rawRecord(recVMA, vmaPayload(pg, 2*pg, 0, 0, 1)), rawRecord(recEnd, le64(le64(nil, 1), 0))))
	resolve := resolverFor(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		stall := time.AfterFunc(hostileStall, func() {
			buf := make([]byte, 1<<20)
			panic(fmt.Sprintf("Restore of %d bytes stalled:\n%s", len(data), buf[:runtime.Stack(buf, true)]))
		})
		defer stall.Stop()
		// Lazily: page data is checked when touched.
		if lazy, err := Restore(bytes.NewReader(data), RestoreOptions{Resolve: resolve, Lazy: true}); err == nil {
			for _, m := range lazy.Mappings() {
				buf := make([]byte, min(m.Range.Length(), 4*pg))
				lazy.CopyIn(ctx, m.Range.Start, buf, usermem.IOOpts{IgnorePermissions: true})
			}
			lazy.Close()
		}
		got, err := Restore(bytes.NewReader(data), RestoreOptions{Resolve: resolve})
		if err != nil {
			return
		}
		defer got.Close()
		for _, m := range got.Mappings() {
			buf := make([]byte, min(m.Range.Length(), 4*pg))
			got.CopyIn(ctx, m.Range.Start, buf, usermem.IOOpts{IgnorePermissions: true})
		}
		if err := got.Save(&bytes.Buffer{}, SaveOptions{}); err != nil {
			t.Fatalf("a restored space does not save: %v", err)
		}
	})
}

func putU32(b []byte, v uint32)      { binary.LittleEndian.PutUint32(b, v) }
func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func le64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func crcOf(h, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, crcTable, h), crcTable, payload)
}

// savedPages returns the page count of a save's END record.
func savedPages(b []byte) uint64 { return binary.LittleEndian.Uint64(b[len(b)-12:]) }

// saveOffsets returns the offsets of a save that are not page data of a
// PAGES record, and every stride-th one that is.
func saveOffsets(b []byte, stride int) []int {
	var offs []int
	for i := 0; i < saveHeaderLen; i++ {
		offs = append(offs, i)
	}
	for at := saveHeaderLen; at+8 <= len(b); {
		typ, n := binary.LittleEndian.Uint32(b[at:]), int(binary.LittleEndian.Uint32(b[at+4:]))
		meta := n
		if typ == recPages {
			meta = 13
		}
		for i := at; i < at+8+meta; i++ {
			offs = append(offs, i)
		}
		for i := at + 8 + meta; i < at+8+n; i += stride {
			offs = append(offs, i)
		}
		for i := at + 8 + n; i < at+12+n; i++ {
			offs = append(offs, i)
		}
		at += 12 + n
	}
	return offs
}

// TestSaveRestoreIncrementalModel: a tracked full save, then random
// operations and an increment, several times; Restore of the base with
// the increments equals the model, byte for byte and mapping for mapping.
func TestSaveRestoreIncrementalModel(t *testing.T) {
	seeds := 8
	if testing.Short() {
		seeds = 3
	}
	for seed := 0; seed < seeds; seed++ {
		r := newModelRunForTest(t, rand.NewSource(int64(300+seed)))
		as := r.fam[0]
		// Steps on as alone: a clone made by a step is closed after it (it
		// made as's pages copy-on-write), so that no step closes as.
		steps := func(n int) {
			for i := 0; i < n; i++ {
				r.step()
				for _, c := range r.fam[1:] {
					c.Close()
				}
				r.fam, r.fm = r.fam[:1], r.fm[:1]
			}
		}
		steps(300)
		base := saveBytes(t, as, SaveOptions{Track: true})
		var incs [][]byte
		for k := 0; k < 4; k++ {
			steps(200)
			incs = append(incs, saveBytes(t, as, SaveOptions{Incremental: true, Track: true}))
		}
		readers := func(bs [][]byte) []io.Reader {
			var rs []io.Reader
			for _, b := range bs {
				rs = append(rs, bytes.NewReader(b))
			}
			return rs
		}
		for _, lazy := range []bool{false, true} {
			got, err := Restore(bytes.NewReader(base), RestoreOptions{Resolve: resolverFor(t), Increments: readers(incs), Lazy: lazy})
			if err != nil {
				t.Fatalf("seed %d (lazy %v): Restore: %v", seed, lazy, err)
			}
			if err := sameMappings(as.Mappings(), got.Mappings()); err != nil {
				t.Fatalf("seed %d (lazy %v): %v", seed, lazy, err)
			}
			r.as, r.m = got, r.fm[0]
			r.compareAll()
			got.Close()
		}
		// Increments out of order, or one missing, are rejected.
		for _, bad := range [][][]byte{{incs[1], incs[0]}, {incs[0], incs[2]}, {incs[1]}} {
			if g, err := Restore(bytes.NewReader(base), RestoreOptions{Resolve: resolverFor(t), Increments: readers(bad)}); !errors.Is(err, ErrBadSave) {
				if g != nil {
					g.Close()
				}
				t.Fatalf("seed %d: increments out of order: %v, want ErrBadSave", seed, err)
			}
		}
		for _, c := range r.fam {
			c.Close()
		}
	}
}

// TestSaveIncrementalNeedsTrack: an increment needs a tracked save before.
func TestSaveIncrementalNeedsTrack(t *testing.T) {
	as, _ := saveFixture(t)
	defer as.Close()
	saveBytes(t, as, SaveOptions{})
	if err := as.Save(&bytes.Buffer{}, SaveOptions{Incremental: true}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("increment with no tracked save: %v, want EINVAL", err)
	}
}

// TestSaveIncrementalSize: an increment holds exactly the pages written
// since the save before it, whatever the size of the space; a page
// discarded since restores as zero; and the chain restores every byte,
// eagerly and lazily.
func TestSaveIncrementalSize(t *testing.T) {
	as, err := New(Options{Size: 1 << 32})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	const n = 4096 // pages: 16 MiB written
	a := mustMmap(t, as, MmapOpts{Length: n * pg, Perms: hostarch.ReadWrite, Private: true})
	full := pattern(n*pg, 5)
	if _, err := as.CopyOut(ctx, a, full, noOpt); err != nil {
		t.Fatal(err)
	}
	base := saveBytes(t, as, SaveOptions{Track: true})
	if got := savedPages(base); got != n {
		t.Fatalf("base holds %d pages, want %d", got, n)
	}
	empty := saveBytes(t, as, SaveOptions{Incremental: true, Track: true})
	if got := savedPages(empty); got != 0 {
		t.Fatalf("increment with nothing written holds %d pages", got)
	}
	for _, p := range []int{3, 1000, 1001, 4095} {
		as.CopyOut(ctx, a+hostarch.Addr(p*pg+9), []byte("new"), noOpt)
		copy(full[p*pg+9:], "new")
	}
	if err := as.Madvise(a+2000*pg, pg, unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	clear(full[2000*pg : 2001*pg])
	inc := saveBytes(t, as, SaveOptions{Incremental: true, Track: true})
	if got := savedPages(inc); got != 4 {
		t.Fatalf("increment after writing 4 pages holds %d pages", got)
	}
	if len(inc) > 5*pg+4096 {
		t.Fatalf("increment after writing 4 pages is %d bytes", len(inc))
	}
	for _, lazy := range []bool{false, true} {
		got, err := Restore(bytes.NewReader(base), RestoreOptions{Increments: []io.Reader{bytes.NewReader(empty), bytes.NewReader(inc)}, Lazy: lazy})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n*pg)
		if k, err := got.CopyIn(ctx, a, buf, noOpt); k != len(buf) || err != nil || !bytes.Equal(buf, full) {
			t.Fatalf("restored chain (lazy %v): %d, %v, equal %v", lazy, k, err, bytes.Equal(buf, full))
		}
		got.Close()
	}
}

// settleHost collects the views of every closed address space (those of
// other tests too) and returns the descriptors and host account then.
func settleHost(t *testing.T) (int, pma.HostStats) {
	t.Helper()
	last, same := HostStats(), 0
	for i := 0; i < 400 && same < 5; i++ {
		runtime.GC()
		time.Sleep(2 * time.Millisecond)
		if hs := HostStats(); hs == last {
			same++
		} else {
			last, same = hs, 0
		}
	}
	return countFDs(t), last
}

// TestSaveConcurrent saves (fully and incrementally) while other
// goroutines write, map and unmap: every save restores, and a page that
// no goroutine touched during the saves restores exactly.
func TestSaveConcurrent(t *testing.T) {
	as, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	fixed := mustMmap(t, as, MmapOpts{Length: 4 * pg, Perms: hostarch.ReadWrite, Private: true})
	as.CopyOut(ctx, fixed, pattern(4*pg, 7), noOpt)
	busy := mustMmap(t, as, MmapOpts{Length: 64 * pg, Perms: hostarch.ReadWrite, Private: true})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				as.CopyOut(ctx, busy+hostarch.Addr(rng.Intn(60*pg)), []byte("racing"), noOpt)
				if a, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true}); err == nil {
					as.CopyOut(ctx, a, []byte{1}, noOpt)
					as.Munmap(a, pg)
				}
			}
		}(g)
	}
	saves := [][]byte{saveBytes(t, as, SaveOptions{Track: true})}
	for i := 0; i < 20; i++ {
		saves = append(saves, saveBytes(t, as, SaveOptions{Incremental: true, Track: true}))
	}
	close(stop)
	wg.Wait()
	// Once the writers stopped, one more increment makes the chain exact.
	saves = append(saves, saveBytes(t, as, SaveOptions{Incremental: true, Track: true}))
	var incs []io.Reader
	for _, b := range saves[1:] {
		incs = append(incs, bytes.NewReader(b))
	}
	got, err := Restore(bytes.NewReader(saves[0]), RestoreOptions{Increments: incs})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	b := make([]byte, 4*pg)
	if n, err := got.CopyIn(ctx, fixed, b, noOpt); n != len(b) || err != nil || !bytes.Equal(b, pattern(4*pg, 7)) {
		t.Fatalf("untouched mapping restores %d, %v, equal %v", n, err, bytes.Equal(b, pattern(4*pg, 7)))
	}
	want, have := make([]byte, 64*pg), make([]byte, 64*pg)
	as.CopyIn(ctx, busy, want, noOpt)
	if n, err := got.CopyIn(ctx, busy, have, noOpt); n != len(have) || err != nil || !bytes.Equal(want, have) {
		t.Fatalf("written mapping restores %d, %v, equal %v", n, err, bytes.Equal(want, have))
	}
	if err := sameMappings(as.Mappings(), got.Mappings()); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreLazy: a lazy restore reads no page until it is touched, then
// equals an eager restore byte for byte (every space of random model
// runs), filling each page once; a page corrupted in the save fails its
// access with EFAULT and ErrBadSave; a non-ReaderAt is EINVAL. (The
// incremental model test restores lazily too.)
func TestRestoreLazy(t *testing.T) {
	for seed := 0; seed < 4; seed++ {
		r := newModelRunForTest(t, rand.NewSource(int64(500+seed)))
		for i := 0; i < 1500; i++ {
			r.step()
		}
		for k := range r.fam {
			data := saveBytes(t, r.fam[k], SaveOptions{})
			cr := &countingReaderAt{r: bytes.NewReader(data)}
			got, err := Restore(cr, RestoreOptions{Resolve: resolverFor(t), Lazy: true})
			if err != nil {
				t.Fatalf("seed %d space %d: lazy Restore: %v", seed, k, err)
			}
			if err := sameMappings(r.fam[k].Mappings(), got.Mappings()); err != nil {
				t.Fatalf("seed %d space %d: %v", seed, k, err)
			}
			r.as, r.m = got, r.fm[k]
			r.compareAll()
			got.Close()
		}
		for _, c := range r.fam {
			c.Close()
		}
	}

	as, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	a := mustMmap(t, as, MmapOpts{Length: 1024 * pg, Perms: hostarch.ReadWrite, Private: true})
	full := pattern(1024*pg, 3)
	as.CopyOut(ctx, a, full, noOpt)
	data := saveBytes(t, as, SaveOptions{})
	cr := &countingReaderAt{r: bytes.NewReader(data)}
	got, err := Restore(cr, RestoreOptions{Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if cr.n > 4096 {
		t.Fatalf("lazy Restore read %d bytes of a %d-byte save", cr.n, len(data))
	}
	b := make([]byte, 8)
	if _, err := got.CopyIn(ctx, a+700*pg+5, b, noOpt); err != nil || !bytes.Equal(b, full[700*pg+5:][:8]) {
		t.Fatalf("lazy page reads %v, %v", b, err)
	}
	if cr.n > 4096+maxRecordPayload+12 {
		t.Fatalf("one touched page read %d bytes", cr.n)
	}
	if st, _ := got.Stats(); st.ResidentBytes > LazyFillRun*pg {
		t.Fatalf("%d bytes resident after touching one page", st.ResidentBytes)
	}
	all := make([]byte, 1024*pg)
	if n, err := got.CopyIn(ctx, a, all, noOpt); n != len(all) || err != nil || !bytes.Equal(all, full) {
		t.Fatalf("whole mapping: %d, %v, equal %v", n, err, bytes.Equal(all, full))
	}

	// Corrupt one byte of page 300's data: that page's run fails, others
	// read.
	bad := bytes.Clone(data)
	bad[pageDataOffset(t, data, uint64(a)+300*pg)+10] ^= 1
	got2, err := Restore(bytes.NewReader(bad), RestoreOptions{Lazy: true})
	if err != nil {
		t.Fatalf("lazy Restore does not read page data, yet: %v", err)
	}
	defer got2.Close()
	n, err := got2.CopyIn(ctx, a+300*pg, b, noOpt)
	if n != 0 || !errors.Is(err, unix.EFAULT) || !errors.Is(err, ErrBadSave) {
		t.Fatalf("corrupted lazy page: %d, %v; want EFAULT and ErrBadSave", n, err)
	}
	if _, err := got2.CopyIn(ctx, a+1000*pg, b, noOpt); err != nil {
		t.Fatalf("a page of another record: %v", err)
	}

	if _, err := Restore(io.MultiReader(bytes.NewReader(data)), RestoreOptions{Lazy: true}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("lazy Restore from a plain Reader: %v", err)
	}
	if err := got.Save(&bytes.Buffer{}, SaveOptions{}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Save of a lazily restored space: %v", err)
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r  *bytes.Reader
	mu sync.Mutex
	n  int
}

func (c *countingReaderAt) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	return n, err
}

// pageDataOffset returns the offset in a save of the data of the private
// page at addr.
func pageDataOffset(t *testing.T, b []byte, addr uint64) int {
	for at := saveHeaderLen; at+8 <= len(b); {
		typ, n := binary.LittleEndian.Uint32(b[at:]), int(binary.LittleEndian.Uint32(b[at+4:]))
		if typ == recPages && b[at+8] == 0 {
			start := binary.LittleEndian.Uint64(b[at+8+5:])
			if start <= addr && addr < start+uint64(n-13) {
				return at + 8 + 13 + int(addr-start)
			}
		}
		at += 12 + n
	}
	t.Fatalf("no page at %#x in the save", addr)
	return 0
}
