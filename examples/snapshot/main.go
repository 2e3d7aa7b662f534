// Command snapshot shows how an emulator-based fuzzer uses mmsim's
// snapshots: it builds a guest address space (code, data, heap, stack),
// takes a snapshot of it (a Clone), then runs a small guest workload on an
// input over and over, resetting the space to the snapshot after each run,
// as AFL++'s Unicorn mode or LibAFL reset guest memory.
//
// The first run is watched with dirty tracking (ClearDirty before, Dirty
// after) to show which pages it wrote; after each Reset the space's
// mappings and bytes equal the snapshot's (checked on a sample of runs),
// and Reset's cost follows what the run changed, not the space's size. It
// ends with the resets per second.
//
//	go run ./examples/snapshot [-n resets]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"reflect"
	"time"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const pageSize = hostarch.PageSize

// The guest's layout.
const (
	codeAddr  = 0x400000
	codeSize  = 16 * pageSize
	dataAddr  = 0x10000000
	dataSize  = 64 << 20 // populated: the snapshot holds 64 MiB of data
	stackTop  = 0x7fff0000
	stackSize = 32 * pageSize
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("snapshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 2000, "how many times to run the workload and reset")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *n < 1 {
		fmt.Fprintln(stderr, "snapshot: -n must be at least 1")
		return 2
	}
	if err := demo(*n, stdout); err != nil {
		fmt.Fprintln(stderr, "snapshot:", err)
		return 1
	}
	return 0
}

// guest is the address space under test and the addresses of its parts.
type guest struct {
	as       *addrspace.AddressSpace
	heapBase hostarch.Addr
}

func newGuest() (*guest, error) {
	as, err := addrspace.New(addrspace.Options{Size: 4 << 30, BrkStart: 0x20000000})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	g := &guest{as: as, heapBase: 0x20000000}
	maps := []addrspace.MmapOpts{
		{Addr: codeAddr, Length: codeSize, Perms: hostarch.ReadWrite, Private: true, Name: "code"},
		{Addr: dataAddr, Length: dataSize, Perms: hostarch.ReadWrite, Private: true, Name: "data"},
		{Addr: stackTop - stackSize, Length: stackSize, Perms: hostarch.ReadWrite, Private: true, Name: "[stack]"},
	}
	for _, o := range maps {
		o.Fixed = true
		if _, err := as.Mmap(o); err != nil {
			as.Close()
			return nil, err
		}
	}
	// "Load" the program and its data, then make the code read-only.
	code := bytes.Repeat([]byte{0x90}, codeSize)
	if _, err := as.CopyOut(ctx, codeAddr, code, usermem.IOOpts{}); err != nil {
		as.Close()
		return nil, err
	}
	if err := as.Mprotect(codeAddr, codeSize, hostarch.AccessType{Read: true, Execute: true}); err != nil {
		as.Close()
		return nil, err
	}
	page := make([]byte, pageSize)
	for off := 0; off < dataSize; off += pageSize {
		for i := range page {
			page[i] = byte(off/pageSize + i)
		}
		if _, err := as.CopyOut(ctx, dataAddr+hostarch.Addr(off), page, usermem.IOOpts{}); err != nil {
			as.Close()
			return nil, err
		}
	}
	if _, err := as.Brk(g.heapBase + 4*pageSize); err != nil {
		as.Close()
		return nil, err
	}
	return g, nil
}

// workload is the guest program run on one input: it pushes onto its
// stack, grows its heap and writes there, updates a few data pages the
// input selects, maps a scratch buffer, and, for some inputs, unmaps part
// of its data. It returns the pages it wrote or mapped anew.
func (g *guest) workload(input []byte) (map[hostarch.Addr]bool, error) {
	ctx := context.Background()
	as := g.as
	touched := map[hostarch.Addr]bool{}
	write := func(addr hostarch.Addr, b []byte) error {
		if _, err := as.CopyOut(ctx, addr, b, usermem.IOOpts{}); err != nil {
			return err
		}
		for p := addr.RoundDown(); p < addr+hostarch.Addr(len(b)); p += pageSize {
			touched[p] = true
		}
		return nil
	}
	// The stack frame.
	if err := write(stackTop-256, input); err != nil {
		return nil, err
	}
	// The heap grows by a page and gets the input.
	brk, err := as.Brk(0)
	if err != nil {
		return nil, err
	}
	if _, err := as.Brk(brk + pageSize); err != nil {
		return nil, err
	}
	if err := write(brk, input); err != nil {
		return nil, err
	}
	// Data pages selected by the input bytes, with a counter each.
	for i, b := range input[:4] {
		addr := dataAddr + hostarch.Addr(int(b)*251+i*977)%(dataSize/pageSize)*pageSize + 128
		if _, err := as.SwapUint32(ctx, addr, uint32(b), usermem.IOOpts{}); err != nil {
			return nil, err
		}
		touched[addr.RoundDown()] = true
	}
	// A scratch buffer.
	scratch, err := as.Mmap(addrspace.MmapOpts{Length: 2 * pageSize, Perms: hostarch.ReadWrite, Private: true})
	if err != nil {
		return nil, err
	}
	if err := write(scratch, input); err != nil {
		return nil, err
	}
	touched[scratch+pageSize] = true // mapped anew: dirty though unwritten
	// Some inputs free a page of data.
	if input[4]%3 == 0 {
		if err := as.Munmap(dataAddr+hostarch.Addr(input[5])*pageSize, pageSize); err != nil {
			return nil, err
		}
		delete(touched, dataAddr+hostarch.Addr(input[5])*pageSize)
	}
	return touched, nil
}

// sameAs reports whether g's space has exactly snap's mappings and the
// same bytes in them.
func sameAs(as, snap *addrspace.AddressSpace) (bool, error) {
	ms, ss := as.Mappings(), snap.Mappings()
	if !reflect.DeepEqual(ms, ss) {
		return false, nil
	}
	ctx := context.Background()
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	for _, m := range ss {
		if !m.MaxPerms.Read {
			continue
		}
		for cur := m.Range.Start; cur < m.Range.End; {
			n := min(uint64(len(a)), uint64(m.Range.End-cur))
			if _, err := as.CopyIn(ctx, cur, a[:n], usermem.IOOpts{IgnorePermissions: true}); err != nil {
				return false, err
			}
			if _, err := snap.CopyIn(ctx, cur, b[:n], usermem.IOOpts{IgnorePermissions: true}); err != nil {
				return false, err
			}
			if !bytes.Equal(a[:n], b[:n]) {
				return false, nil
			}
			cur += hostarch.Addr(n)
		}
	}
	return true, nil
}

func demo(n int, out io.Writer) error {
	g, err := newGuest()
	if err != nil {
		return err
	}
	defer g.as.Close()
	snap, err := g.as.Clone()
	if err != nil {
		return err
	}
	defer snap.Close()
	fmt.Fprintf(out, "snapshot: %d mappings, %d MiB of data\n", len(snap.Mappings()), dataSize>>20)

	all := hostarch.AddrRange{Start: 0, End: hostarch.Addr(g.as.Size())}
	rng := rand.New(rand.NewSource(1))
	input := make([]byte, 16)
	var elapsed, resetting time.Duration
	for i := 0; i < n; i++ {
		rng.Read(input)
		if i == 0 {
			if err := g.as.ClearDirty(all); err != nil {
				return err
			}
		}
		start := time.Now()
		touched, err := g.workload(input)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		if i == 0 {
			dirty, err := g.as.Dirty(all)
			if err != nil {
				return err
			}
			pages := 0
			for _, r := range dirty {
				pages += int(r.Length() / pageSize)
			}
			fmt.Fprintf(out, "run 0: dirty pages %d (the workload wrote or mapped %d), in %d ranges\n", pages, len(touched), len(dirty))
		}
		startReset := time.Now()
		if err := g.as.Reset(snap); err != nil {
			return fmt.Errorf("reset %d: %w", i, err)
		}
		now := time.Now()
		resetting += now.Sub(startReset)
		elapsed += now.Sub(start)
		if i == 0 || i == n-1 || i%500 == 0 {
			ok, err := sameAs(g.as, snap)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("after reset %d the space differs from the snapshot", i)
			}
		}
	}
	fmt.Fprintln(out, "after every checked reset: mappings and bytes equal the snapshot's")
	fmt.Fprintf(out, "%d runs and resets in %v: %.0f runs/s\n", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	fmt.Fprintf(out, "Reset alone: %.1f µs each, %.0f resets/s\n", resetting.Seconds()/float64(n)*1e6, float64(n)/resetting.Seconds())
	return nil
}
