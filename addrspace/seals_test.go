package addrspace

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// sealedMemfd returns a one-page memfd holding data, sealed with seals, open
// for reading and writing (or only reading if readOnly).
func sealedMemfd(t *testing.T, data []byte, seals int, readOnly bool) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("sealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "memfd:sealed")
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatalf("F_ADD_SEALS %#x: %v", seals, err)
		}
	}
	if !readOnly {
		return f
	}
	ro, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	return ro
}

func TestSealedMemfd(t *testing.T) {
	rw, r, rx := hostarch.ReadWrite, hostarch.Read, hostarch.AccessType{Read: true, Execute: true}
	rwx := hostarch.AnyAccess
	for _, tc := range []struct {
		name     string
		seals    int
		readOnly bool
		private  bool
		perms    hostarch.AccessType
		maxPerms hostarch.AccessType
		want     unix.Errno
		wantMax  hostarch.AccessType
	}{
		{"unsealed shared rw", 0, false, false, rw, hostarch.NoAccess, 0, rwx},
		{"unsealed shared r", 0, false, false, r, hostarch.NoAccess, 0, rwx},
		{"SEAL_WRITE shared r", unix.F_SEAL_WRITE, false, false, r, hostarch.NoAccess, 0, rx},
		{"SEAL_WRITE shared r, MaxPerms rw", unix.F_SEAL_WRITE, false, false, r, rw, 0, r},
		{"SEAL_WRITE shared rw", unix.F_SEAL_WRITE, false, false, rw, hostarch.NoAccess, unix.EPERM, rx},
		{"SEAL_FUTURE_WRITE shared r", unix.F_SEAL_FUTURE_WRITE, false, false, r, hostarch.NoAccess, 0, rx},
		{"SEAL_FUTURE_WRITE shared rw", unix.F_SEAL_FUTURE_WRITE, false, false, rw, hostarch.NoAccess, unix.EPERM, rx},
		{"SEAL_WRITE private rw", unix.F_SEAL_WRITE, false, true, rw, hostarch.NoAccess, 0, rwx},
		{"SEAL_SHRINK|SEAL_GROW shared rw", unix.F_SEAL_SHRINK | unix.F_SEAL_GROW, false, false, rw, hostarch.NoAccess, 0, rwx},
		// Not open for writing: EACCES comes first, as on Linux.
		{"SEAL_WRITE read-only shared rw", unix.F_SEAL_WRITE, true, false, rw, hostarch.NoAccess, unix.EACCES, rx},
		{"SEAL_WRITE read-only shared r", unix.F_SEAL_WRITE, true, false, r, hostarch.NoAccess, 0, rx},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := pattern(pg, 7)
			f := sealedMemfd(t, data, tc.seals, tc.readOnly)
			as := newAS(t, 1<<30)
			addr, err := as.Mmap(MmapOpts{Length: pg, Perms: tc.perms, MaxPerms: tc.maxPerms, Private: tc.private, File: f})
			if got := errnoOf(err); got != tc.want {
				t.Fatalf("Mmap = %v; want errno %v", err, tc.want)
			}
			if err != nil {
				if ms := as.Mappings(); len(ms) != 0 {
					t.Fatalf("failed Mmap left %+v", ms)
				}
				return
			}
			ms := as.Mappings()
			if len(ms) != 1 || ms[0].MaxPerms != tc.wantMax {
				t.Fatalf("Mappings = %+v; want MaxPerms %v", ms, tc.wantMax)
			}
			// IgnorePermissions reads what the file holds (Linux's
			// FOLL_FORCE read of a mapping without VM_MAYWRITE).
			buf := make([]byte, pg)
			if n, err := as.CopyIn(ctx, addr, buf, usermem.IOOpts{IgnorePermissions: true}); n != pg || err != nil || !bytes.Equal(buf, data) {
				t.Fatalf("CopyIn(IgnorePermissions) = %d, %v", n, err)
			}
			if tc.wantMax.Write {
				return
			}
			if n, err := as.CopyOut(ctx, addr, []byte{1}, usermem.IOOpts{IgnorePermissions: true}); n != 0 || errnoOf(err) != unix.EFAULT {
				t.Fatalf("CopyOut(IgnorePermissions) = %d, %v; want 0, EFAULT", n, err)
			}
			if err := as.Mprotect(addr, pg, rw); errnoOf(err) != unix.EACCES {
				t.Fatalf("Mprotect(rw) = %v; want EACCES", err)
			}
		})
	}
}
