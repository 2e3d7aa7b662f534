package addrspace_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// A stack that grows down within an 8-page RLIMIT_STACK, and a lock
// refused beyond RLIMIT_MEMLOCK.
func Example_limits() {
	const pg = hostarch.PageSize
	as, err := addrspace.New(addrspace.Options{Size: 1 << 30,
		Limits: addrspace.Limits{Stack: 8 * pg, Memlock: 4 * pg}})
	if err != nil {
		panic(err)
	}
	defer as.Close()
	ctx := context.Background()

	top := hostarch.Addr(0x4000_0000)
	as.Mmap(addrspace.MmapOpts{Addr: top - 2*pg, Length: 2 * pg, Fixed: true,
		Perms: hostarch.ReadWrite, Private: true, GrowsDown: true, Name: "[stack]"})

	// A push 5 pages below the top grows the stack to 5 pages...
	_, err = as.CopyOut(ctx, top-5*pg, []byte("frame"), usermem.IOOpts{})
	m := as.Mappings()[0]
	fmt.Println(err, m.Range.Length()/pg, "pages, grows down:", m.GrowsDown)

	// ...one 9 pages below would exceed the limit: the access faults.
	_, err = as.CopyOut(ctx, top-9*pg, []byte("frame"), usermem.IOOpts{})
	fmt.Println(errors.Is(err, unix.EFAULT))

	// Locking all 5 pages exceeds the 4-page RLIMIT_MEMLOCK.
	err = as.Mlock(top-5*pg, 5*pg, false)
	fmt.Println(errors.Is(err, unix.ENOMEM))
	// Output:
	// <nil> 5 pages, grows down: true
	// true
	// true
}
