package addrspace

import (
	"context"
	"errors"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

func TestSmoke(t *testing.T) {
	as, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	ctx := context.Background()
	addr, err := as.Mmap(MmapOpts{Length: 3 * hostarch.PageSize, Perms: hostarch.ReadWrite})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mapped at %#x", addr)
	n, err := as.CopyOut(ctx, addr, []byte("hello"), usermem.IOOpts{})
	if n != 5 || err != nil {
		t.Fatal(n, err)
	}
	buf := make([]byte, 5)
	if n, err := as.CopyIn(ctx, addr, buf, usermem.IOOpts{}); n != 5 || err != nil || string(buf) != "hello" {
		t.Fatal(n, err, buf)
	}
	if err := as.Munmap(addr+hostarch.PageSize, hostarch.PageSize); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 2*hostarch.PageSize)
	n, err = as.CopyIn(ctx, addr+100, big, usermem.IOOpts{})
	var fe *FaultError
	if n != hostarch.PageSize-100 || !errors.As(err, &fe) || !errors.Is(err, unix.EFAULT) {
		t.Fatal(n, err)
	}
	t.Log(err)
	t.Log(as.Mappings())
}
