package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// table is a text table: the first left columns left-aligned, the others
// right-aligned.
type table struct {
	left int
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i < max(t.left, 1) {
				if i > 0 {
					b.WriteString("  ")
				}
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// num formats v with three significant digits (more for large values).
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func pct(f float64) string { return fmt.Sprintf("±%.0f%%", 100*f) }

func ratio(f float64) string {
	if f == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", f)
}

// gbps formats a throughput cell: GB/s (10⁹ bytes/s), spread, ratio.
func gbps(c *CopyCell) string {
	if c == nil {
		return "n/a"
	}
	s := num(c.BytesPerSec.Median/1e9) + " " + pct(c.NsPerOp.Spread())
	if c.Path != "copy" {
		s += " " + ratio(c.VsBaseline)
	}
	return s
}

func writeTables(w io.Writer, r *Report) {
	m, c := r.Machine, r.Config
	fmt.Fprintf(w, "mmbench: %s (%d CPUs), %s, %s/%s, kernel %s\n", m.CPU, m.NumCPU, m.Go, m.OS, m.Arch, m.Kernel)
	mode := ""
	if c.Quick {
		mode = ", -quick (rough figures)"
	}
	src := ""
	if c.Source != "" {
		src = ", source " + c.Source
	}
	fmt.Fprintf(w, "%d interleaved rounds of %s per benchmark%s; %s in all%s\n", c.Rounds, c.Benchtime, mode, c.Elapsed, src)
	if busy(m.Load) {
		fmt.Fprintf(w, "WARNING: the machine was busy at the start (load average %.2f): the figures are noisy\n", m.Load)
	}
	if m.OthersCPU > othersLimit {
		fmt.Fprintf(w, "WARNING: other processes used %.0f%% of the CPUs during the run: the figures are disturbed\n", 100*m.OthersCPU)
	} else {
		fmt.Fprintf(w, "Other processes used %.1f%% of the CPUs during the run.\n", 100*m.OthersCPU)
	}
	fmt.Fprintln(w, "Each cell: median GB/s (10⁹ B/s) over the rounds, ± the 95% confidence interval of the median")
	fmt.Fprintln(w, "(benchmath; with fewer than 6 rounds, the farthest round), and × its throughput relative to")
	fmt.Fprintln(w, "copy() in the same row (1.00× = as fast as the builtin on the same host memory).")

	sizes := r.sizes()
	writeCopy := func(title string, paths []string) {
		fmt.Fprintf(w, "\n%s\n", title)
		var t table
		head := []string{"size"}
		for _, p := range paths {
			head = append(head, columnLabel(p))
		}
		t.add(head...)
		for _, n := range sizes {
			row := []string{sizeLabel(n)}
			for _, p := range paths {
				row = append(row, gbps(r.copyCell(n, p)))
			}
			t.add(row...)
		}
		t.write(w)
	}
	writeCopy("mmsim's paths (AddressSpace unless named)", []string{"copy", "BytesIO", "safemem.Copy", "safemem.CopySeq", "CopyIn", "CopyOut", "IgnorePerms", "IOSeq16", "ZeroOut"})
	writeCopy("Peers on the same memory", []string{"copy", "CopyIn", "CopyOut", "safemem.CopySeq", "gvisor.CopyIn", "gvisor.CopyOut", "gvisor.CopySeq", "unicorn.read", "unicorn.write"})

	fmt.Fprintln(w, "\nTime per call, ns (median)")
	var t table
	head := []string{"size"}
	for _, col := range copyColumns {
		head = append(head, col.label)
	}
	t.add(head...)
	for _, n := range sizes {
		row := []string{sizeLabel(n)}
		for _, col := range copyColumns {
			if cell := r.copyCell(n, col.path); cell != nil {
				row = append(row, num(cell.NsPerOp.Median))
			} else {
				row = append(row, "n/a")
			}
		}
		t.add(row...)
	}
	t.write(w)
	allocs := 0.0
	for _, cell := range r.Copy {
		allocs = max(allocs, cell.AllocsPerOp)
	}
	fmt.Fprintf(w, "Allocations per copy: at most %.3g in any cell.\n", allocs)

	if len(r.Ops) > 0 {
		fmt.Fprintln(w, "\nOperations: ns per call (median ± CI), allocations per call, × time of the baseline (lower is better)")
		t := table{left: 2}
		t.add("operation", "implementation", "ns/op", "±", "allocs", "× baseline", "other")
		prev := ""
		for _, o := range r.Ops {
			name := opTitles[o.Op]
			if name == "" {
				name = o.Op
			}
			if o.Op == prev {
				name = ""
			}
			prev = o.Op
			label := opLabel(o.Op, o.Impl)
			if o.Kind == "baseline" {
				label += " (baseline)"
			}
			var other []string
			for _, unit := range slices.Sorted(maps.Keys(o.Metrics)) {
				other = append(other, fmt.Sprintf("%.4g %s", o.Metrics[unit], unit))
			}
			t.add(name, label, num(o.NsPerOp.Median), pct(o.NsPerOp.Spread()), fmt.Sprintf("%.3g", o.AllocsPerOp), ratio(o.TimeVsBaseline), strings.Join(other, ", "))
		}
		t.write(w)
	}

	if len(r.Parallel) > 0 {
		fmt.Fprintln(w, "\nCopyIn on 1 and 2 goroutines, each on its own range: total GB/s (median ± CI)")
		var t table
		t.add("size", "goroutines", "copy()", "CopyIn", "× copy()", "CopyIn × 1 goroutine")
		for _, c := range r.Parallel {
			if c.Impl != "mmsim" {
				continue
			}
			var base, one *ParCell
			for i, b := range r.Parallel {
				if b.Size == c.Size && b.Goroutines == c.Goroutines && b.Impl == "copy" {
					base = &r.Parallel[i]
				}
				if b.Size == c.Size && b.Goroutines == 1 && b.Impl == "mmsim" {
					one = &r.Parallel[i]
				}
			}
			baseStr := "n/a"
			if base != nil {
				baseStr = num(base.BytesPerSec.Median/1e9) + " " + pct(base.NsPerOp.Spread())
			}
			scale := "-"
			if one != nil {
				scale = ratio(c.BytesPerSec.Median / one.BytesPerSec.Median)
			}
			t.add(sizeLabel(c.Size), fmt.Sprint(c.Goroutines), baseStr,
				num(c.BytesPerSec.Median/1e9)+" "+pct(c.NsPerOp.Spread()), ratio(c.VsBaseline), scale)
		}
		t.write(w)
	}

	if len(r.Targets) > 0 {
		met := 0
		for _, tg := range r.Targets {
			if tg.Met {
				met++
			}
		}
		fmt.Fprintf(w, "\nTargets: %d of %d met\n", met, len(r.Targets))
		t := table{left: 1}
		for _, tg := range r.Targets {
			mark, cmp := "ok  ", "≥"
			if !tg.Met {
				mark = "MISS"
			}
			if tg.Better == "lower" {
				cmp = "≤"
			}
			t.add(mark+" "+tg.Name, fmt.Sprintf("%.2f×", tg.Value), fmt.Sprintf("(target %s %.1f×)", cmp, tg.Limit))
		}
		t.write(w)
		for _, tg := range r.Targets {
			if !tg.Met && tg.Why != "" {
				fmt.Fprintf(w, "why %s: %s\n", tg.Name, tg.Why)
			}
		}
	}

	if len(r.Missing) > 0 {
		fmt.Fprintln(w)
		for _, col := range copyColumns {
			if why, ok := r.Missing[col.path]; ok {
				fmt.Fprintf(w, "n/a %s: %s\n", col.label, why)
			}
		}
	}
}

func columnLabel(path string) string {
	for _, c := range copyColumns {
		if c.path == path {
			return c.label
		}
	}
	return path
}
