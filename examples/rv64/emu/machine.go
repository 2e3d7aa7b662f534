package emu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// Backend selects how the interpreter reaches guest memory.
type Backend string

const (
	// Flat is the baseline: guest memory is one []byte and the system
	// calls do the trivial thing (no protections, nothing unmapped; only
	// accesses outside the slice fault).
	Flat Backend = "flat"
	// Copy is an mmsim AddressSpace accessed with CopyIn and CopyOut.
	Copy Backend = "copy"
	// TLB is an mmsim AddressSpace accessed directly through the host
	// memory Translate returns, cached in a software TLB (see tlb.go).
	TLB Backend = "tlb"
)

// Backends lists every back-end, the baseline first.
var Backends = []Backend{Flat, Copy, TLB}

// Config describes a run.
type Config struct {
	// Backend is the guest memory's implementation; "" means TLB.
	Backend Backend
	// Size is the size of the guest address space, [0, Size): a multiple
	// of the page size; 0 means 16 MiB. The stack is at its top.
	Size uint64
	// Stdout and Stderr receive the guest's writes to descriptors 1 and 2
	// (nil: discarded). Log receives the emulator's own reports, one line
	// per killed process (nil: discarded).
	Stdout, Stderr, Log io.Writer
	// Env is the guest's environment.
	Env []string
}

// DefaultSize is the guest address space's size when Config.Size is 0.
const DefaultSize = 16 << 20

// Signal numbers (Linux's, the same on riscv64 as everywhere).
const (
	SIGILL  = 4
	SIGTRAP = 5
	SIGKILL = 9
	SIGSEGV = 11
	SIGBUS  = 7
	sigchld = 17
)

// A Status is how a process ended.
type Status struct {
	// Pid is the process's id (the first is 1).
	Pid int
	// Code is the exit status if Signal is 0.
	Code int
	// Signal is the signal that killed the process, or 0 if it exited.
	Signal int
	// Fault is the memory fault that raised SIGSEGV or SIGBUS, or nil.
	Fault *addrspace.FaultError
	// PC is the address of the instruction that raised Signal.
	PC uint64
	// Instructions is the number of instructions the process retired.
	Instructions uint64
	// HostFaults is the number of host faults in direct accesses that the
	// TLB back-end resolved and retried (always 0 for the others).
	HostFaults uint64
}

// WaitStatus encodes s as wait4(2) stores it: the exit code in bits 8-15,
// or the signal number in bits 0-6.
func (s Status) WaitStatus() int32 {
	if s.Signal != 0 {
		return int32(s.Signal & 0x7f)
	}
	return int32(s.Code&0xff) << 8
}

// String describes s as a shell would, plus the fault.
func (s Status) String() string {
	if s.Signal == 0 {
		return fmt.Sprintf("pid %d exited with status %d", s.Pid, s.Code)
	}
	str := fmt.Sprintf("pid %d killed by %s at pc %#x", s.Pid, unix.SignalName(unix.Signal(s.Signal)), s.PC)
	if s.Fault != nil {
		str += fmt.Sprintf(": %s fault at %#x (%s)", s.Fault.Access, uint64(s.Fault.Addr), s.Fault.Reason)
	}
	return str
}

// A space is a process's memory and its memory-management system calls
// (errors are unix.Errno, possibly wrapped).
type space interface {
	// run executes at most budget instructions (see execute).
	run(c *cpu, budget int) stop
	copyIn(a uint64, dst []byte) (int, error)
	copyOut(a uint64, src []byte) (int, error)
	loadSegments(f *os.File, loads []segment) error
	mapStack(low, high uint64) error
	setBrkStart(a uint64) error
	brk(a uint64) uint64
	mmap(a, length uint64, prot, flags int) (uint64, error)
	munmap(a, length uint64) error
	mprotect(a, length uint64, prot int) error
	fork() (space, error)
	close()
}

// A Machine runs one guest program and the processes it forks, each
// process on its own goroutine.
type Machine struct {
	cfg    Config
	outMu  sync.Mutex // serialises guest writes and log lines
	mu     sync.Mutex // protects procs, nextPid and every proc's exit fields
	cond   *sync.Cond // signalled when a process exits
	procs  map[int]*proc
	next   int
	done   atomic.Bool // the first process has exited: kill the rest
	wg     sync.WaitGroup
	first  *proc
	exited []Status // every process, in the order they ended
}

// A proc is one guest process.
type proc struct {
	m      *Machine
	pid    int
	parent *proc
	cpu    cpu
	sp     space
	// Protected by m.mu:
	ended    bool
	reaped   bool
	status   Status
	children int // not yet reaped

	lastRetry, retries uint64 // step's count of faults at one instruction
	hostFaults         uint64 // Status.HostFaults
}

// Run runs the static RV64 executable at path with arguments argv (argv[0]
// is the program's name) until its first process ends, and returns how it
// ended and how every process ended, in order: Load, then Machine.Run.
// err reports a program that could not be loaded, not a guest's death.
func Run(path string, argv []string, cfg Config) (Status, []Status, error) {
	m, err := Load(path, argv, cfg)
	if err != nil {
		return Status{}, nil, err
	}
	st, all := m.Run()
	return st, all, nil
}

// Load loads the static RV64 executable at path with arguments argv
// (argv[0] is the program's name; empty means path) into a new machine's
// first process, ready to run. On error nothing is left allocated; on
// success the caller must call Run, which releases everything.
func Load(path string, argv []string, cfg Config) (*Machine, error) {
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Backend == "" {
		cfg.Backend = TLB
	}
	if len(argv) == 0 {
		argv = []string{path}
	}
	if cfg.Size%pageSize != 0 || cfg.Size < 4*stackSize {
		return nil, fmt.Errorf("rv64: size %#x is not a multiple of the page size of at least %#x", cfg.Size, 4*stackSize)
	}
	sp, err := newSpace(cfg.Backend, cfg.Size)
	if err != nil {
		return nil, err
	}
	entry, stackPtr, err := load(sp, cfg.Size, path, argv, cfg.Env)
	if err != nil {
		sp.close()
		return nil, err
	}
	m := &Machine{cfg: cfg, procs: map[int]*proc{}, next: 1}
	m.cond = sync.NewCond(&m.mu)
	m.first = m.newProc(nil, sp)
	m.first.cpu.pc = entry
	m.first.cpu.x[2] = stackPtr
	return m, nil
}

// AddressSpace returns the first process's address space, or nil for the
// Flat back-end: for tests that change it under the running guest. It is
// closed when that process ends.
func (m *Machine) AddressSpace() *addrspace.AddressSpace {
	if s, ok := m.first.sp.(*asSpace); ok {
		return s.as
	}
	return nil
}

// Run runs the machine until its first process ends, and returns how that
// process ended and how every process ended, in order. Processes still
// running when the first ends are killed with SIGKILL; Run returns once
// every process has ended and its memory is released. Run may be called
// once.
func (m *Machine) Run() (Status, []Status) {
	p := m.first
	m.start(p)
	m.mu.Lock()
	for !p.ended {
		m.cond.Wait()
	}
	m.mu.Unlock()
	m.done.Store(true)
	m.mu.Lock()
	m.cond.Broadcast() // wake waiters in wait4: they are killed
	m.mu.Unlock()
	m.wg.Wait()
	return p.status, m.exited
}

func newSpace(b Backend, size uint64) (space, error) {
	switch b {
	case Flat:
		return newFlat(size), nil
	case Copy, TLB:
		return newAS(size, b)
	}
	return nil, fmt.Errorf("rv64: unknown back-end %q", b)
}

// newProc registers a process. Preconditions: m.mu is not held.
func (m *Machine) newProc(parent *proc, sp space) *proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &proc{m: m, pid: m.next, parent: parent, sp: sp}
	m.next++
	m.procs[p.pid] = p
	if parent != nil {
		parent.children++
	}
	return p
}

func (m *Machine) start(p *proc) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		st := p.loop()
		p.sp.close()
		st.Pid = p.pid
		st.Instructions, st.HostFaults = p.cpu.instret, p.hostFaults
		if st.Signal != 0 {
			m.logf("rv64: %s\n", st)
		}
		m.mu.Lock()
		p.ended, p.status = true, st
		m.exited = append(m.exited, st)
		m.cond.Broadcast()
		m.mu.Unlock()
	}()
}

func (m *Machine) logf(format string, args ...any) {
	if m.cfg.Log == nil {
		return
	}
	m.outMu.Lock()
	defer m.outMu.Unlock()
	fmt.Fprintf(m.cfg.Log, format, args...)
}

// budget is how many instructions run between checks for the end of the
// machine.
const budget = 1 << 14

// loop runs the process until it exits or is killed.
func (p *proc) loop() Status {
	if s, ok := p.sp.(*asSpace); ok && s.tlb != nil {
		// Direct access faults on the host; see step.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	}
	for {
		if p.m.done.Load() {
			return Status{Signal: SIGKILL, PC: p.cpu.pc}
		}
		why, fault := p.step()
		if fault != nil {
			sig := SIGSEGV
			if fault.Reason == addrspace.FaultBus {
				sig = SIGBUS
			}
			return Status{Signal: sig, Fault: fault, PC: p.cpu.pc}
		}
		switch why {
		case stopBudget:
		case stopEcall:
			if st, exit := p.syscall(); exit {
				return st
			}
			p.cpu.pc += 4
		case stopEbreak:
			return Status{Signal: SIGTRAP, PC: p.cpu.pc}
		case stopIllegal:
			return Status{Signal: SIGILL, PC: p.cpu.pc}
		}
	}
}

// step runs one budget of instructions and returns the guest fault that
// stopped it, if any. A host fault of the TLB back-end that ResolveFault
// resolves returns stopBudget: the loop retries the instruction (c.pc).
func (p *proc) step() (why stop, fault *addrspace.FaultError) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if fe, ok := r.(*addrspace.FaultError); ok {
			why, fault = stopBudget, fe
			return
		}
		hf, ok := r.(interface{ Addr() uintptr })
		s, isAS := p.sp.(*asSpace)
		if !ok || !isAS || s.tlb == nil {
			panic(r)
		}
		fe, ok := s.tlb.resolveHostFault(hf.Addr(), &p.cpu)
		if !ok {
			panic(r)
		}
		if fe == nil && p.cpu.instret == p.lastRetry {
			// Resolved, yet the same instruction faulted again: give up
			// after a while rather than spin (another goroutine keeps
			// taking the page away, or the host refuses it).
			p.retries++
			if p.retries > maxRetries {
				g, _ := s.as.GuestAddr(hf.Addr())
				fe = &addrspace.FaultError{Addr: g, Reason: addrspace.FaultHostMemory}
			}
		} else {
			p.lastRetry, p.retries = p.cpu.instret, 0
		}
		if fe == nil {
			p.hostFaults++
		}
		why, fault = stopBudget, fe
	}()
	return p.sp.run(&p.cpu, budget), nil
}

// maxRetries is how many times in a row one instruction may fault on the
// host, each fault resolved, before the process gets SIGBUS.
const maxRetries = 1000

// Linux's mmap flags and protections (asm-generic/mman-common.h).
const (
	protRead      = 1
	protWrite     = 2
	protExec      = 4
	mapShared     = 0x01
	mapPrivate    = 0x02
	mapFixed      = 0x10
	mapAnonymous  = 0x20
	mapKnownFlags = mapShared | mapPrivate | mapFixed | mapAnonymous
)

var errEINVAL = unix.EINVAL

func perms(prot int) hostarch.AccessType {
	return hostarch.AccessType{Read: prot&protRead != 0, Write: prot&protWrite != 0, Execute: prot&protExec != 0}
}

// checkMmap checks what mmap(2) checks before looking at memory: only
// anonymous mappings are supported (ENODEV for a file: this guest has no
// file descriptors), exactly one of MAP_SHARED and MAP_PRIVATE, a nonzero
// length, a page-aligned fixed address.
func checkMmap(a, length uint64, flags int) error {
	switch {
	case length == 0, flags&^mapKnownFlags != 0, flags&(mapShared|mapPrivate) == 0,
		flags&(mapShared|mapPrivate) == mapShared|mapPrivate, flags&mapFixed != 0 && a%pageSize != 0:
		return unix.EINVAL
	case flags&mapAnonymous == 0:
		return unix.ENODEV
	case pageUp(length) < length:
		return unix.ENOMEM
	}
	return nil
}

// checkRange checks munmap's and mprotect's arguments.
func checkRange(a, length uint64) error {
	if a%pageSize != 0 || a+pageUp(length) < a || pageUp(length) < length {
		return unix.EINVAL
	}
	return nil
}

// errno returns -e for err's unix.Errno (EINVAL if it has none), as a
// system call returns it in a0.
func errno(err error) uint64 {
	var e unix.Errno
	if !errors.As(err, &e) {
		e = unix.EINVAL
	}
	return uint64(-int64(e))
}

// RISC-V Linux system call numbers (asm-generic/unistd.h).
const (
	sysWrite     = 64
	sysExit      = 93
	sysExitGroup = 94
	sysGetpid    = 172
	sysGetppid   = 173
	sysBrk       = 214
	sysMunmap    = 215
	sysClone     = 220
	sysMmap      = 222
	sysMprotect  = 226
	sysWait4     = 260
)

// syscall performs the system call at an ecall: number in a7, arguments
// in a0-a5, result in a0. exit reports that the process has ended.
func (p *proc) syscall() (st Status, exit bool) {
	x := &p.cpu.x
	a0, a1, a2, a3 := x[10], x[11], x[12], x[13]
	var ret uint64
	switch x[17] {
	case sysWrite:
		ret = p.write(int(a0), a1, a2)
	case sysExit, sysExitGroup:
		return Status{Code: int(a0 & 0xff)}, true
	case sysGetpid:
		ret = uint64(p.pid)
	case sysGetppid:
		if p.parent != nil {
			ret = uint64(p.parent.pid)
		}
	case sysBrk:
		ret = p.sp.brk(a0)
	case sysMmap:
		if a, err := p.sp.mmap(a0, a1, int(a2), int(a3)); err != nil {
			ret = errno(err)
		} else {
			ret = a
		}
	case sysMunmap:
		ret = errno0(p.sp.munmap(a0, a1))
	case sysMprotect:
		ret = errno0(p.sp.mprotect(a0, a1, int(a2)))
	case sysClone:
		ret = p.clone(a0, a1)
	case sysWait4:
		ret = p.wait4(int64(a0), a1, a2)
	default:
		ret = errno(unix.ENOSYS)
	}
	x[10] = ret
	return Status{}, false
}

func errno0(err error) uint64 {
	if err == nil {
		return 0
	}
	return errno(err)
}

// write copies n bytes at guest address a to descriptor fd (1 or 2). As
// write(2), a fault after some bytes returns the count so far, a fault
// at the first byte EFAULT.
func (p *proc) write(fd int, a, n uint64) uint64 {
	var w io.Writer
	switch fd {
	case 1:
		w = p.m.cfg.Stdout
	case 2:
		w = p.m.cfg.Stderr
	default:
		return errno(unix.EBADF)
	}
	if int64(n) < 0 {
		return errno(unix.EINVAL)
	}
	var buf [4096]byte
	var done uint64
	for done < n {
		k, err := p.sp.copyIn(a+done, buf[:min(n-done, uint64(len(buf)))])
		if k > 0 && w != nil {
			p.m.outMu.Lock()
			w.Write(buf[:k])
			p.m.outMu.Unlock()
		}
		done += uint64(k)
		if err != nil {
			if done > 0 {
				break
			}
			return errno(err)
		}
	}
	return done
}

// MaxProcs limits the processes of a machine, zombies included, as
// RLIMIT_NPROC does: fork fails with EAGAIN beyond it.
const MaxProcs = 64

// clone implements fork(2) as clone(SIGCHLD, 0): the only form supported
// (threads are not). The child gets a Clone of the address space and a
// copy of the registers, returning 0 from the ecall. EAGAIN beyond
// MaxProcs processes; the errno of a Clone that fails (ENOMEM).
func (p *proc) clone(flags, stack uint64) uint64 {
	if flags != sigchld || stack != 0 {
		return errno(unix.EINVAL)
	}
	p.m.mu.Lock()
	n := len(p.m.procs)
	p.m.mu.Unlock()
	if n >= MaxProcs {
		return errno(unix.EAGAIN)
	}
	sp, err := p.sp.fork()
	if err != nil {
		return errno(err)
	}
	c := p.m.newProc(p, sp)
	c.cpu = p.cpu
	c.cpu.instret = 0
	c.cpu.x[10] = 0
	c.cpu.pc += 4
	p.m.start(c)
	return uint64(c.pid)
}

// wait4 waits for a child (pid > 0: that one; -1: any) to end, stores its
// wait status at statusAddr (if not 0) and reaps it. Options are not
// supported (EINVAL); ECHILD if there is no such child.
func (p *proc) wait4(pid int64, statusAddr, options uint64) uint64 {
	if options != 0 {
		return errno(unix.EINVAL)
	}
	m := p.m
	m.mu.Lock()
	var c *proc
	for {
		if m.done.Load() {
			// The machine is ending: loop sees done and kills p.
			m.mu.Unlock()
			return errno(unix.EINTR)
		}
		found := false
		c = nil
		for _, q := range m.procs {
			if q.parent != p || q.reaped || (pid > 0 && int64(q.pid) != pid) {
				continue
			}
			found = true
			if q.ended {
				c = q
				break
			}
		}
		if !found {
			m.mu.Unlock()
			return errno(unix.ECHILD)
		}
		if c != nil {
			break
		}
		m.cond.Wait()
	}
	c.reaped = true
	p.children--
	delete(m.procs, c.pid)
	st := c.status
	m.mu.Unlock()
	if statusAddr != 0 {
		var b [4]byte
		ws := uint32(st.WaitStatus())
		b[0], b[1], b[2], b[3] = byte(ws), byte(ws>>8), byte(ws>>16), byte(ws>>24)
		if _, err := p.sp.copyOut(statusAddr, b[:]); err != nil {
			return errno(err)
		}
	}
	return uint64(c.pid)
}
