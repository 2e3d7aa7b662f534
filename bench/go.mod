module github.com/mmsim/mmsim/bench

go 1.26.3

require (
	github.com/mmsim/mmsim v0.0.0
	golang.org/x/sys v0.50.0
	gvisor.dev/gvisor v0.0.0-20260905035102-160fafc42237
)

require (
	github.com/google/btree v1.1.3 // indirect
	golang.org/x/exp v0.0.0-20260824195058-e88cd73687aa // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/mmsim/mmsim => ../
