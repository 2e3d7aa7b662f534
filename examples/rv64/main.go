// Command rv64 runs a static RV64IM Linux program in a user-mode emulator
// whose guest memory is an mmsim AddressSpace: the program's PT_LOAD
// segments are mapped from the file with their permissions, its stack
// ("[stack]", with argv, envp and auxv) at the top of the address space and
// its heap after its bss; write, exit, brk, mmap, munmap, mprotect, fork
// (clone with SIGCHLD, on AddressSpace.Clone; each process is a goroutine)
// and wait4 are system calls on it, and a guest access that the address
// space refuses kills the process with SIGSEGV (SIGBUS for a truncated
// file), reporting the faulting address. The emulator is in package emu;
// testdata holds guest programs, their sources and the Makefile that
// builds them.
//
//	go run ./examples/rv64                                    # runs testdata/hello (embedded)
//	go run ./examples/rv64 examples/rv64/testdata/hello a b
//	go run ./examples/rv64 -mem flat examples/rv64/testdata/segv unmapped
//
// The exit status is the guest's, or 128 plus the signal that killed it,
// as a shell reports it.
package main

import (
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mmsim/mmsim/examples/rv64/emu"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// hello is testdata/hello, run when no program is named.
//
//go:embed testdata/hello
var hello []byte

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rv64", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var names []string
	for _, b := range emu.Backends {
		names = append(names, string(b))
	}
	mem := fs.String("mem", string(emu.Backends[len(emu.Backends)-1]), "guest memory: "+strings.Join(names, ", "))
	size := fs.Uint64("size", emu.DefaultSize, "size of the guest address space in bytes")
	stats := fs.Bool("stats", false, "print every process's end and instruction count to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rv64 [-mem BACKEND] [-size BYTES] [-stats] [RV64-ELF-FILE [ARG...]]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path, argv := fs.Arg(0), fs.Args()
	if fs.NArg() == 0 {
		// The embedded hello, from a temporary file: the loader maps the
		// program from a file (and keeps its own descriptor).
		f, err := os.CreateTemp("", "rv64-hello")
		if err == nil {
			defer os.Remove(f.Name())
			_, err = f.Write(hello)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "rv64:", err)
			return 1
		}
		path, argv = f.Name(), []string{"hello"}
	}
	st, all, err := emu.Run(path, argv, emu.Config{
		Backend: emu.Backend(*mem),
		Size:    *size,
		Stdout:  stdout,
		Stderr:  stderr,
		Log:     stderr,
		Env:     []string{"HOME=/", "PATH=/bin"},
	})
	if err != nil {
		fmt.Fprintln(stderr, "rv64:", err)
		return 1
	}
	if *stats {
		for _, s := range all {
			fmt.Fprintf(stderr, "rv64: %s, %d instructions\n", s, s.Instructions)
		}
	}
	if st.Signal != 0 {
		return 128 + st.Signal
	}
	return st.Code
}
