//go:build linux && arm64

package safecopy

// setTuning does nothing on arm64: memcpy and memclr have a single strategy
// (16-byte-aligned LDP/STP loops), which is what the Go runtime's own
// memmove does there.
func setTuning() {}
