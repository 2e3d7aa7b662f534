package addrspace

import (
	"context"
	"testing"
	"time"

	"github.com/mmsim/mmsim/hostarch"
)

// blockingFiller fills pages with zeros once release is closed.
type blockingFiller struct{ entered, release chan struct{} }

func (f *blockingFiller) FillPages(ctx context.Context, off uint64, dst []byte) error {
	select {
	case f.entered <- struct{}{}:
	default:
	}
	<-f.release
	clear(dst)
	return nil
}

// TestFutexWaitFaultDropsGlobalLock: a FutexWait whose word must be faulted
// in resolves the fault without holding the process-wide futex lock, so
// another space's futex calls go on meanwhile (before, they waited for as
// long as the fault took: here a lazy fill that blocks; a fault waiting
// for the space's lock during a Clone of many mappings, say).
func TestFutexWaitFaultDropsGlobalLock(t *testing.T) {
	a, b := newAS(t, 64*pg), newAS(t, 64*pg)
	filler := &blockingFiller{entered: make(chan struct{}, 1), release: make(chan struct{})}
	wa := mustMmap(t, a, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true, Fill: filler})
	wb := mustMmap(t, b, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	if _, err := b.CopyOut(ctx, wb, []byte{0, 0, 0, 0}, noOpt); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- a.FutexWait(context.Background(), wa, 0, ^uint32(0)) }()
	<-filler.entered // the wait's read of the word is filling the page
	woke := make(chan int, 1)
	go func() {
		n, _ := b.FutexWake(wb, 1, ^uint32(0))
		woke <- n
	}()
	select {
	case n := <-woke:
		if n != 0 {
			t.Errorf("FutexWake in the other space woke %d, want 0", n)
		}
	case <-time.After(10 * time.Second):
		close(filler.release)
		t.Fatal("another space's FutexWake waited for this space's fault")
	}
	close(filler.release)
	// The wait goes on once the page is in, and a wake reaches it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := a.FutexWake(wa, 1, ^uint32(0))
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		select {
		case err := <-waitErr:
			t.Fatalf("FutexWait returned %v before a wake", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiter never slept")
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-waitErr; err != nil {
		t.Fatalf("FutexWait = %v", err)
	}
}
