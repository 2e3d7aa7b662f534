// Package unicorn is the benchmark suite's binding to the Unicorn CPU
// emulator's memory API (uc_mem_map_ptr, uc_mem_read, uc_mem_write), the
// peer a user would otherwise pick to simulate guest memory from Go.
//
// The binding needs cgo and libunicorn (Debian: libunicorn-dev), so it is
// built only with the build tag "unicorn"; without it (or without cgo) the
// package compiles to a stub whose New reports ErrUnavailable, and the
// benchmarks that use it skip. cmd/mmbench adds the tag when
// `pkg-config --exists unicorn` succeeds.
package unicorn

import "errors"

// ErrUnavailable is returned by New when the package was built without
// Unicorn.
var ErrUnavailable = errors.New("unicorn: not built in (needs cgo, libunicorn-dev and -tags unicorn)")
