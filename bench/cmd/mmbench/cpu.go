package main

import (
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cpuMeter measures how much CPU time processes other than mmbench and its
// children (the compiler, the benchmark binary) used while it ran: any is
// noise in the figures.
type cpuMeter struct {
	start     time.Time
	busy, own time.Duration
	ok        bool
}

// userHZ is the unit of /proc/stat (USER_HZ, 100 on Linux).
const userHZ = 100

// hostBusy returns the CPU time all CPUs spent busy since boot, including
// time stolen by the hypervisor for other guests.
func hostBusy() (time.Duration, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var ticks int64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, true
}

// ownCPU returns the CPU time of this process and its waited-for children.
func ownCPU() time.Duration {
	var total time.Duration
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if unix.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

func startCPUMeter() *cpuMeter {
	busy, ok := hostBusy()
	return &cpuMeter{start: time.Now(), busy: busy, own: ownCPU(), ok: ok}
}

// othersShare returns the CPU time other processes used since the meter
// started, as a fraction of all the CPUs' time (0 if unknown).
func (m *cpuMeter) othersShare(ncpu int) float64 {
	busy, ok := hostBusy()
	if !m.ok || !ok {
		return 0
	}
	wall := time.Since(m.start)
	others := (busy - m.busy) - (ownCPU() - m.own)
	if wall <= 0 || others <= 0 {
		return 0
	}
	return min(1, float64(others)/float64(wall)/float64(ncpu))
}
