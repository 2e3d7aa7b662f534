package addrspace

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

const allBits = ^uint32(0)

// waitQueued waits until n waiters are queued on as's futex at addr.
func waitQueued(t *testing.T, as *AddressSpace, addr hostarch.Addr, n int) {
	t.Helper()
	key, err := as.futexKeyOf(addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		futexes.mu.Lock()
		got := len(futexes.waiters[key])
		futexes.mu.Unlock()
		if got == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d waiters never queued at %#x", n, addr)
}

func TestFutexErrors(t *testing.T) {
	as := newAS(t, 1<<30)
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	none := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.NoAccess, Private: true})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"wait misaligned", as.FutexWait(ctx, a+2, 0, allBits), unix.EINVAL},
		{"wait zero bitset", as.FutexWait(ctx, a, 0, 0), unix.EINVAL},
		{"wait value differs", as.FutexWait(ctx, a, 1, allBits), unix.EAGAIN},
		{"wait unmapped", as.FutexWait(ctx, 0x1000, 0, allBits), unix.EFAULT},
		{"wait unreadable", as.FutexWait(ctx, none, 0, allBits), unix.EFAULT},
		{"wait beyond the space", as.FutexWait(ctx, 1<<40, 0, allBits), unix.EFAULT},
		{"wait 2^64-4", as.FutexWait(ctx, ^hostarch.Addr(3), 0, allBits), unix.EFAULT},
		{"wait cancelled", as.FutexWait(cancelled, a, 0, allBits), context.Canceled},
		{"wake misaligned", second(as.FutexWake(a+1, 1, allBits)), unix.EINVAL},
		{"wake zero bitset", second(as.FutexWake(a, 1, 0)), unix.EINVAL},
		{"wake unmapped", second(as.FutexWake(0x1000, 1, allBits)), unix.EFAULT},
		{"requeue negative", second(as.FutexRequeue(a, a+4, -1, 0, nil)), unix.EINVAL},
		{"requeue unmapped target", second(as.FutexRequeue(a, 0x1000, 1, 1, nil)), unix.EFAULT},
		{"cmp requeue differs", second(as.FutexRequeue(a, a+4, 1, 1, ptr32(5))), unix.EAGAIN},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if n, err := as.FutexWake(a, 10, allBits); n != 0 || err != nil {
		t.Errorf("wake with no waiters = %d, %v", n, err)
	}
	deadline, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	if err := as.FutexWait(deadline, a, 0, allBits); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait past its deadline: %v", err)
	}
	futexes.mu.Lock()
	left := len(futexes.waiters)
	futexes.mu.Unlock()
	if left != 0 {
		t.Errorf("%d keys still have waiters", left)
	}
}

func second(_ int, err error) error { return err }

func ptr32(v uint32) *uint32 { return &v }

// TestFutexWakeBitsetRequeue wakes by bitset, in order, and requeues.
func TestFutexWakeBitsetRequeue(t *testing.T) {
	as := newAS(t, 1<<30)
	a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	var woken atomic.Int32
	var wg sync.WaitGroup
	start := func(addr hostarch.Addr, bitset uint32) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := as.FutexWait(ctx, addr, 0, bitset); err != nil {
				t.Error(err)
			}
			woken.Add(1)
		}()
	}
	start(a, 1)
	start(a, 2)
	start(a, 2)
	waitQueued(t, as, a, 3)
	if n, err := as.FutexWake(a, 5, 2); n != 2 || err != nil {
		t.Fatalf("wake bit 2 = %d, %v; want 2", n, err)
	}
	waitQueued(t, as, a, 1)
	start(a, allBits)
	start(a, allBits)
	waitQueued(t, as, a, 3)
	// Wake one, move the other two to a+8.
	if n, err := as.FutexRequeue(a, a+8, 1, 5, ptr32(0)); n != 3 || err != nil {
		t.Fatalf("cmp requeue = %d, %v; want 3", n, err)
	}
	waitQueued(t, as, a+8, 2)
	if n, _ := as.FutexWake(a, 5, allBits); n != 0 {
		t.Fatalf("wake at the old word woke %d", n)
	}
	if n, err := as.FutexRequeue(a+8, a+12, 1, 0, nil); n != 1 || err != nil {
		t.Fatalf("requeue = %d, %v; want 1 woken", n, err)
	}
	if n, _ := as.FutexWake(a+8, 5, allBits); n != 1 {
		t.Fatalf("last wake woke %d", n)
	}
	wg.Wait()
	if woken.Load() != 5 {
		t.Fatalf("%d woken", woken.Load())
	}
}

// TestFutexShared checks the keys: a shared mapping's futex is its
// object's, wherever and in whichever space it is mapped; a private
// mapping's is its space's, even across Clone.
func TestFutexShared(t *testing.T) {
	f := tempFile(t, make([]byte, 2*pg), os.O_RDWR)
	p := newAS(t, 1<<30)
	c := newAS(t, 1<<30)
	pa := mustMmap(t, p, MmapOpts{Length: 2 * pg, Perms: hostarch.ReadWrite, File: f})
	ca := mustMmap(t, c, MmapOpts{Addr: 0x400000, Fixed: true, Length: pg, Perms: hostarch.ReadWrite, File: f, Offset: pg})
	done := make(chan error, 1)
	go func() { done <- c.FutexWait(ctx, ca+16, 0, allBits) }()
	waitQueued(t, c, ca+16, 1)
	if n, err := p.FutexWake(pa+pg+16, 1, allBits); n != 1 || err != nil {
		t.Fatalf("wake through the other space = %d, %v", n, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Private memory: a clone's futex is its own.
	a := mustMmap(t, p, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	ch := mustClone(t, p)
	go func() { done <- ch.FutexWait(ctx, a, 0, allBits) }()
	waitQueued(t, ch, a, 1)
	if n, _ := p.FutexWake(a, 1, allBits); n != 0 {
		t.Fatalf("the parent woke the child's private futex")
	}
	if n, _ := ch.FutexWake(a, 1, allBits); n != 1 {
		t.Fatalf("the child's wake woke %d", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A shared mapping stays shared across Clone.
	ch2 := mustClone(t, p)
	go func() { done <- ch2.FutexWait(ctx, pa, 0, allBits) }()
	waitQueued(t, ch2, pa, 1)
	if n, _ := p.FutexWake(pa, 1, allBits); n != 1 {
		t.Fatalf("the parent's wake of a shared futex woke %d", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFutexConcurrent runs many waiters and wakers on a futex shared by two
// spaces, with the word changing: no wake is lost (every waiter returns).
func TestFutexConcurrent(t *testing.T) {
	f := tempFile(t, make([]byte, pg), os.O_RDWR)
	spaces := []*AddressSpace{newAS(t, 1<<30), newAS(t, 1<<30)}
	addrs := make([]hostarch.Addr, 2)
	for i, as := range spaces {
		addrs[i] = mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, File: f})
	}
	const waiters, rounds = 16, 50
	var wg sync.WaitGroup
	for w := 0; w < waiters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			as, a := spaces[w%2], addrs[w%2]
			for r := 0; r < rounds; r++ {
				// Wait while the word is even (a "locked" state).
				for {
					v, err := as.LoadUint32(ctx, a, usermem.IOOpts{})
					if err != nil {
						t.Error(err)
						return
					}
					if v >= uint32(2*rounds) || v%2 == 1 {
						break
					}
					if err := as.FutexWait(ctx, a, v, allBits); err != nil && !errors.Is(err, unix.EAGAIN) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	for v := uint32(1); v <= 2*rounds; v++ {
		as, a := spaces[int(v)%2], addrs[int(v)%2]
		if _, err := as.SwapUint32(ctx, a, v, usermem.IOOpts{}); err != nil {
			t.Fatal(err)
		}
		if _, err := as.FutexWake(a, waiters, allBits); err != nil {
			t.Fatal(err)
		}
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("a waiter never woke")
	}
}
