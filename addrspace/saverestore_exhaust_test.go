package addrspace

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestRestoreDescriptorsExhausted runs itself in a child process whose
// descriptor limit is reached part way through a Restore (each shared
// anonymous mapping's object needs one): Restore fails with ENOMEM, gives
// back every descriptor it took, and succeeds once descriptors are free.
func TestRestoreDescriptorsExhausted(t *testing.T) {
	if os.Getenv("MMSIM_RESTORE_FD_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreDescriptorsExhausted$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "MMSIM_RESTORE_FD_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	const objects = 64
	as, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < objects; i++ {
		a := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite})
		as.CopyOut(ctx, a, []byte{byte(i + 1)}, noOpt)
	}
	data := saveBytes(t, as, SaveOptions{})
	as.Close()

	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 256
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	// Leave 20 descriptors: New's memory file and a few objects fit.
	var held []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		held = append(held, fd)
	}
	for _, fd := range held[len(held)-20:] {
		unix.Close(fd)
	}
	held = held[:len(held)-20]
	fds, hs := settleHost(t)
	for round := 0; round < 3; round++ {
		got, err := Restore(bytes.NewReader(data), RestoreOptions{})
		if err == nil {
			got.Close()
			t.Fatal("Restore needing 65 descriptors succeeded with 20 free")
		}
		if !errors.Is(err, unix.ENOMEM) || errors.Is(err, ErrBadSave) {
			t.Fatalf("Restore out of descriptors: %v, want ENOMEM", err)
		}
	}
	if got, ghs := settleHost(t); got != fds || ghs.Mappings != hs.Mappings || ghs.Committed != hs.Committed || ghs.ReservedBytes != hs.ReservedBytes {
		t.Fatalf("after the failed restores: %d descriptors, %+v; before: %d, %+v", got, ghs, fds, hs)
	}
	for _, fd := range held {
		unix.Close(fd)
	}
	got, err := Restore(bytes.NewReader(data), RestoreOptions{})
	if err != nil {
		t.Fatalf("Restore with descriptors free again: %v", err)
	}
	defer got.Close()
	for i, m := range got.Mappings() {
		b := make([]byte, 1)
		if _, err := got.CopyIn(ctx, m.Range.Start, b, noOpt); err != nil || b[0] == 0 {
			t.Fatalf("mapping %d reads %v, %v", i, b, err)
		}
	}
	if n := len(got.Mappings()); n != objects {
		t.Fatalf("%d mappings restored, want %d", n, objects)
	}
}
