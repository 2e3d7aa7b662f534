package emu

import (
	"strconv"
	"testing"
)

// BenchmarkRun runs the benchmark guest (a sieve, a sort and a hash over
// its heap) on each back-end: a run, loading excluded, per operation, and
// the instructions per second it retired.
func BenchmarkRun(b *testing.B) {
	for _, rounds := range []int{0, 4} {
		for _, be := range Backends {
			b.Run("rounds="+strconv.Itoa(rounds)+"/mem="+string(be), func(b *testing.B) {
				var instrs uint64
				for b.Loop() {
					b.StopTimer()
					m, err := Load(testdata+"bench", []string{"bench", strconv.Itoa(rounds)}, Config{Backend: be})
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					st, _ := m.Run()
					if st.Code != 0 {
						b.Fatal(st)
					}
					instrs += st.Instructions
				}
				b.ReportMetric(float64(instrs)/b.Elapsed().Seconds(), "instrs/s")
			})
		}
	}
}
