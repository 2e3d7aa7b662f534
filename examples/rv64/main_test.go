package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRun runs the command as `go run ./examples/rv64` would, on every
// back-end: the guest's output, the emulator's report and the exit status
// (the guest's, or 128 plus the signal).
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string
		stderrHave []string
	}{
		{[]string{"testdata/hello"}, 7, "hello from rv64: argc=1 testdata/hello\nenv HOME=/\nenv PATH=/bin\n", nil},
		{[]string{"-stats", "testdata/segv", "unmapped"}, 128 + 11, "child: killed by signal 11\nparent: loading from 0x23456780\n", []string{
			"rv64: pid 2 killed by SIGSEGV at pc 0x",
			": -w- fault at 0x12345678 (unmapped)\n",
			": r-- fault at 0x23456780 (unmapped)\n",
			" (unmapped), ", " instructions\n",
		}},
		{[]string{"testdata/nonexistent"}, 1, "", []string{"rv64: open testdata/nonexistent: no such file or directory\n"}},
		{[]string{}, 7, "hello from rv64: argc=1 hello\nenv HOME=/\nenv PATH=/bin\nprimes below 100000: 9592\n", nil},
		{[]string{"-nonsense"}, 2, "", []string{"usage: rv64"}},
		{[]string{"-mem", "nonsense", "testdata/hello"}, 1, "", []string{`unknown back-end "nonsense"`}},
	} {
		for _, mem := range []string{"flat", "copy", "tlb"} {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"-mem", mem}, tc.args...), &stdout, &stderr)
			if code != tc.code || !strings.HasPrefix(stdout.String(), tc.stdout) {
				t.Errorf("%s %q: status %d, output %q; want %d, output starting %q (stderr %q)", mem, tc.args, code, stdout.String(), tc.code, tc.stdout, stderr.String())
			}
			for _, s := range tc.stderrHave {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("%s %q: stderr %q does not contain %q", mem, tc.args, stderr.String(), s)
				}
			}
		}
	}
}
