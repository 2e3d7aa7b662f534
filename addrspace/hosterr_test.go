package addrspace

import (
	"os"
	"os/exec"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

// TestDescriptorsExhausted runs itself in a child process whose descriptor
// limit (RLIMIT_NOFILE) is reached, and checks that every call that needs a
// descriptor fails with the ENOMEM its documentation gives, changing
// nothing, while the calls that need none still work.
func TestDescriptorsExhausted(t *testing.T) {
	if os.Getenv("MMSIM_FD_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDescriptorsExhausted$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "MMSIM_FD_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	as := newAS(t, 1<<30)
	f := tempFile(t, pattern(2*pg, 3), os.O_RDWR)
	g := tempFile(t, pattern(2*pg, 4), os.O_RDONLY)
	mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.Read, Private: true, File: f})
	anonAddr := mustMmap(t, as, MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
	writeAt(t, as, anonAddr, "before")

	// Use up every descriptor below a low limit.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 256
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var held []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if err != unix.EMFILE {
				t.Fatalf("filling descriptors: %v", err)
			}
			break
		}
		held = append(held, fd)
	}
	defer func() {
		for _, fd := range held {
			unix.Close(fd)
		}
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}()
	before := snapshot(t, as)

	for _, tc := range []struct {
		name string
		call func() error
		want unix.Errno
	}{
		{"New", func() error {
			as2, err := New(Options{Size: 1 << 30})
			if err == nil {
				as2.Close()
			}
			return err
		}, unix.ENOMEM},
		{"Mmap of a new file", func() error {
			_, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.Read, Private: true, File: g})
			return err
		}, unix.ENOMEM},
		{"Mmap of the file again, shared", func() error {
			a, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.ReadWrite, File: f, Offset: pg})
			if err == nil {
				err = as.Munmap(a, pg)
			}
			return err
		}, 0},
		{"Mmap of the file again, private", func() error {
			a, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.Read, Private: true, File: f, Offset: pg})
			if err == nil {
				err = as.Munmap(a, pg)
			}
			return err
		}, 0},
		{"Clone with a file mapping", func() error {
			c, err := as.Clone()
			if err == nil {
				c.Close()
			}
			return err
		}, unix.ENOMEM},
		{"Mmap anonymous", func() error {
			a, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.ReadWrite, Private: true})
			if err == nil {
				err = as.Munmap(a, pg)
			}
			return err
		}, 0},
	} {
		if got := errnoOf(tc.call()); got != tc.want {
			t.Errorf("%s with no descriptor left: errno %v; want %v", tc.name, got, tc.want)
		}
		if after := snapshot(t, as); after != before {
			t.Errorf("%s changed the address space", tc.name)
		}
	}
}
