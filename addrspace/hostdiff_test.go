package addrspace

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestHostDiff runs random sequences of Mmap, Munmap, Mprotect, Mremap,
// Madvise and copies against an AddressSpace and, with real system calls,
// against a reserved range of the host's own address space (see
// hostdiff_host_test.go), comparing every result, errno, byte and maps line.
// A divergence is shrunk to a few operations and printed as Go code.
//
// It runs for MMSIM_HOSTDIFF_TIME (a Go duration; default 3s, 1s with
// -short) from seed MMSIM_HOSTDIFF_SEED (default 1; sequence i uses seed+i).
func TestHostDiff(t *testing.T) {
	d := 3 * time.Second
	if testing.Short() {
		d = time.Second
	}
	if s := os.Getenv("MMSIM_HOSTDIFF_TIME"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	seed := int64(1)
	if s := os.Getenv("MMSIM_HOSTDIFF_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	// MMSIM_HOSTDIFF_SURVEY=1 logs every divergence instead of stopping at
	// the first.
	survey := os.Getenv("MMSIM_HOSTDIFF_SURVEY") != ""
	failed := 0
	start := time.Now()
	seqs, ops := 0, 0
	for time.Since(start) < d {
		s := seed + int64(seqs)
		res, err := runRandom(s, 60)
		if err != nil {
			t.Fatal(err)
		}
		seqs++
		ops += len(res.ops)
		if res.diff != "" && survey {
			small, _ := shrink(res.ops, 100)
			t.Logf("seed %d: %d ops:\n%s", s, len(small.ops), repro(small))
			failed++
			continue
		}
		if res.diff != "" {
			small, err := shrink(res.ops, 300)
			if err != nil {
				t.Fatal(err)
			}
			t.Fatalf("sequence %d (MMSIM_HOSTDIFF_SEED=%d) diverges after %d operations; shrunk to %d:\n%s",
				seqs, s, len(res.ops), len(small.ops), repro(small))
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d sequences diverge", failed, seqs)
	}
	t.Logf("%d sequences (%d operations) in %v, zero divergences", seqs, ops, time.Since(start).Round(time.Millisecond))
}
