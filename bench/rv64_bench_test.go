package bench

import (
	"testing"

	"github.com/mmsim/mmsim/examples/rv64/emu"
)

// rv64Guest is the compute-bound guest of examples/rv64 (a sieve, a sort
// and a hash over its heap), and rv64Rounds its argument: about 3 million
// instructions.
const (
	rv64Guest  = "../examples/rv64/testdata/bench"
	rv64Rounds = "2"
)

// rv64OpImpls run examples/rv64's RV64 emulator on the guest, one run per
// operation (loading excluded), over guest memory that is a plain []byte
// (the baseline), an AddressSpace through its software TLB over
// Translate, and an AddressSpace through CopyIn/CopyOut. Every run retires
// the same instructions, so the ratio of times is the inverse ratio of
// instructions per second (also reported, as instrs/s).
var rv64OpImpls = []opImpl{
	{"RV64", "slice", func(b *testing.B) { benchRV64(b, emu.Flat) }},
	{"RV64", "tlb", func(b *testing.B) { benchRV64(b, emu.TLB) }},
	{"RV64", "mmsim", func(b *testing.B) { benchRV64(b, emu.Copy) }},
}

func benchRV64(b *testing.B, be emu.Backend) {
	var instrs uint64
	for b.Loop() {
		b.StopTimer()
		m, err := emu.Load(rv64Guest, []string{"bench", rv64Rounds}, emu.Config{Backend: be})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, _ := m.Run()
		if st.Code != 0 || st.Signal != 0 {
			b.Fatalf("guest: %v", st)
		}
		instrs += st.Instructions
	}
	b.ReportMetric(float64(instrs)/b.Elapsed().Seconds(), "instrs/s")
}

func init() {
	budgetOpImpls = append(budgetOpImpls, rv64OpImpls...)
}
