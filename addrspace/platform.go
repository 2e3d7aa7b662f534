package addrspace

// Building addrspace on a platform mmsim does not support fails in this import with
// an error naming the supported ones (linux/amd64, linux/arm64).
import _ "github.com/mmsim/mmsim/internal/platform"
