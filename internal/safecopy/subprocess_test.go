//go:build linux && (amd64 || arm64)

package safecopy

import (
	"os"
	"os/exec"
	"strings"
)

// execEnv names a command prefix that runs a test binary built for another
// architecture: the Makefile sets it to qemu-aarch64 for the linux/arm64
// run, since a process under qemu-user (without binfmt_misc) cannot exec an
// arm64 binary by itself.
const execEnv = "MMSIM_TEST_EXEC"

// selfCommand returns a command that runs this test binary again with args.
func selfCommand(args ...string) *exec.Cmd {
	prefix := strings.Fields(os.Getenv(execEnv))
	argv := append(append(prefix, os.Args[0]), args...)
	return exec.Command(argv[0], argv[1:]...)
}
