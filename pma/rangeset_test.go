package pma

import (
	"math/rand"
	"testing"
)

// TestRangeSet compares a rangeSet with a plain array of pages under
// random adds and removes: membership, the runs (disjoint, not adjacent,
// in order) and the clipped runs of random windows.
func TestRangeSet(t *testing.T) {
	const n = 200
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		var s rangeSet
		var ref [n]bool
		for op := 0; op < 400; op++ {
			a := uint64(rng.Intn(n + 1))
			b := a + uint64(rng.Intn(n+1-int(a)))
			if rng.Intn(2) == 0 {
				s.add(a, b)
				for i := a; i < b; i++ {
					ref[i] = true
				}
			} else {
				s.remove(a, b)
				for i := a; i < b; i++ {
					ref[i] = false
				}
			}
			var prev *span
			count := 0
			s.each(0, n, func(x span) bool {
				if x.start >= x.end || (prev != nil && x.start <= prev.end) {
					t.Fatalf("seed %d op %d: run %v after %v", seed, op, x, prev)
				}
				for i := x.start; i < x.end; i++ {
					if !ref[i] {
						t.Fatalf("seed %d op %d: %d in run %v but not in the set", seed, op, i, x)
					}
				}
				count += int(x.end - x.start)
				prev = &x
				return true
			})
			want := 0
			for _, in := range ref {
				if in {
					want++
				}
			}
			if count != want {
				t.Fatalf("seed %d op %d: runs hold %d pages, want %d", seed, op, count, want)
			}
			lo := uint64(rng.Intn(n))
			hi := lo + uint64(rng.Intn(n-int(lo))+1)
			any := false
			for i := lo; i < hi; i++ {
				any = any || ref[i]
			}
			if got := s.overlaps(lo, hi); got != any {
				t.Fatalf("seed %d op %d: overlaps(%d, %d) = %v, want %v", seed, op, lo, hi, got, any)
			}
			for _, x := range s.spans(lo, hi) {
				if x.start < lo || x.end > hi {
					t.Fatalf("seed %d op %d: span %v outside [%d, %d)", seed, op, x, lo, hi)
				}
			}
		}
	}
	var empty rangeSet
	empty.remove(0, 10)
	if !empty.empty() || empty.overlaps(0, 10) || empty.spans(0, 10) != nil {
		t.Fatal("the zero rangeSet is not empty")
	}
}
