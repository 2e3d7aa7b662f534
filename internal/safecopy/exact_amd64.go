//go:build linux && amd64

package safecopy

// faultAddrInFaultingPage: amd64 reports an address in the page whose
// translation failed (see FaultPageExact).
const faultAddrInFaultingPage = true

// maxAccess is the widest single access of memcpy and memclr (a 32-byte AVX
// move); unused where faultAddrInFaultingPage holds.
const maxAccess = 32
