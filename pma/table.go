package pma

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/google/btree"
	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// A Table is the host side of one simulated address space: which (file,
// offset) backs each simulated page that has been touched, and the host
// views that map them. It plays the part of Linux's page tables (and of
// gVisor's pmas): the address space decides what is mapped (VMAs) and
// asks the Table, in simulated addresses, to fault pages in, unmap,
// protect, move, share and discard them.
//
// Pages are backed lazily. A simulated mapping adds nothing to the host
// until an access to it faults; the fault handler (Fault) then maps a window
// of pages around the address: the file's pages for file and shared
// mappings, fresh memory-file pages for private anonymous memory. A write
// to a page that may be shared with a clone (copy-on-write) or that still
// shows its private file mapping's file copies a window of pages into
// neighbouring memory-file offsets (fault-around), so that neighbouring
// copies merge into one host mapping; sequential faults double the window.
// A mapping whose backing still fragments beyond a bound is re-laid into
// one contiguous run.
//
// The views are a cache of the Table's entries: a host mapping may be
// dropped at any time (the next access faults it back in). That is how the
// host budget holds by construction: a change that would take the process
// past its host mapping budget first evicts this Table's mappings, unless a
// zero-copy transfer has pinned them (see Pin).
//
// Concurrency: a Table is not safe for concurrent use: its address space
// serializes calls (its mapping lock). AppBase and MaxBase may be read
// concurrently.
type Table struct {
	size uint64
	mem  *MemoryFile
	app  *View
	max  *View
	// maxBase is max.Base() once the max view is reserved, for lock-free
	// readers.
	maxBase atomic.Uintptr

	ents *btree.BTreeG[*entry]

	// actual is the number of host mappings of the views; floor the number
	// the address space's mappings need at most when each is mapped whole
	// (SetFloor). committed = max(actual, floor) is what the process-wide
	// account holds for this table.
	actual, floor, committed int

	// pins counts zero-copy transfers in progress, during which mappings
	// must not be evicted.
	pins atomic.Int32

	// seqNext is where the window after the last fault-around ends, and
	// seqPages that window's size in pages: a fault at seqNext doubles it.
	seqNext, seqPages uint64

	// gen is the generation counter (see Generation and UseGeneration).
	gen *atomic.Uint64

	// Write tracking (track.go): soft holds the pages ClearDirty cleared
	// and nothing wrote since; rclean the pages whose contents equal the
	// snapshot (resetBase, as it was at resetGen) of the last reset. The
	// views write-protect the pages of either set (entry.wp).
	soft, rclean        rangeSet
	resetBase, resetGen uint64
	// id names the table (never reused); changes counts the changes to its
	// contents that reset tracking must notice (write faults, unmaps,
	// moves, resets).
	id, changes uint64

	closed bool

	// Lookups (entryAt, entriesIn) take their B-tree pivots and iterators
	// from here, made once, so that they allocate nothing: a Clone of
	// 1,000 mappings made 17 allocations per mapping in them. Safe because
	// the Table is not used concurrently and their iterators call nothing.
	probe, lo, hi entry
	hit           *entry
	found         []*entry
	probeFn       func(*entry) bool
	collectFn     func(*entry) bool
}

// An entry is a range of simulated pages with contiguous backing.
//
// Invariants: start < end, page-aligned; entries do not overlap; an owned
// entry holds one memory-file reference for each of its pages.
type entry struct {
	start, end uint64
	// fd and off are the backing file and the offset of start in it.
	fd  int
	off uint64
	// owned: the backing is memory-file pages this entry holds references
	// to (private anonymous memory and private copies). Entries that are
	// not owned cache the backing of a shared or file mapping.
	owned bool
	// cow: the host maps the pages without write access, because they
	// may be shared with a clone or are a private mapping's file pages.
	cow bool
	// prot and maxProt are the host protections of the mapping's Perms
	// and MaxPerms, before cow removes write.
	prot, maxProt int
	// inApp and inMax say whether the views map the entry.
	inApp, inMax bool
	// wp: the host maps the pages without write access because write
	// tracking watches them (see Table.soft and rclean).
	wp bool
}

func (e *entry) length() uint64 { return e.end - e.start }

// hostProt returns e's host protection in the app view (or the max view).
func (e *entry) hostProt(max bool) int {
	p := e.prot
	if max {
		p = e.maxProt
	}
	if e.cow || e.wp {
		p &^= unix.PROT_WRITE
	}
	return p
}

func (e *entry) mapped(max bool) bool {
	if max {
		return e.inMax
	}
	return e.inApp
}

func (e *entry) setMapped(max, v bool) {
	if max {
		e.inMax = v
	} else {
		e.inApp = v
	}
}

// joins reports whether next, starting where e ends, can be one entry with e.
func (e *entry) joins(next *entry) bool {
	return e.end == next.start && e.fd == next.fd && e.off+e.length() == next.off &&
		e.owned == next.owned && e.cow == next.cow && e.prot == next.prot && e.maxProt == next.maxProt &&
		e.inApp == next.inApp && e.inMax == next.inMax && e.wp == next.wp
}

// A Mapping describes the simulated mapping (Linux's VMA) that contains a
// faulting address, which is all the Table needs to back it.
type Mapping struct {
	// Start and End are the mapping's range of simulated addresses.
	Start, End uint64

	// Private selects copy-on-write (MAP_PRIVATE).
	Private bool

	// FD is the backing file's descriptor and Off the offset of Start in
	// it: a user file, or the memory file for shared anonymous memory
	// (whose pages the address space allocated and references). FD < 0
	// is private anonymous memory, backed by the Table on first touch.
	FD  int
	Off uint64

	// Prot and MaxProt are the host protections (HostProt) of the
	// mapping's Perms and MaxPerms.
	Prot, MaxProt int

	// Lazy marks private anonymous memory whose pages the address space
	// fills itself (Install) before they are first accessed: a page that
	// nothing backs must stay so, so that fault-around and re-laying never
	// back one with zeros.
	Lazy bool
}

func (m *Mapping) anonymous() bool { return m.FD < 0 }

// offAt returns the backing offset of simulated address a.
func (m *Mapping) offAt(a uint64) uint64 { return m.Off + (a - m.Start) }

// ErrBeyondEOF is returned by Fault for a page of a private file mapping
// that lies wholly beyond the end of its file: the access must fail as the
// host's SIGBUS would.
var ErrBeyondEOF = errors.New("pma: page beyond the end of the mapped file")

// Fault-around windows, in pages.
const (
	minWindow = 16
	maxWindow = 512
)

// NewTable reserves an app view of size bytes for an address space whose
// anonymous memory comes from mem, committing floor host mappings (see
// SetFloor) to the process-wide account.
//
// Errors wrap ENOMEM: the host budget or the host's address space is
// exhausted.
func NewTable(size uint64, mem *MemoryFile, floor int) (*Table, error) {
	t := &Table{size: size, mem: mem, ents: btree.NewG(16, func(a, b *entry) bool { return a.start < b.start }), gen: new(atomic.Uint64), id: tableIDs.Add(1)}
	t.probeFn = func(e *entry) bool {
		if e.end > t.probe.start {
			t.hit = e
		}
		return false
	}
	t.collectFn = func(e *entry) bool {
		t.found = append(t.found, e)
		return true
	}
	t.floor = max(floor, 1)
	if !acct.adjust(t.floor, false) {
		if !reclaimPending() || !acct.adjust(t.floor, false) {
			return nil, errBudget("a new address space")
		}
	}
	t.committed = t.floor
	v, err := reserveView(size)
	if err != nil {
		acct.adjust(-t.committed, true)
		return nil, err
	}
	t.app = v
	t.actual = 1
	acct.addMappings(1)
	t.recommit()
	return t, nil
}

// reserveView reserves a view of size bytes, leaving AddressHeadroom of
// host address space free, and counts it: it holds the headroom while it
// reserves the view, so that the view goes elsewhere or not at all.
func reserveView(size uint64) (*View, error) {
	for attempt := 0; ; attempt++ {
		v, err := reserveOutsideHeadroom(size)
		if err == nil {
			acct.addReserved(int64(size))
			return v, nil
		}
		if attempt > 0 || !reclaimPending() {
			return nil, err
		}
	}
}

func reserveOutsideHeadroom(size uint64) (*View, error) {
	acct.mu.Lock()
	total := acct.reserved + size
	acct.mu.Unlock()
	if total <= probeAbove {
		// Far from the host's limit: no need to hold the headroom (which
		// costs an emulator such as qemu-user memory per page).
		return reserve(size)
	}
	probe, err := mmap(0, AddressHeadroom, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE, -1, 0)
	if err != nil {
		return nil, fmt.Errorf("pma: the process has less than %#x bytes of contiguous host address space left: %w", uint64(AddressHeadroom), unix.ENOMEM)
	}
	defer unix.Syscall(unix.SYS_MUNMAP, probe, AddressHeadroom, 0)
	v, err := reserve(size)
	if err != nil {
		return nil, fmt.Errorf("pma: reserving %#x bytes would leave the process less than %#x bytes of host address space: %w", size, uint64(AddressHeadroom), unix.ENOMEM)
	}
	return v, nil
}

// AppBase returns the host address of simulated address 0 in the app view.
func (t *Table) AppBase() uintptr { return t.app.Base() }

// MaxBase returns the host address of simulated address 0 in the max view,
// or 0 if it is not reserved yet (EnsureMax). Safe for concurrent use.
func (t *Table) MaxBase() uintptr { return t.maxBase.Load() }

// EnsureMax reserves the max view if it is not yet, and returns its base.
func (t *Table) EnsureMax() (uintptr, error) {
	if t.max != nil {
		return t.max.Base(), nil
	}
	if !t.charge(1) {
		t.evict()
		t.chargeForce(1)
	}
	v, err := reserveView(t.size)
	if err != nil {
		t.recount()
		return 0, err
	}
	t.max = v
	t.recount()
	t.maxBase.Store(v.Base())
	return v.Base(), nil
}

// Reserved returns the host address space the table's views reserve.
func (t *Table) Reserved() uint64 {
	n := t.app.Size()
	if t.max != nil {
		n += t.max.Size()
	}
	return n
}

// HostMappings returns the number of host mappings the table's views
// consist of now.
func (t *Table) HostMappings() int { return t.actual }

// SetFloor sets the number of host mappings the address space's mappings
// need at most when each is faulted in whole (the address space's bound for
// one host mapping per simulated mapping plus one per gap between them).
// Faults never need more: where fragmentation would, they evict instead.
// Raising the floor is checked against the process-wide budget.
//
// Errors wrap ENOMEM: the budget does not allow the new floor.
func (t *Table) SetFloor(n int) error {
	n = max(n, 1)
	old := t.floor
	t.floor = n
	if t.recommitChecked() {
		return nil
	}
	if n > old && t.actual > n {
		t.evict()
		if t.recommitChecked() {
			return nil
		}
	}
	t.floor = old
	t.recommit()
	return errBudget("another mapping")
}

// charge accounts for d more host mappings about to be made, failing if the
// budget does not allow them.
func (t *Table) charge(d int) bool {
	c := max(t.actual+d, t.floor)
	if !acct.adjust(c-t.committed, false) {
		return false
	}
	t.committed = c
	return true
}

func (t *Table) chargeForce(d int) {
	c := max(t.actual+d, t.floor)
	acct.adjust(c-t.committed, true)
	t.committed = c
}

// recount sets actual from the views and settles the account.
func (t *Table) recount() {
	n := t.app.Mappings()
	if t.max != nil {
		n += t.max.Mappings()
	}
	acct.addMappings(n - t.actual)
	t.actual = n
	t.recommit()
}

func (t *Table) recommit() {
	c := max(t.actual, t.floor)
	acct.adjust(c-t.committed, true)
	t.committed = c
}

func (t *Table) recommitChecked() bool {
	c := max(t.actual, t.floor)
	if !acct.adjust(c-t.committed, false) {
		return false
	}
	t.committed = c
	return true
}

// view returns the app view, or the max view if max.
func (t *Table) view(max bool) *View {
	if max {
		return t.max
	}
	return t.app
}

// host changes [start, end) of a view to seg (or, if protOnly, the
// protection of what is mapped there), within the budget: if the change
// would exceed it, the table's mappings are evicted first. It reports
// whether they were (every entry is then unmapped; a protOnly change has
// nothing left to do).
func (t *Table) host(max bool, start, end uint64, seg hseg, protOnly bool) (evicted bool, err error) {
	v := t.view(max)
	p := v.plan(start, end, seg, protOnly)
	if !max && downgrades(&p, start, end, seg, protOnly) {
		t.Invalidate()
	}
	if d := p.delta(); d > 0 && !t.charge(d) {
		if t.evict() {
			evicted = true
			if protOnly {
				return true, nil
			}
			p = v.plan(start, end, seg, false)
		}
		t.chargeForce(p.delta())
	}
	err = v.apply(p, start, end, seg, protOnly)
	if err != nil && !max {
		t.Invalidate() // a failed change may leave the range unmapped
	}
	t.recount()
	return evicted, err
}

// clearView makes [start, end) of a view the reservation again, if
// anything is mapped there.
func (t *Table) clearView(max bool, start, end uint64) error {
	v := t.view(max)
	if v == nil {
		return nil
	}
	mapped := false
	v.forSegs(start, end, func(s hseg) bool { mapped = !s.reserved(); return !mapped })
	if !mapped {
		return nil
	}
	_, err := t.host(max, start, end, reserveSeg(start, end), false)
	return err
}

// evict unmaps every entry from both views, unless a transfer pins them.
func (t *Table) evict() bool {
	if t.pins.Load() != 0 {
		return false
	}
	t.Invalidate()
	for _, max := range []bool{false, true} {
		v := t.view(max)
		if v == nil || v.Mappings() == 1 {
			continue
		}
		// Only entries inside host mappings can be mapped: visit those
		// (not every entry, which write tracking can make many).
		var segs []hseg
		v.forSegs(0, t.size, func(s hseg) bool {
			if !s.reserved() {
				segs = append(segs, s)
			}
			return true
		})
		p := v.plan(0, t.size, reserveSeg(0, t.size), false)
		v.apply(p, 0, t.size, reserveSeg(0, t.size), false)
		for _, s := range segs {
			for _, e := range t.entriesIn(s.start, s.end) {
				e.setMapped(max, false)
			}
		}
	}
	t.recount()
	return true
}

// Pin keeps the views' mappings from being evicted until Unpin, for a
// transfer that hands host addresses to code that cannot resume after a
// fault. Safe for concurrent use.
func (t *Table) Pin() { t.pins.Add(1) }

// Unpin undoes Pin.
func (t *Table) Unpin() { t.pins.Add(-1) }

// entryAt returns the entry containing a, or nil.
func (t *Table) entryAt(a uint64) *entry {
	t.probe.start, t.hit = a, nil
	t.ents.DescendLessOrEqual(&t.probe, t.probeFn)
	return t.hit
}

// entriesIn returns the entries overlapping [start, end), in order, in a
// slice of the caller's.
func (t *Table) entriesIn(start, end uint64) []*entry {
	t.found = make([]*entry, 0, 4)
	if e := t.entryAt(start); e != nil {
		t.found = append(t.found, e)
	}
	if start+1 < end {
		t.lo.start, t.hi.start = start+1, end
		t.ents.AscendRange(&t.lo, &t.hi, t.collectFn)
	}
	es := t.found
	t.found = nil
	return es
}

// splitAt splits the entry containing a, if a lies strictly inside it.
func (t *Table) splitAt(a uint64) {
	e := t.entryAt(a)
	if e == nil || e.start == a {
		return
	}
	r := *e
	r.off += a - e.start
	r.start = a
	e.end = a
	t.ents.ReplaceOrInsert(&r)
}

// mergeAround joins entries that can be one from the one before start to
// the one after end.
func (t *Table) mergeAround(start, end uint64) {
	lo := start
	if lo > 0 {
		lo--
	}
	var prev *entry
	for _, e := range t.entriesIn(lo, end+1) {
		if prev != nil && prev.joins(e) {
			t.ents.Delete(e)
			prev.end = e.end
			continue
		}
		prev = e
	}
}

// mapEntry maps e in a view.
func (t *Table) mapEntry(e *entry, max bool) error {
	if _, err := t.host(max, e.start, e.end, hseg{fd: e.fd, off: e.off, prot: e.hostProt(max)}, false); err != nil {
		return err
	}
	e.setMapped(max, true)
	return nil
}

// Fault backs and maps the page at simulated address addr of mapping m
// for an access (a write if write) through the app view, or the max view
// if max, so that the access can be retried. The caller has checked that
// m's permissions allow the access.
//
// Errors: ErrBeyondEOF for a private file page beyond the end of its file;
// errors wrapping ENOMEM if the host refuses memory (the memory file cannot
// grow) or the max view cannot be reserved; host errors otherwise.
func (t *Table) Fault(m Mapping, addr uint64, write, max bool) error {
	if t.closed {
		return fmt.Errorf("pma: fault in a closed table: %w", unix.EFAULT)
	}
	if max {
		if _, err := t.EnsureMax(); err != nil {
			return err
		}
	}
	page := addr &^ (hostarch.PageSize - 1)
	if err := t.fault0(m, page, write, max); err != nil || !write {
		return err
	}
	if e := t.entryAt(page); e != nil && beyondEOF(e, page) {
		return nil // the retry raises SIGBUS: nothing is written
	}
	// The write goes ahead: the page is dirty, and writable if tracked.
	t.written(page)
	return nil
}

// fault0 is Fault once the max view is there, but for write tracking.
func (t *Table) fault0(m Mapping, page uint64, write, max bool) error {
	e := t.entryAt(page)
	if e != nil && (!write || !m.Private || !e.cow) {
		if beyondEOF(e, page) {
			return ErrBeyondEOF
		}
		if e.mapped(max) {
			return nil // mapped meanwhile: retry
		}
		return t.mapEntry(e, max)
	}
	if !m.Private || (!write && !m.anonymous()) {
		// Shared and file pages need no allocation: fill the whole
		// mapping's gaps with its backing.
		return t.fill(m, m.Start, m.End, max)
	}
	return t.fault(m, page, max)
}

// fill maps the gaps between entries in [start, end), a range of mapping m
// that is shared or file-backed, with m's backing, and maps the entries
// there that the view does not map yet.
func (t *Table) fill(m Mapping, start, end uint64, max bool) error {
	cur := start
	for _, e := range t.entriesIn(start, end) {
		if e.start > cur {
			if err := t.insertMapped(m, cur, e.start, max); err != nil {
				return err
			}
		}
		if !e.mapped(max) {
			if err := t.mapEntry(e, max); err != nil {
				return err
			}
		}
		cur = e.end
	}
	if cur < end {
		if err := t.insertMapped(m, cur, end, max); err != nil {
			return err
		}
	}
	t.syncWP(start, end)
	t.mergeAround(start, end)
	return nil
}

// insertMapped adds a cache entry for [start, end) of m's backing and maps
// it in a view.
func (t *Table) insertMapped(m Mapping, start, end uint64, max bool) error {
	e := &entry{start: start, end: end, fd: m.FD, off: m.offAt(start), cow: m.Private, prot: m.Prot, maxProt: m.MaxProt}
	// Write-protected while any page is tracked; fill's syncWP then
	// lifts it from the pages that are not.
	e.wp = t.cleanAny(start, end)
	t.ents.ReplaceOrInsert(e)
	return t.mapEntry(e, max)
}

// window returns the fault-around window for a fault at page in m: an
// aligned run of minWindow pages, or, for a fault where the last window
// ended, a run twice as long as that window (up to maxWindow).
func (t *Table) window(m Mapping, page uint64) (uint64, uint64) {
	var ws, n uint64
	if page == t.seqNext && t.seqPages > 0 {
		t.seqPages = min(2*t.seqPages, maxWindow)
		ws, n = page, t.seqPages
	} else {
		t.seqPages = minWindow
		ws, n = page&^(minWindow*hostarch.PageSize-1), minWindow
	}
	ws = max(ws, m.Start)
	we := min(ws+n*hostarch.PageSize, m.End)
	if we < ws || we <= page {
		we = m.End
	}
	t.seqNext = we
	return ws, we
}

// fileEnd returns the end of mapping m's file in simulated addresses
// (rounded up to a page), or m.End if the file reaches that far.
func fileEnd(m Mapping) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(m.FD, &st); err != nil {
		return 0, fmt.Errorf("pma: fstat of a mapped file: %w", err)
	}
	size := uint64(st.Size)
	if size <= m.Off {
		return m.Start, nil
	}
	rounded := (size - m.Off + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
	if rounded >= m.End-m.Start {
		return m.End, nil
	}
	return m.Start + rounded, nil
}

// fault backs a window of private mapping m around page with pages of this
// address space's own, writable: fresh zero pages where nothing backs
// them, copies of the pages that back them otherwise (copy-on-write), or,
// where the window's pages are already this space's alone and contiguous,
// the same pages made writable.
func (t *Table) fault(m Mapping, page uint64, max bool) error {
	ws, we := t.window(m, page)
	if !m.anonymous() {
		eof, err := fileEnd(m)
		if err != nil {
			return err
		}
		if page >= eof {
			return ErrBeyondEOF
		}
		we = min(we, eof)
	}
	// The window narrows to the run around page of pages that need the same
	// work: for anonymous memory, pages not backed yet (a first touch) or,
	// for a copy-on-write page, those and other copy-on-write pages. A file
	// page not yet copied keeps showing the file (its later changes, its
	// truncation) until it is written, as on Linux: only the written page
	// is copied, and fault-around takes in only the pages around it that
	// are copy-on-write copies already (after a clone).
	cowPage := func(e *entry) bool { return e != nil && e.owned && e.cow }
	var pred func(*entry) bool
	switch pe := t.entryAt(page); {
	case m.Lazy:
		pred = cowPage // (a lazy page is filled before it faults here)
	case m.anonymous() && pe == nil:
		pred = func(e *entry) bool { return e == nil }
	case m.anonymous():
		pred = func(e *entry) bool { return e == nil || cowPage(e) }
	case cowPage(pe):
		pred = cowPage
	default:
		pred = func(*entry) bool { return false }
	}
	ws, we = t.run(page, ws, we, pred)
	t.splitAt(ws)
	t.splitAt(we)
	es := t.entriesIn(ws, we)

	if t.exclusiveRun(es, ws, we) {
		for _, e := range es {
			e.cow = false
			for _, mx := range []bool{false, true} {
				if !e.mapped(mx) {
					continue
				}
				if ev, err := t.host(mx, e.start, e.end, hseg{prot: e.hostProt(mx)}, true); err != nil || ev {
					if err != nil {
						return err
					}
					break
				}
			}
		}
		t.mergeAround(ws, we)
		if e := t.entryAt(page); !e.mapped(max) {
			return t.mapEntry(e, max)
		}
		return nil
	}

	lo, hi := ws, we // the entries split for the window
	off, err := t.copyOut(m, ws, we, es, t.hint(ws, we))
	if errors.Is(err, unix.ENOMEM) && we-ws > hostarch.PageSize {
		// The memory file may have room for less than the window (its
		// size limit, or RLIMIT_FSIZE, is near): back the page alone.
		ws, we = page, page+hostarch.PageSize
		t.splitAt(ws)
		t.splitAt(we)
		es = t.entriesIn(ws, we)
		off, err = t.copyOut(m, ws, we, es, 0)
	}
	if err != nil {
		t.mergeAround(lo, hi)
		return err
	}
	ne := &entry{start: ws, end: we, fd: t.mem.FD(), off: off, owned: true, prot: m.Prot, maxProt: m.MaxProt}
	if err := t.replace(es, ne, max); err != nil {
		return err
	}
	t.mergeAround(lo, hi)
	t.maybeRelay(m, max)
	return nil
}

// WriteThrough is Fault for a write whose bytes are known and overwrite
// whole pages: src, to be written at start in private mapping m (through
// the max view if max). Where the pages from start would need a page of
// this address space's own before the write — a copy-on-write page, a
// private file page not copied yet, anonymous memory not backed yet — it
// backs a run of them from start with new pages holding src's bytes: one
// host write instead of a copy (or zero fill) of contents about to be
// overwritten and a host page fault for each page written through a view.
// Linux cannot do this (a store does not say how much it will write); a
// copy into simulated memory can.
//
// It returns where the run it wrote ends, a page boundary after start (at
// most start+len(src)), or start if it wrote nothing: the page at start
// is not such a page, or those that are belong to this address space
// alone already (they only need write access, which Fault gives), or m is
// shared or lazily filled. The caller then faults the page in with Fault.
//
// Preconditions: the caller has checked that m's permissions allow the
// write; start is page-aligned; len(src) is a multiple of the page size
// and [start, start+len(src)) lies inside m.
//
// Errors: as Fault's, but for ErrBeyondEOF (a page beyond the end of the
// file is not written: it returns start).
func (t *Table) WriteThrough(m Mapping, start uint64, src []byte, max bool) (uint64, error) {
	return t.through(m, start, uint64(len(src)), src, max)
}

// ZeroThrough is WriteThrough for a write of length zero bytes (ZeroOut):
// the new pages hold zeros from the start, so nothing is copied or
// written; they are committed (made resident) as the write would make them.
func (t *Table) ZeroThrough(m Mapping, start, length uint64, max bool) (uint64, error) {
	return t.through(m, start, length, nil, max)
}

// through is WriteThrough of src's n bytes, or of n zero bytes if src is
// nil.
func (t *Table) through(m Mapping, start, n uint64, src []byte, max bool) (uint64, error) {
	if t.closed {
		return start, fmt.Errorf("pma: fault in a closed table: %w", unix.EFAULT)
	}
	if !m.Private || m.Lazy || n < hostarch.PageSize {
		return start, nil
	}
	if max {
		if _, err := t.EnsureMax(); err != nil {
			return start, err
		}
	}
	end := start + min(n, maxWindow*hostarch.PageSize)
	if !m.anonymous() {
		eof, err := fileEnd(m)
		if err != nil {
			return start, err
		}
		end = min(end, eof)
	}
	// Pages the views map read-only for copy-on-write, and pages not
	// backed yet. (An entry's own writable pages, write-tracked ones
	// included, need no new page: Fault serves them.)
	needs := func(e *entry) bool { return e == nil || e.cow }
	if start >= end || !needs(t.entryAt(start)) {
		return start, nil
	}
	ws, we := t.run(start, start, end, needs)
	t.splitAt(ws)
	t.splitAt(we)
	es := t.entriesIn(ws, we)
	if t.exclusiveRun(es, ws, we) {
		t.mergeAround(ws, we)
		return start, nil
	}
	split := we // the end of the entries split for the run
	off, err := t.mem.Allocate(we-ws, t.hint(ws, we))
	if err != nil && we-ws > hostarch.PageSize {
		// The memory file may have room for less (its size limit, or
		// RLIMIT_FSIZE, is near): write the first page alone.
		we = ws + hostarch.PageSize
		t.splitAt(we)
		es = t.entriesIn(ws, we)
		off, err = t.mem.Allocate(hostarch.PageSize, 0)
	}
	if err != nil {
		t.mergeAround(ws, split)
		return start, err
	}
	if src != nil {
		if err := t.mem.writeAt(off, src[:we-ws]); err != nil {
			t.mem.DecRef(off, we-ws)
			t.mergeAround(ws, split)
			return start, err
		}
	}
	ne := &entry{start: ws, end: we, fd: t.mem.FD(), off: off, owned: true, prot: m.Prot, maxProt: m.MaxProt}
	if err := t.replace(es, ne, max); err != nil {
		return start, err
	}
	if src == nil {
		// The pages read as zero as they are, but they are holes in the
		// memory file: commit them, as the write would have (after a
		// memset, Linux's pages are resident: mincore, smaps' Rss).
		if p := ne.hostProt(max); p&unix.PROT_READ != 0 && ne.mapped(max) {
			populateHost(t.view(max).Base()+uintptr(ws), we-ws, p&unix.PROT_WRITE != 0)
		}
	}
	t.writtenRange(ws, we)
	t.mergeAround(ws, split)
	t.maybeRelay(m, max)
	return we, nil
}

// copyOut allocates a run of memory-file pages for [start, end) of mapping
// m (at hint if free) and copies into it what backs the range now: the
// entries es (those overlapping the range, split at its edges) and, for a
// file mapping, the file's pages in the gaps between them; gaps of
// anonymous memory stay zero. It returns the run's offset; on error the
// run is freed.
//
// Preconditions: no view lets the pages of es be written (they are
// copy-on-write, or not mapped): a store that reached them after the copy
// would be lost.
func (t *Table) copyOut(m Mapping, start, end uint64, es []*entry, hint uint64) (uint64, error) {
	off, err := t.mem.Allocate(end-start, hint)
	if err != nil {
		return 0, err
	}
	if err := t.copyInto(off, m, start, end, es); err != nil {
		t.mem.DecRef(off, end-start)
		return 0, err
	}
	return off, nil
}

// copyInto copies what backs [start, end) of m now into the memory-file
// run at off, as copyOut describes.
func (t *Table) copyInto(off uint64, m Mapping, start, end uint64, es []*entry) error {
	cur := start
	copyGap := func(to uint64) error {
		if cur < to && !m.anonymous() {
			return t.mem.copyFrom(off+(cur-start), m.FD, m.offAt(cur), to-cur, false)
		}
		return nil
	}
	for _, e := range es {
		if err := copyGap(e.start); err != nil {
			return err
		}
		if err := t.mem.copyFrom(off+(e.start-start), e.fd, e.off, e.length(), e.owned); err != nil {
			return err
		}
		cur = e.end
	}
	return copyGap(end)
}

// run narrows [ws, we) to the pages around page (which is always kept)
// whose entries (nil for none) satisfy pred.
func (t *Table) run(page, ws, we uint64, pred func(*entry) bool) (uint64, uint64) {
	lo, hi := page, page+hostarch.PageSize
	for lo > ws {
		e := t.entryAt(lo - hostarch.PageSize)
		if !pred(e) {
			break
		}
		if e == nil {
			lo = max(ws, t.prevEnd(lo)) // the gap before lo, at once
		} else {
			lo = max(ws, e.start)
		}
	}
	for hi < we {
		e := t.entryAt(hi)
		if !pred(e) {
			break
		}
		if e == nil {
			hi = min(we, t.nextStart(hi)) // the gap from hi, at once
		} else {
			hi = min(we, e.end)
		}
	}
	return lo, hi
}

// prevEnd returns the end of the last entry that starts below a, or 0.
func (t *Table) prevEnd(a uint64) uint64 {
	var end uint64
	if a == 0 {
		return 0
	}
	t.ents.DescendLessOrEqual(&entry{start: a - 1}, func(e *entry) bool {
		end = e.end
		return false
	})
	return end
}

// nextStart returns the start of the first entry that starts at or above
// a, or the largest address if there is none.
func (t *Table) nextStart(a uint64) uint64 {
	next := ^uint64(0)
	t.ents.AscendGreaterOrEqual(&entry{start: a}, func(e *entry) bool {
		next = e.start
		return false
	})
	return next
}

// exclusiveRun reports whether es covers [ws, we) with memory-file pages
// that this table alone references, at contiguous offsets.
func (t *Table) exclusiveRun(es []*entry, ws, we uint64) bool {
	if len(es) == 0 || es[0].start != ws || es[len(es)-1].end != we {
		return false
	}
	for i, e := range es {
		if !e.owned || (i > 0 && (es[i-1].end != e.start || es[i-1].off+es[i-1].length() != e.off)) {
			return false
		}
	}
	return t.mem.SharedBytes(es[0].off, we-ws) == 0
}

// hint returns the memory-file offset at which a run for [ws, we) would
// continue its neighbours' backing, or 0.
func (t *Table) hint(ws, we uint64) uint64 {
	if ws > 0 {
		if l := t.entryAt(ws - 1); l != nil && l.owned && !l.cow {
			return l.off + l.length()
		}
	}
	if r := t.entryAt(we); r != nil && r.owned && !r.cow && r.off >= we-ws {
		return r.off - (we - ws)
	}
	return 0
}

// replace puts ne in the place of es (which lie inside ne's range) and maps
// it in a view, dropping the old pages' references once no view maps them.
func (t *Table) replace(es []*entry, ne *entry, max bool) error {
	// Write-protected while any page is tracked, so that no write escapes
	// tracking before syncWP lifts it from the pages that are not.
	ne.wp = t.cleanAny(ne.start, ne.end)
	// Map the new pages over the old in one step; the other view must not
	// keep showing the old ones.
	if _, err := t.host(max, ne.start, ne.end, hseg{fd: ne.fd, off: ne.off, prot: ne.hostProt(max)}, false); err != nil {
		t.clearView(max, ne.start, ne.end)
		for _, e := range es {
			e.setMapped(max, false)
		}
		t.mem.DecRef(ne.off, ne.length())
		return err
	}
	if err := t.clearView(!max, ne.start, ne.end); err != nil {
		return err
	}
	for _, e := range es {
		t.ents.Delete(e)
		if e.owned {
			t.mem.DecRef(e.off, e.length())
		}
	}
	ne.setMapped(max, true)
	t.ents.ReplaceOrInsert(ne)
	if ne.wp {
		t.syncWP(ne.start, ne.end)
	}
	return nil
}

// relayBound returns how many entries a mapping of pages pages may have
// before it is re-laid contiguously.
func relayBound(pages uint64) int { return 64 + int(pages/512) }

// maybeRelay re-lays private mapping m into one contiguous run of its own
// pages if its backing has fragmented beyond relayBound. Best effort: if
// the memory file cannot provide the run, m stays as it is (its pages may
// be left unmapped from the views, which fault them back in).
//
// Pages of m stay writable through the views while the address space's
// lock is held: copies and direct accesses through Translate store into
// them without it. So the range leaves both views before it is copied:
// such a writer then faults and waits for the lock in the fault handler,
// which the caller holds, and finds the new run mapped. (Taking the range
// out of a view whole splits at most its edges; write-protecting it entry
// by entry would cost a host call per fragment.) A zero-copy transfer in
// progress (Pin) hands host addresses to code that cannot wait in the
// fault handler: m is not re-laid under it.
func (t *Table) maybeRelay(m Mapping, max bool) {
	if m.Lazy {
		return // re-laying would back the pages not filled yet
	}
	bound := relayBound((m.End - m.Start) / hostarch.PageSize)
	// Count the breaks in the backing, not the entries: write tracking
	// splits entries (and host mappings) without fragmenting the backing.
	n := 0
	var prev *entry
	t.ents.AscendRange(&entry{start: m.Start}, &entry{start: m.End}, func(e *entry) bool {
		if prev == nil || prev.end != e.start || prev.fd != e.fd || prev.off+prev.length() != e.off {
			n++
		}
		prev = e
		return n <= bound
	})
	if n <= bound || t.pins.Load() != 0 {
		return
	}
	end := m.End
	if !m.anonymous() {
		eof, err := fileEnd(m)
		if err != nil {
			return
		}
		end = eof
	}
	if end <= m.Start {
		return
	}
	t.splitAt(m.Start)
	t.splitAt(end)
	es := t.entriesIn(m.Start, end)
	off, err := t.mem.Allocate(end-m.Start, 0)
	if err != nil {
		return
	}
	t.Invalidate() // the backing moves under direct accesses
	for _, mx := range []bool{false, true} {
		err := t.clearView(mx, m.Start, end)
		for _, e := range es {
			if err == nil || !t.mapsAny(mx, e.start, e.end) {
				e.setMapped(mx, false)
			}
		}
		if err != nil {
			// Some pages may still be writable: copying them could
			// lose stores.
			t.mem.DecRef(off, end-m.Start)
			return
		}
	}
	if err := t.copyInto(off, m, m.Start, end, es); err != nil {
		t.mem.DecRef(off, end-m.Start)
		return
	}
	ne := &entry{start: m.Start, end: end, fd: t.mem.FD(), off: off, owned: true, prot: m.Prot, maxProt: m.MaxProt}
	t.replace(es, ne, max)
	t.mergeAround(m.Start, end)
}

// mapsAny reports whether a view maps anything in [start, end).
func (t *Table) mapsAny(max bool, start, end uint64) bool {
	v := t.view(max)
	if v == nil {
		return false
	}
	mapped := false
	v.forSegs(start, end, func(s hseg) bool { mapped = !s.reserved(); return !mapped })
	return mapped
}

// AccessibleUpTo returns the end of the longest prefix of [start, end)
// that a view maps for an access (a write, if write), at most end. Pages of
// a file wholly beyond its end are not accessible (the host raises SIGBUS).
func (t *Table) AccessibleUpTo(start, end uint64, write, max bool) uint64 {
	cur := start
	for _, e := range t.entriesIn(start, end) {
		if e.start > cur || !e.mapped(max) {
			return cur
		}
		if write && e.hostProt(max)&unix.PROT_WRITE == 0 {
			return cur
		}
		if e.hostProt(max)&unix.PROT_READ == 0 {
			return cur
		}
		if !e.owned {
			if eof := fileEndIn(e); eof < min(e.end, end) {
				if eof <= cur {
					return cur
				}
				return eof
			}
		}
		cur = min(e.end, end)
	}
	return cur
}

// fileEndIn returns the simulated address at which e's file ends (rounded
// up to a page), or e.end if the file reaches past e.
func fileEndIn(e *entry) uint64 {
	var st unix.Stat_t
	if unix.Fstat(e.fd, &st) != nil {
		return e.end
	}
	size := uint64(st.Size)
	if size <= e.off {
		return e.start
	}
	rounded := (size - e.off + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
	if rounded >= e.length() {
		return e.end
	}
	return e.start + rounded
}

// beyondEOF reports whether page, in e (which caches a file's pages), lies
// wholly beyond the end of the file.
func beyondEOF(e *entry, page uint64) bool {
	return !e.owned && page >= fileEndIn(e)
}

// detach makes both views stop mapping [start, end) and splits the entries
// at its edges, for the caller to drop or move the entries inside; it
// returns the first host error.
func (t *Table) detach(start, end uint64) error {
	var first error
	for _, max := range []bool{false, true} {
		if err := t.clearView(max, start, end); err != nil && first == nil {
			first = err
		}
	}
	t.splitAt(start)
	t.splitAt(end)
	return first
}

// Unmap drops the backing of [start, end): the views stop mapping it and
// the references of owned pages are dropped. Used for munmap, a fixed mmap
// over old mappings, and MADV_DONTNEED of private pages.
//
// Preconditions: start and end are page-aligned.
func (t *Table) Unmap(start, end uint64) error {
	if start >= end {
		return nil
	}
	t.untrack(start, end)
	first := t.detach(start, end)
	for _, e := range t.entriesIn(start, end) {
		t.ents.Delete(e)
		if e.owned {
			t.mem.DecRef(e.off, e.length())
		}
	}
	return first
}

// Protect changes the host protection of [start, end), a mapping whose
// Perms became prot (HostProt).
//
// It changes the generation even where the host protection stays the same:
// the mapping's Perms changed (Execute, which the host never grants).
func (t *Table) Protect(start, end uint64, prot int) error {
	t.Invalidate()
	t.splitAt(start)
	t.splitAt(end)
	for _, e := range t.entriesIn(start, end) {
		old := e.hostProt(false)
		e.prot = prot
		if !e.inApp || e.hostProt(false) == old {
			continue
		}
		if _, err := t.host(false, e.start, e.end, hseg{prot: e.hostProt(false)}, true); err != nil {
			t.clearView(false, e.start, e.end)
			e.inApp = false
			return err
		}
	}
	t.mergeAround(start, end)
	return nil
}

// Move moves the backing of [start, end) to [dst, dst+end-start), for
// mremap: owned pages move with their references (nothing is copied);
// cached backing of shared and file mappings is dropped (the next access
// faults it in at the new address). Nothing is mapped at the target
// afterwards.
//
// Preconditions: nothing backs the target (Unmap it first); the ranges do
// not overlap.
func (t *Table) Move(start, end, dst uint64) error {
	t.untrack(start, end)
	t.untrack(dst, dst+(end-start))
	first := t.detach(start, end)
	for _, e := range t.entriesIn(start, end) {
		t.ents.Delete(e)
		if !e.owned {
			continue
		}
		ne := *e
		ne.start, ne.end = dst+(e.start-start), dst+(e.end-start)
		ne.inApp, ne.inMax, ne.wp = false, false, false
		t.ents.ReplaceOrInsert(&ne)
	}
	t.mergeAround(dst, dst+(end-start))
	return first
}

// Share makes the owned pages of [start, end), part of a private mapping,
// copy-on-write in t and gives child, a table sharing t's memory file, the
// same pages: fork(2) for one private mapping. Nothing is mapped in the
// child until it faults.
func (t *Table) Share(child *Table, start, end uint64) error {
	if child.mem != t.mem {
		panic("pma: Share with a table over another memory file")
	}
	t.splitAt(start)
	t.splitAt(end)
	for _, e := range t.entriesIn(start, end) {
		if !e.owned {
			continue
		}
		if !e.cow {
			e.cow = true
			for _, mx := range []bool{false, true} {
				if !e.mapped(mx) || (e.prot|e.maxProt)&unix.PROT_WRITE == 0 {
					continue
				}
				if ev, err := t.host(mx, e.start, e.end, hseg{prot: e.hostProt(mx)}, true); err != nil {
					// Writes must not reach a shared page: unmap it.
					t.clearView(mx, e.start, e.end)
					e.setMapped(mx, false)
				} else if ev {
					break
				}
			}
		}
		t.mem.IncRef(e.off, e.length())
		ce := *e
		ce.inApp, ce.inMax, ce.wp = false, false, child.cleanAny(ce.start, ce.end)
		child.ents.ReplaceOrInsert(&ce)
	}
	t.mergeAround(start, end)
	child.syncWP(start, end)
	child.mergeAround(start, end)
	return nil
}

// Owned calls f for each run of memory-file pages that owned entries in
// [start, end) reference.
func (t *Table) Owned(start, end uint64, f func(off, length uint64)) {
	for _, e := range t.entriesIn(start, end) {
		if !e.owned {
			continue
		}
		s, en := max(e.start, start), min(e.end, end)
		if s < en {
			f(e.off+(s-e.start), en-s)
		}
	}
}

// Resident sets vec[i] to 1 for each page i of [start, end) that is
// resident in host memory (and leaves the others as they are): mapped
// pages as mincore(2) reports them, owned pages not mapped as the memory
// file holds them. Pages not backed are not resident.
//
// Preconditions: len(vec) >= (end-start)/PageSize.
func (t *Table) Resident(start, end uint64, vec []byte) {
	for _, e := range t.entriesIn(start, end) {
		s, en := max(e.start, start), min(e.end, end)
		if s >= en {
			continue
		}
		out := vec[(s-start)/hostarch.PageSize : (en-start)/hostarch.PageSize]
		if e.inApp {
			mincore(t.app.Base()+uintptr(s), en-s, out)
			continue
		}
		if e.owned {
			fileResident(e.fd, e.off+(s-e.start), en-s, out)
		}
	}
}

// ResidentPages returns the number of pages of [start, end) that Resident
// reports resident, in time that grows with the pages backed (not the
// range) and memory bounded whatever the range's size.
func (t *Table) ResidentPages(start, end uint64) uint64 {
	var n uint64
	t.ResidentEach(start, end, func(uint64, bool, uint64) { n++ })
	return n
}

// Close unmaps everything from the views, leaving them reserved and
// PROT_NONE, drops the owned pages' references, and gives back the
// account. It returns the function that releases the views' address space:
// the caller runs it once nothing can touch the views any more (a copy in
// flight when Close is called may still fault on them).
func (t *Table) Close() (release func()) {
	t.closed = true
	t.Invalidate()
	t.soft.clear()
	t.rclean.clear()
	for _, max := range []bool{false, true} {
		if v := t.view(max); v != nil && v.Mappings() > 1 {
			p := v.plan(0, t.size, reserveSeg(0, t.size), false)
			v.apply(p, 0, t.size, reserveSeg(0, t.size), false)
		}
	}
	t.ents.Ascend(func(e *entry) bool {
		if e.owned {
			t.mem.DecRef(e.off, e.length())
		}
		return true
	})
	t.ents.Clear(false)
	t.floor = 0
	t.recount()
	acct.adjust(-t.committed, true)
	t.committed = 0
	views := []*View{t.app, t.max}
	acct.pending.Add(1)
	return func() {
		for _, v := range views {
			if v == nil {
				continue
			}
			acct.addMappings(-v.Mappings())
			acct.addReserved(-int64(v.Size()))
			v.release()
		}
		acct.pending.Add(-1)
	}
}

// Fill maps [start, end) of m, a shared or file mapping, in the app view:
// its backing, and the private copies already made.
func (t *Table) Fill(m Mapping, start, end uint64) error {
	return t.fill(m, start, end, false)
}

// Commit makes the host allocate the pages of [start, end) that the app
// view maps (for MAP_POPULATE and mlock): they are resident afterwards.
// Best effort: pages the host cannot provide stay as they are.
func (t *Table) Commit(start, end uint64, write bool) {
	for _, e := range t.entriesIn(start, end) {
		if !e.inApp {
			continue
		}
		s, en := max(e.start, start), min(e.end, end)
		w := write && e.hostProt(false)&unix.PROT_WRITE != 0
		if e.hostProt(false)&unix.PROT_READ == 0 {
			continue
		}
		populateHost(t.app.Base()+uintptr(s), en-s, w)
	}
}
