//go:build linux && (amd64 || arm64)

package safecopy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setHandler installs handler for sig with the flags, mask and restorer of
// the current one and returns the handler it replaced.
func setHandler(t *testing.T, sig unix.Signal, handler uintptr) uintptr {
	t.Helper()
	var sa kernelSigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&sa)), 8, 0, 0); e != 0 {
		t.Fatal(e)
	}
	old := sa.handler
	sa.handler = handler
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); e != 0 {
		t.Fatal(e)
	}
	return old
}

// TestCheckHandlers replaces the SIGBUS handler (with the Go runtime's own,
// which does not know this package's routines, as a C library's would not)
// and checks that CheckHandlers names it, then that it is content again once
// ours is back. Nothing in this package's tests raises SIGBUS meanwhile.
func TestCheckHandlers(t *testing.T) {
	if err := CheckHandlers(); err != nil {
		t.Fatalf("CheckHandlers at start: %v", err)
	}
	ours := setHandler(t, unix.SIGBUS, savedSIGBUS)
	err := CheckHandlers()
	setHandler(t, unix.SIGBUS, ours)
	if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "SIGBUS") {
		t.Errorf("CheckHandlers with SIGBUS replaced = %v, want an EBUSY error naming SIGBUS", err)
	}
	t.Logf("with SIGBUS replaced: %v", err)
	if err := CheckHandlers(); err != nil {
		t.Errorf("CheckHandlers once restored: %v", err)
	}
}

const sentEnv = "SAFECOPY_TEST_SENT_SIGNAL_CHILD"

// TestSentSignalNotTakenForFault checks that a SIGSEGV or SIGBUS sent by a
// process (tgkill: si_code <= 0) is never taken for a copy fault, even when
// it interrupts a copy routine: it reaches the Go runtime as it would
// without this package (which delivers it to os/signal). A child process
// copies 256 KiB in a loop on a locked thread while another thread sends
// that thread signals; every one must arrive on the signal channel, and no
// copy may report a fault.
func TestSentSignalNotTakenForFault(t *testing.T) {
	if os.Getenv(sentEnv) == "1" {
		sentSignalChild()
		return
	}
	cmd := selfCommand("-test.run=^TestSentSignalNotTakenForFault$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), sentEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("child: %s", strings.TrimSpace(lastLine(out.String(), "child:")))
	if err != nil || !strings.Contains(out.String(), "child: ok") {
		t.Fatalf("child failed: %v\n%s", err, out.String())
	}
}

func lastLine(s, prefix string) string {
	line := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			line = l
		}
	}
	return line
}

func sentSignalChild() {
	const n, perSignal = 256 << 10, 200
	src, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fmt.Println("child: mmap:", err)
		os.Exit(1)
	}
	dst, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fmt.Println("child: mmap:", err)
		os.Exit(1)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGSEGV, unix.SIGBUS)
	tid := make(chan int)
	var stop, copies atomic.Int64
	bad := make(chan string, 1)
	go func() {
		runtime.LockOSThread()
		tid <- unix.Gettid()
		for stop.Load() == 0 {
			if done, f := Copy(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), n); f.Sig != 0 || done != n {
				bad <- fmt.Sprintf("a sent signal was taken for a copy fault: Copy = (%d, %+v)", done, f)
				return
			}
			if done, f := Zero(unsafe.Pointer(&dst[0]), n); f.Sig != 0 || done != n {
				bad <- fmt.Sprintf("a sent signal was taken for a zero fault: Zero = (%d, %+v)", done, f)
				return
			}
			copies.Add(1)
		}
	}()
	victim := <-tid
	for _, sig := range []unix.Signal{unix.SIGSEGV, unix.SIGBUS} {
		for i := 0; i < perSignal; i++ {
			if err := unix.Tgkill(unix.Getpid(), victim, sig); err != nil {
				fmt.Println("child: tgkill:", err)
				os.Exit(1)
			}
			select {
			case got := <-ch:
				if got != sig {
					fmt.Printf("child: sent %v, received %v\n", sig, got)
					os.Exit(1)
				}
			case msg := <-bad:
				fmt.Println("child:", msg)
				os.Exit(1)
			case <-time.After(10 * time.Second):
				fmt.Printf("child: %v number %d was never delivered to os/signal\n", sig, i)
				os.Exit(1)
			}
		}
	}
	stop.Store(1)
	select {
	case msg := <-bad:
		fmt.Println("child:", msg)
		os.Exit(1)
	default:
	}
	fmt.Printf("child: ok: %d SIGSEGV and %d SIGBUS sent to a thread copying (%d copies) reached os/signal\n", perSignal, perSignal, copies.Load())
}
