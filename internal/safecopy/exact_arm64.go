//go:build linux && arm64

package safecopy

// faultAddrInFaultingPage: arm64 may report any address inside an access
// that crosses a page (see FaultPageExact).
const faultAddrInFaultingPage = false

// maxAccess is the widest single access of memcpy and memclr (LDP/STP of
// two 64-bit registers).
const maxAccess = 16
