package addrspace

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
	"github.com/mmsim/mmsim/usermem"
	"golang.org/x/sys/unix"
)

// TestDirtyHostBudget tracks writes to a 400 MiB mapping while the
// process-wide host budget is nearly exhausted, and writes every other
// page (each written page among clean ones would split the host mapping in
// three: 100,000 more host mappings than the host allows). The writes must
// all succeed, the process stay within the budget and healthy, and Dirty
// report exactly the pages written; Reset must then restore them. It runs
// in a subprocess, as the other budget tests do.
func TestDirtyHostBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("fills the host's mapping budget")
	}
	if os.Getenv("MMSIM_TEST_EXEC") != "" {
		// As TestHostBudgetExhaustion (skipped by make arm64): under
		// qemu-user the host's mappings are qemu's, which 60,000 guest
		// mappings exhaust.
		t.Skip("fills the host's own mappings, which under qemu-user are qemu's")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDirtyHostBudgetChild$", "-test.v")
	cmd.Env = append(os.Environ(), "MMSIM_DIRTY_BUDGET_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dirty budget child ok") {
		t.Fatalf("child: %v\n%s", err, tail(out, 3000))
	}
	t.Logf("%s", lastLine(out, "healthy"))
}

// TestDirtyHostBudgetChild is the subprocess of TestDirtyHostBudget.
func TestDirtyHostBudgetChild(t *testing.T) {
	if os.Getenv("MMSIM_DIRTY_BUDGET_CHILD") == "" {
		t.Skip("run by TestDirtyHostBudget")
	}
	ctx := context.Background()
	hs := HostStats()
	budget := hs.Limit - hs.Headroom
	const size = 400 << 20
	big, err := New(Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	a := mustMmap(t, big, MmapOpts{Length: size, Perms: hostarch.ReadWrite, Private: true})
	if _, err := big.ZeroOut(ctx, a, size, usermem.IOOpts{}); err != nil {
		t.Fatal(err)
	}
	snap := mustClone(t, big)
	defer snap.Close()
	if err := big.Reset(snap); err != nil {
		t.Fatal(err)
	}
	// Fill the budget with isolated one-page mappings, but for a little.
	filler, err := New(Options{Size: 64 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	for i := 0; ; i++ {
		addr := hostarch.Addr(uint64(i+1) * 2 * pg)
		if _, err := filler.Mmap(MmapOpts{Addr: addr, Fixed: true, Length: pg, Perms: hostarch.ReadWrite, Private: true}); err != nil {
			if !errors.Is(err, unix.ENOMEM) {
				t.Fatalf("mapping %d: %v, want ENOMEM", i, err)
			}
			t.Logf("ENOMEM after %d isolated mappings", i)
			break
		}
		writeAt(t, filler, addr, "x")
	}
	ar := hostarch.AddrRange{Start: a, End: a + size}
	if err := big.ClearDirty(ar); err != nil {
		t.Fatal(err)
	}
	pages := rand.New(rand.NewSource(1)).Perm(size / pg / 2)
	want := map[uint64]bool{}
	for i, p := range pages {
		addr := a + hostarch.Addr(2*p*pg)
		if n, err := big.CopyOut(ctx, addr, []byte{byte(i) | 1}, usermem.IOOpts{}); n != 1 || err != nil {
			t.Fatalf("scattered write %d = %d, %v", i, n, err)
		}
		want[uint64(addr)/pg] = true
	}
	d, err := big.Dirty(ar)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRanges(d, pageRanges(want)) {
		t.Fatalf("Dirty: %d ranges, want %d", len(d), len(want))
	}
	for i, p := range pages[:1000] {
		if got := readAt(t, big, a+hostarch.Addr(2*p*pg), 1); got[0] != byte(i)|1 {
			t.Fatalf("page %d reads %d, want %d", p, got[0], byte(i)|1)
		}
	}
	checkBudgetHealthy(t, budget)
	if err := big.Reset(snap); err != nil {
		t.Fatal(err)
	}
	for _, p := range pages[:1000] {
		if got := readAt(t, big, a+hostarch.Addr(2*p*pg), 1); got[0] != 0 {
			t.Fatalf("after Reset page %d reads %d, want 0", p, got[0])
		}
	}
	if err := checkViews(big); err != nil {
		t.Fatal(err)
	}
	checkBudgetHealthy(t, budget)
	t.Log("dirty budget child ok")
}
