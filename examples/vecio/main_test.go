package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	for _, want := range []string{
		"(4096 bytes in 3 ranges)",
		"readv  in.bin: 4096 bytes, err <nil>",
		"writev copy.bin: 4096 bytes, err <nil>",
		"round trip matches: true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// With page 2 unmapped both directions stop at its first byte, after
	// the 1000 bytes of the first range and 300 of the second.
	m := regexp.MustCompile(`unmapped \[(0x[0-9a-f]+),`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no unmapped line")
	}
	for _, dir := range []string{"readv ", "writev"} {
		want := dir + " with gap: 1300 bytes, EFAULT at " + m[1] + " ("
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The short writev wrote exactly the prefix.
	in, err := os.ReadFile(filepath.Join(dir, "in.bin"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "copy.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, in[:1300]) {
		t.Errorf("copy.bin after the short writev: %d bytes, want the first 1300 of in.bin", len(got))
	}
}
