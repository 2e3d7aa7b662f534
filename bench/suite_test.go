package bench

import (
	"flag"
	"strings"
	"testing"

	"github.com/mmsim/mmsim/bench/internal/unicorn"
)

// runOnce runs f as a benchmark of one iteration (-test.benchtime=1x) and
// reports whether it completed, neither failing nor skipping.
func runOnce(t *testing.T, f func(b *testing.B)) bool {
	t.Helper()
	bt := flag.Lookup("test.benchtime")
	old := bt.Value.String()
	if err := bt.Value.Set("1x"); err != nil {
		t.Fatal(err)
	}
	defer bt.Value.Set(old)
	return testing.Benchmark(f).N == 1
}

// TestCopyPaths runs every cell of BenchmarkCopy once; each checks after its
// loop that it moved the right bytes.
func TestCopyPaths(t *testing.T) {
	for _, n := range benchSizes {
		for _, p := range copyPaths {
			t.Run(sizeName(n)+"/"+p.name, func(t *testing.T) {
				ok := runOnce(t, func(b *testing.B) { p.run(b, getFixture(b, n, 0)) })
				if strings.HasPrefix(p.name, "unicorn.") && !unicorn.Available {
					if ok {
						t.Fatal("ran without Unicorn built in")
					}
					t.Skip(unicorn.ErrUnavailable)
				}
				if !ok {
					t.Error("failed; see the output above")
				}
			})
		}
	}
}

// TestOps runs every cell of BenchmarkOp once; each checks its result.
func TestOps(t *testing.T) {
	for _, o := range opImpls {
		t.Run(o.op+"/"+o.impl, func(t *testing.T) {
			if !runOnce(t, o.run) {
				t.Error("failed; see the output above")
			}
		})
	}
}

// TestParallel runs BenchmarkParallel's cells once (with MMBENCH_SEED set,
// so that the shuffled order is exercised too).
func TestParallel(t *testing.T) {
	t.Setenv("MMBENCH_SEED", "7")
	if !runOnce(t, BenchmarkParallel) {
		t.Error("failed; see the output above")
	}
}

func TestShuffled(t *testing.T) {
	t.Setenv("MMBENCH_SEED", "")
	for i, v := range shuffled(5) {
		if i != v {
			t.Fatalf("without MMBENCH_SEED: order %v, want the identity", shuffled(5))
		}
	}
	t.Setenv("MMBENCH_SEED", "3")
	seen := map[int]bool{}
	for _, v := range shuffled(100) {
		seen[v] = true
	}
	if len(seen) != 100 {
		t.Fatalf("with MMBENCH_SEED: %d distinct of 100", len(seen))
	}
}

func TestSizeName(t *testing.T) {
	for n, want := range map[int]string{8: "8B", 512: "512B", 4096: "4KiB", 65536: "64KiB", 1 << 20: "1MiB", 16 << 20: "16MiB", 1536: "1536B"} {
		if got := sizeName(n); got != want {
			t.Errorf("sizeName(%d) = %q, want %q", n, got, want)
		}
	}
}
