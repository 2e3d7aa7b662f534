package hostarch

import "golang.org/x/sys/unix"

// AccessType specifies memory access types. This is used for
// setting mapping permissions, as well as communicating faults.
//
// The zero value is NoAccess.
type AccessType struct {
	// Read is read access.
	Read bool

	// Write is write access.
	Write bool

	// Execute is executable access.
	Execute bool
}

// String returns a pretty representation of access. This looks like the
// familiar r-x, rw-, etc. and can be relied on as such.
func (a AccessType) String() string {
	bits := [3]byte{'-', '-', '-'}
	if a.Read {
		bits[0] = 'r'
	}
	if a.Write {
		bits[1] = 'w'
	}
	if a.Execute {
		bits[2] = 'x'
	}
	return string(bits[:])
}

// Any returns true iff at least one of Read, Write or Execute is true.
func (a AccessType) Any() bool {
	return a.Read || a.Write || a.Execute
}

// Prot returns the host memory protection (PROT_* bits) corresponding to a.
func (a AccessType) Prot() int {
	var prot int
	if a.Read {
		prot |= unix.PROT_READ
	}
	if a.Write {
		prot |= unix.PROT_WRITE
	}
	if a.Execute {
		prot |= unix.PROT_EXEC
	}
	return prot
}

// SupersetOf returns true iff the access types in a are a superset of the
// access types in other.
func (a AccessType) SupersetOf(other AccessType) bool {
	if !a.Read && other.Read {
		return false
	}
	if !a.Write && other.Write {
		return false
	}
	if !a.Execute && other.Execute {
		return false
	}
	return true
}

// Intersect returns the access types set in both a and other.
func (a AccessType) Intersect(other AccessType) AccessType {
	return AccessType{
		Read:    a.Read && other.Read,
		Write:   a.Write && other.Write,
		Execute: a.Execute && other.Execute,
	}
}

// Union returns the access types set in either a or other.
func (a AccessType) Union(other AccessType) AccessType {
	return AccessType{
		Read:    a.Read || other.Read,
		Write:   a.Write || other.Write,
		Execute: a.Execute || other.Execute,
	}
}

// Effective returns the set of effective access types allowed by a, even if
// some types are not explicitly allowed: on x86, write and execute access
// imply read access.
func (a AccessType) Effective() AccessType {
	// In Linux, Write and Execute access generally imply Read access. See
	// mm/mmap.c:protection_map.
	//
	// The notable exception is get_user_pages, which only checks against
	// the original vma flags. That said, most user memory accesses do not
	// use GUP.
	if a.Write || a.Execute {
		a.Read = true
	}
	return a
}

// Bit representations of the permission combinations.
var (
	// NoAccess allows nothing.
	NoAccess = AccessType{}
	// Read allows reading.
	Read = AccessType{Read: true}
	// Write allows writing.
	Write = AccessType{Write: true}
	// Execute allows executing.
	Execute = AccessType{Execute: true}
	// ReadWrite allows reading and writing.
	ReadWrite = AccessType{Read: true, Write: true}
	// AnyAccess allows everything.
	AnyAccess = AccessType{Read: true, Write: true, Execute: true}
)
