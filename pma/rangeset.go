package pma

import "github.com/google/btree"

// A rangeSet is a set of page ranges of simulated addresses, kept as
// disjoint, non-adjacent half-open ranges ordered by start: its cost grows
// with the number of runs, not with the pages they hold.
//
// Concurrency: not safe for concurrent use (its Table's lock serializes it).
type rangeSet struct {
	t *btree.BTreeG[span]
}

// A span is one range [start, end) of a rangeSet; start < end.
type span struct{ start, end uint64 }

func newRangeSet() rangeSet {
	return rangeSet{t: btree.NewG(16, func(a, b span) bool { return a.start < b.start })}
}

func (s *rangeSet) empty() bool { return s.t == nil || s.t.Len() == 0 }

// spans returns the runs of s overlapping [start, end), clipped to it, in
// order.
func (s *rangeSet) spans(start, end uint64) []span {
	var out []span
	s.each(start, end, func(x span) bool { out = append(out, x); return true })
	return out
}

// each calls f, in order, with each run of s overlapping [start, end),
// clipped to it, until f returns false.
func (s *rangeSet) each(start, end uint64, f func(span) bool) {
	if s.empty() || start >= end {
		return
	}
	cont := true
	s.t.DescendLessOrEqual(span{start: start}, func(x span) bool {
		if x.end > start {
			cont = f(span{start, min(x.end, end)})
		}
		return false
	})
	if !cont {
		return
	}
	s.t.AscendRange(span{start: start + 1}, span{start: end}, func(x span) bool {
		return f(span{x.start, min(x.end, end)})
	})
}

// overlaps reports whether any page of [start, end) is in s.
func (s *rangeSet) overlaps(start, end uint64) bool {
	found := false
	s.each(start, end, func(span) bool { found = true; return false })
	return found
}

// add adds [start, end) to s.
func (s *rangeSet) add(start, end uint64) {
	if start >= end {
		return
	}
	if s.t == nil {
		*s = newRangeSet()
	}
	// Absorb every run that overlaps or touches [start, end).
	var absorb []span
	lo := start
	if lo > 0 {
		lo--
	}
	s.t.DescendLessOrEqual(span{start: lo}, func(x span) bool {
		if x.end >= start {
			absorb = append(absorb, x)
		}
		return false
	})
	s.t.AscendRange(span{start: lo + 1}, span{start: end + 1}, func(x span) bool {
		absorb = append(absorb, x)
		return true
	})
	for _, x := range absorb {
		s.t.Delete(x)
		start, end = min(start, x.start), max(end, x.end)
	}
	s.t.ReplaceOrInsert(span{start, end})
}

// remove removes [start, end) from s.
func (s *rangeSet) remove(start, end uint64) {
	if s.empty() || start >= end {
		return
	}
	var hit []span
	s.t.DescendLessOrEqual(span{start: start}, func(x span) bool {
		if x.end > start {
			hit = append(hit, x)
		}
		return false
	})
	s.t.AscendRange(span{start: start + 1}, span{start: end}, func(x span) bool {
		hit = append(hit, x)
		return true
	})
	for _, x := range hit {
		s.t.Delete(x)
		if x.start < start {
			s.t.ReplaceOrInsert(span{x.start, start})
		}
		if x.end > end {
			s.t.ReplaceOrInsert(span{end, x.end})
		}
	}
}

// clear empties s.
func (s *rangeSet) clear() {
	if s.t != nil {
		s.t.Clear(false)
	}
}
