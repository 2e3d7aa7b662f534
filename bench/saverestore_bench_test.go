package bench

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mmsim/mmsim/addrspace"
	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
)

// saveBytes is the memory that the save/restore rows save: a private
// anonymous mapping of this many bytes, every page written (random bytes,
// so that none is skipped as zero).
const saveBytes = 64 << 20

// saveSpace returns a space holding saveBytes of written memory, and the
// bytes.
func saveSpace(b *testing.B) (*addrspace.AddressSpace, hostarch.Addr, []byte) {
	as, err := addrspace.New(addrspace.Options{Size: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { as.Close() })
	a, err := as.Mmap(addrspace.MmapOpts{Length: saveBytes, Perms: hostarch.ReadWrite, Private: true})
	if err != nil {
		b.Fatal(err)
	}
	data := saveData()
	if _, err := as.CopyOut(context.Background(), a, data, usermem.IOOpts{}); err != nil {
		b.Fatal(err)
	}
	return as, a, data
}

// saveData returns saveBytes of random-looking bytes (a random 64 KiB
// block repeated, so that no page is zero), made once.
var saveData = sync.OnceValue(func() []byte {
	data := make([]byte, saveBytes)
	rand.New(rand.NewSource(1)).Read(data[:64<<10])
	for n := 64 << 10; n < saveBytes; n *= 2 {
		copy(data[n:], data[:n])
	}
	return data
})

// rewind truncates f and seeks to its start, for the next iteration's
// write.
func rewind(b *testing.B, f *os.File) {
	if err := f.Truncate(0); err != nil {
		b.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		b.Fatal(err)
	}
}

func benchFile(b *testing.B) *os.File {
	f, err := os.Create(filepath.Join(b.TempDir(), "save"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// writeFile is the baseline of both rows: the same bytes written to a
// file, in one write.
func writeFile(b *testing.B) {
	_, _, data := saveSpace(b)
	f := benchFile(b)
	b.SetBytes(saveBytes)
	for b.Loop() {
		rewind(b, f)
		if _, err := f.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	if st, err := f.Stat(); err != nil || st.Size() != saveBytes {
		b.Fatalf("file of %v bytes, %v", st.Size(), err)
	}
}

func init() {
	budgetOpImpls = append(budgetOpImpls,
		opImpl{"Save64MiB", "file", writeFile},
		opImpl{"Save64MiB", "mmsim", func(b *testing.B) {
			as, _, _ := saveSpace(b)
			f := benchFile(b)
			b.SetBytes(saveBytes)
			for b.Loop() {
				rewind(b, f)
				if err := as.Save(f, addrspace.SaveOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			if st, err := f.Stat(); err != nil || st.Size() < saveBytes || st.Size() > saveBytes*101/100 {
				b.Fatalf("save of %v bytes (%v), want about %d", st.Size(), err, saveBytes)
			}
		}},
		opImpl{"Restore64MiB", "file", writeFile},
		// For scale: the same bytes read back from a file.
		opImpl{"Restore64MiB", "read", func(b *testing.B) {
			_, _, data := saveSpace(b)
			f := benchFile(b)
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, saveBytes)
			b.SetBytes(saveBytes)
			for b.Loop() {
				if _, err := f.ReadAt(buf, 0); err != nil {
					b.Fatal(err)
				}
			}
			if !bytes.Equal(buf, data) {
				b.Fatal("read back other bytes")
			}
		}},
		// A lazy restore: the mappings and an index of the pages, no page
		// read until touched (the time to a running space).
		opImpl{"Restore64MiB", "lazy", func(b *testing.B) {
			as, a, data := saveSpace(b)
			f := benchFile(b)
			if err := as.Save(f, addrspace.SaveOptions{}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(saveBytes)
			var got *addrspace.AddressSpace
			for b.Loop() {
				if got != nil {
					got.Close()
				}
				var err error
				if got, err = addrspace.Restore(io.NewSectionReader(f, 0, 1<<62), addrspace.RestoreOptions{Lazy: true}); err != nil {
					b.Fatal(err)
				}
			}
			defer got.Close()
			buf := make([]byte, saveBytes)
			if n, err := got.CopyIn(context.Background(), a, buf, usermem.IOOpts{}); n != saveBytes || err != nil || !bytes.Equal(buf, data) {
				b.Fatalf("lazily restored space reads %d, %v, equal %v", n, err, bytes.Equal(buf, data))
			}
		}},
		opImpl{"Restore64MiB", "mmsim", func(b *testing.B) {
			as, a, data := saveSpace(b)
			f := benchFile(b)
			if err := as.Save(f, addrspace.SaveOptions{}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(saveBytes)
			var got *addrspace.AddressSpace
			for b.Loop() {
				if got != nil {
					got.Close()
				}
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					b.Fatal(err)
				}
				var err error
				if got, err = addrspace.Restore(f, addrspace.RestoreOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			defer got.Close()
			buf := make([]byte, saveBytes)
			if n, err := got.CopyIn(context.Background(), a, buf, usermem.IOOpts{}); n != saveBytes || err != nil || !bytes.Equal(buf, data) {
				b.Fatalf("restored space reads %d, %v, equal %v", n, err, bytes.Equal(buf, data))
			}
		}},
	)
}
