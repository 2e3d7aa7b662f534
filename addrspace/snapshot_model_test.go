package addrspace

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/mmsim/mmsim/hostarch"
)

// TestModelReset drives the reference model's random operations (mmap,
// munmap, mprotect, mremap, madvise, brk, copies, atomics, clones) on a
// family of spaces descended from one, takes a snapshot (a Clone outside
// the family) now and then, and resets a random member to it over and
// over: after each Reset every byte and mapping of that member must equal
// the snapshot's model, and the memory file's references must match the
// pages every space (the snapshot included) refers to.
func TestModelReset(t *testing.T) {
	ops := 6000
	if testing.Short() {
		ops = 1500
	}
	for seed := int64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { modelResetRun(t, seed, ops) })
	}
}

func modelResetRun(t *testing.T, seed int64, ops int) {
	size := uint64(48 * pg)
	as, err := New(Options{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { as.Close() }()
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(seed))
	r := &modelRun{t: t, as: as, m: &refModel{size: size, pages: map[uint64]*refPage{}, brkStart: size / 8, brk: size / 8}, rng: rng, ctx: context.Background(), byF: map[*os.File]*refFile{}}
	r.fam, r.fm = []*AddressSpace{as}, []*refModel{r.m}
	for i, spec := range []struct {
		writable bool
		size     uint64
	}{{true, 10 * pg}, {false, 6*pg - 1000}} {
		name := filepath.Join(dir, fmt.Sprintf("f%d", i))
		data := make([]byte, spec.size)
		rand.New(rand.NewSource(int64(i))).Read(data)
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		flag := os.O_RDONLY
		if spec.writable {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(name, flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cache := make([]byte, 16*pg)
		copy(cache, data)
		rf := &refFile{f: f, writable: spec.writable, size: spec.size, cache: cache}
		r.files = append(r.files, rf)
		r.byF[f] = rf
	}

	var snap *AddressSpace
	var msnap *refModel
	defer func() {
		if snap != nil {
			snap.Close()
		}
	}()
	resets := 0
	for i := 0; i < ops; i++ {
		switch k := rng.Intn(40); {
		case k == 0 || snap == nil:
			// A new snapshot of a random member.
			j := rng.Intn(len(r.fam))
			r.as, r.m = r.fam[j], r.fm[j]
			if snap != nil {
				snap.Close()
			}
			r.log = append(r.log, fmt.Sprintf("snapshot of space %d", j))
			snap, err = r.as.Clone()
			if err != nil {
				r.fail("Clone: %v", err)
			}
			msnap = r.m.clone()
		case k < 5:
			j := rng.Intn(len(r.fam))
			r.as, r.m = r.fam[j], r.fm[j]
			r.log = append(r.log, fmt.Sprintf("Reset(space %d)", j))
			if err := r.as.Reset(snap); err != nil {
				r.fail("Reset: %v", err)
			}
			r.fm[j] = msnap.clone()
			r.m = r.fm[j]
			resets++
			r.compareAll()
			if err := checkRefs(append(append([]*AddressSpace(nil), r.fam...), snap)); err != nil {
				r.fail("after Reset: %v", err)
			}
			if err := checkViews(r.as); err != nil {
				r.fail("after Reset: %v", err)
			}
		case k < 7:
			// Dirty tracking changes protections, never results.
			j := rng.Intn(len(r.fam))
			r.log = append(r.log, fmt.Sprintf("ClearDirty(space %d)", j))
			if err := r.fam[j].ClearDirty(hostarch.AddrRange{Start: 0, End: hostarch.Addr(size)}); err != nil {
				r.fail("ClearDirty: %v", err)
			}
		default:
			r.step()
		}
	}
	// The snapshot itself never changed.
	r.as, r.m = snap, msnap
	r.compareAll()
	for _, c := range r.fam {
		if c != as {
			c.Close()
		}
	}
	t.Logf("%d operations, %d resets, zero divergence", ops, resets)
}
