package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-n", "300"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	for _, want := range []string{
		"snapshot: 4 mappings, 64 MiB of data",
		"after every checked reset: mappings and bytes equal the snapshot's",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The dirty pages of the first run are exactly those it wrote or
	// mapped.
	m := regexp.MustCompile(`run 0: dirty pages (\d+) \(the workload wrote or mapped (\d+)\)`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("dirty line %q: want equal, non-zero counts", m)
	}
	for _, re := range []string{`300 runs and resets in \S+: (\d+) runs/s`, `Reset alone: [0-9.]+ µs each, (\d+) resets/s`} {
		r := regexp.MustCompile(re).FindStringSubmatch(out)
		if r == nil {
			t.Fatalf("no line matching %s", re)
		}
		if rate, _ := strconv.Atoi(r[1]); rate <= 0 {
			t.Errorf("rate %d in %q", rate, r[0])
		}
	}
}

func TestBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-n", "0"}, &stdout, &stderr); code != 2 {
		t.Errorf("run -n 0 = %d, want 2", code)
	}
}
