package pma

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The process-wide host budget.
//
// Every address space in a process shares the host's vm.max_map_count and its
// user address space with the Go runtime, which dies ("fatal error: runtime:
// out of memory") when its own mmap fails. pma therefore keeps one account
// for the whole process:
//
//   - Mappings: the host mappings (kernel VMAs) that pma's views consist of,
//     counted exactly as the kernel counts them (see View), plus the mappings
//     each table has committed to but not yet made (see Table.SetFloor).
//   - Reserved: the bytes of host address space its views reserve.
//
// The limit is vm.max_map_count, read once, less a headroom left to the rest
// of the process: the larger of a tenth of the limit and 4,096 mappings.
// Measured on this machine (Go 1.26, -race): a test binary with its heap at
// 512 MiB and 100 goroutines uses under 400 host mappings of its own, so the
// headroom is more than ten times what the runtime needs.
//
// Address space is guarded by a probe instead of a count (the host's layout
// is not ours to know): once views reserve more than probeAbove, pma
// reserves each new view while it holds a contiguous AddressHeadroom of host
// address space, so the view goes elsewhere or fails with ENOMEM.

// AddressHeadroom is the contiguous host address space that reserving a
// view must leave free for the Go runtime's heap and other libraries.
const AddressHeadroom = 256 << 30

// probeAbove is the host address space views may reserve in all before
// each reservation holds the headroom: a quarter of x86-64's and arm64's
// 128 TiB of user address space (the Go heap needs far less than the rest).
const probeAbove = 32 << 40

// minMapHeadroom is the fewest host mappings left to the rest of the process.
const minMapHeadroom = 4096

type account struct {
	once sync.Once

	// limit is vm.max_map_count; headroom the part of it left to the rest
	// of the process.
	limit, headroom int

	mu sync.Mutex
	// committed is the sum over tables of max(host mappings, floor).
	committed int
	// mappings is the exact number of host mappings of all views.
	mappings int
	// reserved is the bytes of host address space reserved by views,
	// including views of closed tables not yet released (see pending).
	reserved uint64

	// pending counts views whose release waits for their address space to
	// become unreachable (Close with copies possibly in flight).
	pending atomic.Int64
}

var acct account

func (a *account) init() {
	a.once.Do(func() {
		a.limit = 65530
		if b, err := os.ReadFile("/proc/sys/vm/max_map_count"); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
				a.limit = n
			}
		}
		a.headroom = max(a.limit/10, minMapHeadroom)
		if a.headroom > a.limit/2 {
			a.headroom = a.limit / 2
		}
	})
}

// budget returns the number of host mappings pma may use.
func (a *account) budget() int {
	a.init()
	return a.limit - a.headroom
}

// adjust changes the committed count by delta. If force is false and delta
// is positive, it fails (returning false, changing nothing) when the total
// would exceed the budget.
func (a *account) adjust(delta int, force bool) bool {
	b := a.budget()
	a.mu.Lock()
	defer a.mu.Unlock()
	if delta > 0 && !force && a.committed+delta > b {
		return false
	}
	a.committed += delta
	return true
}

func (a *account) addMappings(delta int) {
	a.mu.Lock()
	a.mappings += delta
	a.mu.Unlock()
}

func (a *account) addReserved(delta int64) {
	a.mu.Lock()
	a.reserved = uint64(int64(a.reserved) + delta)
	a.mu.Unlock()
}

// HostStats is the process-wide host account of package pma (see the
// package documentation).
type HostStats struct {
	// Mappings is the number of host mappings that pma's views consist of
	// now, across every address space of the process.
	Mappings int

	// Committed is Mappings plus the host mappings that address spaces may
	// still make without a management call (their simulated mappings not
	// yet faulted in): the figure checked against the budget.
	Committed int

	// Limit is the host's vm.max_map_count, and Headroom the part of it
	// left to the rest of the process: pma never commits more than
	// Limit-Headroom.
	Limit, Headroom int

	// ReservedBytes is the host address space reserved by views.
	ReservedBytes uint64
}

// ReadHostStats returns the process-wide account.
func ReadHostStats() HostStats {
	acct.init()
	acct.mu.Lock()
	defer acct.mu.Unlock()
	return HostStats{
		Mappings:      acct.mappings,
		Committed:     acct.committed,
		Limit:         acct.limit,
		Headroom:      acct.headroom,
		ReservedBytes: acct.reserved,
	}
}

// errBudget is the error for an operation refused by the host budget.
func errBudget(what string) error {
	return fmt.Errorf("pma: %s would exceed the process's host mapping budget (vm.max_map_count less headroom): %w", what, unix.ENOMEM)
}

// reclaimPending gives views of closed address spaces a chance to be
// released: it runs the garbage collector, whose cleanups release the views
// of unreachable address spaces, and waits briefly for them. It reports
// whether any were pending.
func reclaimPending() bool {
	if acct.pending.Load() == 0 {
		return false
	}
	for i := 0; i < 3 && acct.pending.Load() > 0; i++ {
		runtime.GC()
		deadline := time.Now().Add(20 * time.Millisecond)
		for acct.pending.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	return true
}
