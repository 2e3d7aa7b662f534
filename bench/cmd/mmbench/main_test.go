package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/perf/benchfmt"
)

// TestQuick runs `mmbench -quick -json` end to end (it compiles and runs
// the suite) and checks its outputs: the JSON on stdout parses, holds every
// cell and equals the -jsonfile copy; the table renders; the chart is an
// SVG document; the raw output parses with benchfmt.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and runs the benchmark suite")
	}
	dir := t.TempDir()
	cfg := config{
		Quick:    true,
		JSON:     true,
		SVG:      filepath.Join(dir, "chart.svg"),
		JSONFile: filepath.Join(dir, "report.json"),
		Table:    filepath.Join(dir, "table.txt"),
		Raw:      filepath.Join(dir, "raw.txt"),
		Unicorn:  "auto",
		Seed:     1,
	}
	var stdout, stderr bytes.Buffer
	start := time.Now()
	if err := run(context.Background(), cfg, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.Bytes())
	}
	t.Logf("mmbench -quick: %v, compilation included", time.Since(start))
	if !strings.Contains(stderr.String(), "round 3/3") {
		t.Errorf("no progress on stderr:\n%s", stderr.Bytes())
	}

	// The JSON.
	var rep Report
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.Bytes())
	}
	if file, err := os.ReadFile(cfg.JSONFile); err != nil || !bytes.Equal(file, stdout.Bytes()) {
		t.Errorf("-jsonfile differs from the -json output (err %v)", err)
	}
	checkReport(t, &rep)
	// How long the rounds took is reported, not asserted: the machines are
	// shared, and a time limit in a test fails with the load, not with the
	// code (the heavy rows — Reset of 256 MiB, Save/Restore of 64 MiB, the
	// RV64 guest — set up their spaces in every round).
	if _, err := time.ParseDuration(rep.Config.Measuring); err != nil {
		t.Errorf("Config.Measuring = %q: %v", rep.Config.Measuring, err)
	}
	t.Logf("-quick measured for %s", rep.Config.Measuring)

	// The table, written to -table alongside the JSON on stdout.
	table, err := os.ReadFile(cfg.Table)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mmsim's paths", "Peers on the same memory", "16 MiB", "gV CopyIn", "Operations", "Mmap+Munmap", "goroutines", "Targets:"} {
		if !strings.Contains(string(table), want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	checkSVG(t, cfg.SVG)

	raw, err := os.ReadFile(cfg.Raw)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rd := benchfmt.NewReader(bytes.NewReader(raw), "raw"); rd.Scan(); {
		if _, ok := rd.Result().(*benchfmt.Result); ok {
			n++
		}
	}
	if want := 3 * (len(rep.Copy) + len(rep.Ops) + len(rep.Parallel)); n != want {
		t.Errorf("raw output has %d results, want %d (3 rounds of every benchmark)", n, want)
	}
}

// checkReport checks that the report has every cell, with sane figures.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	if rep.Config.Rounds != 3 || !rep.Config.Quick || rep.Machine.CPU == "" || rep.Machine.NumCPU < 1 {
		t.Errorf("config %+v, machine %+v", rep.Config, rep.Machine)
	}
	sizes := []int{8, 64, 512, 4 << 10, 64 << 10, 1 << 20, 16 << 20}
	for _, col := range copyColumns {
		if _, missing := rep.Missing[col.path]; missing {
			if !strings.HasPrefix(col.path, "unicorn.") || rep.Config.Unicorn.Built {
				t.Errorf("column %s missing: %s", col.path, rep.Missing[col.path])
			}
			continue
		}
		for _, n := range sizes {
			c := rep.copyCell(n, col.path)
			if c == nil {
				t.Errorf("no cell for %s at %s", col.path, sizeLabel(n))
				continue
			}
			checkStat(t, col.path, c.NsPerOp)
			checkStat(t, col.path, c.BytesPerSec)
			if c.VsBaseline <= 0 || math.IsInf(c.VsBaseline, 0) {
				t.Errorf("%s %s: ratio to baseline %v", col.path, sizeLabel(n), c.VsBaseline)
			}
			// The copies allocate nothing. testing counts the process's
			// allocations, though, and a 16 MiB copy runs once or twice
			// in -quick's 3 ms: one made meanwhile by the runtime's
			// cleanup goroutine (after a GC, for the spaces earlier
			// benchmarks dropped) shows as 1 allocs/op in 1 run of 20
			// or so (never with GOGC=off). A full run's 60 ms rounds
			// divide it away; only the 16 MiB cells may show it here.
			if limit := map[bool]float64{true: 1, false: 0}[n == 16<<20]; c.AllocsPerOp > limit {
				t.Errorf("%s %s: %v allocs/op, want %v", col.path, sizeLabel(n), c.AllocsPerOp, limit)
			}
		}
	}
	for op, base := range opBaselines {
		if rep.op(op, base) == nil || rep.op(op, "mmsim") == nil {
			t.Errorf("operation %s: no baseline or mmsim row", op)
		}
	}
	for _, o := range rep.Ops {
		checkStat(t, o.Op+"/"+o.Impl, o.NsPerOp)
	}
	if len(rep.Parallel) != 8 {
		t.Errorf("%d parallel cells, want 8", len(rep.Parallel))
	}
	if len(rep.Targets) != 36 {
		t.Errorf("%d targets, want 36 (Clone of 1,000 mappings, 3 at 8 B, 3 at each of 4 sizes from 4 KiB, CopySeq at each of the 7 sizes, Mmap+Munmap, SwapUint32, CopyStringIn, IOSeq per range, the write after Clone, the scattered writes' host mappings, the spaces of 64 GiB, the guest loads and stores through a TLB, the RV64 emulator, Reset against 16 pages' copy and against 256 MiB's, Save and Restore of 64 MiB)", len(rep.Targets))
	}
}

func checkStat(t *testing.T, what string, s Stat) {
	t.Helper()
	if s.N != 3 || !(s.Min > 0 && s.Min <= s.Median && s.Median <= s.Max) || math.IsInf(s.Max, 0) {
		t.Errorf("%s: stat %+v", what, s)
	}
}

// checkSVG parses file with encoding/xml: an <svg> root, lines (paths) and
// the legend's labels.
func checkSVG(t *testing.T, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	var root string
	paths := 0
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", file, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
				if tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root element in namespace %q", tok.Name.Space)
				}
			}
			if tok.Name.Local == "path" {
				paths++
			}
		case xml.CharData:
			text.Write(tok)
		}
	}
	if root != "svg" {
		t.Errorf("root element <%s>, want <svg>", root)
	}
	if paths < len(copyColumns) {
		t.Errorf("%d <path> elements, want at least one per line", paths)
	}
	for _, want := range []string{"copy() (baseline)", "CopyIn", "gV CopyIn (peer)", "16 MiB"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("chart has no text %q", want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int{"8B": 8, "512B": 512, "4KiB": 4096, "64KiB": 65536, "1MiB": 1 << 20, "16MiB": 16 << 20} {
		if got, err := parseSize(s); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
		if got := sizeLabel(want); strings.ReplaceAll(got, " ", "") != s {
			t.Errorf("sizeLabel(%d) = %q", want, got)
		}
	}
	for _, s := range []string{"", "8", "KiB", "-1B", "x MiB"} {
		if _, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) succeeded", s)
		}
	}
}

// TestSummarize feeds summarize a hand-written benchmark output: medians,
// spreads, ratios and targets come out as computed by hand.
func TestSummarize(t *testing.T) {
	var raw strings.Builder
	raw.WriteString("goos: linux\ngoarch: amd64\npkg: github.com/mmsim/mmsim/bench\ncpu: Test CPU\n")
	line := func(name string, ns float64) {
		raw.WriteString("Benchmark" + name + "-2 \t 1000\t " + strconvF(ns) + " ns/op\t 0 B/op\t 0 allocs/op\n")
	}
	for _, ns := range []float64{10, 12, 11} {
		line("Copy/size=4KiB/path=copy", ns*100)       // median 1100 ns
		line("Copy/size=4KiB/path=CopyIn", ns*110)     // median 1210 ns: 1/1.1 of copy()
		line("Copy/size=4KiB/path=gvisor.CopyIn", 2e3) // slower than copy()
		line("Copy/size=8B/path=CopyIn", 6)
		line("Copy/size=8B/path=gvisor.CopyIn", 5)
		line("Copy/size=8B/path=copy", 2)
		line("Op/op=MmapMunmap4KiB/impl=host", 1000)
		line("Op/op=MmapMunmap4KiB/impl=mmsim", ns*400) // median 4400: 4.4×
		line("Parallel/size=4KiB/goroutines=2/impl=copy", 50)
		line("Parallel/size=4KiB/goroutines=2/impl=mmsim", 100)
	}
	rep, err := summarize([]byte(raw.String()), config{Rounds: 3, Benchtime: time.Millisecond}, unicornInfo{Reason: "test"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := rep.copyCell(4096, "CopyIn")
	if c == nil || c.NsPerOp.Median != 1210 || c.NsPerOp.Min != 1100 || c.NsPerOp.Max != 1320 {
		t.Fatalf("CopyIn 4 KiB: %+v", c)
	}
	if math.Abs(c.VsBaseline-1/1.1) > 1e-9 || math.Abs(c.BytesPerSec.Median-4096/1210e-9) > 1e-3 {
		t.Errorf("CopyIn 4 KiB: ratio %v, throughput %v", c.VsBaseline, c.BytesPerSec.Median)
	}
	if math.Abs(c.NsPerOp.Spread()-110.0/1210) > 1e-9 {
		t.Errorf("spread %v", c.NsPerOp.Spread())
	}
	want := map[string]bool{
		"CopyIn 8 B: time per call / gvisor.CopyIn's":           false, // 1.2×
		"CopyIn 4 KiB: throughput / max(copy(), gvisor.CopyIn)": true,  // 0.909×
		"Mmap+Munmap 4 KiB: time / host mmap+munmap":            false, // 4.4×
	}
	for _, tg := range rep.Targets {
		met, ok := want[tg.Name]
		if !ok {
			t.Errorf("unexpected target %q", tg.Name)
			continue
		}
		delete(want, tg.Name)
		if tg.Met != met {
			t.Errorf("target %q: met = %v (value %v), want %v", tg.Name, tg.Met, tg.Value, met)
		}
	}
	for name := range want {
		t.Errorf("target %q missing", name)
	}
	if p := rep.Parallel; len(p) != 2 || p[1].Impl != "mmsim" || p[1].VsBaseline != 0.5 {
		t.Errorf("parallel: %+v", p)
	}
	if rep.Missing["unicorn.read"] != "test" || rep.Missing["BytesIO"] == "" {
		t.Errorf("missing: %v", rep.Missing)
	}
	var table bytes.Buffer
	writeTables(&table, rep)
	if !strings.Contains(table.String(), "n/a uc_mem_read: test") || !strings.Contains(table.String(), "MISS Mmap+Munmap") {
		t.Errorf("table:\n%s", table.Bytes())
	}
	// A missed target with a known reason says it; a met one does not.
	if !strings.Contains(table.String(), "why CopyIn 8 B: time per call / gvisor.CopyIn's: at parity") || strings.Contains(table.String(), "why CopyIn 4 KiB") {
		t.Errorf("table's reasons:\n%s", table.Bytes())
	}
}

func strconvF(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
