package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"unsafe"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/bench/internal/unicorn"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// benchSizes are the rows of the copy table.
var benchSizes = []int{8, 64, 512, 4 << 10, 64 << 10, 1 << 20, 16 << 20}

// sizeName names a size as the benchmarks do: 8B, 4KiB, 16MiB.
func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// asSize is the simulated size of the suite's address space: room for one
// region of every size, twice (the parallel benchmarks use two).
const asSize = 1 << 30

var (
	suiteMu  sync.Mutex
	suiteAS  *addrspace.AddressSpace
	fixtures = map[fixtureKey]*fixture{}
)

type fixtureKey struct{ n, slot int }

// A fixture is n bytes of simulated memory and a host buffer of n bytes for
// them to be copied to or from. The fixtures live as long as the test
// binary: they are shared by every benchmark of a size, so a shuffled order
// costs no setup.
type fixture struct {
	n    int
	as   *addrspace.AddressSpace
	addr hostarch.Addr // start of an anonymous read-write mapping of n bytes (whole pages)
	// view is the host memory behind [addr, addr+n) in the address space's
	// app view: the same bytes every path copies. It stays mapped as long as
	// the mapping does (for ever, here).
	view []byte
	// buf is n bytes of touched anonymous host memory (an mmap, like view
	// not Go heap): the destination of reads and the source of writes.
	buf []byte
	// uc is a Unicorn engine with view mapped, made on first use.
	uc *unicorn.Engine
}

// theAS returns the suite's address space. Preconditions: suiteMu is held.
func theAS(tb testing.TB) *addrspace.AddressSpace {
	if suiteAS == nil {
		as, err := addrspace.New(addrspace.Options{Size: asSize})
		if err != nil {
			tb.Fatalf("addrspace.New: %v", err)
		}
		suiteAS = as
	}
	return suiteAS
}

// getFixture returns the fixture of n bytes numbered slot, making it the
// first time.
func getFixture(tb testing.TB, n, slot int) *fixture {
	suiteMu.Lock()
	defer suiteMu.Unlock()
	key := fixtureKey{n, slot}
	if fx := fixtures[key]; fx != nil {
		return fx
	}
	as := theAS(tb)
	pages := uint64(n+hostarch.PageSize-1) &^ (hostarch.PageSize - 1)
	addr, err := as.Mmap(addrspace.MmapOpts{Length: pages, Perms: hostarch.ReadWrite})
	if err != nil {
		tb.Fatalf("Mmap(%d): %v", pages, err)
	}
	// Touch every page through the library, so that no benchmark times a
	// first-touch fault.
	if _, err := as.ZeroOut(context.Background(), addr, int64(pages), usermem.IOOpts{}); err != nil {
		tb.Fatalf("ZeroOut: %v", err)
	}
	// And through the max view, which IgnorePermissions copies use (the
	// page table maps each view on first use).
	if _, err := as.CopyIn(context.Background(), addr, make([]byte, pages), usermem.IOOpts{IgnorePermissions: true}); err != nil {
		tb.Fatalf("CopyIn(IgnorePermissions): %v", err)
	}
	fx := &fixture{n: n, as: as, addr: addr, view: hostView(tb, as, addr, n), buf: hostMap(tb, n)}
	fixtures[key] = fx
	return fx
}

// hostView returns the host memory that backs the simulated range [addr,
// addr+n) in as's app view. CopyInTo hands its writer the view's blocks;
// the suite keeps the address (the mapping is never unmapped), which the
// Writer contract does not promise to be meaningful after the call, but
// which is exactly the memory CopyIn and CopyOut touch.
func hostView(tb testing.TB, as *addrspace.AddressSpace, addr hostarch.Addr, n int) []byte {
	var view []byte
	_, err := as.CopyInTo(context.Background(), hostarch.AddrRangeSeqOf(addr.MustToRange(uint64(n))),
		safemem.WriterFunc(func(srcs safemem.BlockSeq) (uint64, error) {
			if srcs.NumBlocks() != 1 {
				return 0, fmt.Errorf("the view is %d blocks, want 1", srcs.NumBlocks())
			}
			view = srcs.Head().ToSlice()
			return srcs.NumBytes(), nil
		}), usermem.IOOpts{})
	if err != nil {
		tb.Fatalf("CopyInTo: %v", err)
	}
	return view
}

// hostMap maps n bytes (whole pages) of anonymous host memory, touched.
func hostMap(tb testing.TB, n int) []byte {
	size := (n + hostarch.PageSize - 1) &^ (hostarch.PageSize - 1)
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		tb.Fatalf("mmap: %v", err)
	}
	clear(m)
	return m[:n]
}

// fill writes a pattern that depends on seed into p. Its period, 4093 (a
// prime), divides none of the sizes, so pieces of a buffer differ and a
// copy from the wrong place shows.
func fill(p []byte, seed byte) {
	const period = 4093
	k := min(len(p), period)
	for i := range k {
		p[i] = byte(i*131) ^ seed
	}
	for k < len(p) {
		k += copy(p[k:], p[:k])
	}
}

var patternSeed byte

// prepare fills src with a fresh pattern and dst with a different one, so
// that a check after the timed loop proves the copy happened.
func prepare(dst, src []byte) {
	patternSeed++
	fill(src, patternSeed)
	fill(dst, ^patternSeed)
}

// ptr returns the address of p's first byte.
func ptr(p []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(p)) }

// shuffled returns a permutation of 0..n-1: the identity, or a shuffle
// seeded by MMBENCH_SEED when that is set.
func shuffled(n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if s := os.Getenv("MMBENCH_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			panic("MMBENCH_SEED: " + err.Error())
		}
		rand.New(rand.NewPCG(seed, uint64(n))).Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	return order
}
