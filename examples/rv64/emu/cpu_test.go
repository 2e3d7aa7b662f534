package emu

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/bits"
	"testing"
)

// Instruction encoders (the RISC-V unprivileged spec's formats).
func encR(op, f3, f7, rd, rs1, rs2 uint32) uint32 {
	return f7<<25 | rs2<<20 | rs1<<15 | f3<<12 | rd<<7 | op
}
func encI(op, f3, rd, rs1 uint32, imm int32) uint32 {
	return uint32(imm)<<20 | rs1<<15 | f3<<12 | rd<<7 | op
}
func encS(f3, rs1, rs2 uint32, imm int32) uint32 {
	u := uint32(imm)
	return (u>>5&0x7f)<<25 | rs2<<20 | rs1<<15 | f3<<12 | (u&31)<<7 | 0x23
}
func encB(f3, rs1, rs2 uint32, imm int32) uint32 {
	u := uint32(imm)
	return (u>>12&1)<<31 | (u>>5&0x3f)<<25 | rs2<<20 | rs1<<15 | f3<<12 | (u>>1&0xf)<<8 | (u>>11&1)<<7 | 0x63
}
func encU(op, rd uint32, imm uint32) uint32 { return imm&0xfffff000 | rd<<7 | op }
func encJ(rd uint32, imm int32) uint32 {
	u := uint32(imm)
	return (u>>20&1)<<31 | (u>>1&0x3ff)<<21 | (u>>11&1)<<20 | (u>>12&0xff)<<12 | rd<<7 | 0x6f
}

const ebreak = 0x00100073

// TestExecute runs short programs on the flat back-end and checks one
// register: sign and zero extension, immediates of every format, the M
// extension's edge cases, x0.
func TestExecute(t *testing.T) {
	const base = 0x10000
	const data = 0x20000
	minInt := uint64(1) << 63
	for _, tc := range []struct {
		name string
		regs map[uint32]uint64
		prog []uint32
		reg  uint32
		want uint64
	}{
		{"addi negative", map[uint32]uint64{1: 5}, []uint32{encI(0x13, 0, 2, 1, -7)}, 2, ^uint64(1)},
		{"addiw wraps and sign-extends", map[uint32]uint64{1: 0x7fffffff}, []uint32{encI(0x1b, 0, 2, 1, 1)}, 2, 0xffffffff80000000},
		{"sltiu -1 is unsigned max", map[uint32]uint64{1: 5}, []uint32{encI(0x13, 3, 2, 1, -1)}, 2, 1},
		{"slti signed", map[uint32]uint64{1: ^uint64(0)}, []uint32{encI(0x13, 2, 2, 1, 0)}, 2, 1},
		{"srai 63", map[uint32]uint64{1: minInt}, []uint32{encI(0x13, 5, 2, 1, 0x400|63)}, 2, ^uint64(0)},
		{"srli 63", map[uint32]uint64{1: minInt}, []uint32{encI(0x13, 5, 2, 1, 63)}, 2, 1},
		{"slli 40", map[uint32]uint64{1: 3}, []uint32{encI(0x13, 1, 2, 1, 40)}, 2, 3 << 40},
		{"sraiw", map[uint32]uint64{1: 0x80000000}, []uint32{encI(0x1b, 5, 2, 1, 0x400|4)}, 2, 0xfffffffff8000000},
		{"srliw", map[uint32]uint64{1: 0xffffffff80000000}, []uint32{encI(0x1b, 5, 2, 1, 4)}, 2, 0x08000000},
		{"sllw masks the shift to 5 bits", map[uint32]uint64{1: 1, 3: 33}, []uint32{encR(0x3b, 1, 0, 2, 1, 3)}, 2, 2},
		{"sll masks the shift to 6 bits", map[uint32]uint64{1: 1, 3: 65}, []uint32{encR(0x33, 1, 0, 2, 1, 3)}, 2, 2},
		{"sra", map[uint32]uint64{1: minInt, 3: 1}, []uint32{encR(0x33, 5, 0x20, 2, 1, 3)}, 2, 0xc000000000000000},
		{"subw", map[uint32]uint64{1: 0, 3: 1}, []uint32{encR(0x3b, 0, 0x20, 2, 1, 3)}, 2, ^uint64(0)},
		{"lui sign-extends", nil, []uint32{encU(0x37, 2, 0x80000000)}, 2, 0xffffffff80000000},
		{"auipc", nil, []uint32{encI(0x13, 0, 0, 0, 0), encU(0x17, 2, 0x1000)}, 2, base + 4 + 0x1000},
		{"x0 stays zero", nil, []uint32{encI(0x13, 0, 0, 0, 5), encI(0x13, 0, 2, 0, 0)}, 2, 0},
		{"jal links and jumps", nil, []uint32{encJ(1, 8), ebreak, encI(0x13, 0, 2, 1, 0)}, 2, base + 4},
		{"jalr clears bit 0", map[uint32]uint64{5: base + 9}, []uint32{encI(0x67, 0, 1, 5, 0), ebreak, encI(0x13, 0, 2, 1, 0)}, 2, base + 4},
		{"bltu backwards", map[uint32]uint64{1: 0}, []uint32{
			encI(0x13, 0, 1, 1, 1), encI(0x13, 0, 3, 0, 10), encB(6, 1, 3, -8)}, 1, 10},
		{"bge signed", map[uint32]uint64{1: ^uint64(0)}, []uint32{encB(5, 1, 0, 8), encI(0x13, 0, 2, 0, 7)}, 2, 7},
		{"lb sign-extends", map[uint32]uint64{1: data}, []uint32{encI(0x03, 0, 2, 1, 7)}, 2, ^uint64(0x7f)},
		{"lbu", map[uint32]uint64{1: data}, []uint32{encI(0x03, 4, 2, 1, 7)}, 2, 0x80},
		{"lh", map[uint32]uint64{1: data}, []uint32{encI(0x03, 1, 2, 1, 6)}, 2, 0xffffffffffff8081},
		{"lhu", map[uint32]uint64{1: data}, []uint32{encI(0x03, 5, 2, 1, 6)}, 2, 0x8081},
		{"lw", map[uint32]uint64{1: data}, []uint32{encI(0x03, 2, 2, 1, 4)}, 2, 0xffffffff80818283},
		{"lwu", map[uint32]uint64{1: data}, []uint32{encI(0x03, 6, 2, 1, 4)}, 2, 0x80818283},
		{"ld", map[uint32]uint64{1: data + 8}, []uint32{encI(0x03, 3, 2, 1, -8)}, 2, 0x8081828384858687},
		{"sh then ld", map[uint32]uint64{1: data, 3: 0xaabbccdd}, []uint32{encS(1, 1, 3, 2), encI(0x03, 3, 2, 1, 0)}, 2, 0x80818283ccdd8687},
		{"mulh", map[uint32]uint64{1: ^uint64(0), 3: ^uint64(0)}, []uint32{encR(0x33, 1, 1, 2, 1, 3)}, 2, 0},
		{"mulhsu", map[uint32]uint64{1: ^uint64(0), 3: ^uint64(0)}, []uint32{encR(0x33, 2, 1, 2, 1, 3)}, 2, ^uint64(0)},
		{"mulhu", map[uint32]uint64{1: ^uint64(0), 3: ^uint64(0)}, []uint32{encR(0x33, 3, 1, 2, 1, 3)}, 2, ^uint64(1)},
		{"div by zero", map[uint32]uint64{1: 5}, []uint32{encR(0x33, 4, 1, 2, 1, 0)}, 2, ^uint64(0)},
		{"div overflow", map[uint32]uint64{1: minInt, 3: ^uint64(0)}, []uint32{encR(0x33, 4, 1, 2, 1, 3)}, 2, minInt},
		{"rem overflow", map[uint32]uint64{1: minInt, 3: ^uint64(0)}, []uint32{encR(0x33, 6, 1, 2, 1, 3)}, 2, 0},
		{"rem by zero", map[uint32]uint64{1: 5}, []uint32{encR(0x33, 6, 1, 2, 1, 0)}, 2, 5},
		{"remu by zero", map[uint32]uint64{1: 5}, []uint32{encR(0x33, 7, 1, 2, 1, 0)}, 2, 5},
		{"divu by zero", map[uint32]uint64{1: 5}, []uint32{encR(0x33, 5, 1, 2, 1, 0)}, 2, ^uint64(0)},
		{"divw overflow", map[uint32]uint64{1: 0x80000000, 3: ^uint64(0)}, []uint32{encR(0x3b, 4, 1, 2, 1, 3)}, 2, 0xffffffff80000000},
		{"divuw", map[uint32]uint64{1: 0xffffffff, 3: 2}, []uint32{encR(0x3b, 5, 1, 2, 1, 3)}, 2, 0x7fffffff},
		{"remw negative", map[uint32]uint64{1: uint64(math.MaxUint64 - 6), 3: 4}, []uint32{encR(0x3b, 6, 1, 2, 1, 3)}, 2, ^uint64(2)},
		{"remuw by zero sign-extends", map[uint32]uint64{1: 0x80000000}, []uint32{encR(0x3b, 7, 1, 2, 1, 0)}, 2, 0xffffffff80000000},
		{"mulw", map[uint32]uint64{1: 0x10000, 3: 0x8000}, []uint32{encR(0x3b, 0, 1, 2, 1, 3)}, 2, 0xffffffff80000000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFlat(1 << 20)
			prog := append(tc.prog, ebreak)
			for i, in := range prog {
				binary.LittleEndian.PutUint32(s.mem[base-flatBase+4*i:], in)
			}
			copy(s.mem[data-flatBase:], []byte{0x87, 0x86, 0x85, 0x84, 0x83, 0x82, 0x81, 0x80})
			var c cpu
			c.pc = base
			for r, v := range tc.regs {
				c.x[r] = v
			}
			if why := s.run(&c, 100); why != stopEbreak {
				t.Fatalf("stopped with %d at pc %#x, want the ebreak", why, c.pc)
			}
			if c.x[tc.reg] != tc.want {
				t.Errorf("x%d = %#x, want %#x", tc.reg, c.x[tc.reg], tc.want)
			}
			if c.x[0] != 0 {
				t.Errorf("x0 = %#x", c.x[0])
			}
		})
	}
}

// TestIllegal: instructions outside RV64IM stop execution at them.
func TestIllegal(t *testing.T) {
	for _, in := range []uint32{
		0,                            // the all-zero (defined illegal) instruction
		0x00002573,                   // csrrs a0, fflags, x0
		0x0000a007,                   // flw
		encI(0x13, 1, 2, 1, 0x400|3), // slli with a nonzero funct6
		encR(0x33, 0, 0x02, 2, 1, 3), // unknown funct7
		encI(0x1b, 1, 2, 1, 32),      // slliw with shamt[5] set
		encI(0x67, 1, 1, 5, 0),       // jalr with funct3 1
		encI(0x03, 7, 2, 1, 0),       // load funct3 7
		encS(4, 1, 3, 0),             // store funct3 4
		encB(2, 1, 3, 8),             // branch funct3 2
	} {
		s := newFlat(1 << 20)
		binary.LittleEndian.PutUint32(s.mem[0x10000-flatBase:], in)
		c := cpu{pc: 0x10000}
		if why := s.run(&c, 10); why != stopIllegal || c.pc != 0x10000 || c.instret != 0 {
			t.Errorf("%#08x: stop %d at pc %#x after %d instructions, want illegal at 0x10000", in, why, c.pc, c.instret)
		}
	}
}

// TestMulDiv checks the M extension's helpers against math/big on edge
// and pseudo-random operands.
func TestMulDiv(t *testing.T) {
	vals := []uint64{0, 1, 2, 3, 7, 1 << 31, 1<<32 - 1, 1 << 32, 1<<63 - 1, 1 << 63, 1<<63 + 1, ^uint64(0), ^uint64(1)}
	x := uint64(0x9e3779b97f4a7c15)
	for range 50 {
		x = x*6364136223846793005 + 1442695040888963407
		vals = append(vals, x)
	}
	signed := func(v uint64) *big.Int { return big.NewInt(int64(v)) }
	unsigned := func(v uint64) *big.Int { return new(big.Int).SetUint64(v) }
	high := func(p *big.Int) uint64 {
		p = new(big.Int).Rsh(p, 64) // arithmetic: floor
		return new(big.Int).And(p, unsigned(^uint64(0))).Uint64()
	}
	for _, a := range vals {
		for _, b := range vals {
			if got, want := mulh(a, b), high(new(big.Int).Mul(signed(a), signed(b))); got != want {
				t.Errorf("mulh(%#x, %#x) = %#x, want %#x", a, b, got, want)
			}
			if got, want := mulhsu(a, b), high(new(big.Int).Mul(signed(a), unsigned(b))); got != want {
				t.Errorf("mulhsu(%#x, %#x) = %#x, want %#x", a, b, got, want)
			}
			if hi, _ := bits.Mul64(a, b); hi != high(new(big.Int).Mul(unsigned(a), unsigned(b))) {
				t.Errorf("mulhu(%#x, %#x)", a, b)
			}
			if b != 0 && !(a == 1<<63 && b == ^uint64(0)) {
				q, r := new(big.Int).QuoRem(signed(a), signed(b), new(big.Int)) // truncating, as RISC-V
				if uint64(div(int64(a), int64(b))) != uint64(q.Int64()) || uint64(rem(int64(a), int64(b))) != uint64(r.Int64()) {
					t.Errorf("div/rem(%#x, %#x)", a, b)
				}
			}
		}
	}
}
