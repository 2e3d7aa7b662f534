package addrspace

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/internal/safecopy"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// Futexes, keyed as Linux keys them (get_futex_key): a word in a private
// mapping by (address space, address), a word in a shared mapping by
// (backing object, offset), so that address spaces sharing a memfd or a
// file wake each other wherever each maps it.
//
// Lock order: futexes.mu, then AddressSpace.mu. A Wait reads the word
// under futexes.mu, as Linux reads it under the hash bucket's lock, so that
// a Wake between the read and the sleep is never lost; but it never
// resolves a fault there: a fault drops futexes.mu, is resolved under the
// space's lock alone, and the read is tried again (futex_wait_setup's
// retry), so one space's long lock hold never stalls other spaces' futexes.

// futexKey identifies a futex word.
type futexKey struct {
	// as is the address space of a private futex; nil for a shared one.
	as *AddressSpace
	// dev and ino identify a shared futex's backing object.
	dev, ino uint64
	// off is the address of a private futex, or the offset in its object
	// of a shared one.
	off uint64
}

// A futexWaiter is one FutexWait in progress.
type futexWaiter struct {
	key    futexKey
	bitset uint32
	// woken is closed by the Wake or Requeue that wakes it, under
	// futexes.mu.
	woken  chan struct{}
	queued bool
}

// futexes is the process's futex table: the waiters of each key, in the
// order they came.
var futexes = struct {
	mu      sync.Mutex
	waiters map[futexKey][]*futexWaiter
}{waiters: map[futexKey][]*futexWaiter{}}

// futexKeyOf returns the key of the futex word at addr.
func (as *AddressSpace) futexKeyOf(addr hostarch.Addr) (futexKey, error) {
	if addr&3 != 0 {
		return futexKey{}, fmt.Errorf("addrspace: futex at %#x is not 4-byte aligned: %w", addr, unix.EINVAL)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed.Load() {
		return futexKey{}, errClosedIO
	}
	v := as.find(addr)
	if v == nil {
		return futexKey{}, &FaultError{Addr: addr, Access: hostarch.Read, Reason: FaultUnmapped}
	}
	if !v.perms.Effective().Read {
		// Linux's get_futex_key pins the page for reading
		// (get_user_pages), which a PROT_NONE mapping refuses: EFAULT,
		// for a wake or requeue too.
		return futexKey{}, &FaultError{Addr: addr, Access: hostarch.Read, Reason: FaultProtection}
	}
	if v.private || v.file == nil {
		return futexKey{as: as, off: uint64(addr)}, nil
	}
	return futexKey{dev: v.file.dev, ino: v.file.ino, off: v.offAt(addr)}, nil
}

// FutexWait waits on the futex word at addr, as futex(2)'s FUTEX_WAIT_BITSET
// does: if the word holds val it sleeps until a FutexWake or FutexRequeue
// whose bitset shares a bit with bitset wakes it (nil), or ctx is done
// (ctx.Err()); otherwise it returns EAGAIN at once. Pass ^uint32(0) as
// bitset for plain FUTEX_WAIT.
//
// Errors: EINVAL (wrapped) for a misaligned addr or a zero bitset; EAGAIN
// if the word differs from val; a *FaultError (EFAULT) if addr is not
// mapped readable; ErrClosed after Close; ctx.Err() when ctx is done first.
func (as *AddressSpace) FutexWait(ctx context.Context, addr hostarch.Addr, val, bitset uint32) error {
	if bitset == 0 {
		return fmt.Errorf("addrspace: FutexWait with a zero bitset: %w", unix.EINVAL)
	}
	key, err := as.futexKeyOf(addr)
	if err != nil {
		return err
	}
	w := &futexWaiter{key: key, bitset: bitset, woken: make(chan struct{})}
	var cur uint32
	for {
		futexes.mu.Lock()
		// Under futexes.mu the word is read without resolving a fault
		// (which would wait for this space's lock while every futex call
		// of the process waits for futexes.mu); on a fault, as Linux's
		// futex_wait_setup does, drop the lock, fault the page in the
		// ordinary way, and read again.
		var f safecopy.Fault
		if cur, f = safecopy.LoadUint32(unsafe.Add(as.appBase, addr)); f.Sig == 0 {
			break
		}
		futexes.mu.Unlock()
		if _, err := as.LoadUint32(ctx, addr, usermem.IOOpts{}); err != nil {
			return err
		}
	}
	if cur != val {
		futexes.mu.Unlock()
		return fmt.Errorf("addrspace: futex word at %#x holds %d, not %d: %w", addr, cur, val, unix.EAGAIN)
	}
	w.queued = true
	futexes.waiters[key] = append(futexes.waiters[key], w)
	futexes.mu.Unlock()

	select {
	case <-w.woken:
		return nil
	case <-ctx.Done():
	}
	futexes.mu.Lock()
	defer futexes.mu.Unlock()
	if !w.queued {
		return nil // woken as ctx was done: the wake counts
	}
	dequeue(w)
	return ctx.Err()
}

// dequeue removes w from its key's queue.
//
// Preconditions: futexes.mu is held; w is queued.
func dequeue(w *futexWaiter) {
	q := futexes.waiters[w.key]
	for i, x := range q {
		if x == w {
			q = append(q[:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(futexes.waiters, w.key)
	} else {
		futexes.waiters[w.key] = q
	}
	w.queued = false
}

// wakeLocked wakes up to n waiters of key whose bitset meets bitset, in the
// order they came, and returns how many it woke.
//
// Preconditions: futexes.mu is held.
func wakeLocked(key futexKey, n int, bitset uint32) int {
	woken := 0
	for _, w := range append([]*futexWaiter(nil), futexes.waiters[key]...) {
		if woken >= n {
			break
		}
		if w.bitset&bitset == 0 {
			continue
		}
		dequeue(w)
		close(w.woken)
		woken++
	}
	return woken
}

// FutexWake wakes up to n waiters on the futex word at addr whose bitset
// shares a bit with bitset, as FUTEX_WAKE_BITSET does (^uint32(0): plain
// FUTEX_WAKE), and returns how many it woke. As on Linux, n <= 0 wakes
// one (futex_wake counts a waiter before comparing with n).
//
// Errors: EINVAL (wrapped) for a misaligned addr or a zero bitset; a
// *FaultError (EFAULT) if addr is not mapped readable (as for Linux's
// shared futexes, whose key pins the page); ErrClosed after Close.
func (as *AddressSpace) FutexWake(addr hostarch.Addr, n int, bitset uint32) (int, error) {
	if bitset == 0 {
		return 0, fmt.Errorf("addrspace: FutexWake with a zero bitset: %w", unix.EINVAL)
	}
	key, err := as.futexKeyOf(addr)
	if err != nil {
		return 0, err
	}
	futexes.mu.Lock()
	defer futexes.mu.Unlock()
	return wakeLocked(key, max(n, 1), bitset), nil
}

// FutexRequeue wakes up to nwake waiters on the futex word at addr and
// moves up to nrequeue of the rest to wait on addr2, as FUTEX_REQUEUE does.
// With val non-nil it is FUTEX_CMP_REQUEUE: it first checks, atomically
// with the requeue, that the word at addr holds *val, and fails with EAGAIN
// otherwise. It returns the number woken plus the number requeued, for
// both, as Linux's futex_requeue does (futex(2) says FUTEX_REQUEUE returns
// the number woken; the kernel, the reference, counts both). Waiters
// "requeued" onto the word they wait on stay where they are, and count.
//
// Errors: EINVAL (wrapped) for a misaligned address or a negative count;
// EAGAIN (with val); a *FaultError (EFAULT) for an address not mapped
// readable;
// ErrClosed after Close.
func (as *AddressSpace) FutexRequeue(addr, addr2 hostarch.Addr, nwake, nrequeue int, val *uint32) (int, error) {
	if nwake < 0 || nrequeue < 0 {
		return 0, fmt.Errorf("addrspace: FutexRequeue(%d, %d): %w", nwake, nrequeue, unix.EINVAL)
	}
	key, err := as.futexKeyOf(addr)
	if err != nil {
		return 0, err
	}
	key2, err := as.futexKeyOf(addr2)
	if err != nil {
		return 0, err
	}
	futexes.mu.Lock()
	defer futexes.mu.Unlock()
	if val != nil {
		cur, err := as.LoadUint32(context.Background(), addr, usermem.IOOpts{})
		if err != nil {
			return 0, err
		}
		if cur != *val {
			return 0, fmt.Errorf("addrspace: futex word at %#x holds %d, not %d: %w", addr, cur, *val, unix.EAGAIN)
		}
	}
	woken := wakeLocked(key, nwake, ^uint32(0))
	requeued := 0
	if key2 == key {
		requeued = min(nrequeue, len(futexes.waiters[key]))
	} else {
		for _, w := range append([]*futexWaiter(nil), futexes.waiters[key]...) {
			if requeued >= nrequeue {
				break
			}
			dequeue(w)
			w.key, w.queued = key2, true
			futexes.waiters[key2] = append(futexes.waiters[key2], w)
			requeued++
		}
	}
	return woken + requeued, nil
}
