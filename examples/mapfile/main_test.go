package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
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
		`file on disk now:   "page 0: SHARED EDIT  "`,
		`file on disk still: "page 0: SHARED EDIT  "`,
		`simulated memory:   "page 0: PRIVATE EDIT "`,
		`still readable after the fault: "page 0: SHARED EDIT  "`,
		// The host's shared mapping (mmap-go) and the simulated shared
		// one see each other's writes at once, both ways.
		`host shared wrote page 1;      simulated shared reads "page 1: HOST WROTE   "`,
		`simulated shared wrote page 1; host shared reads      "page 1: SIM WROTE    "`,
		// A private page not yet written shows the file as it is now.
		`host private (unwritten) reads "page 1: SIM WROTE    "`,
		// The host's private write is its own ...
		`host private wrote page 1;     host private reads     "page 1: HOST PRIVATE ", host shared "page 1: SIM WROTE    ", simulated shared "page 1: SIM WROTE    "`,
		// ... and its copied page no longer follows the file.
		`simulated shared wrote again;  host shared reads      "page 1: SIM AGAIN    ", host private "page 1: HOST PRIVATE "`,
		// The simulated private write is in neither host mapping.
		`simulated private page 0 reads "page 0: PRIVATE EDIT "; host shared "page 0: SHARED EDIT  ", host private "page 0: SHARED EDIT  "`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Both copies over the truncated page stop at the page boundary.
	fault := regexp.MustCompile(`(?m)^  (shared|private): copied 8 of 16 bytes, EFAULT=true: addr 0x[0-9a-f]+000, access r--, reason bus error$`)
	if got := len(fault.FindAllString(out, -1)); got != 2 {
		t.Errorf("found %d fault lines, want 2", got)
	}
	// Two maps lines, one private and one shared, both naming the file.
	maps := regexp.MustCompile(`(?m)^[0-9a-f]{8,}-[0-9a-f]{8,} rw-([ps]) 00000000 [0-9a-f]{2}:[0-9a-f]{2} \d+ +(\S+)$`)
	ms := maps.FindAllStringSubmatch(out, -1)
	if len(ms) != 2 || ms[0][1] != "p" || ms[1][1] != "s" {
		t.Errorf("maps lines: %q", ms)
	}
	for _, m := range ms {
		if m[2] != filepath.Join(dir, "data.txt") {
			t.Errorf("maps names %q", m[2])
		}
	}
	// And the file on disk has the shared edit, truncated to one page.
	data, err := os.ReadFile(filepath.Join(dir, "data.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != hostarch.PageSize || !bytes.HasPrefix(data, []byte("page 0: SHARED EDIT  ")) {
		t.Errorf("file: %d bytes, %q", len(data), firstLine(data))
	}
}

func TestBadFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-nope"}, &stdout, &stderr); code != 2 {
		t.Errorf("run(-nope) = %d, want 2", code)
	}
}
