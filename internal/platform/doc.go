// Package platform stops the build of mmsim's address-space packages on a
// platform that they do not support, with an error that names the supported
// ones: on any GOOS/GOARCH other than linux/amd64 and linux/arm64, building
// this package fails with
//
//	undefined: mmsim_supports_only_linux_amd64_and_linux_arm64
//
// Packages that need fault-safe copying or Linux memory calls (pma,
// addrspace) import it for that effect alone. hostarch, safemem and
// usermem's BytesIO do not, and build on other Unix systems too.
package platform
