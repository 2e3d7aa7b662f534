// Package hostarch holds the address and permission types shared by every
// layer of mmsim: simulated addresses ([Addr]), half-open address ranges
// ([AddrRange]), immutable sequences of ranges ([AddrRangeSeq]) and memory
// access permissions ([AccessType]).
//
// It makes no system calls. The meaning of each name follows gVisor's package
// of the same name.
//
// Concurrency: every type in this package is an immutable value (or, for
// [AddrRangeSeq], a view of a slice the caller must not modify) and is safe
// for concurrent use.
package hostarch
