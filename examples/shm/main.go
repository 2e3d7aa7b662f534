// Command shm passes messages between two simulated address spaces through
// shared memory, as two processes of a userspace kernel would: both map the
// same memory file (memfd_create) shared, a producer goroutine works in one
// address space and a consumer in the other, and a single-producer
// single-consumer ring buffer in the shared pages carries the messages.
//
// The only synchronisation is the 4-byte atomics of usermem.IO
// (CompareAndSwapUint32, LoadUint32) on the ring's head and tail words, the
// same way two processes would use futex words: no Go mutex or channel
// crosses between the two sides.
//
//	go run ./examples/shm -n 1000000
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
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *n < 0 || uint64(*n) > 1<<32-1 {
		fmt.Fprintln(stderr, "shm: -n must be in [0, 2^32)")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	bad := 0
	start := time.Now()
	err := pass(ctx, *n, stdout, func(i int, msg []byte) {
		// The consumer checks every message: right one, in order, intact.
		if !bytes.Equal(msg, message(i)) {
			if bad < 5 {
				fmt.Fprintf(stderr, "message %d: got %q, want %q\n", i, msg, message(i))
			}
			bad++
		}
	})
	elapsed := time.Since(start)
	if err != nil {
		fmt.Fprintln(stderr, "shm:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d messages passed in %v (%.0f messages/s), %d wrong\n",
		*n, elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds(), bad)
	if bad != 0 {
		return 1
	}
	return 0
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
//	4096:  nSlots slots of slotSize bytes: a uint32 length, then the payload
//
// head and tail are free-running counters; slot i%nSlots holds message i.
// The producer may write slot head%nSlots when head-tail < nSlots; the
// consumer may read slot tail%nSlots when tail != head. They sit on
// different cache lines so the two sides do not fight over one.
const (
	headOff    = 0
	tailOff    = 64
	slotsOff   = hostarch.PageSize
	slotSize   = 64
	nSlots     = hostarch.PageSize / slotSize
	payloadMax = slotSize - 4
	ringSize   = 2 * hostarch.PageSize
)

// pass sends n messages from a producer in one address space to a consumer
// in another, calling got for each message the consumer reads.
func pass(ctx context.Context, n int, out io.Writer, got func(i int, msg []byte)) error {
	// The shared memory: an anonymous memory file, made on the host side.
	fd, err := unix.MemfdCreate("shm-ring", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	memfd := os.NewFile(uintptr(fd), "/memfd:shm-ring")
	defer memfd.Close()
	if err := memfd.Truncate(ringSize); err != nil {
		return err
	}

	// Two address spaces, each mapping the file shared (Private: false),
	// at different addresses: what matters is the (file, offset) behind
	// them, not the simulated address.
	var spaces [2]*addrspace.AddressSpace
	var rings [2]hostarch.Addr
	for i, hint := range []hostarch.Addr{0x10000, 0x7f0000} {
		as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
		if err != nil {
			return err
		}
		defer as.Close()
		rings[i], err = as.Mmap(addrspace.MmapOpts{
			Addr:   hint,
			Length: ringSize,
			Perms:  hostarch.ReadWrite,
			File:   memfd,
		})
		if err != nil {
			return fmt.Errorf("mmap: %w", err)
		}
		spaces[i] = as
		fmt.Fprintf(out, "address space %d: ", i)
		if err := as.WriteMaps(out); err != nil {
			return err
		}
	}

	errs := make(chan error, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { errs <- produce(ctx, spaces[0], rings[0], n) }()
	go func() { errs <- consume(ctx, spaces[1], rings[1], n, got) }()
	var first error
	for range 2 {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel() // stop the other side's waiting
		}
	}
	return first
}

func produce(ctx context.Context, mem usermem.IO, ring hostarch.Addr, n int) error {
	var opts usermem.IOOpts
	slot := make([]byte, slotSize)
	for head := uint32(0); head < uint32(n); head++ {
		// Wait for a free slot.
		if err := waitUntil(ctx, mem, ring+tailOff, func(tail uint32) bool { return head-tail < nSlots }); err != nil {
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
		// Publish it. Only the producer writes head, so the CAS always
		// succeeds; it is the atomic store (with a full barrier) that
		// makes the slot's bytes visible before the new head.
		if old, err := mem.CompareAndSwapUint32(ctx, ring+headOff, head, head+1, opts); err != nil || old != head {
			return fmt.Errorf("producer: head was %d, want %d: %v", old, head, err)
		}
	}
	return nil
}

func consume(ctx context.Context, mem usermem.IO, ring hostarch.Addr, n int, got func(int, []byte)) error {
	var opts usermem.IOOpts
	slot := make([]byte, slotSize)
	for tail := uint32(0); tail < uint32(n); tail++ {
		// Wait for a message.
		if err := waitUntil(ctx, mem, ring+headOff, func(head uint32) bool { return head != tail }); err != nil {
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
		// Give the slot back.
		if old, err := mem.CompareAndSwapUint32(ctx, ring+tailOff, tail, tail+1, opts); err != nil || old != tail {
			return fmt.Errorf("consumer: tail was %d, want %d: %v", old, tail, err)
		}
	}
	return nil
}

func slotAddr(ring hostarch.Addr, i uint32) hostarch.Addr {
	return ring + slotsOff + hostarch.Addr(i%nSlots*slotSize)
}

// waitUntil spins on the uint32 at addr until ok accepts its value, yielding
// the processor after a short busy spin. A real kernel would sleep on a
// futex; this is enough for a demonstration.
func waitUntil(ctx context.Context, mem usermem.IO, addr hostarch.Addr, ok func(uint32) bool) error {
	for spins := 0; ; spins++ {
		v, err := mem.LoadUint32(ctx, addr, usermem.IOOpts{})
		if err != nil {
			return err
		}
		if ok(v) {
			return nil
		}
		if spins%1024 == 1023 && ctx.Err() != nil {
			return errors.New("gave up waiting: " + ctx.Err().Error())
		}
		if spins > 100 {
			runtime.Gosched()
		}
	}
}
