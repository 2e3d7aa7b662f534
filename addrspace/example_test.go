package addrspace_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

func Example() {
	as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
	if err != nil {
		panic(err)
	}
	defer as.Close()
	ctx := context.Background()

	// Two private read-write pages, the second made read-only.
	addr, _ := as.Mmap(addrspace.MmapOpts{Addr: 0x10000, Fixed: true, Length: 2 * hostarch.PageSize,
		Perms: hostarch.ReadWrite, Private: true})
	as.Mprotect(addr+hostarch.PageSize, hostarch.PageSize, hostarch.Read)

	// A write that runs into the read-only page moves every byte before it.
	n, err := as.CopyOut(ctx, addr+hostarch.PageSize-5, []byte("hello, world"), usermem.IOOpts{})
	var fault *addrspace.FaultError
	fmt.Println(n, errors.Is(err, unix.EFAULT), errors.As(err, &fault) && fault.Reason == addrspace.FaultProtection)

	buf := make([]byte, 5)
	as.CopyIn(ctx, addr+hostarch.PageSize-5, buf, usermem.IOOpts{})
	fmt.Printf("%q\n", buf)
	// Output:
	// 5 true true
	// "hello"
}

func ExampleAddressSpace_Clone() {
	parent, _ := addrspace.New(addrspace.Options{Size: 1 << 30})
	defer parent.Close()
	ctx := context.Background()
	addr, _ := parent.Mmap(addrspace.MmapOpts{Length: hostarch.PageSize, Perms: hostarch.ReadWrite, Private: true})
	parent.CopyOut(ctx, addr, []byte("before fork"), usermem.IOOpts{})

	child, _ := parent.Clone() // no page is copied here
	defer child.Close()
	child.CopyOut(ctx, addr, []byte("child"), usermem.IOOpts{}) // copy-on-write

	p, c := make([]byte, 11), make([]byte, 11)
	parent.CopyIn(ctx, addr, p, usermem.IOOpts{})
	child.CopyIn(ctx, addr, c, usermem.IOOpts{})
	fmt.Printf("%s | %s\n", p, c)
	// Output: before fork | childe fork
}

func ExampleAddressSpace_WriteMaps() {
	as, _ := addrspace.New(addrspace.Options{Size: 1 << 30, BrkStart: 0x200000})
	defer as.Close()
	as.Mmap(addrspace.MmapOpts{Addr: 0x400000, Fixed: true, Length: 3 * hostarch.PageSize,
		Perms: hostarch.AccessType{Read: true, Execute: true}, Private: true})
	as.Brk(0x208000)
	var sb strings.Builder
	as.WriteMaps(&sb)
	fmt.Print(sb.String())
	// Output:
	// 00200000-00208000 rw-p 00000000 00:00 0                                  [heap]
	// 00400000-00403000 r-xp 00000000 00:00 0
}
