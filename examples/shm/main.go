// Command shm passes messages between two simulated address spaces through
// shared memory, as two processes of a userspace kernel would: both map the
// same memory file (memfd_create) shared, a producer goroutine works in one
// address space and a consumer in the other, and a single-producer
// single-consumer ring buffer in the shared pages carries the messages.
//
// The only synchronisation is the 4-byte atomics of usermem.IO
// (CompareAndSwapUint32, LoadUint32, SwapUint32) on the ring's words and,
// for a side that has to wait, a futex on the word it waits for
// (AddressSpace.FutexWait and FutexWake, keyed by the shared memory file
// and offset, so that a wake in one address space reaches a waiter in the
// other): no Go mutex or channel crosses between the two sides.
//
// It passes the messages twice, once with each way of waiting, and prints
// the messages/s of both: -wait spin polls the word (yielding the processor
// between polls), -wait futex sleeps on it.
//
//	go run ./examples/shm -n 1000000
//	go run ./examples/shm -wait futex
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 100000, "number of messages to pass")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long (each way)")
	wait := fs.String("wait", "both", "how a side waits: spin, futex or both (one run each)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var modes []waitMode
	switch *wait {
	case "spin":
		modes = []waitMode{spin}
	case "futex":
		modes = []waitMode{futex}
	case "both":
		modes = []waitMode{spin, futex}
	default:
		fmt.Fprintf(stderr, "shm: -wait must be spin, futex or both, not %q\n", *wait)
		return 2
	}
	if *n < 0 || uint64(*n) > 1<<32-1 {
		fmt.Fprintln(stderr, "shm: -n must be in [0, 2^32)")
		return 2
	}
	code := 0
	for i, mode := range modes {
		out := io.Discard
		if i == 0 {
			out = stdout // the maps once
		}
		if c := runMode(mode, *n, *timeout, out, stdout, stderr); c != 0 {
			code = c
		}
	}
	return code
}

// runMode passes n messages waiting the given way and prints a summary
// line; it returns the exit status.
func runMode(mode waitMode, n int, timeout time.Duration, maps, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	bad, next := 0, 0
	start := time.Now()
	st, err := pass(ctx, mode, n, maps, func(i int, msg []byte) {
		// The consumer checks every message: right one, in order, once,
		// intact.
		if i != next || !bytes.Equal(msg, message(i)) {
			if bad < 5 {
				fmt.Fprintf(stderr, "%s: message %d (expected %d): got %q, want %q\n", mode, i, next, msg, message(i))
			}
			bad++
		}
		next = i + 1
	})
	elapsed := time.Since(start)
	if err != nil {
		fmt.Fprintf(stderr, "shm: %s: %v\n", mode, err)
		return 1
	}
	if next != n {
		fmt.Fprintf(stderr, "shm: %s: %d messages arrived, want %d\n", mode, next, n)
		bad++
	}
	fmt.Fprintf(stdout, "%-6s %d messages passed in %v (%.0f messages/s), %d wrong; %d sleeps, %d wakes\n",
		mode.String()+":", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), bad, st.sleeps.Load(), st.wakes.Load())
	if bad != 0 {
		return 1
	}
	return 0
}

// A waitMode is how a side waits for the other.
type waitMode int

const (
	// spin polls the word, yielding the processor between polls.
	spin waitMode = iota
	// futex sleeps in FutexWait until the other side's FutexWake.
	futex
)

func (m waitMode) String() string {
	if m == futex {
		return "futex"
	}
	return "spin"
}

// stats counts what the waiting cost: FutexWait calls that slept (or found
// the word changed already), and FutexWake calls that woke a waiter.
type stats struct {
	sleeps, wakes atomic.Int64
}

// message returns the i'th message: its number and a tail of varying length.
func message(i int) []byte {
	m := fmt.Appendf(nil, "message %d ", i)
	for j := range i % (payloadMax - len(m) + 1) {
		m = append(m, byte('a'+(i+j)%26))
	}
	return m
}

// The ring's layout in the shared memory:
//
//	0:     head, uint32: messages written (by the producer only)
//	64:    tail, uint32: messages read (by the consumer only)
//	128:   head's waiter flag, uint32: 1 while the consumer waits on head
//	192:   tail's waiter flag, uint32: 1 while the producer waits on tail
//	4096:  nSlots slots of slotSize bytes: a uint32 length, then the payload
//
// head and tail are free-running counters; slot i%nSlots holds message i.
// The producer may write slot head%nSlots when head-tail < nSlots; the
// consumer may read slot tail%nSlots when tail != head. They sit on
// different cache lines so the two sides do not fight over one.
//
// The flags spare the futex system (a lock and a lookup per call) when
// nobody sleeps: a side that moves head or tail calls FutexWake only if the
// word's flag is set (see waitUntil and publish).
const (
	headOff    = 0
	tailOff    = 64
	flagOff    = 128 // the flag of the word at x is at x + flagOff
	slotsOff   = hostarch.PageSize
	slotSize   = 64
	nSlots     = hostarch.PageSize / slotSize
	payloadMax = slotSize - 4
	ringSize   = 2 * hostarch.PageSize
)

// pass sends n messages from a producer in one address space to a consumer
// in another, each side waiting for the other the given way, calling got
// for each message the consumer reads. It writes both address spaces' maps
// to out.
func pass(ctx context.Context, mode waitMode, n int, out io.Writer, got func(i int, msg []byte)) (*stats, error) {
	st := &stats{}
	// The shared memory: an anonymous memory file, made on the host side.
	fd, err := unix.MemfdCreate("shm-ring", unix.MFD_CLOEXEC)
	if err != nil {
		return st, fmt.Errorf("memfd_create: %w", err)
	}
	memfd := os.NewFile(uintptr(fd), "/memfd:shm-ring")
	defer memfd.Close()
	if err := memfd.Truncate(ringSize); err != nil {
		return st, err
	}

	// Two address spaces, each mapping the file shared (Private: false),
	// at different addresses: what matters is the (file, offset) behind
	// them, not the simulated address.
	var spaces [2]*addrspace.AddressSpace
	var rings [2]hostarch.Addr
	for i, hint := range []hostarch.Addr{0x10000, 0x7f0000} {
		as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
		if err != nil {
			return st, err
		}
		defer as.Close()
		rings[i], err = as.Mmap(addrspace.MmapOpts{
			Addr:   hint,
			Length: ringSize,
			Perms:  hostarch.ReadWrite,
			File:   memfd,
		})
		if err != nil {
			return st, fmt.Errorf("mmap: %w", err)
		}
		spaces[i] = as
		fmt.Fprintf(out, "address space %d: ", i)
		if err := as.WriteMaps(out); err != nil {
			return st, err
		}
	}

	errs := make(chan error, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { errs <- produce(ctx, side{spaces[0], mode, st}, rings[0], n) }()
	go func() { errs <- consume(ctx, side{spaces[1], mode, st}, rings[1], n, got) }()
	var first error
	for range 2 {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel() // stop the other side's waiting
		}
	}
	return st, first
}

// A side is one end of the ring: its address space and how it waits.
type side struct {
	as   *addrspace.AddressSpace
	mode waitMode
	st   *stats
}

func produce(ctx context.Context, s side, ring hostarch.Addr, n int) error {
	mem := s.as
	var opts usermem.IOOpts
	slot := make([]byte, slotSize)
	for head := uint32(0); head < uint32(n); head++ {
		// Wait for a free slot.
		if err := s.waitUntil(ctx, ring+tailOff, func(tail uint32) bool { return head-tail < nSlots }); err != nil {
			return fmt.Errorf("producer: %w", err)
		}
		// Fill the slot with ordinary copies: the consumer does not look
		// at it until head moves past it.
		msg := message(int(head))
		hostarch.ByteOrder.PutUint32(slot, uint32(len(msg)))
		copy(slot[4:], msg)
		if _, err := mem.CopyOut(ctx, slotAddr(ring, head), slot[:4+len(msg)], opts); err != nil {
			return fmt.Errorf("producer: %w", err)
		}
		// Publish it, and wake the consumer if it sleeps.
		if err := s.publish(ctx, ring+headOff, head); err != nil {
			return fmt.Errorf("producer: %w", err)
		}
	}
	return nil
}

func consume(ctx context.Context, s side, ring hostarch.Addr, n int, got func(int, []byte)) error {
	mem := s.as
	var opts usermem.IOOpts
	slot := make([]byte, slotSize)
	for tail := uint32(0); tail < uint32(n); tail++ {
		// Wait for a message.
		if err := s.waitUntil(ctx, ring+headOff, func(head uint32) bool { return head != tail }); err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
		if _, err := mem.CopyIn(ctx, slotAddr(ring, tail), slot, opts); err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
		size := hostarch.ByteOrder.Uint32(slot)
		if size > payloadMax {
			return fmt.Errorf("consumer: message %d: bad length %d", tail, size)
		}
		got(int(tail), slot[4:4+size])
		// Give the slot back, and wake the producer if it sleeps.
		if err := s.publish(ctx, ring+tailOff, tail); err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
	}
	return nil
}

func slotAddr(ring hostarch.Addr, i uint32) hostarch.Addr {
	return ring + slotsOff + hostarch.Addr(i%nSlots*slotSize)
}

// publish moves the counter at addr from old to old+1, and in futex mode
// wakes the other side if its flag says it sleeps (or is about to) on the
// counter. Only one side writes each counter, so the CAS always succeeds;
// it is the atomic store (with a full barrier) that makes the slot's bytes
// visible before the new count, and orders it before the flag's load.
func (s side) publish(ctx context.Context, addr hostarch.Addr, old uint32) error {
	var opts usermem.IOOpts
	if got, err := s.as.CompareAndSwapUint32(ctx, addr, old, old+1, opts); err != nil || got != old {
		return fmt.Errorf("counter at %#x was %d, want %d: %v", addr, got, old, err)
	}
	if s.mode != futex {
		return nil
	}
	waiting, err := s.as.LoadUint32(ctx, addr+flagOff, opts)
	if err != nil || waiting == 0 {
		return err
	}
	n, err := s.as.FutexWake(addr, 1, ^uint32(0))
	if n > 0 {
		s.st.wakes.Add(1)
	}
	return err
}

// waitUntil returns once ok accepts the uint32 at addr.
//
// spin: it polls the word, yielding the processor after a short busy spin.
//
// futex: it sets the word's flag, looks again, and sleeps in FutexWait
// for as long as the word still holds what it saw; it clears the flag
// once ok. Only the waiter clears its flag, so a publish that follows the
// waiter's look always sees the flag and wakes it — or, if it lands
// between the look and the sleep, FutexWait finds the word changed and
// returns EAGAIN at once (it compares under the futex table's lock, which
// FutexWake takes too): no wake is lost.
func (s side) waitUntil(ctx context.Context, addr hostarch.Addr, ok func(uint32) bool) error {
	var opts usermem.IOOpts
	flagged := false
	for spins := 0; ; spins++ {
		v, err := s.as.LoadUint32(ctx, addr, opts)
		if err != nil {
			return err
		}
		if ok(v) {
			if flagged {
				_, err = s.as.SwapUint32(ctx, addr+flagOff, 0, opts)
			}
			return err
		}
		if s.mode == spin {
			if spins%1024 == 1023 && ctx.Err() != nil {
				return errors.New("gave up waiting: " + ctx.Err().Error())
			}
			if spins > 100 {
				runtime.Gosched()
			}
			continue
		}
		if !flagged {
			// SwapUint32 is a full barrier: the flag is visible before
			// the word is read again.
			if _, err := s.as.SwapUint32(ctx, addr+flagOff, 1, opts); err != nil {
				return err
			}
			flagged = true
			continue // look again before sleeping
		}
		s.st.sleeps.Add(1)
		err = s.as.FutexWait(ctx, addr, v, ^uint32(0))
		switch {
		case err == nil, errors.Is(err, unix.EAGAIN):
			// Woken, or the word changed already: look again.
		case ctx.Err() != nil:
			return errors.New("gave up waiting: " + ctx.Err().Error())
		default:
			return err
		}
	}
}
