// Package bench is mmsim's benchmark suite: copy throughput and per-call
// cost through every path of the library, side by side with the builtin
// copy() on the same host memory (the limit) and with the peers a user would
// otherwise pick (gVisor's safecopy and safemem, Unicorn's uc_mem_read and
// uc_mem_write).
//
// The benchmarks are ordinary `go test -bench` functions, so benchstat works
// on them:
//
//	go test -run '^$' -bench '^BenchmarkCopy$' -count 6 . | tee out.txt
//	benchstat -col /path -row /size out.txt
//
// cmd/mmbench (`make bench` at the repository root) compiles them, runs them
// in interleaved rounds and prints the table, the JSON and the chart.
//
// The benchmarks:
//
//   - BenchmarkCopy/size=S/path=P: S bytes through path P. Every path copies
//     the same host bytes: the pages of an anonymous read-write AddressSpace
//     mapping, as seen through the address space's app view (captured with
//     CopyInTo), to or from the same touched host buffer (an anonymous
//     mmap). Paths: copy (the builtin, the baseline), BytesIO, safemem.Copy,
//     CopyIn, CopyOut, IgnorePerms, IOSeq16, ZeroOut, gvisor.CopyIn,
//     gvisor.CopyOut, gvisor.CopySeq, unicorn.read, unicorn.write.
//   - BenchmarkOp/op=O/impl=I: single operations (CopyStringIn of a 64-byte
//     string, SwapUint32, Mmap+Munmap of 4 KiB), each with its baseline;
//     GuestLoadStore8B is 256 8-byte guest loads and stores as an emulator
//     makes them: over a []byte (slice, the baseline), through a software
//     TLB over AddressSpace.Translate (tlb), and with CopyIn/CopyOut (mmsim).
//   - BenchmarkParallel/size=S/goroutines=G/impl=I: CopyIn (and copy()) by G
//     goroutines at once, each on its own range; the throughput is the total.
//   - BenchmarkSafecopyCopy, BenchmarkSafecopyZero: internal/safecopy against
//     copy()/clear() and gVisor's safecopy (not part of mmbench's table).
//
// Setting the environment variable MMBENCH_SEED to an integer shuffles the
// order of the sub-benchmarks of BenchmarkCopy, BenchmarkOp and
// BenchmarkParallel with that seed (mmbench sets it to a new value each
// round).
package bench
