package emu

import (
	"math/bits"
)

// A cpu is one hart's architectural state: the 32 integer registers (x[0]
// reads as zero) and the program counter, and the number of instructions
// retired.
type cpu struct {
	x       [32]uint64
	pc      uint64
	instret uint64
}

// A stop says why execute returned.
type stop int

const (
	stopBudget  stop = iota // the instruction budget ran out
	stopEcall               // pc is at an ecall
	stopEbreak              // pc is at an ebreak
	stopIllegal             // pc is at an instruction outside RV64IM
)

// A memory is the guest memory an instruction sees. Every method accesses
// little-endian bytes at a guest address of any alignment. A method that
// cannot complete the access panics with a *addrspace.FaultError (the
// guest's SIGSEGV or SIGBUS) or, for the translating back-end, with the
// runtime error of a host fault that the caller resolves and retries;
// before touching memory nothing is changed, so the instruction can be
// re-executed.
//
// The interpreter is generic in its memory, instantiated with value types
// of different shapes, so that each back-end gets its own copy of the loop
// with direct (inlinable) calls.
type memory interface {
	fetch(pc uint64) uint32 // needs Execute
	load8(a uint64) uint64
	load16(a uint64) uint64
	load32(a uint64) uint64
	load64(a uint64) uint64
	store8(a, v uint64)
	store16(a, v uint64)
	store32(a, v uint64)
	store64(a, v uint64)
}

func sext32(v uint64) uint64 { return uint64(int64(int32(v))) }

// mulh returns the high 64 bits of the signed product a*b; mulhsu of
// signed a times unsigned b.
func mulh(a, b uint64) uint64 {
	hi, _ := bits.Mul64(a, b)
	if int64(a) < 0 {
		hi -= b
	}
	if int64(b) < 0 {
		hi -= a
	}
	return hi
}

func mulhsu(a, b uint64) uint64 {
	hi, _ := bits.Mul64(a, b)
	if int64(a) < 0 {
		hi -= b
	}
	return hi
}

// RISC-V division never traps: by zero it gives all ones (quotient) or the
// dividend (remainder); the one signed overflow gives the dividend and 0,
// as Go's own / and % do.
func div(a, b int64) int64 {
	if b == 0 {
		return -1
	}
	return a / b
}

func rem(a, b int64) int64 {
	if b == 0 {
		return a
	}
	return a % b
}

func divu(a, b uint64) uint64 {
	if b == 0 {
		return ^uint64(0)
	}
	return a / b
}

func remu(a, b uint64) uint64 {
	if b == 0 {
		return a
	}
	return a % b
}

// execute runs at most budget instructions of RV64IM from c.pc and returns
// why it stopped. It keeps c.pc and c.instret current at every instruction
// boundary, so that when a memory access panics c.pc is the faulting
// instruction, which has changed nothing and may be retried.
func execute[M memory](c *cpu, m M, budget int) stop {
	x := &c.x
	for ; budget > 0; budget-- {
		pc := c.pc
		in := m.fetch(pc)
		rd := (in >> 7) & 31
		rs1 := x[(in>>15)&31]
		rs2 := x[(in>>20)&31]
		f3 := (in >> 12) & 7
		immI := uint64(int64(int32(in)) >> 20)
		next := pc + 4
		switch in & 0x7f {
		case 0x37: // LUI
			x[rd] = uint64(int64(int32(in & 0xfffff000)))
		case 0x17: // AUIPC
			x[rd] = pc + uint64(int64(int32(in&0xfffff000)))
		case 0x6f: // JAL
			imm := uint64(int64(int32(in&0x80000000))>>11) | uint64(in&0xff000) |
				uint64((in>>9)&0x800) | uint64((in>>20)&0x7fe)
			x[rd] = next
			next = pc + imm
		case 0x67: // JALR
			if f3 != 0 {
				return stopIllegal
			}
			t := (rs1 + immI) &^ 1
			x[rd] = next
			next = t
		case 0x63: // branches
			imm := uint64(int64(int32(in&0x80000000))>>19) | uint64((in<<4)&0x800) |
				uint64((in>>20)&0x7e0) | uint64((in>>7)&0x1e)
			var taken bool
			switch f3 {
			case 0:
				taken = rs1 == rs2
			case 1:
				taken = rs1 != rs2
			case 4:
				taken = int64(rs1) < int64(rs2)
			case 5:
				taken = int64(rs1) >= int64(rs2)
			case 6:
				taken = rs1 < rs2
			case 7:
				taken = rs1 >= rs2
			default:
				return stopIllegal
			}
			if taken {
				next = pc + imm
			}
		case 0x03: // loads
			a := rs1 + immI
			var v uint64
			switch f3 {
			case 0:
				v = uint64(int64(int8(m.load8(a))))
			case 1:
				v = uint64(int64(int16(m.load16(a))))
			case 2:
				v = sext32(m.load32(a))
			case 3:
				v = m.load64(a)
			case 4:
				v = m.load8(a)
			case 5:
				v = m.load16(a)
			case 6:
				v = m.load32(a)
			default:
				return stopIllegal
			}
			x[rd] = v
		case 0x23: // stores
			a := rs1 + (uint64(int64(int32(in&0xfe000000))>>20) | uint64((in>>7)&31))
			switch f3 {
			case 0:
				m.store8(a, rs2)
			case 1:
				m.store16(a, rs2)
			case 2:
				m.store32(a, rs2)
			case 3:
				m.store64(a, rs2)
			default:
				return stopIllegal
			}
		case 0x13: // OP-IMM
			switch f3 {
			case 0:
				x[rd] = rs1 + immI
			case 1:
				if in>>26 != 0 {
					return stopIllegal
				}
				x[rd] = rs1 << (immI & 63)
			case 2:
				x[rd] = b2u(int64(rs1) < int64(immI))
			case 3:
				x[rd] = b2u(rs1 < immI)
			case 4:
				x[rd] = rs1 ^ immI
			case 5:
				switch in >> 26 {
				case 0:
					x[rd] = rs1 >> (immI & 63)
				case 0x10:
					x[rd] = uint64(int64(rs1) >> (immI & 63))
				default:
					return stopIllegal
				}
			case 6:
				x[rd] = rs1 | immI
			case 7:
				x[rd] = rs1 & immI
			}
		case 0x1b: // OP-IMM-32
			sh := (in >> 20) & 31
			switch {
			case f3 == 0:
				x[rd] = sext32(rs1 + immI)
			case f3 == 1 && in>>25 == 0:
				x[rd] = sext32(rs1 << sh)
			case f3 == 5 && in>>25 == 0:
				x[rd] = sext32(uint64(uint32(rs1) >> sh))
			case f3 == 5 && in>>25 == 0x20:
				x[rd] = uint64(int64(int32(rs1) >> sh))
			default:
				return stopIllegal
			}
		case 0x33: // OP
			switch in >> 25 {
			case 0:
				switch f3 {
				case 0:
					x[rd] = rs1 + rs2
				case 1:
					x[rd] = rs1 << (rs2 & 63)
				case 2:
					x[rd] = b2u(int64(rs1) < int64(rs2))
				case 3:
					x[rd] = b2u(rs1 < rs2)
				case 4:
					x[rd] = rs1 ^ rs2
				case 5:
					x[rd] = rs1 >> (rs2 & 63)
				case 6:
					x[rd] = rs1 | rs2
				case 7:
					x[rd] = rs1 & rs2
				}
			case 0x20:
				switch f3 {
				case 0:
					x[rd] = rs1 - rs2
				case 5:
					x[rd] = uint64(int64(rs1) >> (rs2 & 63))
				default:
					return stopIllegal
				}
			case 1: // M
				switch f3 {
				case 0:
					x[rd] = rs1 * rs2
				case 1:
					x[rd] = mulh(rs1, rs2)
				case 2:
					x[rd] = mulhsu(rs1, rs2)
				case 3:
					x[rd], _ = bits.Mul64(rs1, rs2)
				case 4:
					x[rd] = uint64(div(int64(rs1), int64(rs2)))
				case 5:
					x[rd] = divu(rs1, rs2)
				case 6:
					x[rd] = uint64(rem(int64(rs1), int64(rs2)))
				case 7:
					x[rd] = remu(rs1, rs2)
				}
			default:
				return stopIllegal
			}
		case 0x3b: // OP-32
			a, b := uint32(rs1), uint32(rs2)
			switch in >> 25 {
			case 0:
				switch f3 {
				case 0:
					x[rd] = sext32(uint64(a + b))
				case 1:
					x[rd] = sext32(uint64(a << (b & 31)))
				case 5:
					x[rd] = sext32(uint64(a >> (b & 31)))
				default:
					return stopIllegal
				}
			case 0x20:
				switch f3 {
				case 0:
					x[rd] = sext32(uint64(a - b))
				case 5:
					x[rd] = uint64(int64(int32(a) >> (b & 31)))
				default:
					return stopIllegal
				}
			case 1: // M, 32-bit
				switch f3 {
				case 0:
					x[rd] = sext32(uint64(a * b))
				case 4:
					x[rd] = sext32(uint64(div32(int32(a), int32(b))))
				case 5:
					x[rd] = sext32(uint64(divu32(a, b)))
				case 6:
					x[rd] = sext32(uint64(rem32(int32(a), int32(b))))
				case 7:
					x[rd] = sext32(uint64(remu32(a, b)))
				default:
					return stopIllegal
				}
			default:
				return stopIllegal
			}
		case 0x0f: // FENCE, FENCE.I: one hart, nothing to order
		case 0x73:
			switch in {
			case 0x00000073:
				return stopEcall
			case 0x00100073:
				return stopEbreak
			}
			return stopIllegal
		default:
			return stopIllegal
		}
		x[0] = 0
		c.pc = next
		c.instret++
	}
	return stopBudget
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func div32(a, b int32) int32 {
	if b == 0 {
		return -1
	}
	return a / b
}

func rem32(a, b int32) int32 {
	if b == 0 {
		return a
	}
	return a % b
}

func divu32(a, b uint32) uint32 {
	if b == 0 {
		return ^uint32(0)
	}
	return a / b
}

func remu32(a, b uint32) uint32 {
	if b == 0 {
		return a
	}
	return a % b
}
