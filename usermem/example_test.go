package usermem_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

func ExampleBytesIO() {
	ctx := context.Background()
	mem := &usermem.BytesIO{Bytes: make([]byte, 8)}

	n, err := mem.CopyOut(ctx, 2, []byte("hi!"), usermem.IOOpts{})
	fmt.Println(n, err)

	// A copy that runs past the end transfers what fits, then fails.
	n, err = mem.CopyOut(ctx, 6, []byte("abc"), usermem.IOOpts{})
	fmt.Println(n, errors.Is(err, unix.EFAULT))
	fmt.Printf("%q\n", mem.Bytes)

	// Atomics need 4-byte alignment.
	_, err = mem.SwapUint32(ctx, 1, 7, usermem.IOOpts{})
	fmt.Println(errors.Is(err, unix.EINVAL))
	// Output:
	// 3 <nil>
	// 2 true
	// "\x00\x00hi!\x00ab"
	// true
}

func ExampleIOSequence() {
	ctx := context.Background()
	mem := &usermem.BytesIO{Bytes: []byte("Hello, vectored world")}
	// Two ranges with a zero-length one between them, as readv(2) might
	// receive them.
	seq := usermem.IOSequence{
		IO: mem,
		Addrs: hostarch.AddrRangeSeqFromSlice([]hostarch.AddrRange{
			{Start: 0, End: 5},
			{Start: 9, End: 9},
			{Start: 16, End: 21},
		}),
	}
	fmt.Println(seq.NumBytes(), seq.Addrs.NumRanges())

	all, err := io.ReadAll(seq.Reader(ctx))
	fmt.Printf("%q %v\n", all, err)

	// Writing more than the sequence holds stops at its end.
	n, err := seq.DropFirst(3).Writer(ctx).Write([]byte("p!WORLD?"))
	fmt.Println(n, err)
	fmt.Printf("%q\n", mem.Bytes)
	// Output:
	// 10 3
	// "Helloworld" <nil>
	// 7 write beyond end of IOSequence
	// "Help!, vectored WORLD"
}
