package addrspace

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// anonNameMax is Linux's ANON_VMA_NAME_MAX_LEN: the longest name
// prctl(PR_SET_VMA_ANON_NAME) accepts, counting the terminating NUL.
const anonNameMax = 80

// specialNames are the labels Linux's kernel itself gives mappings it makes
// (exec's stack, the vDSO and its data page). Linux never lets a process set
// them (prctl refuses brackets), but the caller of this package plays the
// kernel, so it may; they are shown in WriteMaps as they are. "[heap]" is
// not among them: it belongs to the mapping Brk manages.
var specialNames = map[string]bool{
	"[stack]": true,
	"[vdso]":  true,
	"[vvar]":  true,
}

// checkName validates MmapOpts.Name: "" (no name), one of specialNames, or
// a name Linux's prctl(PR_SET_VMA_ANON_NAME) accepts — at most 79 bytes, each
// printable ASCII other than '\\', '`', '$', '[' and ']'. Anything else
// wraps EINVAL, as prctl returns, so that no name can break a line of
// WriteMaps or pose as another kind of mapping.
func checkName(name string) error {
	if name == "" || specialNames[name] {
		return nil
	}
	if len(name) >= anonNameMax {
		return fmt.Errorf("addrspace: mapping name of %d bytes, longer than %d: %w", len(name), anonNameMax-1, unix.EINVAL)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c > '~' || strings.IndexByte("\\`$[]", c) >= 0 {
			return fmt.Errorf("addrspace: mapping name %q has the invalid byte %#02x at %d: %w", name, c, i, unix.EINVAL)
		}
	}
	return nil
}

// mapsName returns how /proc/PID/maps shows a mapping's label: a file's
// path with newlines escaped as Linux's seq_path escapes them ("\012"), a
// special or library-given name ("[heap]") as it is, and a name given as
// prctl(PR_SET_VMA_ANON_NAME) would as "[anon:NAME]" (private) or
// "[anon_shmem:NAME]" (shared), as Linux shows them.
func mapsName(m Mapping) string {
	switch {
	case m.FileName != "":
		return strings.ReplaceAll(m.FileName, "\n", `\012`)
	case m.Name == "":
		if m.Private {
			return ""
		}
		return "/dev/zero (deleted)"
	case m.Name == heapName || specialNames[m.Name]:
		return m.Name
	case m.Private:
		return "[anon:" + m.Name + "]"
	default:
		return "[anon_shmem:" + m.Name + "]"
	}
}
