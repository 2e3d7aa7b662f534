package addrspace

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// The differential test of MAP_GROWSDOWN, MAP_LOCKED, mlock, munlock,
// mlockall and munlockall against the host kernel: each step runs on an
// AddressSpace and, with real system calls, at the same offsets of a host
// range (as in hostdiff_host_test.go, whose hostRange copies it reuses),
// and after each step the errno, the byte count of copies, the mappings
// (range, permissions, and the VmFlags gd, lo and lf from
// /proc/self/smaps) and the residency of every page (mincore) must agree.
//
// Limits: RLIMIT_STACK and RLIMIT_MEMLOCK are compared in a child process
// that sets them small and drops CAP_IPC_LOCK (TestHostDiffRlimits); the
// other runs give the AddressSpace the host's RLIMIT_STACK.
//
// What is not compared, and why:
//   - RLIMIT_AS and RLIMIT_DATA, and mlockall(MCL_CURRENT)'s limit: the
//     host counts the whole test process (the Go runtime's memory), an
//     AddressSpace only its own mappings. Table tests cover them
//     (limits_test.go, mlock_test.go). MCL_FUTURE under a small
//     RLIMIT_MEMLOCK would make the Go runtime's own mmap fail.
//   - RLIMIT_MEMLOCK of 0: Linux refuses every lock with EPERM, mmsim's 0
//     is unlimited (see Limits.Memlock).
//   - Mlock past the end of the space: the host range is bounded by other
//     host mappings (the guards), not by the end of an address space.
//   - File mappings: the runs map anonymous memory only; mlock's ENOMEM
//     for a file page past its end and the copy-on-write that Mprotect
//     makes in a locked private file mapping are table tests
//     (mlock_test.go), from Linux's source.
//   - Deliberate difference, invisible here: a locked read-only private
//     anonymous page is a memory-file page of its own in mmsim, where
//     Linux maps the shared zero page; mincore reports both resident.
//   - fork: a Go test cannot fork without exec, so Clone's dropping of the
//     locks (dup_mmap) is a table test (TestMlockClone*).

// hlPages is the size of the host range, in pages: more than the stack
// guard gap (256 pages) with room on both sides.
const hlPages = 1024

// hlRun is one differential run.
type hlRun struct {
	as    *AddressSpace
	h     *hostRange
	guard *os.File
}

var hlNextBase uintptr = 0x1900_0000_0000

func newHLRun(t *testing.T) *hlRun {
	t.Helper()
	const size = hlPages * pg
	var stack unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_STACK, &stack); err != nil {
		t.Fatal(err)
	}
	lim := Limits{}
	if stack.Cur != unix.RLIM_INFINITY {
		lim.Stack = stack.Cur
	}
	as, err := New(Options{Size: size, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	guard, err := memfdWith("hlguard", make([]byte, pg))
	if err != nil {
		t.Fatal(err)
	}
	r := &hlRun{as: as, guard: guard, h: &hostRange{}}
	t.Cleanup(r.close)
	for tries := 0; ; tries++ {
		base := hlNextBase
		hlNextBase += 2 * size
		_, _, e := unix.Syscall6(unix.SYS_MMAP, base-pg, size+2*pg, unix.PROT_NONE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_FIXED_NOREPLACE, ^uintptr(0), 0)
		if e == 0 {
			r.h.base = base
			break
		}
		if tries > 100 {
			t.Fatalf("reserving a host range: %v", e)
		}
	}
	// Guards: PROT_NONE shared mappings of their own file, which nothing
	// merges with and which do not guard a stack (not accessible).
	for _, g := range []uintptr{r.h.base - pg, r.h.base + size} {
		if _, _, e := unix.Syscall6(unix.SYS_MMAP, g, pg, unix.PROT_NONE, unix.MAP_SHARED|unix.MAP_FIXED, guard.Fd(), 0); e != 0 {
			t.Fatalf("guard: %v", e)
		}
	}
	if _, _, e := unix.Syscall(unix.SYS_MUNMAP, r.h.base, size, 0); e != 0 {
		t.Fatalf("munmap: %v", e)
	}
	if err := unix.Pipe2(r.h.pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	if r.h.mem, err = os.OpenFile("/proc/self/mem", os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *hlRun) close() {
	r.as.Close()
	if r.h.base != 0 {
		unix.Syscall(unix.SYS_MUNMAP, r.h.base-pg, hlPages*pg+2*pg, 0)
	}
	if r.h.pipe[0] != 0 {
		unix.Close(r.h.pipe[0])
		unix.Close(r.h.pipe[1])
	}
	if r.h.mem != nil {
		r.h.mem.Close()
	}
	r.guard.Close()
}

// hlStep is one operation, as the Go call on the AddressSpace and the
// system call on the host; each returns a count (copies) and an errno.
type hlStep struct {
	name string
	sim  func(as *AddressSpace) (uint64, unix.Errno)
	host func(r *hlRun) (uint64, unix.Errno)
}

func hlErr(err error) (uint64, unix.Errno) { return 0, errnoOf(err) }

func hlSys(trap, a1, a2, a3 uintptr) (uint64, unix.Errno) {
	_, _, e := unix.Syscall(trap, a1, a2, a3)
	return 0, e
}

// hlMmap maps pages [at, at+n) fixed, anonymous; the first page of a
// private writable mapping is written on both sides (see the anon_vma note
// in hostdiff_host_test.go).
func hlMmap(at, n int, perms hostarch.AccessType, private, growsDown, locked bool) hlStep {
	addr, length := hostarch.Addr(at*pg), uint64(n*pg)
	flags := uintptr(unix.MAP_ANONYMOUS | unix.MAP_FIXED)
	if private {
		flags |= unix.MAP_PRIVATE
	} else {
		flags |= unix.MAP_SHARED
	}
	if growsDown {
		flags |= unix.MAP_GROWSDOWN
	}
	if locked {
		flags |= unix.MAP_LOCKED
	}
	touch := private && perms.Write
	return hlStep{
		name: fmt.Sprintf("mmap(page %d, %d pages, %v, private %v, growsdown %v, locked %v)", at, n, perms, private, growsDown, locked),
		sim: func(as *AddressSpace) (uint64, unix.Errno) {
			_, err := as.Mmap(MmapOpts{Addr: addr, Length: length, Fixed: true, Perms: perms, Private: private, GrowsDown: growsDown, Locked: locked})
			if err == nil && touch {
				as.CopyOut(ctx, addr, []byte{0}, noOpt)
			}
			return hlErr(err)
		},
		host: func(r *hlRun) (uint64, unix.Errno) {
			_, _, e := unix.Syscall6(unix.SYS_MMAP, r.h.base+uintptr(addr), uintptr(length), hdProt(perms), flags, ^uintptr(0), 0)
			if e == 0 && touch {
				r.h.copyOut(addr, []byte{0}, false)
			}
			return 0, e
		},
	}
}

// hlWrite writes n bytes at byte offset off through the copy path (the
// kernel's copy_from_user on the host).
func hlWrite(off hostarch.Addr, n int) hlStep {
	src := pattern(n, byte(off))
	return hlStep{
		name: fmt.Sprintf("write(%#x, %d)", off, n),
		sim: func(as *AddressSpace) (uint64, unix.Errno) {
			k, err := as.CopyOut(ctx, off, src, noOpt)
			return uint64(k), errnoOf(err)
		},
		host: func(r *hlRun) (uint64, unix.Errno) { return r.h.copyOut(off, src, false) },
	}
}

// hlRead reads n bytes at byte offset off.
func hlRead(off hostarch.Addr, n int) hlStep {
	return hlStep{
		name: fmt.Sprintf("read(%#x, %d)", off, n),
		sim: func(as *AddressSpace) (uint64, unix.Errno) {
			k, err := as.CopyIn(ctx, off, make([]byte, n), noOpt)
			return uint64(k), errnoOf(err)
		},
		host: func(r *hlRun) (uint64, unix.Errno) {
			b, e := r.h.copyIn(off, uint64(n), false)
			return uint64(len(b)), e
		},
	}
}

func hlMlock(off hostarch.Addr, length uint64, onFault bool) hlStep {
	return hlStep{
		name: fmt.Sprintf("mlock(%#x, %#x, onfault %v)", off, length, onFault),
		sim:  func(as *AddressSpace) (uint64, unix.Errno) { return hlErr(as.Mlock(off, length, onFault)) },
		host: func(r *hlRun) (uint64, unix.Errno) {
			if onFault {
				return hlSys(unix.SYS_MLOCK2, r.h.base+uintptr(off), uintptr(length), unix.MLOCK_ONFAULT)
			}
			return hlSys(unix.SYS_MLOCK, r.h.base+uintptr(off), uintptr(length), 0)
		},
	}
}

func hlMunlock(off hostarch.Addr, length uint64) hlStep {
	return hlStep{
		name: fmt.Sprintf("munlock(%#x, %#x)", off, length),
		sim:  func(as *AddressSpace) (uint64, unix.Errno) { return hlErr(as.Munlock(off, length)) },
		host: func(r *hlRun) (uint64, unix.Errno) {
			return hlSys(unix.SYS_MUNLOCK, r.h.base+uintptr(off), uintptr(length), 0)
		},
	}
}

func hlMadvise(off hostarch.Addr, length uint64, advice int) hlStep {
	return hlStep{
		name: fmt.Sprintf("madvise(%#x, %#x, %d)", off, length, advice),
		sim:  func(as *AddressSpace) (uint64, unix.Errno) { return hlErr(as.Madvise(off, length, advice)) },
		host: func(r *hlRun) (uint64, unix.Errno) {
			return hlSys(unix.SYS_MADVISE, r.h.base+uintptr(off), uintptr(length), uintptr(advice))
		},
	}
}

func hlMprotect(at, n int, perms hostarch.AccessType) hlStep {
	return hlStep{
		name: fmt.Sprintf("mprotect(page %d, %d pages, %v)", at, n, perms),
		sim: func(as *AddressSpace) (uint64, unix.Errno) {
			return hlErr(as.Mprotect(hostarch.Addr(at*pg), uint64(n*pg), perms))
		},
		host: func(r *hlRun) (uint64, unix.Errno) {
			return hlSys(unix.SYS_MPROTECT, r.h.base+uintptr(at*pg), uintptr(n*pg), hdProt(perms))
		},
	}
}

// state renders the mappings (range in pages, permissions, gd/lo/lf) and
// the residency of every page of both sides.
func (r *hlRun) state() (sim, host string) {
	var b strings.Builder
	for _, m := range r.as.Mappings() {
		fmt.Fprintf(&b, "[%d,%d) %s%s%s%s\n", m.Range.Start/pg, m.Range.End/pg, m.Perms,
			flagIf(m.GrowsDown, " gd"), flagIf(m.Locked, " lo"), flagIf(m.LockOnFault, " lf"))
	}
	b.WriteString(r.simResidency())
	sim = b.String()
	b.Reset()
	for _, l := range hostSmaps(r.h.base, hlPages*pg) {
		b.WriteString(l + "\n")
	}
	b.WriteString(r.hostResidency())
	return sim, b.String()
}

func flagIf(set bool, s string) string {
	if set {
		return s
	}
	return ""
}

// simResidency is one character per page: '-' unmapped, '0' or '1'.
func (r *hlRun) simResidency() string {
	var b strings.Builder
	vec := make([]byte, 1)
	for i := range hlPages {
		if err := r.as.MincoreInto(hostarch.Addr(i*pg), pg, vec); err != nil {
			b.WriteByte('-')
		} else {
			b.WriteByte('0' + vec[0]&1)
		}
	}
	return b.String()
}

func (r *hlRun) hostResidency() string {
	var b strings.Builder
	vec := make([]byte, 1)
	for i := range hlPages {
		_, _, e := unix.Syscall(unix.SYS_MINCORE, r.h.base+uintptr(i*pg), pg, uintptr(unsafe.Pointer(&vec[0])))
		if e != 0 {
			b.WriteByte('-')
		} else {
			b.WriteByte('0' + vec[0]&1)
		}
	}
	return b.String()
}

// hostSmaps lists the host's mappings in [base, base+size) from
// /proc/self/smaps, in the form of state.
func hostSmaps(base uintptr, size uint64) []string {
	text, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		panic(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(text))
	inRange := false
	var cur string
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if se := strings.SplitN(fields[0], "-", 2); len(se) == 2 && !strings.HasSuffix(fields[0], ":") {
			s, err1 := strconv.ParseUint(se[0], 16, 64)
			e, err2 := strconv.ParseUint(se[1], 16, 64)
			if err1 == nil && err2 == nil {
				inRange = s >= uint64(base) && e <= uint64(base)+size
				if inRange {
					perms := strings.TrimRight(fields[1][:3], "p")
					cur = fmt.Sprintf("[%d,%d) %s", (s-uint64(base))/pg, (e-uint64(base))/pg, perms)
				}
				continue
			}
		}
		if inRange && fields[0] == "VmFlags:" {
			for _, f := range []string{"gd", "lo", "lf"} {
				for _, g := range fields[1:] {
					if g == f {
						cur += " " + f
					}
				}
			}
			out = append(out, cur)
		}
	}
	return out
}

func runHL(t *testing.T, steps []hlStep) {
	t.Helper()
	runHLOn(t, newHLRun(t), steps)
}

func runHLOn(t *testing.T, r *hlRun, steps []hlStep) {
	t.Helper()
	for i, s := range steps {
		n, e := s.sim(r.as)
		hn, he := s.host(r)
		if n != hn || e != he {
			t.Fatalf("step %d, %s: mmsim %d, %v; host %d, %v", i, s.name, n, e, hn, he)
		}
		sim, host := r.state()
		if sim != host {
			t.Fatalf("step %d, %s: the spaces differ:\nmmsim:\n%s\nhost:\n%s", i, s.name, sim, host)
		}
	}
}

// TestHostDiffLimits runs cases of MAP_GROWSDOWN, MAP_LOCKED, mlock and
// munlock on both sides.
func TestHostDiffLimits(t *testing.T) {
	rw, r, none := hostarch.ReadWrite, hostarch.Read, hostarch.NoAccess
	const P = hostarch.Addr(pg)
	const gap = 256
	huge := ^uint64(0)
	for _, tc := range []struct {
		name  string
		steps []hlStep
	}{
		{"growsdown: a write one byte below", []hlStep{hlMmap(900, 4, rw, true, true, false), hlWrite(900*P-1, 1)}},
		{"growsdown: a write across the start", []hlStep{hlMmap(900, 4, rw, true, true, false), hlWrite(898*P+10, 3*pg)}},
		{"growsdown: a read far below", []hlStep{hlMmap(900, 4, rw, true, true, false), hlRead(100*P+5, 8)}},
		{"growsdown: above an accessible mapping's guard gap", []hlStep{hlMmap(500, 1, r, true, false, false),
			hlMmap(900, 4, rw, true, true, false), hlWrite((501+gap)*P, 1)}},
		{"growsdown: inside an accessible mapping's guard gap", []hlStep{hlMmap(500, 1, r, true, false, false),
			hlMmap(900, 4, rw, true, true, false), hlWrite((501+gap)*P-1, 1)}},
		{"growsdown: just above a PROT_NONE mapping", []hlStep{hlMmap(890, 1, none, true, false, false),
			hlMmap(900, 4, rw, true, true, false), hlWrite(891*P, 1)}},
		{"growsdown: just above another stack", []hlStep{hlMmap(890, 1, rw, true, true, false),
			hlMmap(900, 4, rw, true, true, false), hlWrite(891*P, 1)}},
		{"growsdown: the lowest piece grows, keeping its permissions", []hlStep{hlMmap(900, 4, rw, true, true, false),
			hlMprotect(900, 1, r), hlRead(890*P, 1), hlWrite(880*P, 1)}},
		{"growsdown: shared", []hlStep{hlMmap(900, 4, rw, false, true, false)}},
		{"growsdown: /proc/self/mem grows it too", []hlStep{hlMmap(900, 4, rw, true, true, false), hlReadForce(899*P, 1)}},
		{"growsdown: /proc/self/mem far below, read-only stack", []hlStep{hlMmap(900, 4, r, true, true, false), hlReadForce(700*P+3, 5)}},
		{"growsdown, locked: growth is locked, only the touched page resident", []hlStep{hlMmap(900, 4, rw, true, true, true),
			hlWrite(895*P, 1)}},
		{"MAP_LOCKED", []hlStep{hlMmap(10, 8, rw, true, false, true)}},
		{"MAP_LOCKED read-only", []hlStep{hlMmap(10, 8, r, true, false, true)}},
		{"MAP_LOCKED PROT_NONE", []hlStep{hlMmap(10, 8, none, true, false, true)}},
		{"MAP_LOCKED shared", []hlStep{hlMmap(10, 8, rw, false, false, true)}},
		{"mlock of the middle", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMlock(12*P, 2*pg, false)}},
		{"mlock on fault", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMlock(12*P, 2*pg, true), hlWrite(13*P, 1)}},
		{"mlock of an unaligned address", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMlock(12*P+100, pg, false)}},
		{"mlock of length 0", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMlock(12*P, 0, false)}},
		{"mlock of an unmapped start", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMlock(9*P, 2*pg, false)}},
		{"mlock across a hole", []hlStep{hlMmap(10, 4, rw, true, false, false), hlMmap(16, 4, r, true, false, false),
			hlMlock(10*P, 10*pg, false)}},
		{"mlock that wraps", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMlock(10*P, huge-pg, false)}},
		{"mlock of a length PAGE_ALIGN wraps to 0", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMlock(10*P, huge, false)}},
		{"mlock of PROT_NONE and read-only pieces", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMprotect(11, 2, none),
			hlMprotect(14, 2, r), hlMlock(10*P, 8*pg, false)}},
		{"mlock on fault, then mlock", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMlock(10*P, 8*pg, true),
			hlMlock(12*P, 2*pg, false)}},
		{"munlock merges back", []hlStep{hlMmap(10, 8, rw, true, false, false), hlMlock(12*P, 2*pg, false),
			hlMunlock(10*P, 8*pg)}},
		{"munlock across a hole", []hlStep{hlMmap(10, 4, rw, true, false, true), hlMmap(16, 4, rw, true, false, true),
			hlMunlock(10*P, 10*pg)}},
		{"DONTNEED of locked pages", []hlStep{hlMmap(10, 8, rw, true, false, false), hlWrite(10*P, 8*pg),
			hlMlock(14*P, 4*pg, false), hlMadvise(10*P, 8*pg, unix.MADV_DONTNEED), hlMadvise(14*P, pg, unix.MADV_DONTNEED)}},
		{"a page mapped again between locked neighbours keeps its own anon_vma", []hlStep{hlMmap(10, 3, rw, true, false, false),
			hlWrite(10*P, 3*pg), hlMlock(10*P, 3*pg, false), hlMunmap(11), hlMmap(11, 1, rw, true, false, false),
			hlMunlock(10*P, 3*pg)}},
		{"DONTNEED of a locked shared mapping", []hlStep{hlMmap(10, 4, rw, false, false, true), hlMadvise(10*P, 4*pg, unix.MADV_DONTNEED)}},
	} {
		t.Run(tc.name, func(t *testing.T) { runHL(t, tc.steps) })
	}
}

func hlMlockall(flags int) hlStep {
	return hlStep{
		name: fmt.Sprintf("mlockall(%#x)", flags),
		sim:  func(as *AddressSpace) (uint64, unix.Errno) { return hlErr(as.Mlockall(flags)) },
		host: func(r *hlRun) (uint64, unix.Errno) { return hlSys(unix.SYS_MLOCKALL, uintptr(flags), 0, 0) },
	}
}

func hlMunlockall() hlStep {
	return hlStep{
		name: "munlockall()",
		sim:  func(as *AddressSpace) (uint64, unix.Errno) { return hlErr(as.Munlockall()) },
		host: func(r *hlRun) (uint64, unix.Errno) { return hlSys(unix.SYS_MUNLOCKALL, 0, 0, 0) },
	}
}

// TestHostDiffMlockall compares mlockall and munlockall. mlockall locks the
// whole host process (the Go runtime's memory too; MCL_FUTURE every later
// mapping), so the comparison runs in a child process: the test binary
// again, running only this test.
//
// The sequence avoids what the host's own locking would blur: after
// MCL_FUTURE the host also locks and populates the mappings mmsim makes
// for its views, so residency there is compared only where mmsim
// populates the whole mapping itself (MCL_FUTURE without MCL_ONFAULT) or
// nothing is populated (MCL_ONFAULT).
func TestHostDiffMlockall(t *testing.T) {
	if os.Getenv("MMSIM_HOSTDIFF_MLOCKALL") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHostDiffMlockall$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "MMSIM_HOSTDIFF_MLOCKALL=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the child process failed: %v\n%s", err, out)
		}
		if !bytes.Contains(out, []byte("--- PASS: TestHostDiffMlockall")) {
			t.Fatalf("the child process did not run the comparison:\n%s", out)
		}
		return
	}
	defer unix.Munlockall()
	rw, r, none := hostarch.ReadWrite, hostarch.Read, hostarch.NoAccess
	runHL(t, []hlStep{
		hlMlockall(0),
		hlMlockall(unix.MCL_ONFAULT),
		hlMlockall(0x100 | unix.MCL_CURRENT),
		hlMmap(10, 8, rw, true, false, false),
		hlMmap(20, 4, r, true, false, false),
		hlMmap(30, 2, none, true, false, false),
		hlMlockall(unix.MCL_CURRENT | unix.MCL_ONFAULT),
		hlWrite(12*pg, 1),
		hlMlockall(unix.MCL_CURRENT),
		hlMunlockall(),
		hlMlockall(unix.MCL_FUTURE),
		hlMmap(40, 4, rw, true, false, false),
		hlMlockall(unix.MCL_FUTURE | unix.MCL_ONFAULT),
		hlMmap(50, 4, rw, true, false, false),
		hlMlockall(unix.MCL_CURRENT),
		hlMmap(60, 4, rw, true, false, false),
		hlMunlockall(),
	})
}

// hlReadForce reads n bytes at off with IgnorePermissions (the host's
// /proc/self/mem, get_user_pages with FOLL_FORCE).
func hlReadForce(off hostarch.Addr, n int) hlStep {
	return hlStep{
		name: fmt.Sprintf("readForce(%#x, %d)", off, n),
		sim: func(as *AddressSpace) (uint64, unix.Errno) {
			k, err := as.CopyIn(ctx, off, make([]byte, n), usermem.IOOpts{IgnorePermissions: true})
			return uint64(k), errnoOf(err)
		},
		host: func(r *hlRun) (uint64, unix.Errno) {
			b, e := r.h.copyIn(off, uint64(n), true)
			return uint64(len(b)), e
		},
	}
}

func hlMremap(at, oldPages, newPages int, flags int) hlStep {
	return hlStep{
		name: fmt.Sprintf("mremap(page %d, %d pages, %d pages, %#x)", at, oldPages, newPages, flags),
		sim: func(as *AddressSpace) (uint64, unix.Errno) {
			_, err := as.Mremap(hostarch.Addr(at*pg), uint64(oldPages*pg), uint64(newPages*pg), flags, 0)
			return hlErr(err)
		},
		host: func(r *hlRun) (uint64, unix.Errno) {
			_, _, e := unix.Syscall6(unix.SYS_MREMAP, r.h.base+uintptr(at*pg), uintptr(oldPages*pg), uintptr(newPages*pg), uintptr(flags), 0, 0)
			return 0, e
		},
	}
}

// TestHostDiffRlimits compares RLIMIT_STACK and RLIMIT_MEMLOCK with the
// host's, in a child process (the test binary again) that sets both small
// and drops CAP_IPC_LOCK from the thread the host calls run on (the
// capability exempts a process from RLIMIT_MEMLOCK; capabilities are per
// thread, so the test goroutine stays on it).
func TestHostDiffRlimits(t *testing.T) {
	if os.Getenv("MMSIM_HOSTDIFF_RLIMITS") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHostDiffRlimits$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "MMSIM_HOSTDIFF_RLIMITS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the child process failed: %v\n%s", err, out)
		}
		if !bytes.Contains(out, []byte("--- PASS: TestHostDiffRlimits")) {
			t.Fatalf("the child process did not run the comparison:\n%s", out)
		}
		return
	}
	const stackPages, lockPages = 64, 16
	if err := unix.Setrlimit(unix.RLIMIT_STACK, &unix.Rlimit{Cur: stackPages * pg, Max: unix.RLIM_INFINITY}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: lockPages * pg, Max: lockPages * pg}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile("/proc/thread-self/status"); !bytes.Contains(b, []byte("VmLck:\t       0 kB")) {
		t.Skipf("the process has locked memory already:\n%s", b)
	}
	rw := hostarch.ReadWrite
	const P = hostarch.Addr(pg)
	for _, tc := range []struct {
		name  string
		steps []hlStep
	}{
		{"stack within RLIMIT_STACK", []hlStep{hlMmap(900, 4, rw, true, true, false), hlWrite((964-stackPages)*P, 1)}},
		{"stack beyond RLIMIT_STACK", []hlStep{hlMmap(900, 4, rw, true, true, false), hlWrite((964-stackPages)*P-1, 1)}},
		{"locked stack beyond RLIMIT_MEMLOCK", []hlStep{hlMmap(900, 4, rw, true, true, true),
			hlWrite((904-lockPages)*P, 1), hlWrite((904-lockPages)*P-1, 1)}},
		{"MAP_LOCKED within", []hlStep{hlMmap(10, lockPages, rw, true, false, true)}},
		{"MAP_LOCKED beyond: EAGAIN", []hlStep{hlMmap(10, lockPages+1, rw, true, false, true)}},
		{"MAP_LOCKED replacing locked pages counts them", []hlStep{hlMmap(10, 10, rw, true, false, true),
			hlMmap(10, 10, rw, true, false, true)}},
		{"mlock within, beyond, and again over locked pages", []hlStep{hlMmap(10, 40, rw, true, false, false),
			hlMlock(10*P, lockPages*pg, false), hlMlock(30*P, pg, false), hlMlock(12*P, 4*pg, true), hlMunlock(10*P, 2*pg),
			hlMlock(30*P, 2*pg, false), hlMlock(40*P, pg, false)}},
		{"mlock beyond in one call", []hlStep{hlMmap(10, 40, rw, true, false, false), hlMlock(10*P, (lockPages+1)*pg, false)}},
		{"mremap growth of a locked mapping", []hlStep{hlMmap(10, 10, rw, true, false, true),
			hlMremap(10, 10, lockPages, unix.MREMAP_MAYMOVE), hlMremap(10, lockPages, lockPages+1, unix.MREMAP_MAYMOVE)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The thread this goroutine ends on is discarded (the runtime
			// ends a thread still locked when its goroutine exits).
			runtime.LockOSThread()
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var caps [2]unix.CapUserData
			if err := unix.Capget(&hdr, &caps[0]); err != nil {
				t.Fatal(err)
			}
			caps[0].Effective &^= 1 << unix.CAP_IPC_LOCK
			if err := unix.Capset(&hdr, &caps[0]); err != nil {
				t.Skipf("cannot drop CAP_IPC_LOCK: %v", err)
			}
			r := newHLRun(t)
			if err := r.as.SetLimits(Limits{Stack: stackPages * pg, Memlock: lockPages * pg}); err != nil {
				t.Fatal(err)
			}
			runHLOn(t, r, tc.steps)
		})
	}
}

// hlMunmap unmaps page at.
func hlMunmap(at int) hlStep {
	return hlStep{
		name: fmt.Sprintf("munmap(page %d)", at),
		sim:  func(as *AddressSpace) (uint64, unix.Errno) { return hlErr(as.Munmap(hostarch.Addr(at*pg), pg)) },
		host: func(r *hlRun) (uint64, unix.Errno) {
			return hlSys(unix.SYS_MUNMAP, r.h.base+uintptr(at*pg), pg, 0)
		},
	}
}
