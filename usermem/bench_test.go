package usermem

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

func BenchmarkCopyStringIn(b *testing.B) {
	for _, n := range []int{64, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			bio := &BytesIO{Bytes: append(bytes.Repeat([]byte{'p'}, n), 0)}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				if s, err := CopyStringIn(ctx, bio, 0, 4096, IOOpts{}); len(s) != n || err != nil {
					b.Fatalf("CopyStringIn = %d bytes, %v", len(s), err)
				}
			}
		})
	}
}

func BenchmarkBytesIOCopyIn(b *testing.B) {
	for _, size := range []int{8, 4096} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			bio := &BytesIO{Bytes: make([]byte, 2*size)}
			dst := make([]byte, size)
			ctx := context.Background()
			var uio IO = bio // call through the interface, as users do
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if n, err := uio.CopyIn(ctx, 1, dst, IOOpts{}); n != size || err != nil {
					b.Fatalf("CopyIn = %d, %v", n, err)
				}
			}
		})
	}
}
