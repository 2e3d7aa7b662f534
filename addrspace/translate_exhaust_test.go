package addrspace

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestTranslateMemoryExhausted runs TestTranslateMemoryChild in a process
// of its own (RLIMIT_FSIZE is process-wide).
func TestTranslateMemoryExhausted(t *testing.T) {
	argv := append(strings.Fields(os.Getenv("MMSIM_TEST_EXEC")), os.Args[0], "-test.run=^TestTranslateMemoryChild$", "-test.v")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "MMSIM_TRANSLATE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "translate child ok") {
		t.Fatalf("child: %v\n%s", err, tail(out, 3000))
	}
	t.Logf("%s", lastLine(out, "translate child ok"))
}

// TestTranslateMemoryChild translates pages for writing until the memory
// file reaches RLIMIT_FSIZE: Translate and ResolveFault then fail with
// FaultHostMemory and change nothing, and once memory is freed the same
// page translates.
func TestTranslateMemoryChild(t *testing.T) {
	if os.Getenv("MMSIM_TRANSLATE_CHILD") == "" {
		t.Skip("run by TestTranslateMemoryExhausted")
	}
	const limit = 4 << 20
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatal(err)
	}
	as := newAS(t, 1<<30)
	const size = 64 << 20
	a := mustMmap(t, as, MmapOpts{Length: size, Perms: hostarch.ReadWrite, Private: true})
	var failed hostarch.Addr
	written := 0
	for p := a; p < a+size && failed == 0; p += ps {
		tr, err := as.Translate(p, hostarch.Write)
		if err != nil {
			var fe *FaultError
			if !errors.As(err, &fe) || fe.Reason != FaultHostMemory || fe.Addr != p || !errors.Is(err, unix.EFAULT) {
				t.Fatalf("Translate(%#x): %v, want a host-memory fault there", p, err)
			}
			// The fault-around window that did not fit may be larger
			// than what a retry needs.
			if err := as.ResolveFault(p, hostarch.Write); err == nil {
				p -= ps
				continue
			} else if faultReason(err) != FaultHostMemory {
				t.Fatalf("ResolveFault(%#x): %v, want a host-memory fault", p, err)
			}
			failed = p
			break
		}
		tr.Mem[p-tr.Range.Start] = byte(p/ps) | 1
		written++
	}
	if failed == 0 || failed-a < limit/2 || failed-a > limit {
		t.Fatalf("translated %d bytes under a limit of %d", failed-a, limit)
	}
	// Nothing changed: every page translated keeps its byte.
	for p := a; p < failed; p += ps {
		if got := readAt(t, as, p, 1)[0]; got != byte(p/ps)|1 {
			t.Fatalf("page %#x reads %d, want %d", p, got, byte(p/ps)|1)
		}
	}
	// Freeing memory makes room.
	if err := as.Munmap(a, uint64(failed-a)/2&^(ps-1)); err != nil {
		t.Fatal(err)
	}
	tr, err := as.Translate(failed, hostarch.Write)
	if err != nil {
		t.Fatalf("Translate(%#x) after Munmap: %v", failed, err)
	}
	tr.Mem[failed-tr.Range.Start] = 1
	if got := readAt(t, as, failed, 1)[0]; got != 1 {
		t.Fatalf("read %d", got)
	}
	t.Logf("translate child ok: %d KiB translated for writing under RLIMIT_FSIZE of %d KiB, then host memory exhausted, and translated again after Munmap", (failed-a)>>10, limit>>10)
}
