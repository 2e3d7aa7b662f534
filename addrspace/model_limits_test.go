package addrspace

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// The randomised model test of the limits, locking and stack calls: a
// page-array reference model of anonymous mappings with their lock and
// growsdown bits and the four limits, driven by random Mmap (fixed,
// GrowsDown, Locked), Munmap, Mprotect, Mlock, Munlock, Mlockall,
// Munlockall, Madvise(DONTNEED), one-byte writes (which grow stacks),
// SetLimits; after every operation the errno must agree, and regularly
// every page's attributes and bytes. It is separate from model_test.go's
// model, whose pages have no lock or stack state.
//
// The model takes from the implementation only what Linux decides by its
// VMA boundaries, which depend on anon_vma history the model does not
// keep: the extent of the VMA a stack grows (for Limits.Stack), read from
// Mappings as the mremap model does. Mprotect is not drawn while a Data
// limit is set (which pieces change before the limit is met depends on
// the same boundaries); limits_test.go covers it.

type lmPage struct {
	perms                               hostarch.AccessType
	private, growsDown, locked, onFault bool
	data                                []byte // nil: zeros
}

type lmModel struct {
	pages    []*lmPage // by page number; nil: unmapped
	limits   Limits
	defLock  bool // MCL_FUTURE
	defFault bool // MCL_FUTURE|MCL_ONFAULT
}

func (m *lmModel) count(f func(p *lmPage) bool) uint64 {
	var n uint64
	for _, p := range m.pages {
		if p != nil && f(p) {
			n++
		}
	}
	return n
}

func lmIsData(p *lmPage) bool { return p.private && p.perms.Write && !p.growsDown }

// over reports whether used+add pages exceed a limit in bytes.
func lmOver(used, add, limit uint64) bool {
	return limit != 0 && used+add > limit/pg
}

func (m *lmModel) mmap(start, n uint64, o MmapOpts) unix.Errno {
	if start < 1 || start+n > uint64(len(m.pages)) {
		return unix.ENOMEM
	}
	locked := o.Locked || m.defLock
	if locked && lmOver(m.count(func(p *lmPage) bool { return p.locked }), n, m.limits.Memlock) {
		return unix.EAGAIN
	}
	if o.GrowsDown && !o.Private {
		return unix.EINVAL
	}
	mapped := uint64(0)
	for i := start; i < start+n; i++ {
		if m.pages[i] != nil {
			mapped++
		}
	}
	add := n - mapped
	if lmOver(m.count(func(*lmPage) bool { return true }), add, m.limits.AS) {
		return unix.ENOMEM
	}
	np := lmPage{perms: o.Perms, private: o.Private, growsDown: o.GrowsDown, locked: locked, onFault: m.defLock && m.defFault}
	if lmIsData(&np) && lmOver(m.count(lmIsData), add, m.limits.Data) {
		return unix.ENOMEM
	}
	for i := start; i < start+n; i++ {
		p := np
		m.pages[i] = &p
	}
	return 0
}

// lockRange is mlock's range in pages, and whether it wraps.
func lmLockRange(addr hostarch.Addr, length uint64) (start, end uint64, wraps bool) {
	a, l := lockPageRange(addr, length)
	e := uint64(a) + l
	return uint64(a) / pg, e / pg, e < uint64(a)
}

func (m *lmModel) mlock(addr hostarch.Addr, length uint64, onFault, lock bool) unix.Errno {
	_, l := lockPageRange(addr, length)
	if lock && m.limits.Memlock != 0 {
		locked := m.count(func(p *lmPage) bool { return p.locked }) + l/pg
		if locked > m.limits.Memlock/pg {
			s, e, _ := lmLockRange(addr, length)
			for i := s; i < e && i < uint64(len(m.pages)); i++ {
				if p := m.pages[i]; p != nil && p.locked {
					locked--
				}
			}
		}
		if locked > m.limits.Memlock/pg {
			return unix.ENOMEM
		}
	}
	s, e, wraps := lmLockRange(addr, length)
	if wraps {
		return unix.EINVAL
	}
	if l == 0 {
		return 0
	}
	if s >= uint64(len(m.pages)) || m.pages[s] == nil {
		return unix.ENOMEM
	}
	for i := s; i < e; i++ {
		if i >= uint64(len(m.pages)) || m.pages[i] == nil {
			return unix.ENOMEM
		}
		m.pages[i].locked, m.pages[i].onFault = lock, lock && onFault
	}
	if lock && !onFault {
		for i := s; i < e; i++ {
			if !m.pages[i].perms.Any() {
				return unix.ENOMEM // populate cannot touch PROT_NONE
			}
		}
	}
	return 0
}

func (m *lmModel) mlockall(flags int) unix.Errno {
	if flags == 0 || flags&^(unix.MCL_CURRENT|unix.MCL_FUTURE|unix.MCL_ONFAULT) != 0 || flags == unix.MCL_ONFAULT {
		return unix.EINVAL
	}
	if flags&unix.MCL_CURRENT != 0 && lmOver(m.count(func(*lmPage) bool { return true }), 0, m.limits.Memlock) {
		return unix.ENOMEM
	}
	m.applyAll(flags)
	return 0
}

func (m *lmModel) applyAll(flags int) {
	m.defLock, m.defFault = false, false
	if flags&unix.MCL_FUTURE != 0 {
		m.defLock, m.defFault = true, flags&unix.MCL_ONFAULT != 0
		if flags&unix.MCL_CURRENT == 0 {
			return
		}
	}
	for _, p := range m.pages {
		if p != nil {
			p.locked = flags&unix.MCL_CURRENT != 0
			p.onFault = p.locked && flags&unix.MCL_ONFAULT != 0
		}
	}
}

func (m *lmModel) dontNeed(addr hostarch.Addr, length uint64) unix.Errno {
	if !addr.IsPageAligned() {
		return unix.EINVAL
	}
	l, ok := hostarch.PageRoundUp(length)
	if !ok || uint64(addr)+l < uint64(addr) {
		return unix.EINVAL
	}
	if l == 0 {
		return 0
	}
	hole := false
	for i := uint64(addr) / pg; i < (uint64(addr)+l)/pg; i++ {
		if i >= uint64(len(m.pages)) || m.pages[i] == nil {
			hole = true
			continue
		}
		p := m.pages[i]
		if p.locked {
			return unix.EINVAL
		}
		if p.private {
			p.data = nil
		}
	}
	if hole {
		return unix.ENOMEM
	}
	return 0
}

// write models a one-byte CopyOut at addr: the page's permissions, or
// the growth of the stack above an unmapped page. vmaEnd gives the end of
// the implementation's VMA starting at a page (for Limits.Stack).
func (m *lmModel) write(addr hostarch.Addr, b byte, vmaEnd func(page uint64) uint64) bool {
	i := uint64(addr) / pg
	if i >= uint64(len(m.pages)) {
		return false
	}
	if m.pages[i] == nil && !m.grow(i, vmaEnd) {
		return false
	}
	p := m.pages[i]
	if !p.perms.Effective().Write {
		return false
	}
	if p.data == nil {
		p.data = make([]byte, pg)
	}
	p.data[addr%pg] = b
	return true
}

func (m *lmModel) grow(i uint64, vmaEnd func(page uint64) uint64) bool {
	if i < 1 {
		return false // below MinAddr
	}
	top := i + 1
	for top < uint64(len(m.pages)) && m.pages[top] == nil {
		top++
	}
	if top >= uint64(len(m.pages)) || !m.pages[top].growsDown {
		return false
	}
	st := m.pages[top]
	// The mapping below, and the guard gap.
	below := int64(i) - 1
	for below >= 0 && m.pages[below] == nil {
		below--
	}
	if below >= 0 {
		if p := m.pages[below]; !p.growsDown && p.perms.Any() && i-uint64(below+1) < stackGuardGap/pg {
			return false
		}
	}
	grow := top - i
	if lmOver(m.count(func(*lmPage) bool { return true }), grow, m.limits.AS) {
		return false
	}
	if l := m.limits.Stack; l != 0 && (vmaEnd(top)-i)*pg > l {
		return false
	}
	if st.locked && lmOver(m.count(func(p *lmPage) bool { return p.locked }), grow, m.limits.Memlock) {
		return false
	}
	for k := i; k < top; k++ {
		p := *st
		p.data = nil
		m.pages[k] = &p
	}
	return true
}

func TestModelLimits(t *testing.T) {
	ops := 20000
	if testing.Short() {
		ops = 4000
	}
	if s := os.Getenv("MMSIM_MODEL_OPS"); s != "" {
		fmt.Sscan(s, &ops)
	}
	for seed := int64(1); seed <= 4; seed++ {
		runModelLimits(t, seed, ops/4)
	}
}

func runModelLimits(t *testing.T, seed int64, ops int) {
	const pages = 640 // more than the guard gap, with room on both sides
	as, err := New(Options{Size: pages * pg})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	m := &lmModel{pages: make([]*lmPage, pages)}
	rng := rand.New(rand.NewSource(seed))
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		tail := log
		if len(tail) > 20 {
			tail = tail[len(tail)-20:]
		}
		var b bytes.Buffer
		for _, l := range tail {
			b.WriteString("  " + l + "\n")
		}
		t.Fatalf("seed %d, after %d ops (last:\n%s): %s", seed, len(log), b.String(), fmt.Sprintf(format, args...))
	}
	randPage := func() uint64 {
		// Clustered near the top, where stacks live, and anywhere.
		if rng.Intn(2) == 0 {
			return uint64(pages - 1 - rng.Intn(40))
		}
		return uint64(rng.Intn(pages))
	}
	randLimit := func() uint64 {
		switch rng.Intn(4) {
		case 0:
			return uint64(rng.Intn(80)+1)*pg - uint64(rng.Intn(2))*uint64(rng.Intn(pg))
		default:
			return 0
		}
	}
	vmaEnd := func(page uint64) uint64 {
		for _, mp := range as.Mappings() {
			if mp.Range.Contains(hostarch.Addr(page * pg)) {
				// The run of Mappings that Linux keeps as one VMA is what
				// Mappings shows as one mapping.
				return uint64(mp.Range.End) / pg
			}
		}
		return page + 1
	}
	// outcomes counts each kind of operation by result, so that the log
	// shows the sequence reached the limits and grew stacks.
	outcomes := map[string]int{}
	check := func(what string, got error, want unix.Errno) {
		t.Helper()
		if errnoOf(got) != want {
			fail("%s = %v; want %v", what, got, want)
		}
		name := what
		if i := bytes.IndexByte([]byte(what), '('); i > 0 {
			name = what[:i]
		}
		outcomes[fmt.Sprintf("%s:%v", name, want)]++
	}
	for op := 0; op < ops; op++ {
		switch k := rng.Intn(100); {
		case k < 18: // Mmap
			start, n := randPage(), uint64(rng.Intn(6)+1)
			o := MmapOpts{Addr: hostarch.Addr(start * pg), Length: n * pg, Fixed: true, Perms: hostarch.AccessType{Read: rng.Intn(4) != 0, Write: rng.Intn(2) == 0},
				Private: rng.Intn(5) != 0, GrowsDown: rng.Intn(3) == 0, Locked: rng.Intn(5) == 0}
			if start == 0 {
				continue // EPERM, as model_test.go covers
			}
			if start+n > pages {
				n = pages - start
				o.Length = n * pg
			}
			log = append(log, fmt.Sprintf("Mmap(%+v)", o))
			_, err := as.Mmap(o)
			check(log[len(log)-1], err, m.mmap(start, n, o))
		case k < 24: // Munmap
			start, n := randPage(), uint64(rng.Intn(8)+1)
			n = min(n, pages-start)
			log = append(log, fmt.Sprintf("Munmap(%#x, %d pages)", start*pg, n))
			if start == 0 || n == 0 {
				continue
			}
			check(log[len(log)-1], as.Munmap(hostarch.Addr(start*pg), n*pg), 0)
			for i := start; i < start+n; i++ {
				m.pages[i] = nil
			}
		case k < 32: // Mprotect, not under a Data limit (see above)
			start, n := randPage(), uint64(rng.Intn(6)+1)
			perms := hostarch.AccessType{Read: rng.Intn(3) != 0, Write: rng.Intn(2) == 0}
			if m.limits.Data != 0 || start+n > pages {
				continue
			}
			log = append(log, fmt.Sprintf("Mprotect(%#x, %d pages, %v)", start*pg, n, perms))
			want := unix.Errno(0)
			for i := start; i < start+n; i++ {
				if m.pages[i] == nil {
					want = unix.ENOMEM
					break
				}
				m.pages[i].perms = perms
			}
			check(log[len(log)-1], as.Mprotect(hostarch.Addr(start*pg), n*pg, perms), want)
		case k < 44: // Mlock, Munlock
			addr := hostarch.Addr(randPage()*pg) + hostarch.Addr(rng.Intn(3)*rng.Intn(pg))
			length := uint64(rng.Intn(8*pg + 1))
			if rng.Intn(40) == 0 {
				length = ^uint64(0) - uint64(rng.Intn(3*pg))
			}
			onFault := rng.Intn(3) == 0
			if rng.Intn(3) == 0 {
				log = append(log, fmt.Sprintf("Munlock(%#x, %#x)", addr, length))
				check(log[len(log)-1], as.Munlock(addr, length), m.mlock(addr, length, false, false))
				continue
			}
			log = append(log, fmt.Sprintf("Mlock(%#x, %#x, %v)", addr, length, onFault))
			want := m.mlock(addr, length, onFault, true)
			check(log[len(log)-1], as.Mlock(addr, length, onFault), want)
			if want == 0 && !onFault && hostPopulates() {
				// Every locked accessible page of the range is resident.
				s, e, _ := lmLockRange(addr, length)
				for i := s; i < e; i++ {
					res, err := as.Mincore(hostarch.Addr(i*pg), pg)
					if err != nil || !res[0] {
						fail("page %#x not resident after Mlock: %v, %v", i*pg, res, err)
					}
				}
			}
		case k < 47: // Mlockall, Munlockall
			flags := []int{0, unix.MCL_CURRENT, unix.MCL_FUTURE, unix.MCL_CURRENT | unix.MCL_FUTURE, unix.MCL_ONFAULT,
				unix.MCL_FUTURE | unix.MCL_ONFAULT, unix.MCL_CURRENT | unix.MCL_ONFAULT, 0x100}[rng.Intn(8)]
			if rng.Intn(3) == 0 {
				log = append(log, "Munlockall()")
				check(log[len(log)-1], as.Munlockall(), 0)
				m.applyAll(0)
				continue
			}
			log = append(log, fmt.Sprintf("Mlockall(%#x)", flags))
			check(log[len(log)-1], as.Mlockall(flags), m.mlockall(flags))
		case k < 53: // Madvise(DONTNEED)
			addr := hostarch.Addr(randPage() * pg)
			if rng.Intn(8) == 0 {
				addr++
			}
			length := uint64(rng.Intn(6*pg + 1))
			log = append(log, fmt.Sprintf("Madvise(%#x, %#x, DONTNEED)", addr, length))
			want := m.dontNeed(addr, length)
			check(log[len(log)-1], as.Madvise(addr, length, unix.MADV_DONTNEED), want)
		case k < 80: // a one-byte write, often just below a stack
			var addr hostarch.Addr
			if rng.Intn(2) == 0 {
				addr = hostarch.Addr(randPage()*pg) + hostarch.Addr(rng.Intn(pg))
			} else {
				// Below the lowest stack, within a few pages or far.
				for i := uint64(1); i < pages; i++ {
					if p := m.pages[i]; p != nil && p.growsDown {
						if d := uint64(rng.Intn(4)+1) * pg; rng.Intn(4) != 0 && i*pg > d {
							addr = hostarch.Addr(i*pg - d + uint64(rng.Intn(pg)))
						} else {
							addr = hostarch.Addr(rng.Intn(int(i * pg)))
						}
						break
					}
				}
			}
			b := byte(rng.Intn(255) + 1)
			log = append(log, fmt.Sprintf("CopyOut(%#x, [%d])", addr, b))
			grew := addr/pg < pages && m.pages[addr/pg] == nil
			want := m.write(addr, b, vmaEnd)
			if grew {
				outcomes[fmt.Sprintf("growth:%v", m.pages[addr/pg] != nil)]++
			}
			n, err := as.CopyOut(ctx, addr, []byte{b}, noOpt)
			if (err == nil) != want || (want && n != 1) {
				fail("CopyOut(%#x) = %d, %v; want success %v", addr, n, err, want)
			}
		case k < 84: // SetLimits
			l := Limits{AS: randLimit(), Data: randLimit(), Stack: randLimit(), Memlock: randLimit()}
			log = append(log, fmt.Sprintf("SetLimits(%+v)", l))
			check(log[len(log)-1], as.SetLimits(l), 0)
			m.limits = l
		default:
			log = append(log, "compare")
			lmCompare(as, m, fail)
		}
	}
	lmCompare(as, m, fail)
	t.Logf("seed %d: %d operations, zero divergence; outcomes %v", seed, ops, outcomes)
}

// lmCompare checks every page's attributes and bytes against the model.
func lmCompare(as *AddressSpace, m *lmModel, fail func(string, ...any)) {
	covered := 0
	for _, mp := range as.Mappings() {
		for a := mp.Range.Start; a < mp.Range.End; a += pg {
			p := m.pages[uint64(a)/pg]
			if p == nil || p.perms != mp.Perms || p.private != mp.Private || p.growsDown != mp.GrowsDown ||
				p.locked != mp.Locked || p.onFault != mp.LockOnFault {
				fail("mapping %+v disagrees with the model at %#x: %+v", mp, a, p)
			}
			covered++
		}
	}
	if n := m.count(func(*lmPage) bool { return true }); uint64(covered) != n {
		fail("the mappings cover %d pages, the model %d", covered, n)
	}
	buf := make([]byte, pg)
	zero := make([]byte, pg)
	for i, p := range m.pages {
		if p == nil {
			continue
		}
		n, err := as.CopyIn(ctx, hostarch.Addr(i*pg), buf, usermem.IOOpts{IgnorePermissions: true})
		want := p.data
		if want == nil {
			want = zero
		}
		if n != pg || err != nil || !bytes.Equal(buf, want) {
			fail("page %#x: CopyIn = %d, %v, bytes equal %v", i*pg, n, err, bytes.Equal(buf, want))
		}
	}
}
