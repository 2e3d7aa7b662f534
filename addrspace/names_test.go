package addrspace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"golang.org/x/sys/unix"
)

func TestMmapName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want unix.Errno
		maps string // how WriteMaps shows a private mapping so named
	}{
		{"", 0, ""},
		{"x", 0, "[anon:x]"},
		{"jemalloc arena 0", 0, "[anon:jemalloc arena 0]"},
		{strings.Repeat("a", 79), 0, "[anon:" + strings.Repeat("a", 79) + "]"},
		{strings.Repeat("a", 80), unix.EINVAL, ""},
		{"[stack]", 0, "[stack]"},
		{"[vdso]", 0, "[vdso]"},
		{"[vvar]", 0, "[vvar]"},
		{"[heap]", unix.EINVAL, ""}, // Brk's alone
		{"[stack]x", unix.EINVAL, ""},
		{"a\nb", unix.EINVAL, ""},
		{"x\n00001000-00002000 rwxp 00000000 00:00 0 [stack]", unix.EINVAL, ""},
		{"tab\t", unix.EINVAL, ""},
		{"nul\x00", unix.EINVAL, ""},
		{"del\x7f", unix.EINVAL, ""},
		{"\xff", unix.EINVAL, ""},
		{"a\\b", unix.EINVAL, ""},
		{"a`b", unix.EINVAL, ""},
		{"a$b", unix.EINVAL, ""},
		{"a[b", unix.EINVAL, ""},
		{"a]b", unix.EINVAL, ""},
		{"/usr/lib/libc.so.6", 0, "[anon:/usr/lib/libc.so.6]"},
	} {
		as := newAS(t, 1<<30)
		_, err := as.Mmap(MmapOpts{Addr: 0x10000, Fixed: true, Length: pg, Perms: hostarch.ReadWrite, Private: true, Name: tc.name})
		if got := errnoOf(err); got != tc.want {
			t.Errorf("Mmap(Name: %q) = %v; want errno %v", tc.name, err, tc.want)
			continue
		}
		var sb strings.Builder
		if err := as.WriteMaps(&sb); err != nil {
			t.Fatal(err)
		}
		if tc.want != 0 {
			if sb.Len() != 0 || len(as.Mappings()) != 0 {
				t.Errorf("Mmap(Name: %q) failed but mapped: %q", tc.name, sb.String())
			}
			continue
		}
		line := "00010000-00011000 rw-p 00000000 00:00 0 "
		if tc.maps != "" {
			line += strings.Repeat(" ", 73-len(line)) + tc.maps
		}
		if got := sb.String(); got != line+"\n" {
			t.Errorf("WriteMaps after Mmap(Name: %q) = %q; want %q", tc.name, got, line+"\n")
		}
		if ms := as.Mappings(); len(ms) != 1 || ms[0].Name != tc.name {
			t.Errorf("Mappings after Mmap(Name: %q) = %+v", tc.name, ms)
		}
	}
}

// TestMmapNameFileIgnored: Name is ignored for file mappings, so it is not
// checked there either.
func TestMmapNameFileIgnored(t *testing.T) {
	as := newAS(t, 1<<30)
	f := tempFile(t, pattern(pg, 1), os.O_RDONLY)
	if _, err := as.Mmap(MmapOpts{Length: pg, Perms: hostarch.Read, Private: true, File: f, Name: "a\nb"}); err != nil {
		t.Fatalf("Mmap of a file with an ignored name: %v", err)
	}
	if ms := as.Mappings(); len(ms) != 1 || ms[0].Name != "" {
		t.Fatalf("Mappings = %+v", ms)
	}
}

func TestMapsShared(t *testing.T) {
	as := newAS(t, 1<<30)
	mustMmap(t, as, MmapOpts{Addr: 0x10000, Fixed: true, Length: pg, Perms: hostarch.ReadWrite, Name: "shm"})
	mustMmap(t, as, MmapOpts{Addr: 0x20000, Fixed: true, Length: pg, Perms: hostarch.ReadWrite})
	var sb strings.Builder
	if err := as.WriteMaps(&sb); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat(" ", 73-len("00010000-00011000 rw-s 00000000 00:00 0 "))
	want := "00010000-00011000 rw-s 00000000 00:00 0 " + pad + "[anon_shmem:shm]\n" +
		"00020000-00021000 rw-s 00000000 00:00 0 " + pad + "/dev/zero (deleted)\n"
	if sb.String() != want {
		t.Fatalf("WriteMaps = %q; want %q", sb.String(), want)
	}
}

// TestMapsFileNewline: a newline in a mapped file's path is shown as \012,
// as Linux's seq_path shows it, so the path cannot add a line.
func TestMapsFileNewline(t *testing.T) {
	for _, tc := range []struct{ base, shown string }{
		{"plain", "plain"},
		{"a\nb", `a\012b`},
		{"x\n00001000-00002000 rwxp 00000000 00:00 0 [stack]", `x\01200001000-00002000 rwxp 00000000 00:00 0 [stack]`},
		{`back\slash`, `back\slash`}, // Linux escapes only the newline
	} {
		as := newAS(t, 1<<30)
		name := filepath.Join(t.TempDir(), tc.base)
		if err := os.WriteFile(name, pattern(pg, 2), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		mustMmap(t, as, MmapOpts{Addr: 0x10000, Fixed: true, Length: pg, Perms: hostarch.Read, Private: true, File: f})
		f.Close()
		var sb strings.Builder
		if err := as.WriteMaps(&sb); err != nil {
			t.Fatal(err)
		}
		out := sb.String()
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, filepath.Dir(name)+"/"+tc.shown+"\n") {
			t.Errorf("WriteMaps of a file named %q = %q; want one line ending in %q", tc.base, out, tc.shown)
		}
		if ms := as.Mappings(); len(ms) != 1 || ms[0].FileName != name {
			t.Errorf("Mappings of a file named %q = %+v; want the raw name", tc.base, ms)
		}
	}
}
