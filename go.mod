module github.com/mmsim/mmsim

go 1.26.0

require golang.org/x/sys v0.50.0

require github.com/google/btree v1.1.3

require github.com/edsrzf/mmap-go v1.2.0
