package emu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

const testdata = "../testdata/"

// result is everything a run shows: what the guest wrote, how it and its
// children ended (without instruction counts) and the emulator's log.
type result struct {
	stdout, log string
	status      Status
	all         []Status
}

func runGuest(t *testing.T, b Backend, prog string, args ...string) result {
	t.Helper()
	var stdout, log bytes.Buffer
	st, all, err := Run(testdata+prog, append([]string{prog}, args...), Config{
		Backend: b, Stdout: &stdout, Stderr: &stdout, Log: &log, Env: []string{"HOME=/", "TERM=dumb"},
	})
	if err != nil {
		t.Fatalf("%s: Run(%s %q): %v", b, prog, args, err)
	}
	return result{stdout.String(), log.String(), st, all}
}

// TestHello runs the first guest on every back-end and checks its exact
// output, its exit status and its child's.
func TestHello(t *testing.T) {
	const want = `hello from rv64: argc=3 hello one two
env HOME=/
env TERM=dumb
primes below 100000: 9592
mmap, mprotect, munmap ok
child: counter=101
parent: child exited=1 status=42 counter=100
arith -428572 5 3689348814741910323
bye
`
	var results []result
	for _, b := range Backends {
		r := runGuest(t, b, "hello", "one", "two")
		if r.stdout != want {
			t.Errorf("%s: output\n%s\nwant\n%s", b, r.stdout, want)
		}
		if r.status.Signal != 0 || r.status.Code != 7 || r.status.Pid != 1 {
			t.Errorf("%s: status %v, want pid 1 exited with status 7", b, r.status)
		}
		if len(r.all) != 2 || r.all[0].Pid != 2 || r.all[0].Code != 42 || r.all[0].Signal != 0 || r.all[1] != r.status {
			t.Errorf("%s: processes %v, want pid 2 exited with 42, then pid 1", b, r.all)
		}
		if r.log != "" {
			t.Errorf("%s: log %q, want nothing", b, r.log)
		}
		results = append(results, r)
	}
	sameResults(t, results)
}

// sameResults checks that every back-end gave the same result, instruction
// counts included.
func sameResults(t *testing.T, rs []result) {
	t.Helper()
	for i, r := range rs[1:] {
		if r.stdout != rs[0].stdout || r.log != rs[0].log || fmt.Sprint(r.all) != fmt.Sprint(rs[0].all) {
			t.Errorf("%s and %s differ:\n%+v\n%+v", Backends[0], Backends[i+1], rs[0], r)
		}
	}
}

func wantSegv(t *testing.T, b Backend, st Status, pid int, addr uint64, at hostarch.AccessType, reason addrspace.FaultReason) {
	t.Helper()
	if st.Pid != pid || st.Signal != SIGSEGV || st.Fault == nil || uint64(st.Fault.Addr) != addr ||
		st.Fault.Access != at || st.Fault.Reason != reason || st.WaitStatus() != SIGSEGV {
		t.Errorf("%s: %v, want pid %d killed by SIGSEGV: %s fault at %#x (%s)", b, st, pid, at, addr, reason)
	}
}

// TestSegvUnmapped: a child stores beyond every mapping and its parent
// loads beyond every mapping; both are killed by SIGSEGV at the exact
// address, the parent sees the child's status through wait4, and every
// back-end agrees.
func TestSegvUnmapped(t *testing.T) {
	const want = "child: killed by signal 11\nparent: loading from 0x23456780\n"
	var results []result
	for _, b := range Backends {
		r := runGuest(t, b, "segv", "unmapped")
		if r.stdout != want {
			t.Errorf("%s: output %q, want %q", b, r.stdout, want)
		}
		if len(r.all) != 2 {
			t.Fatalf("%s: processes %v, want 2", b, r.all)
		}
		wantSegv(t, b, r.all[0], 2, 0x12345678, hostarch.Write, addrspace.FaultUnmapped)
		wantSegv(t, b, r.status, 1, 0x23456780, hostarch.Read, addrspace.FaultUnmapped)
		for _, s := range r.all {
			if !strings.Contains(r.log, "rv64: "+s.String()+"\n") {
				t.Errorf("%s: log %q does not report %v", b, r.log, s)
			}
		}
		results = append(results, r)
	}
	sameResults(t, results)
}

// TestSegvAddressSpace: faults that only the AddressSpace back-ends see (the
// flat baseline has no protections and never unmaps): a store to a
// read-only page, in a child and in the parent, and a load from a page
// unmapped again.
func TestSegvAddressSpace(t *testing.T) {
	page := regexp.MustCompile(`^page (0x[0-9a-f]+)\n`)
	for _, b := range []Backend{Copy, TLB} {
		r := runGuest(t, b, "segv", "readonly")
		m := page.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("%s: output %q has no page address", b, r.stdout)
		}
		p, _ := strconv.ParseUint(m[1], 0, 64)
		if want := m[0] + "child: killed by signal 11\nparent: storing to page+0x20\n"; r.stdout != want {
			t.Errorf("%s: output %q, want %q", b, r.stdout, want)
		}
		if len(r.all) != 2 {
			t.Fatalf("%s: processes %v, want 2", b, r.all)
		}
		wantSegv(t, b, r.all[0], 2, p+0x10, hostarch.Write, addrspace.FaultProtection)
		wantSegv(t, b, r.status, 1, p+0x20, hostarch.Write, addrspace.FaultProtection)

		r = runGuest(t, b, "segv", "unmapped2")
		if m = page.FindStringSubmatch(r.stdout); m == nil {
			t.Fatalf("%s: output %q has no page address", b, r.stdout)
		}
		p, _ = strconv.ParseUint(m[1], 0, 64)
		wantSegv(t, b, r.status, 1, p+0x30, hostarch.Read, addrspace.FaultUnmapped)
	}
}

// TestOrphanKilled: a child still running when the first process exits
// is killed with SIGKILL, and Run returns once it has ended.
func TestOrphanKilled(t *testing.T) {
	for _, b := range Backends {
		r := runGuest(t, b, "segv", "orphan")
		if r.status.Code != 3 || r.status.Signal != 0 || len(r.all) != 2 || r.all[1].Pid != 2 || r.all[1].Signal != SIGKILL || r.all[1].Fault != nil {
			t.Errorf("%s: %v, processes %v; want pid 1 exited with 3, then pid 2 killed by SIGKILL", b, r.status, r.all)
		}
	}
}

// TestForkLimit: a guest that forks until fork fails gets EAGAIN at
// MaxProcs processes (its zombies count), then reaps every child; the same
// on every back-end.
func TestForkLimit(t *testing.T) {
	want := fmt.Sprintf("forked %d, then -11\nreaped %d\n", MaxProcs-1, MaxProcs-1)
	var results []result
	for _, b := range Backends {
		r := runGuest(t, b, "segv", "forks")
		if r.stdout != want || r.status.Code != 0 || r.status.Signal != 0 || len(r.all) != MaxProcs {
			t.Errorf("%s: output %q, %v, %d processes; want %q, exit 0, %d processes", b, r.stdout, r.status, len(r.all), want, MaxProcs)
		}
		results = append(results, r)
	}
	for i := range results {
		// Children end in any order: compare the set.
		slices.SortFunc(results[i].all, func(a, b Status) int { return a.Pid - b.Pid })
	}
	sameResults(t, results)
}

// TestBench runs the benchmark's guest on every back-end: the same
// checksum and the same number of instructions.
func TestBench(t *testing.T) {
	var results []result
	for _, b := range Backends {
		r := runGuest(t, b, "bench", "2")
		if r.status.Code != 0 || r.status.Signal != 0 || !strings.HasPrefix(r.stdout, "checksum 0x") {
			t.Errorf("%s: %v, output %q", b, r.status, r.stdout)
		}
		results = append(results, r)
	}
	sameResults(t, results)
}

// TestConcurrentChanges runs a guest on the TLB back-end while another
// goroutine keeps changing its address space: it replaces the page the
// guest polls with one holding the next number (Mremap of a prepared page
// over it), protects it read-only and back, Clones the address space (which
// makes the guest's heap copy-on-write under its TLB) and maps, protects
// and unmaps memory elsewhere. The guest must read the numbers in order,
// never an older one after a newer, never lose a heap write, and end
// normally.
func TestConcurrentChanges(t *testing.T) {
	const n = 300
	const poll = 0x800000
	ctx := t.Context()
	var wg sync.WaitGroup
	var hostErr error
	fail := func(err error) {
		if hostErr == nil {
			hostErr = err
		}
	}
	put := func(as *addrspace.AddressSpace, at hostarch.Addr, v uint64) error {
		var b [8]byte
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
		_, err := as.CopyOut(ctx, at, b[:], usermem.IOOpts{})
		return err
	}
	var stdout, log bytes.Buffer
	m, err := Load(testdata+"race", []string{"race", strconv.Itoa(n)}, Config{Backend: TLB, Stdout: &stdout, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	as := m.AddressSpace()
	if _, err := as.Mmap(addrspace.MmapOpts{Addr: poll, Length: pageSize, Fixed: true, Perms: hostarch.ReadWrite, Private: true}); err != nil {
		t.Fatal(err)
	}
	if err := put(as, poll, 1); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			if hostErr != nil {
				// Let the guest end: it waits for n.
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], n)
				as.CopyOut(ctx, poll, b[:], usermem.IOOpts{IgnorePermissions: true})
			}
		}()
		for k := uint64(2); k <= n && hostErr == nil; k++ {
			next, err := as.Mmap(addrspace.MmapOpts{Length: pageSize, Perms: hostarch.ReadWrite, Private: true})
			if err != nil {
				fail(err)
				return
			}
			if err := put(as, next, k); err != nil {
				fail(err)
				return
			}
			switch k % 4 {
			case 0:
				if err := as.Mprotect(poll, pageSize, hostarch.Read); err != nil {
					fail(err)
				}
				if err := as.Mprotect(poll, pageSize, hostarch.ReadWrite); err != nil {
					fail(err)
				}
			case 1:
				c, err := as.Clone()
				if err != nil {
					fail(err)
					return
				}
				c.Close()
			case 2:
				a, err := as.Mmap(addrspace.MmapOpts{Length: 4 * pageSize, Perms: hostarch.ReadWrite, Private: true})
				if err == nil {
					err = as.Mprotect(a+pageSize, pageSize, hostarch.Read)
				}
				if err == nil {
					err = as.Munmap(a, 4*pageSize)
				}
				if err != nil {
					fail(err)
				}
			}
			// Last: once the guest has read n it ends, and its address
			// space is closed.
			if _, err := as.Mremap(next, pageSize, pageSize, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, poll); err != nil {
				fail(err)
				return
			}
		}
	}()
	st, _ := m.Run()
	wg.Wait()
	if hostErr != nil {
		t.Fatal(hostErr)
	}
	if st.Signal != 0 || st.Code != 0 || stdout.String() != fmt.Sprintf("read up to %d\n", n) {
		t.Errorf("%v, output %q, log %q", st, stdout.String(), log.String())
	}
	t.Logf("%d instructions, %d host faults resolved", st.Instructions, st.HostFaults)
}

// TestRunErrors: programs that cannot be loaded are errors, not guest
// deaths, and leave nothing running.
func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		cfg        Config
		want       string
	}{
		{"missing", testdata + "nonexistent", Config{}, "no such file"},
		{"not ELF", testdata + "hello.c", Config{}, "not a valid ELF file"},
		{"bad back-end", testdata + "hello", Config{Backend: "mystery"}, "unknown back-end"},
		{"size not a page multiple", testdata + "hello", Config{Size: DefaultSize + 1}, "not a multiple of the page size"},
		{"too small for a stack", testdata + "hello", Config{Size: 64 << 10}, "of at least"},
	} {
		_, _, err := Run(tc.path, nil, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	// A host program (not RISC-V) is refused too.
	if _, _, err := Run("/bin/true", nil, Config{}); err == nil || !strings.Contains(err.Error(), "RISC-V") {
		t.Errorf("/bin/true: err %v, want a refusal", err)
	}
}

// TestAgainstQemu runs the guests under qemu-riscv64 (Debian's qemu-user),
// when it is installed, and checks that the emulator's output and exit
// status are the real thing's: Linux's system calls as qemu-user passes
// them to the host kernel. Skipped without qemu-riscv64.
func TestAgainstQemu(t *testing.T) {
	qemu, err := exec.LookPath("qemu-riscv64")
	if err != nil {
		t.Skip("qemu-riscv64 not installed")
	}
	env := []string{"HOME=/"} // qemu-user reverses the order of several
	for _, args := range [][]string{{"hello", "one", "two"}, {"bench", "3"}, {"segv", "unmapped"}} {
		path := testdata + args[0]
		cmd := exec.Command(qemu, append([]string{path}, args[1:]...)...)
		cmd.Env = env
		var qout bytes.Buffer
		cmd.Stdout = &qout
		err := cmd.Run()
		qcode := 0
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
				qcode = 128 + int(ws.Signal())
			} else {
				qcode = ws.ExitStatus()
			}
		case err != nil:
			t.Fatal(err)
		}
		for _, b := range Backends {
			var out bytes.Buffer
			st, _, err := Run(path, append([]string{path}, args[1:]...), Config{Backend: b, Stdout: &out, Env: env})
			if err != nil {
				t.Fatal(err)
			}
			code := st.Code
			if st.Signal != 0 {
				code = 128 + st.Signal
			}
			if out.String() != qout.String() || code != qcode {
				t.Errorf("%s %q: output %q, status %d; qemu-riscv64: %q, %d", b, args, out.String(), code, qout.String(), qcode)
			}
		}
	}
}
