//go:build !(linux && (amd64 || arm64))

package platform

// mmsim needs Linux (memfd_create, MAP_FIXED views, SIGSEGV and SIGBUS
// delivery) and the fault-safe copy routines of internal/safecopy, written
// for amd64 and arm64.
var _ = mmsim_supports_only_linux_amd64_and_linux_arm64
