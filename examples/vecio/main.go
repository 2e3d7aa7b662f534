// Command vecio does vectored I/O between host files and scattered ranges
// of simulated memory, the way a userspace kernel implements readv(2) and
// writev(2): an IOSequence names the ranges, CopyOutFrom fills them from a
// safemem.Reader and CopyInTo drains them into a safemem.Writer, each
// handing over the blocks of host memory behind the ranges (no copy through
// an intermediate buffer of the whole size).
//
// Then it unmaps a page in the middle of one range and shows what readv
// and writev see: a short count and EFAULT.
//
//	go run ./examples/vecio
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

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/safemem"
	"github.com/mmsim/mmsim/usermem"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const pageSize = hostarch.PageSize

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vecio", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for the demo files (default: a new temporary directory)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := demo(*dir, stdout); err != nil {
		fmt.Fprintln(stderr, "vecio:", err)
		return 1
	}
	return 0
}

func demo(dir string, out io.Writer) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "vecio")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	// The input: 4096 bytes of a recognisable pattern.
	data := make([]byte, 4096)
	for i := range data {
		data[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i%36]
	}
	in := filepath.Join(dir, "in.bin")
	if err := os.WriteFile(in, data, 0o644); err != nil {
		return err
	}

	as, err := addrspace.New(addrspace.Options{})
	if err != nil {
		return err
	}
	defer as.Close()
	ctx := context.Background()

	// Eight pages of anonymous memory (Private: MAP_PRIVATE|MAP_ANONYMOUS,
	// what malloc gets; the zero value would be MAP_SHARED), and three
	// ranges scattered over them, as the iovecs of a readv(2) call would
	// be. The middle one straddles the boundary between pages 1 and 2.
	base, err := as.Mmap(addrspace.MmapOpts{
		Length:  8 * pageSize,
		Perms:   hostarch.ReadWrite,
		Private: true,
	})
	if err != nil {
		return err
	}
	ranges := []hostarch.AddrRange{
		{Start: base + 0x10, End: base + 0x10 + 1000},
		{Start: base + 2*pageSize - 300, End: base + 2*pageSize + 700},
		{Start: base + 5*pageSize + 123, End: base + 5*pageSize + 123 + 2096},
	}
	seq := usermem.IOSequence{IO: as, Addrs: hostarch.AddrRangeSeqFromSlice(ranges)}
	fmt.Fprintf(out, "iovecs: %v (%d bytes in %d ranges)\n", seq.Addrs, seq.NumBytes(), seq.Addrs.NumRanges())

	// readv: file -> simulated memory. FromIOReader adapts any io.Reader;
	// safemem.FromVecReaderFunc with unix.Readv would do it in one system
	// call.
	n, err := readv(ctx, seq, in)
	fmt.Fprintf(out, "readv  %s: %d bytes, err %v\n", filepath.Base(in), n, err)
	if err != nil {
		return err
	}

	// writev: simulated memory -> another file, through FromIOWriter.
	copyPath := filepath.Join(dir, "copy.bin")
	n, err = writev(ctx, seq, copyPath)
	fmt.Fprintf(out, "writev %s: %d bytes, err %v\n", filepath.Base(copyPath), n, err)
	if err != nil {
		return err
	}
	got, err := os.ReadFile(copyPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "round trip matches: %v\n", bytes.Equal(got, data))
	if !bytes.Equal(got, data) {
		return errors.New("round trip changed the bytes")
	}

	// Leave a gap: unmap page 2, in the middle of the second range. Both
	// directions now stop at the gap: 1000 bytes of the first range plus
	// the 300 before the page boundary, and EFAULT, as Linux's readv and
	// writev return a short count when they meet an unmapped page.
	gap := base + 2*pageSize
	if err := as.Munmap(gap, pageSize); err != nil {
		return err
	}
	fmt.Fprintf(out, "unmapped %v\n", hostarch.AddrRange{Start: gap, End: gap + pageSize})
	n, err = readv(ctx, seq, in)
	fmt.Fprintf(out, "readv  with gap: %d bytes, %s\n", n, describe(err))
	n, err = writev(ctx, seq, copyPath)
	fmt.Fprintf(out, "writev with gap: %d bytes, %s\n", n, describe(err))
	return nil
}

// readv fills seq from the file at path.
func readv(ctx context.Context, seq usermem.IOSequence, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return seq.CopyOutFrom(ctx, safemem.FromIOReader{Reader: f})
}

// writev writes the contents of seq to a new file at path.
func writev(ctx context.Context, seq usermem.IOSequence, path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	n, err := seq.CopyInTo(ctx, safemem.FromIOWriter{Writer: f})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// describe says what an error from the IO is; for a fault, where and why.
func describe(err error) string {
	var fe *addrspace.FaultError
	if errors.As(err, &fe) {
		return fmt.Sprintf("EFAULT at %#x (%s, %s)", fe.Addr, fe.Access, fe.Reason)
	}
	return fmt.Sprint(err)
}
