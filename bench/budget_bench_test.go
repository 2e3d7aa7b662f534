package bench

import (
	"context"
	"errors"
	"math/rand"
	"runtime"
	"testing"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// Copy-on-write after Clone, and the host budget (the host-budget issue).
const (
	cowSeqSize     = 16 << 20 // the sequential write after Clone
	cowScatterSize = 64 << 20 // the mapping written every other page after Clone
)

// cowSpace returns an address space with a populated private mapping of n
// bytes.
func cowSpace(b *testing.B, n int) (*addrspace.AddressSpace, hostarch.Addr) {
	as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { as.Close() })
	a, err := as.Mmap(addrspace.MmapOpts{Length: uint64(n), Perms: hostarch.ReadWrite, Private: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := as.CopyOut(context.Background(), a, make([]byte, n), usermem.IOOpts{}); err != nil {
		b.Fatal(err)
	}
	return as, a
}

// hostCOW maps a populated memfd of n bytes MAP_PRIVATE for each iteration:
// the host kernel's own copy-on-write, page by page.
type hostCOW struct {
	fd int
	n  int
}

func newHostCOW(b *testing.B, n int) *hostCOW {
	fd, err := unix.MemfdCreate("mmbench-cow", unix.MFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.Pwrite(fd, make([]byte, n), 0); err != nil {
		b.Fatal(err)
	}
	return &hostCOW{fd, n}
}

func (h *hostCOW) mapPrivate(b *testing.B) []byte {
	m, err := unix.Mmap(h.fd, 0, h.n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// scatterOrder is the order in which the scatter benchmarks write every
// other page of cowScatterSize bytes.
var scatterOrder = rand.New(rand.NewSource(1)).Perm(cowScatterSize / hostarch.PageSize / 2)

// budgetOpImpls are rows of BenchmarkOp: copy-on-write after Clone against
// the same writes without it and the host kernel's own copy-on-write, and
// the capacity figures (reported as metrics: the time is how long it took
// to find them).
var budgetOpImpls = []opImpl{
	{"IOSeq16x8B", "perrange", func(b *testing.B) { benchIOSeq16x8(b, false) }},
	{"IOSeq16x8B", "mmsim", func(b *testing.B) { benchIOSeq16x8(b, true) }},
	// A first write of whole pages to new anonymous memory (a read(2) into
	// a fresh buffer, say): the host's page faults, which zero each page
	// before the copy, against the address space's.
	{"FreshWrite16MiB", "host", func(b *testing.B) {
		src := make([]byte, cowSeqSize)
		b.SetBytes(cowSeqSize)
		for b.Loop() {
			m, err := unix.Mmap(-1, 0, cowSeqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				b.Fatal(err)
			}
			copy(m, src)
			if err := unix.Munmap(m); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"FreshWrite16MiB", "mmsim", func(b *testing.B) {
		as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { as.Close() })
		src := make([]byte, cowSeqSize)
		ctx := context.Background()
		b.SetBytes(cowSeqSize)
		for b.Loop() {
			a, err := as.Mmap(addrspace.MmapOpts{Length: cowSeqSize, Perms: hostarch.ReadWrite, Private: true})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := as.CopyOut(ctx, a, src, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
			if err := as.Munmap(a, cowSeqSize); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"CloneWrite16MiB", "plain", func(b *testing.B) {
		as, a := cowSpace(b, cowSeqSize)
		src := make([]byte, cowSeqSize)
		ctx := context.Background()
		b.SetBytes(cowSeqSize)
		for b.Loop() {
			if _, err := as.CopyOut(ctx, a, src, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"CloneWrite16MiB", "mmsim", func(b *testing.B) {
		as, a := cowSpace(b, cowSeqSize)
		src := make([]byte, cowSeqSize)
		ctx := context.Background()
		b.SetBytes(cowSeqSize)
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			child, err := as.Clone()
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := child.CopyOut(ctx, a, src, usermem.IOOpts{}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			child.Close()
			b.StartTimer()
		}
	}},
	{"CloneWrite16MiB", "host", func(b *testing.B) {
		h := newHostCOW(b, cowSeqSize)
		src := make([]byte, cowSeqSize)
		b.SetBytes(cowSeqSize)
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			m := h.mapPrivate(b)
			b.StartTimer()
			copy(m, src)
			b.StopTimer()
			unix.Munmap(m)
			b.StartTimer()
		}
	}},
	{"CloneScatter64MiB", "mmsim", func(b *testing.B) {
		as, a := cowSpace(b, cowScatterSize)
		ctx := context.Background()
		one := []byte{1}
		added := 0
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			child, err := as.Clone()
			if err != nil {
				b.Fatal(err)
			}
			before := hostMappings(b, child)
			b.StartTimer()
			for _, p := range scatterOrder {
				if _, err := child.CopyOut(ctx, a+hostarch.Addr(2*p*hostarch.PageSize), one, usermem.IOOpts{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			added += hostMappings(b, child) - before
			child.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(added)/float64(b.N*len(scatterOrder)), "hostmaps/page")
	}},
	{"CloneScatter64MiB", "host", func(b *testing.B) {
		h := newHostCOW(b, cowScatterSize)
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			m := h.mapPrivate(b)
			b.StartTimer()
			for _, p := range scatterOrder {
				m[2*p*hostarch.PageSize] = 1
			}
			b.StopTimer()
			unix.Munmap(m)
			b.StartTimer()
		}
	}},
	{"CloneScatter64MiB", "plain", func(b *testing.B) {
		as, a := cowSpace(b, cowScatterSize)
		ctx := context.Background()
		one := []byte{1}
		for b.Loop() {
			for _, p := range scatterOrder {
				if _, err := as.CopyOut(ctx, a+hostarch.Addr(2*p*hostarch.PageSize), one, usermem.IOOpts{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}},
	{"Capacity", "mappings", func(b *testing.B) {
		// Isolated one-page mappings, each touched, until ENOMEM.
		n := 0
		for b.Loop() {
			as, err := addrspace.New(addrspace.Options{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for n = 0; ; n++ {
				a, err := as.Mmap(addrspace.MmapOpts{Addr: hostarch.Addr((n + 1) * 2 * hostarch.PageSize), Fixed: true,
					Length: hostarch.PageSize, Perms: hostarch.ReadWrite, Private: true})
				if err != nil {
					if !errors.Is(err, unix.ENOMEM) {
						b.Fatal(err)
					}
					break
				}
				if _, err := as.CopyOut(ctx, a, []byte{1}, usermem.IOOpts{}); err != nil {
					b.Fatal(err)
				}
			}
			as.Close()
		}
		b.ReportMetric(float64(n), "mappings")
	}},
	{"Capacity", "spaces64GiB", func(b *testing.B) {
		n := 0
		for b.Loop() {
			var spaces []*addrspace.AddressSpace
			for {
				as, err := addrspace.New(addrspace.Options{Size: 64 << 30})
				if err != nil {
					if !errors.Is(err, unix.ENOMEM) {
						b.Fatal(err)
					}
					break
				}
				spaces = append(spaces, as)
			}
			n = len(spaces)
			for _, as := range spaces {
				as.Close()
			}
			spaces = nil
			runtime.GC()
		}
		b.ReportMetric(float64(n), "spaces")
	}},
}

func hostMappings(b *testing.B, as *addrspace.AddressSpace) int {
	st, err := as.Stats()
	if err != nil {
		b.Fatal(err)
	}
	return st.HostMappings
}

// plainIO hides an IO's usermem.VecIO methods: usermem then copies range by
// range, as it does for IOs without the fast path.
type plainIO struct{ usermem.IO }

// benchIOSeq16x8 copies 16 ranges of 8 bytes, each in its own page, with
// IOSequence.CopyIn: through the vectored fast path (usermem.VecIO), or
// range by range.
func benchIOSeq16x8(b *testing.B, vec bool) {
	fx := getFixture(b, 16*hostarch.PageSize, 0)
	var ranges []hostarch.AddrRange
	for i := 15; i >= 0; i-- {
		start := fx.addr + hostarch.Addr(i*hostarch.PageSize+100)
		ranges = append(ranges, hostarch.AddrRange{Start: start, End: start + 8})
	}
	var io usermem.IO = fx.as
	if !vec {
		io = plainIO{fx.as}
	}
	seq := usermem.IOSequence{IO: io, Addrs: hostarch.AddrRangeSeqFromSlice(ranges)}
	buf := make([]byte, 128)
	ctx := context.Background()
	for b.Loop() {
		if n, err := seq.CopyIn(ctx, buf); n != 128 || err != nil {
			b.Fatal(n, err)
		}
	}
}

// cloneMappings is the number of mappings the Clone benchmarks copy.
const cloneMappings = 1000

// hostForkMappings holds the host mappings that make the host fork()
// baseline copy as many VMAs as Clone copies mappings.
var hostForkMappings [][]byte

// forkAndExit forks the process; the child exits at once, the parent
// returns the child's pid. Only raw system calls run in the child (the
// other threads of the Go runtime are not there).
//
//go:norace
//go:nosplit
func forkAndExit() (int, unix.Errno) {
	pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if pid == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return int(pid), 0
}

func init() {
	budgetOpImpls = append(budgetOpImpls,
		opImpl{"Clone1000", "mmsim", func(b *testing.B) {
			as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer as.Close()
			ctx := context.Background()
			for i := 0; i < cloneMappings; i++ {
				perms := hostarch.ReadWrite
				if i%2 == 1 {
					perms = hostarch.Read
				}
				a, err := as.Mmap(addrspace.MmapOpts{Addr: hostarch.Addr((i + 1) * 2 * hostarch.PageSize), Fixed: true,
					Length: hostarch.PageSize, Perms: perms, Private: true})
				if err != nil {
					b.Fatal(err)
				}
				as.CopyIn(ctx, a, make([]byte, 1), usermem.IOOpts{})
			}
			b.ResetTimer()
			for range b.N {
				c, err := as.Clone()
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				c.Close()
				b.StartTimer()
			}
		}},
		opImpl{"Clone1000", "hostfork", func(b *testing.B) {
			if len(hostForkMappings) == 0 {
				for i := 0; i < cloneMappings; i++ {
					prot := unix.PROT_READ | unix.PROT_WRITE
					if i%2 == 1 {
						prot = unix.PROT_READ
					}
					m, err := unix.Mmap(-1, 0, hostarch.PageSize, prot, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
					if err != nil {
						b.Fatal(err)
					}
					_ = m[0]
					hostForkMappings = append(hostForkMappings, m)
				}
			}
			for b.Loop() {
				pid, e := forkAndExit()
				if e != 0 {
					b.Fatal(e)
				}
				var ws unix.WaitStatus
				if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
					b.Fatal(err)
				}
			}
		}},
	)
}
