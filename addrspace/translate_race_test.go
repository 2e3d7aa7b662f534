package addrspace_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// pageState is what a guest page is between two calls of the schedule.
type pageState struct {
	mapped bool
	perms  hostarch.AccessType
	val    byte // the page's first byte (the rest of its first word is 0)
}

// allows reports whether an access that ended as (val, err) is what s
// gives.
func (s pageState) allows(at hostarch.AccessType, val uint64, err error) bool {
	var fe *addrspace.FaultError
	switch {
	case err == nil:
		return s.mapped && s.perms.Effective().SupersetOf(at) && (at.Write || val == uint64(s.val))
	case errors.As(err, &fe) && fe.Reason == addrspace.FaultUnmapped:
		return !s.mapped
	case errors.As(err, &fe) && fe.Reason == addrspace.FaultProtection:
		return s.mapped && !s.perms.Effective().SupersetOf(at)
	}
	return false
}

var bgctx = context.Background()

const (
	racePages = 4
	raceBase  = hostarch.Addr(0x100000)
	raceAway  = hostarch.Addr(0x800000)
)

// raceStep is one call of the schedule and the pages' states after it.
type raceStep struct {
	name  string
	op    func(as *addrspace.AddressSpace) error
	after [racePages]pageState
}

// raceSchedule returns a random schedule of n calls that map, unmap,
// protect, write, discard, move and clone the pages at raceBase.
func raceSchedule(rng *rand.Rand, n int) []raceStep {
	perms := []hostarch.AccessType{{}, hostarch.Read, hostarch.ReadWrite, {Read: true, Execute: true}, hostarch.AnyAccess}
	length := uint64(racePages * hostarch.PageSize)
	var cur [racePages]pageState
	steps := make([]raceStep, 0, n)
	add := func(name string, op func(as *addrspace.AddressSpace) error, f func(p int, s *pageState)) {
		for p := range cur {
			f(p, &cur[p])
		}
		steps = append(steps, raceStep{name, op, cur})
	}
	mapAll := func(p hostarch.AccessType) {
		add("mmap "+p.String(), func(as *addrspace.AddressSpace) error {
			_, err := as.Mmap(addrspace.MmapOpts{Addr: raceBase, Fixed: true, Length: length, Perms: p, Private: true})
			return err
		}, func(_ int, s *pageState) { *s = pageState{mapped: true, perms: p} })
	}
	mapAll(hostarch.AnyAccess)
	for len(steps) < n {
		switch k := rng.Intn(10); {
		case !cur[0].mapped:
			if rng.Intn(2) == 0 {
				mapAll(perms[rng.Intn(len(perms))])
			} else {
				add("munmap again", func(as *addrspace.AddressSpace) error { return as.Munmap(raceBase, length) }, func(int, *pageState) {})
			}
		case k < 3:
			p := rng.Intn(racePages)
			v := byte(rng.Intn(255) + 1)
			add(fmt.Sprintf("write %d to page %d", v, p), func(as *addrspace.AddressSpace) error {
				_, err := as.CopyOut(bgctx, raceBase+hostarch.Addr(p)*hostarch.PageSize, []byte{v}, usermem.IOOpts{IgnorePermissions: true})
				return err
			}, func(q int, s *pageState) {
				if q == p {
					s.val = v
				}
			})
		case k < 5:
			np := perms[rng.Intn(len(perms))]
			add("mprotect "+np.String(), func(as *addrspace.AddressSpace) error { return as.Mprotect(raceBase, length, np) },
				func(_ int, s *pageState) { s.perms = np })
		case k == 5:
			add("clone", func(as *addrspace.AddressSpace) error {
				c, err := as.Clone()
				if err == nil {
					err = c.Close()
				}
				return err
			}, func(int, *pageState) {})
		case k == 6:
			add("dontneed", func(as *addrspace.AddressSpace) error { return as.Madvise(raceBase, length, unix.MADV_DONTNEED) },
				func(_ int, s *pageState) { s.val = 0 })
		case k == 7:
			// Away and back: unmapped between the two calls.
			saved := cur
			add("mremap away", func(as *addrspace.AddressSpace) error {
				_, err := as.Mremap(raceBase, length, length, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, raceAway)
				return err
			}, func(_ int, s *pageState) { *s = pageState{} })
			add("mremap back", func(as *addrspace.AddressSpace) error {
				_, err := as.Mremap(raceAway, length, length, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, raceBase)
				return err
			}, func(p int, s *pageState) { *s = saved[p] })
		case k == 8:
			add("munmap", func(as *addrspace.AddressSpace) error { return as.Munmap(raceBase, length) },
				func(_ int, s *pageState) { *s = pageState{} })
		default:
			mapAll(perms[rng.Intn(len(perms))])
		}
	}
	return steps
}

// TestTLBRace runs a reader through the example's software TLB while
// another goroutine works through a schedule of mapping changes: every
// access must see the state after the last call that returned before it
// began, or a later one, never an older one, and nothing may crash.
func TestTLBRace(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 300
	}
	for seed := int64(1); seed <= 2; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			defer as.Close()
			steps := raceSchedule(rand.New(rand.NewSource(seed)), n)
			states := make([][racePages]pageState, len(steps)+1) // states[i]: after i calls
			for i, s := range steps {
				states[i+1] = s.after
			}

			// The mutator lets the reader make a round of accesses (each
			// kind to each page) in each state, so that a stale access
			// cannot hide in a window of several states.
			var done, reads atomic.Int64
			const round = 2 * racePages * 3
			var wg sync.WaitGroup
			var stop atomic.Bool
			defer func() { stop.Store(true); wg.Wait() }() // before Close
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, s := range steps {
					if stop.Load() {
						return
					}
					if err := s.op(as); err != nil {
						t.Errorf("step %d (%s): %v", i, s.name, err)
					}
					start := reads.Load()
					done.Store(int64(i + 1))
					for i+1 < len(steps) && reads.Load() < start+round && !stop.Load() {
						runtime.Gosched()
					}
				}
			}()

			tl := newTLB(as)
			kinds := []hostarch.AccessType{hostarch.Read, hostarch.Write, hostarch.Execute}
			var ok, faults [3]int
			for iter := 0; done.Load() < int64(len(steps)); iter++ {
				p := iter % racePages
				k := (iter / racePages) % len(kinds)
				at := kinds[k]
				addr := raceBase + hostarch.Addr(p)*hostarch.PageSize
				before := done.Load()
				var val uint64
				err := tl.run(at, addr, func() (err error) {
					switch k {
					case 0:
						val, err = tl.load64(addr)
					case 1:
						err = tl.store64(addr+64, uint64(iter))
					case 2:
						var v uint32
						v, err = tl.fetch32(addr)
						val = uint64(v)
					}
					return err
				})
				after := done.Load()
				good := false
				for j := before; j <= min(after+1, int64(len(steps))) && !good; j++ {
					good = states[j][p].allows(at, val, err)
				}
				if !good {
					t.Fatalf("access %d: %v of page %d = %#x, %v after call %d (%+v) returned and before call %d (%+v) did",
						iter, at, p, val, err, before, states[before][p], after+2, states[min(after+1, int64(len(steps)))][p])
				}
				if n := reads.Add(1); after == before && n%round == 0 {
					// A round done in this state: let the mutator on
					// (a reader that only faults would otherwise keep the
					// mutex it needs).
					runtime.Gosched()
				}
				if err == nil {
					ok[k]++
				} else {
					faults[k]++
				}
			}
			wg.Wait()
			t.Logf("accesses that worked (read, write, execute): %v; that faulted: %v", ok, faults)
			for k := range kinds {
				if ok[k] == 0 || faults[k] == 0 {
					t.Errorf("%v: %d worked, %d faulted: the schedule did not exercise both", kinds[k], ok[k], faults[k])
				}
			}
		})
	}
}

// TestTLBRaceClose closes the address space under a reader: its accesses
// work until they fail with ErrClosed, and nothing crashes.
func TestTLBRaceClose(t *testing.T) {
	for round := 0; round < 20; round++ {
		as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		addr, err := as.Mmap(addrspace.MmapOpts{Length: 16 * hostarch.PageSize, Perms: hostarch.ReadWrite, Private: true})
		if err != nil {
			t.Fatal(err)
		}
		tl := newTLB(as)
		started := make(chan struct{})
		go func() {
			<-started
			for i := 0; i < round*10; i++ {
				runtime.Gosched()
			}
			as.Close()
		}()
		closed := false
		for i := 0; !closed; i++ {
			if i == 100 {
				close(started)
			}
			a := addr + hostarch.Addr(i%16)*hostarch.PageSize
			err := tl.run(hostarch.Write, a, func() error { return tl.store64(a, uint64(i)) })
			switch {
			case err == nil:
			case errors.Is(err, addrspace.ErrClosed):
				closed = true
			default:
				t.Fatalf("store %d: %v", i, err)
			}
		}
		runtime.KeepAlive(as)
	}
}
