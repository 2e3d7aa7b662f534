//go:build !unicorn || !cgo

package unicorn

import "unsafe"

// Available reports whether the package was built with Unicorn.
const Available = false

// An Engine is one x86-64 Unicorn instance (never created in this build).
type Engine struct{}

// Version returns "".
func Version() string { return "" }

// New returns ErrUnavailable.
func New() (*Engine, error) { return nil, ErrUnavailable }

// Close returns ErrUnavailable.
func (e *Engine) Close() error { return ErrUnavailable }

// MapPtr returns ErrUnavailable.
func (e *Engine) MapPtr(addr uint64, mem unsafe.Pointer, n uintptr) error { return ErrUnavailable }

// Read returns ErrUnavailable.
func (e *Engine) Read(addr uint64, dst unsafe.Pointer, n uintptr) error { return ErrUnavailable }

// Write returns ErrUnavailable.
func (e *Engine) Write(addr uint64, src unsafe.Pointer, n uintptr) error { return ErrUnavailable }
