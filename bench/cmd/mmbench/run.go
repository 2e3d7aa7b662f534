package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// benchModule is the module path of the suite.
const benchModule = "github.com/mmsim/mmsim/bench"

// benchRegexp selects the benchmarks mmbench runs.
const benchRegexp = "^Benchmark(Copy|Op|Parallel)$"

type config struct {
	Quick     bool
	Rounds    int
	Benchtime time.Duration
	JSON      bool
	SVG       string
	JSONFile  string
	Table     string
	Raw       string
	Unicorn   string
	Dir       string
	Seed      int64
}

// fill sets the defaults that depend on Quick.
func (c *config) fill() error {
	if c.Rounds == 0 {
		c.Rounds = 12
		if c.Quick {
			c.Rounds = 3
		}
	}
	if c.Benchtime == 0 {
		c.Benchtime = 60 * time.Millisecond
		if c.Quick {
			c.Benchtime = 3 * time.Millisecond
		}
	}
	if c.Rounds < 1 || c.Benchtime <= 0 {
		return errors.New("-rounds and -benchtime must be positive")
	}
	switch c.Unicorn {
	case "auto", "on", "off":
	default:
		return fmt.Errorf("-unicorn %q: want auto, on or off", c.Unicorn)
	}
	return nil
}

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	if err := cfg.fill(); err != nil {
		return err
	}
	start := time.Now()
	dir, err := findModule(cfg.Dir)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mmbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	uc := probeUnicorn(ctx, cfg.Unicorn)
	prog := newProgress(stderr)
	load := loadAverage()
	if busy(load) {
		fmt.Fprintf(stderr, "mmbench: warning: the machine is busy (load average %.2f on %d CPUs); the figures will be noisy\n", load, runtime.NumCPU())
	}
	prog.printf("mmbench: compiling the suite (%s)", uc.buildNote())
	bin := filepath.Join(tmp, "bench.test")
	args := []string{"test", "-c", "-o", bin}
	if uc.Built {
		args = append(args, "-tags", "unicorn")
	}
	args = append(args, ".")
	build := exec.CommandContext(ctx, goTool(), args...)
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		prog.done()
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	meter := startCPUMeter()
	var raw bytes.Buffer
	total := 0 // benchmarks per round, known after the first
	for r := range cfg.Rounds {
		n, err := runRound(ctx, cfg, bin, dir, r, total, &raw, prog)
		if err != nil {
			prog.done()
			return err
		}
		total = n
	}
	prog.done()

	rep, err := summarize(raw.Bytes(), cfg, uc, load)
	if err != nil {
		return err
	}
	rep.Config.Elapsed = time.Since(start).Round(time.Second).String()
	rep.Config.Source = source(ctx, dir)
	rep.Config.Measuring = time.Since(meter.start).Round(time.Millisecond).String()
	rep.Machine.OthersCPU = meter.othersShare(runtime.NumCPU())
	if rep.Machine.OthersCPU > othersLimit {
		fmt.Fprintf(stderr, "mmbench: warning: other processes used %.0f%% of the CPUs during the run; the figures are disturbed\n", 100*rep.Machine.OthersCPU)
	}

	if cfg.Raw != "" {
		if err := os.WriteFile(cfg.Raw, raw.Bytes(), 0o644); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	if cfg.JSONFile != "" {
		if err := os.WriteFile(cfg.JSONFile, js, 0o644); err != nil {
			return err
		}
	}
	if cfg.SVG != "" {
		if err := writeChart(rep, cfg.SVG); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	var table bytes.Buffer
	writeTables(&table, rep)
	if cfg.SVG != "" {
		fmt.Fprintf(&table, "\nChart: %s\n", cfg.SVG)
	}
	if cfg.Table != "" {
		if err := os.WriteFile(cfg.Table, table.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if cfg.JSON {
		_, err = stdout.Write(js)
		return err
	}
	_, err = stdout.Write(table.Bytes())
	return err
}

// othersLimit is the share of the CPUs that other processes may use during a
// run before mmbench warns that they disturbed it.
const othersLimit = 0.05

// busy reports whether a load average means that other work shares the
// machine.
func busy(load float64) bool { return load > 0.5*float64(runtime.NumCPU()) }

// resultLine matches a benchmark result line of `go test -bench`.
var resultLine = regexp.MustCompile(`^Benchmark\S+\s+\d+\s`)

// runRound runs every benchmark once, in an order shuffled with a seed of
// its own, appending the output to raw. total is the number of benchmarks
// per round if known (0 in the first round); runRound returns the number it
// saw.
func runRound(ctx context.Context, cfg config, bin, dir string, round, total int, raw *bytes.Buffer, prog *progress) (int, error) {
	cmd := exec.CommandContext(ctx, bin,
		"-test.run", "^$",
		"-test.bench", benchRegexp,
		"-test.benchtime", cfg.Benchtime.String(),
		"-test.count", "1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("MMBENCH_SEED=%d", uint64(cfg.Seed)+uint64(round)))
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var roundOut bytes.Buffer
	seen := 0
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		roundOut.WriteString(line)
		roundOut.WriteByte('\n')
		if resultLine.MatchString(line) {
			seen++
			of := "?"
			if total > 0 {
				of = fmt.Sprint(total)
			}
			prog.printf("mmbench: round %d/%d  %3d/%s  %s", round+1, cfg.Rounds, seen, of, strings.Fields(line)[0])
		}
	}
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("round %d: %s: %v\n%s%s", round+1, filepath.Base(bin), err, roundOut.Bytes(), errBuf.Bytes())
	}
	if seen == 0 {
		return 0, fmt.Errorf("round %d: no benchmark results\n%s%s", round+1, roundOut.Bytes(), errBuf.Bytes())
	}
	raw.Write(roundOut.Bytes())
	return seen, nil
}

// findModule returns the directory of the bench module: dir if given, else
// the nearest directory at or above the working directory whose go.mod
// declares benchModule (or that has bench/go.mod declaring it).
func findModule(dir string) (string, error) {
	isBench := func(d string) bool {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		return err == nil && regexp.MustCompile(`(?m)^module\s+`+regexp.QuoteMeta(benchModule)+`\s*$`).Match(data)
	}
	if dir != "" {
		if !isBench(dir) {
			return "", fmt.Errorf("-dir %s: no go.mod of %s there", dir, benchModule)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isBench(d) {
			return d, nil
		}
		if isBench(filepath.Join(d, "bench")) {
			return filepath.Join(d, "bench"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s module at or above %s (run mmbench inside bench/, or give -dir)", benchModule, wd)
		}
	}
}

// goTool returns the go command to build with: $GOROOT/bin/go if GOROOT is
// set (go run and go test set it), else go from $PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// unicornInfo says whether the suite is built with the Unicorn peer, and
// why not if it is not.
type unicornInfo struct {
	Built   bool   `json:"built"`
	Version string `json:"version,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func (u unicornInfo) buildNote() string {
	if u.Built {
		return "with Unicorn " + u.Version
	}
	return "without Unicorn: " + u.Reason
}

// probeUnicorn decides whether to build the Unicorn peer: with "auto", if
// pkg-config finds libunicorn and cgo is on.
func probeUnicorn(ctx context.Context, mode string) unicornInfo {
	if mode == "off" {
		return unicornInfo{Reason: "disabled (-unicorn off)"}
	}
	version, err := exec.CommandContext(ctx, "pkg-config", "--modversion", "unicorn").Output()
	if err != nil && mode == "auto" {
		return unicornInfo{Reason: "not installed (pkg-config finds no unicorn; Debian: apt-get install libunicorn-dev)"}
	}
	if out, err := exec.CommandContext(ctx, goTool(), "env", "CGO_ENABLED").Output(); err == nil && strings.TrimSpace(string(out)) != "1" && mode == "auto" {
		return unicornInfo{Reason: "cgo is disabled"}
	}
	return unicornInfo{Built: true, Version: strings.TrimSpace(string(version))}
}

// progress writes a progress line to a terminal (rewritten in place) or,
// to anything else, one line per round.
type progress struct {
	w        io.Writer
	tty      bool
	lastLen  int
	lastHead string
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if p.tty {
		pad := max(0, p.lastLen-len(line))
		fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
		p.lastLen = len(line)
		return
	}
	// Not a terminal: only the first line of each stage (up to the
	// counter), so that logs stay short.
	head := line
	if i := strings.Index(line, "  "); i >= 0 {
		head = line[:i]
	}
	if head != p.lastHead {
		fmt.Fprintln(p.w, head)
		p.lastHead = head
	}
}

// done ends the progress line.
func (p *progress) done() {
	if p.tty && p.lastLen > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.lastLen))
		p.lastLen = 0
	}
}

// source names the commit measured: git describe of HEAD, with "-dirty" if
// tracked files differ from it, other than mmbench's own results (so that
// a second run does not call the first one's output a change).
func source(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "describe", "--always", "--abbrev=12").Output()
	if err != nil {
		return ""
	}
	src := strings.TrimSpace(string(out))
	status, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no", "--", "..", ":(exclude)results").Output()
	if err == nil && len(bytes.TrimSpace(status)) > 0 {
		src += "-dirty"
	}
	return src
}
