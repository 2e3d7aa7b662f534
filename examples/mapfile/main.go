// Command mapfile maps a real file into a simulated address space, first
// shared and then private, and shows where writes through the address space
// end up: in the file (shared) or only in simulated memory (private, by
// copy-on-write). Beside them it maps the same file in the host process
// itself (github.com/edsrzf/mmap-go), shared and private, and shows the
// host and the simulated shared mappings each seeing the other's writes at
// once — they are the same page cache pages — while the writes of either
// private mapping stay its own. Then it truncates the file under the
// simulated mappings and shows that touching the lost pages is an EFAULT
// return, not a SIGBUS crash.
//
//	go run ./examples/mapfile
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const pageSize = hostarch.PageSize

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mapfile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for the demo file (default: a new temporary directory)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := demo(*dir, stdout); err != nil {
		fmt.Fprintln(stderr, "mapfile:", err)
		return 1
	}
	return 0
}

func demo(dir string, out io.Writer) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "mapfile")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}

	// A two-page file: "page 0 ..." at offset 0, "page 1 ..." at pageSize.
	path := filepath.Join(dir, "data.txt")
	content := make([]byte, 2*pageSize)
	copy(content, "page 0: original text")
	copy(content[pageSize:], "page 1: original text")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		return err
	}
	// O_RDWR: a shared writable mapping needs a file open for writing, as
	// on Linux (otherwise Mmap returns EACCES).
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	// The address space keeps its own descriptor; ours can go.
	defer f.Close()

	as, err := addrspace.New(addrspace.Options{})
	if err != nil {
		return err
	}
	defer as.Close()
	ctx := context.Background()
	var opts usermem.IOOpts // zero value: honour every protection

	// --- Shared: writes go to the file (MAP_SHARED). ---
	shared, err := as.Mmap(addrspace.MmapOpts{
		Length: 2 * pageSize,
		Perms:  hostarch.ReadWrite,
		File:   f,
	})
	if err != nil {
		return fmt.Errorf("mmap shared: %w", err)
	}
	fmt.Fprintf(out, "shared mapping at %#x\n", shared)
	if _, err := as.CopyOut(ctx, shared+8, []byte("SHARED EDIT  "), opts); err != nil {
		return err
	}
	disk, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  file on disk now:   %q\n", firstLine(disk))

	// --- Private: writes stay in simulated memory (MAP_PRIVATE). ---
	// The first write to a private page copies it into anonymous memory
	// (copy-on-write); the file is never written.
	private, err := as.Mmap(addrspace.MmapOpts{
		Length:  2 * pageSize,
		Perms:   hostarch.ReadWrite,
		Private: true,
		File:    f,
	})
	if err != nil {
		return fmt.Errorf("mmap private: %w", err)
	}
	fmt.Fprintf(out, "private mapping at %#x\n", private)
	if _, err := as.CopyOut(ctx, private+8, []byte("PRIVATE EDIT "), opts); err != nil {
		return err
	}
	if disk, err = os.ReadFile(path); err != nil {
		return err
	}
	mem := make([]byte, 32)
	if _, err := as.CopyIn(ctx, private, mem, opts); err != nil {
		return err
	}
	fmt.Fprintf(out, "  file on disk still: %q\n", firstLine(disk))
	fmt.Fprintf(out, "  simulated memory:   %q\n", firstLine(mem))

	fmt.Fprintln(out, "mappings:")
	if err := as.WriteMaps(out); err != nil {
		return err
	}

	if err := beside(ctx, as, f, shared, private, out); err != nil {
		return err
	}

	// --- Truncate: the second page of the file is gone. ---
	// On Linux a process touching it gets SIGBUS; here the copy stops at
	// the page boundary and reports EFAULT with the exact count.
	if err := f.Truncate(pageSize); err != nil {
		return err
	}
	fmt.Fprintf(out, "truncated %s to %d bytes\n", filepath.Base(path), pageSize)
	for _, m := range []struct {
		name string
		addr hostarch.Addr
	}{{"shared", shared}, {"private", private}} {
		// 16 bytes straddling the end of the file: 8 on page 0, 8 beyond.
		buf := make([]byte, 16)
		n, err := as.CopyIn(ctx, m.addr+pageSize-8, buf, opts)
		var fe *addrspace.FaultError
		switch {
		case errors.As(err, &fe):
			fmt.Fprintf(out, "  %s: copied %d of %d bytes, EFAULT=%v: addr %#x, access %s, reason %s\n",
				m.name, n, len(buf), errors.Is(err, unix.EFAULT), fe.Addr, fe.Access, fe.Reason)
		case err != nil:
			return fmt.Errorf("%s: unexpected error: %w", m.name, err)
		default:
			return fmt.Errorf("%s: copy over a truncated page succeeded", m.name)
		}
	}

	// The program goes on: the pages still backed by the file still work.
	if _, err := as.CopyIn(ctx, shared, mem, opts); err != nil {
		return err
	}
	fmt.Fprintf(out, "still readable after the fault: %q\n", firstLine(mem))
	return nil
}

// beside maps the file in the host process too, with mmap-go, next to the
// simulated mappings at shared and private, and shows who sees whose
// writes. Page 1 of the file is the stage (page 0 holds the edits above).
// It unmaps the host mappings before returning: demo truncates the file
// next, and a host access past the new end would be a real SIGBUS.
func beside(ctx context.Context, as *addrspace.AddressSpace, f *os.File, shared, private hostarch.Addr, out io.Writer) error {
	var opts usermem.IOOpts
	// read returns the first line of the simulated memory at addr.
	read := func(addr hostarch.Addr) ([]byte, error) {
		b := make([]byte, 32)
		if _, err := as.CopyIn(ctx, addr, b, opts); err != nil {
			return nil, err
		}
		return firstLine(b), nil
	}
	hostShared, err := mmap.MapRegion(f, 2*pageSize, mmap.RDWR, 0, 0)
	if err != nil {
		return fmt.Errorf("host mmap shared: %w", err)
	}
	defer hostShared.Unmap()
	hostPrivate, err := mmap.MapRegion(f, 2*pageSize, mmap.COPY, 0, 0)
	if err != nil {
		return fmt.Errorf("host mmap private: %w", err)
	}
	defer hostPrivate.Unmap()
	fmt.Fprintln(out, "the same file mapped in the host process (mmap-go), shared and private:")

	// Shared, host to simulated: a plain store into the host's slice is
	// at once in the simulated shared mapping (no msync, no copy).
	copy(hostShared[pageSize+8:], "HOST WROTE   ")
	got, err := read(shared + pageSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  host shared wrote page 1;      simulated shared reads %q\n", got)

	// Shared, simulated to host.
	if _, err := as.CopyOut(ctx, shared+pageSize+8, []byte("SIM WROTE    "), opts); err != nil {
		return err
	}
	fmt.Fprintf(out, "  simulated shared wrote page 1; host shared reads      %q\n", firstLine(hostShared[pageSize:]))
	// The host's private mapping has not written page 1, so it still
	// shows the file's page, with the simulated write in it.
	fmt.Fprintf(out, "  host private (unwritten) reads %q\n", firstLine(hostPrivate[pageSize:]))

	// Private, host side: the write copies the page for the host's
	// private mapping alone.
	copy(hostPrivate[pageSize+8:], "HOST PRIVATE ")
	if got, err = read(shared + pageSize); err != nil {
		return err
	}
	fmt.Fprintf(out, "  host private wrote page 1;     host private reads     %q, host shared %q, simulated shared %q\n",
		firstLine(hostPrivate[pageSize:]), firstLine(hostShared[pageSize:]), got)
	// And later shared writes no longer reach the copied page.
	if _, err := as.CopyOut(ctx, shared+pageSize+8, []byte("SIM AGAIN    "), opts); err != nil {
		return err
	}
	fmt.Fprintf(out, "  simulated shared wrote again;  host shared reads      %q, host private %q\n",
		firstLine(hostShared[pageSize:]), firstLine(hostPrivate[pageSize:]))

	// Private, simulated side: the edit made above through the simulated
	// private mapping is in neither host mapping.
	if got, err = read(private); err != nil {
		return err
	}
	fmt.Fprintf(out, "  simulated private page 0 reads %q; host shared %q, host private %q\n",
		got, firstLine(hostShared), firstLine(hostPrivate))
	if err := hostPrivate.Unmap(); err != nil {
		return err
	}
	return hostShared.Unmap()
}

// firstLine returns b up to its first NUL or newline.
func firstLine(b []byte) []byte {
	if i := bytes.IndexAny(b, "\x00\n"); i >= 0 {
		return b[:i]
	}
	return b
}
