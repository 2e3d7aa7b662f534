// Command mmbench runs mmsim's benchmark suite (package bench) in
// interleaved rounds and reports copy throughput and per-call cost through
// every path of the library, side by side with copy() on the same host
// memory and with gVisor and Unicorn, as a table (stdout), JSON and an SVG
// chart.
//
// Usage, inside bench/ (`make bench` at the repository root runs it):
//
//	go run ./cmd/mmbench [-quick] [-rounds N] [-benchtime D] [-json]
//	    [-svg FILE] [-jsonfile FILE] [-table FILE] [-raw FILE]
//	    [-unicorn auto|on|off]
//
// It compiles the suite once (go test -c, with -tags unicorn when
// `pkg-config --exists unicorn` succeeds), then runs the compiled binary once
// per round with -test.bench for BenchmarkCopy, BenchmarkOp and
// BenchmarkParallel, each round in a new shuffled order (MMBENCH_SEED). Every
// benchmark so runs once per round; mmbench parses the output with
// golang.org/x/perf/benchfmt and summarises each benchmark's rounds with
// benchmath: the median, and the spread as benchmath's 95% confidence
// interval of the median (with 12 rounds: from the 3rd to the 10th fastest
// round), or the farthest round with too few rounds for one.
// A progress line goes to stderr while it runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

func main() {
	var cfg config
	flag.BoolVar(&cfg.Quick, "quick", false, "smoke run: 3 short rounds (about 30 s); the figures are rough")
	flag.IntVar(&cfg.Rounds, "rounds", 0, "interleaved rounds (default 12, or 3 with -quick)")
	flag.DurationVar(&cfg.Benchtime, "benchtime", 0, "time per benchmark per round (default 60ms, or 3ms with -quick)")
	flag.BoolVar(&cfg.JSON, "json", false, "print the report as JSON on stdout instead of the table")
	flag.StringVar(&cfg.SVG, "svg", "mmbench.svg", "write the throughput chart (SVG) to this file (\"\" for none)")
	flag.StringVar(&cfg.JSONFile, "jsonfile", "", "also write the JSON report to this file")
	flag.StringVar(&cfg.Table, "table", "", "also write the table to this file")
	flag.StringVar(&cfg.Raw, "raw", "", "also write the raw `go test -bench` output of every round to this file (for benchstat)")
	flag.StringVar(&cfg.Unicorn, "unicorn", "auto", "build the Unicorn peer: auto (if pkg-config finds it), on, off")
	flag.StringVar(&cfg.Dir, "dir", "", "the bench module's directory (default: found from the working directory)")
	flag.Int64Var(&cfg.Seed, "seed", 0, "seed of the shuffled orders (default: the time)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mmbench [flags]\n\nRuns mmsim's benchmark suite in interleaved rounds; prints a table, writes a chart.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mmbench:", err)
		os.Exit(1)
	}
}
