package addrspace

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestFutexCounts checks the counts FutexWake and FutexRequeue return
// where Linux's kernel differs from a plain reading of futex(2) (the
// differential test, TestHostDiffFlags, confirms them against the host): a
// wake of n <= 0 wakes one waiter; FUTEX_REQUEUE, like FUTEX_CMP_REQUEUE,
// returns woken plus requeued; waiters requeued onto their own word count.
func TestFutexCounts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		waiters int
		op      func(as *AddressSpace, a hostarch.Addr) (int, error)
		want    int
		left    int // waiters still asleep at a afterwards
	}{
		{"wake 0", 3, func(as *AddressSpace, a hostarch.Addr) (int, error) { return as.FutexWake(a, 0, allBits) }, 1, 2},
		{"wake -5", 3, func(as *AddressSpace, a hostarch.Addr) (int, error) { return as.FutexWake(a, -5, allBits) }, 1, 2},
		{"wake 0, nobody waits", 0, func(as *AddressSpace, a hostarch.Addr) (int, error) { return as.FutexWake(a, 0, allBits) }, 0, 0},
		{"wake 2", 3, func(as *AddressSpace, a hostarch.Addr) (int, error) { return as.FutexWake(a, 2, allBits) }, 2, 1},
		{"requeue 1 and 1", 3, func(as *AddressSpace, a hostarch.Addr) (int, error) { return as.FutexRequeue(a, a+8, 1, 1, nil) }, 2, 1},
		{"requeue 0 and all", 3, func(as *AddressSpace, a hostarch.Addr) (int, error) { return as.FutexRequeue(a, a+8, 0, 100, nil) }, 3, 0},
		{"requeue onto itself", 3, func(as *AddressSpace, a hostarch.Addr) (int, error) { return as.FutexRequeue(a, a, 1, 5, nil) }, 3, 2},
		{"requeue onto itself, fewer", 3, func(as *AddressSpace, a hostarch.Addr) (int, error) { return as.FutexRequeue(a, a, 0, 1, nil) }, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, 1<<30)
			a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for range tc.waiters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := as.FutexWait(ctx, a, 0, allBits); err != nil {
						t.Error(err)
					}
				}()
			}
			waitQueued(t, as, a, tc.waiters)
			if n, err := tc.op(as, a); n != tc.want || err != nil {
				t.Errorf("= %d, %v; want %d", n, err, tc.want)
			}
			waitQueued(t, as, a, tc.left)
			as.FutexWake(a, 100, allBits)
			as.FutexWake(a+8, 100, allBits)
			wg.Wait()
		})
	}
}

// TestFutexNoAccess: a futex word in a PROT_NONE mapping is EFAULT for a
// wake and a requeue too, as for Linux's shared futexes (the key pins the
// page for reading), and nothing was woken or moved; made readable, it
// works.
func TestFutexNoAccess(t *testing.T) {
	as := newAS(t, 1<<30)
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.NoAccess, Private: true})
	b := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	for _, c := range []struct {
		name string
		op   func() (int, error)
	}{
		{"wake", func() (int, error) { return as.FutexWake(a, 1, allBits) }},
		{"requeue from it", func() (int, error) { return as.FutexRequeue(a, b, 1, 1, nil) }},
		{"requeue to it", func() (int, error) { return as.FutexRequeue(b, a, 1, 1, nil) }},
	} {
		if n, err := c.op(); n != 0 || errnoOf(err) != unix.EFAULT {
			t.Errorf("%s = %d, %v; want 0, EFAULT", c.name, n, err)
		}
	}
	if err := as.FutexWait(context.Background(), a, 0, allBits); errnoOf(err) != unix.EFAULT {
		t.Errorf("wait = %v; want EFAULT", err)
	}
	if err := as.Mprotect(a, pg, hostarch.Read); err != nil {
		t.Fatal(err)
	}
	if n, err := as.FutexWake(a, 1, allBits); n != 0 || err != nil {
		t.Errorf("wake after Mprotect = %d, %v; want 0, nil", n, err)
	}
}
