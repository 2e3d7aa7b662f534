package addrspace

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// hostMapsIn counts, for each host range [base, base+size) of rs, the
// lines of /proc/self/maps that overlap it. (The kernel merges the
// reservations of neighbouring views where both edges are unmapped: such a
// line counts once for each view, as the page table counts it.)
func hostMapsIn(rs [][2]uintptr) (int, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var lo, hi uintptr
		fmt.Sscanf(sc.Text(), "%x-%x", &lo, &hi)
		for _, r := range rs {
			if lo < r[0]+r[1] && hi > r[0] {
				n++
			}
		}
	}
	return n, sc.Err()
}

// checkHostAccount compares the host mappings that as's views consist of
// in /proc/self/maps with the page table's account of them.
func checkHostAccount(as *AddressSpace) error {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return nil
	}
	rs := [][2]uintptr{{as.pt.AppBase(), uintptr(as.size)}}
	if b := as.pt.MaxBase(); b != 0 {
		rs = append(rs, [2]uintptr{b, uintptr(as.size)})
	}
	got, err := hostMapsIn(rs)
	if err != nil {
		return err
	}
	if want := as.pt.HostMappings(); got != want {
		return fmt.Errorf("the host shows %d mappings in the views, the page table accounts for %d", got, want)
	}
	return nil
}

// The host-budget tests fill the process-wide budget in one way each, in a
// subprocess (a failure could kill the process), and show that the
// process stays healthy and that freeing makes room again.
func TestHostBudgetExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("fills the host's mapping budget")
	}
	for _, name := range []string{"isolated", "isolated8", "clonescatter", "clonewrite", "mprotect", "advice", "mremap", "spaces", "fsize"} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHostBudgetChild$", "-test.v")
			cmd.Env = append(os.Environ(), "MMSIM_BUDGET_CHILD="+name)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "budget child ok") {
				t.Fatalf("child %s: %v\n%s", name, err, tail(out, 3000))
			}
			t.Logf("%s", lastLine(out, "budget child ok"))
		})
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func lastLine(out []byte, prefix string) string {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestHostBudgetChild is the subprocess of TestHostBudgetExhaustion.
func TestHostBudgetChild(t *testing.T) {
	name := os.Getenv("MMSIM_BUDGET_CHILD")
	if name == "" {
		t.Skip("run by TestHostBudgetExhaustion")
	}
	hs := HostStats()
	budget := hs.Limit - hs.Headroom
	var spaces []*AddressSpace
	newSpace := func(size uint64) *AddressSpace {
		as, err := New(Options{Size: size})
		if err != nil {
			t.Fatal(err)
		}
		spaces = append(spaces, as)
		return as
	}
	// fill maps isolated one-page mappings round-robin into spaces until
	// the budget refuses one, writing the rw- ones and reading the r--
	// ones; it returns the mappings made.
	fill := func(spaces []*AddressSpace) []hostarch.Addr {
		var addrs []hostarch.Addr
		for i := 0; ; i++ {
			as := spaces[i%len(spaces)]
			addr := hostarch.Addr(uint64(i/len(spaces)+1) * 2 * pg)
			perms := hostarch.ReadWrite
			if i%2 == 1 {
				perms = hostarch.Read
			}
			_, err := as.Mmap(MmapOpts{Addr: addr, Fixed: true, Length: pg, Perms: perms, Private: true})
			if err != nil {
				if !errors.Is(err, unix.ENOMEM) {
					t.Fatalf("mapping %d: %v, want ENOMEM", i, err)
				}
				t.Logf("ENOMEM after %d isolated mappings: %v", i, err)
				return addrs
			}
			if perms.Write {
				writeAt(t, as, addr, "x")
			} else {
				readAt(t, as, addr, 1)
			}
			if i%(len(spaces)) == 0 {
				addrs = append(addrs, addr)
			}
			if i > 4*hs.Limit {
				t.Fatalf("%d mappings and no ENOMEM", i)
			}
		}
	}
	switch name {
	case "isolated", "isolated8":
		n := 1
		if name == "isolated8" {
			n = 8
		}
		for i := 0; i < n; i++ {
			newSpace(64 << 30)
		}
		addrs := fill(spaces)
		checkBudgetHealthy(t, budget)
		// Freeing makes room again.
		for _, a := range addrs[:len(addrs)/2] {
			if err := spaces[0].Munmap(a, pg); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := spaces[0].Mmap(MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true}); err != nil {
			t.Fatalf("after freeing: %v", err)
		}
	case "clonescatter", "clonewrite":
		// Leave a little of the budget to a 400 MiB private mapping that is
		// cloned and written scattered in the child: write faults cannot
		// fail (Linux's would not), so they must stay within it. With
		// clonewrite each write is a whole page, which the page table
		// writes through (a run of one page, isolated, each time).
		filler := newSpace(64 << 30)
		const size = 400 << 20
		big := newSpace(1 << 30)
		a := mustMmap(t, big, MmapOpts{Length: size, Perms: hostarch.ReadWrite, Private: true})
		if _, err := big.ZeroOut(ctx, a, size, usermem.IOOpts{}); err != nil {
			t.Fatal(err)
		}
		child := mustClone(t, big)
		fill([]*AddressSpace{filler})
		pages := rand.New(rand.NewSource(1)).Perm(size / pg / 2)
		wlen := 1
		if name == "clonewrite" {
			wlen = pg
		}
		buf := make([]byte, wlen)
		for i, p := range pages {
			buf[0] = byte(i)
			if n, err := child.CopyOut(ctx, a+hostarch.Addr(2*p*pg), buf, usermem.IOOpts{}); n != wlen || err != nil {
				t.Fatalf("scattered write %d = %d, %v", i, n, err)
			}
		}
		for i, p := range pages[:1000] {
			if got := readAt(t, child, a+hostarch.Addr(2*p*pg), 2); got[0] != byte(i) || got[1] != 0 {
				t.Fatalf("page %d reads %v, want [%d 0]", p, got, byte(i))
			}
		}
		if got := readAt(t, big, a+hostarch.Addr(2*pages[0]*pg), 1); got[0] != 0 {
			t.Fatal("the parent sees the child's write")
		}
		checkBudgetHealthy(t, budget)
		filler.Close()
	case "mprotect":
		as := newSpace(64 << 30)
		const n = 64 << 10 // pages
		a := mustMmap(t, as, MmapOpts{Length: n * pg, Perms: hostarch.ReadWrite, Private: true})
		if _, err := as.ZeroOut(ctx, a, n*pg, usermem.IOOpts{}); err != nil {
			t.Fatal(err)
		}
		i := 0
		for ; i < n/2; i++ {
			err := as.Mprotect(a+hostarch.Addr(2*i*pg), pg, hostarch.Read)
			if err != nil {
				if !errors.Is(err, unix.ENOMEM) {
					t.Fatalf("Mprotect %d: %v", i, err)
				}
				break
			}
		}
		if i == n/2 {
			t.Fatalf("%d Mprotect splits and no ENOMEM", i)
		}
		t.Logf("ENOMEM after %d Mprotect splits", i)
		// Everything still reads and writes as protected.
		writeAt(t, as, a+pg, "w")
		if n, err := as.CopyOut(ctx, a, []byte("w"), usermem.IOOpts{}); n != 0 || !errors.Is(err, unix.EFAULT) {
			t.Fatalf("write to a read-only page = %d, %v", n, err)
		}
		checkBudgetHealthy(t, budget)
		if err := as.Mprotect(a, n*pg, hostarch.ReadWrite); err != nil {
			t.Fatalf("merging again: %v", err)
		}
	case "advice":
		// Flag advice splits as Mprotect does: EAGAIN (Linux's errno for
		// a failed split in madvise), then MREMAP_DONTUNMAP needs one more
		// mapping: ENOMEM.
		as := newSpace(64 << 30)
		const n = 64 << 10 // pages
		a := mustMmap(t, as, MmapOpts{Length: n * pg, Perms: hostarch.ReadWrite, Private: true})
		if _, err := as.ZeroOut(ctx, a, n*pg, usermem.IOOpts{}); err != nil {
			t.Fatal(err)
		}
		i := 0
		for ; i < n/2; i++ {
			err := as.Madvise(a+hostarch.Addr(2*i*pg), pg, unix.MADV_DONTFORK)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					t.Fatalf("Madvise %d: %v", i, err)
				}
				break
			}
		}
		if i == n/2 {
			t.Fatalf("%d Madvise splits and no EAGAIN", i)
		}
		t.Logf("EAGAIN after %d Madvise splits", i)
		if _, err := as.Mremap(a+pg, pg, pg, unix.MREMAP_MAYMOVE|unix.MREMAP_DONTUNMAP, 0); !errors.Is(err, unix.ENOMEM) {
			t.Fatalf("Mremap(MREMAP_DONTUNMAP) at the limit = %v; want ENOMEM", err)
		}
		writeAt(t, as, a+pg, "w")
		checkBudgetHealthy(t, budget)
		if err := as.Madvise(a, n*pg, unix.MADV_DOFORK); err != nil {
			t.Fatalf("merging again: %v", err)
		}
		if ms := as.Mappings(); len(ms) != 1 {
			t.Fatalf("%d mappings after MADV_DOFORK over all", len(ms))
		}
	case "spaces":
		// Host address space: spaces of 64 GiB until New refuses one.
		for i := 0; ; i++ {
			as, err := New(Options{})
			if err != nil {
				if !errors.Is(err, unix.ENOMEM) {
					t.Fatalf("space %d: %v, want ENOMEM", i, err)
				}
				t.Logf("ENOMEM after %d spaces of 64 GiB: %v", i, err)
				break
			}
			spaces = append(spaces, as)
			if i > 1<<16 {
				t.Fatal("no ENOMEM")
			}
		}
		for _, as := range spaces[len(spaces)-8:] {
			a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
			writeAt(t, as, a, "x")
		}
		checkBudgetHealthy(t, budget)
		// Closing one makes room for another once the collector has
		// released it.
		spaces[0].Close()
		spaces[0] = nil // unreachable, so that its views can be released
		spaces = spaces[1:]
		before := HostStats()
		as, err := New(Options{})
		if err != nil {
			t.Fatalf("after Close: %v (host before %+v, after %+v)", err, before, HostStats())
		}
		spaces = append(spaces, as)
	case "fsize":
		// RLIMIT_FSIZE applies to the memory file: it stays compact, so a
		// small limit still allows memory anywhere in a large space, and a
		// fault beyond the limit is an EFAULT, not a crash.
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 16 << 20, Max: 16 << 20}); err != nil {
			t.Fatal(err)
		}
		as := newSpace(1 << 40)
		for _, at := range []hostarch.Addr{1<<40 - 64<<20, 1 << 39, 1 << 30} {
			a := mustMmap(t, as, MmapOpts{Addr: at, Fixed: true, Length: 8 << 20, Perms: hostarch.ReadWrite, Private: true})
			writeAt(t, as, a+4<<20, "high")
		}
		if _, err := as.Brk(as.brkStart + 1<<20); err != nil {
			t.Fatal(err)
		}
		writeAt(t, as, as.brkStart, "heap")
		a := mustMmap(t, as, MmapOpts{Length: 64 << 20, Perms: hostarch.ReadWrite, Private: true})
		n, err := as.ZeroOut(ctx, a, 64<<20, usermem.IOOpts{})
		var fe *FaultError
		if !errors.As(err, &fe) || fe.Reason != FaultHostMemory || n == 0 || n >= 64<<20 {
			t.Fatalf("ZeroOut past RLIMIT_FSIZE = %d, %v; want a partial count and a host-memory fault", n, err)
		}
		t.Logf("ZeroOut stopped at %d MiB: %v", n>>20, err)
		if err := as.Munmap(a, 64<<20); err != nil {
			t.Fatal(err)
		}
		if st, _ := as.Stats(); st.MemoryFileBytes > 16<<20 {
			t.Fatalf("memory file holds %d bytes", st.MemoryFileBytes)
		}
		checkBudgetHealthy(t, budget)
	case "mremap":
		as := newSpace(64 << 30)
		const n = 64 << 10
		a := mustMmap(t, as, MmapOpts{Length: n * pg, Perms: hostarch.ReadWrite, Private: true})
		if _, err := as.ZeroOut(ctx, a, n*pg, usermem.IOOpts{}); err != nil {
			t.Fatal(err)
		}
		i := 0
		for ; i < n/2; i++ {
			src := a + hostarch.Addr(2*i*pg)
			dst := hostarch.Addr(uint64(i+1) * 2 * pg)
			_, err := as.Mremap(src, pg, pg, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, dst)
			if err != nil {
				if !errors.Is(err, unix.ENOMEM) {
					t.Fatalf("Mremap %d: %v", i, err)
				}
				break
			}
		}
		if i == n/2 {
			t.Fatalf("%d Mremap splits and no ENOMEM", i)
		}
		t.Logf("ENOMEM after %d Mremap splits", i)
		checkBudgetHealthy(t, budget)
	}
	for _, as := range spaces {
		if err := checkHostAccount(as); err != nil {
			t.Fatal(err)
		}
	}
	for _, as := range spaces {
		as.Close()
	}
	// With the budget free, a new space maps and copies.
	as := newSpace(1 << 30)
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, a, "fresh")
	fmt.Printf("budget child ok: %s: host %+v\n", name, HostStats())
}

// checkBudgetHealthy checks, with the host budget (nearly) exhausted, that
// the account stays within it, that the host agrees, and that the Go
// runtime can still allocate and start goroutines.
func checkBudgetHealthy(t *testing.T, budget int) {
	t.Helper()
	hs := HostStats()
	if hs.Mappings > budget+8 {
		t.Fatalf("host mappings %d beyond the budget %d", hs.Mappings, budget)
	}
	all, err := hostMapsIn([][2]uintptr{{0, ^uintptr(0)}})
	if err != nil {
		t.Fatal(err)
	}
	if all >= hs.Limit {
		t.Fatalf("the process has %d host mappings, vm.max_map_count is %d", all, hs.Limit)
	}
	big := make([]byte, 256<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	var wg sync.WaitGroup
	sums := make([]int, 100)
	for g := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(big); i += 1 << 20 {
				sums[g] += int(big[i])
			}
		}()
	}
	wg.Wait()
	t.Logf("healthy: %d host mappings in all, %d ours, budget %d", all, hs.Mappings, budget)
}
