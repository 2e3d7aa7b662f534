# mmsim's build entry points. `make test` is what CI runs (.ci/run).

GO       ?= go
SHELL    := /bin/bash
FUZZTIME ?= 10s
# Nested modules (each has its own go.mod) tested along with the root one.
NESTED   := $(patsubst %/go.mod,%,$(wildcard */go.mod))

.PHONY: test fmt-check vet staticcheck unit fuzz-smoke fuzz bench arm64 soak

test: fmt-check vet staticcheck unit fuzz-smoke arm64

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	@for m in $(NESTED); do echo "go vet ($$m)"; (cd $$m && $(GO) vet ./...) || exit 1; done

# staticcheck over the root module (for amd64 and arm64) and the nested
# ones, with its default checks. Installed (pinned) into GOPATH/bin when
# that version is missing; `make staticcheck STATICCHECK=...` uses another.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK         ?= $(shell $(GO) env GOPATH)/bin/staticcheck

staticcheck:
	@$(STATICCHECK) -version 2>/dev/null | grep -q '($(STATICCHECK_VERSION:v%=%))' || { \
		echo "go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); }
	$(STATICCHECK) ./...
	GOARCH=arm64 $(STATICCHECK) ./...
	@for m in $(NESTED); do echo "staticcheck ($$m)"; (cd $$m && $(STATICCHECK) ./...) || exit 1; done

unit:
	$(GO) test -race -count=1 ./...
	@for m in $(NESTED); do echo "go test ($$m)"; (cd $$m && $(GO) test -race -count=1 ./...) || exit 1; done

# linux/arm64: build and vet, then run every package's tests of the root
# module as arm64 binaries under qemu-aarch64 (Debian's qemu-user; .ci/run
# installs it), without -race (it needs a native arm64 host), one package at
# a time (-p 1): qemu never frees the page descriptors of what a process
# once mapped, and the addrspace suite alone peaks near 13 GB. Tests that
# re-exec their own binary run it through $$MMSIM_TEST_EXEC. Skipped there
# for the emulator's sake (qemu-user 7.2), not the library's:
#   TestNoLeaks, TestSizes, TestAdvHugeSize, TestStatsSparseShared: qemu
#     keeps tens of bytes per guest page ever mapped and never frees them;
#     their 1 TiB spaces (and a thousand 1 GiB ones) take more than 20 GB
#     of host memory;
#   TestModel: qemu's mincore(2) fails with ENOMEM on pages that are not
#     readable (Linux does not), and the model checks Mincore;
#   TestHostDiff, TestHostDiffCases, TestHostDiffFlags, TestHostDiffLimits,
#   TestHostDiffMlockall, TestHostDiffRlimits, TestHostDiffAdvice,
#   TestHostDiffAdviceCases: the reference is the host
#     kernel, and under qemu the "host" is qemu's emulation of mremap and
#     friends (and of stack growth, mlock and /proc/self/smaps);
#   TestModelHostAccount, TestHostBudgetExhaustion: they compare with and
#     fill the host's own mappings, which under qemu are qemu's (it maps
#     guest memory its own way, and 60,000 guest mappings exhaust it);
#   FuzzHostile: its seeds map spaces of up to 2^46 bytes, whose per-page
#     bookkeeping in qemu runs the host out of memory;
#   TestDescriptorsExhausted: it re-executes itself under RLIMIT_NOFILE,
#     which under qemu limits qemu's own descriptors too;
#   TestMmapPopulate: qemu-user takes madvise(MADV_POPULATE_WRITE) for a
#     hint it may ignore, and does;
#   TestTLBTruncatedFile (examples/rv64): qemu-user reports the SIGBUS of a
#     file page beyond EOF at the address of its last SIGSEGV, outside the
#     address space, so the emulator takes it for a fault of its own and
#     re-panics (SIGSEGV addresses are right);
#   TestMlockallHugeSpace: a space of 2^40 bytes (as TestNoLeaks above).
QEMU_AARCH64 ?= qemu-aarch64
ARM64_SKIP   := ^(TestNoLeaks|TestSizes|TestAdvHugeSize|TestStatsSparseShared|TestModel|TestHostDiff|TestHostDiffCases|TestHostDiffFlags|TestHostDiffLimits|TestHostDiffMlockall|TestHostDiffRlimits|TestHostDiffAdvice|TestHostDiffAdviceCases|TestModelHostAccount|TestHostBudgetExhaustion|FuzzHostile|TestDescriptorsExhausted|TestRestoreDescriptorsExhausted|TestMmapPopulate|TestTLBTruncatedFile|TestMlockallHugeSpace)$$

arm64:
	GOARCH=arm64 $(GO) build ./...
	GOARCH=arm64 $(GO) vet ./...
	@command -v $(QEMU_AARCH64) >/dev/null || { echo "$(QEMU_AARCH64) not found (apt-get install qemu-user)"; exit 1; }
	GOARCH=arm64 MMSIM_TEST_EXEC=$(QEMU_AARCH64) $(GO) test -p 1 -count=1 -exec $(QEMU_AARCH64) -skip '$(ARM64_SKIP)' ./...

# Each fuzz target runs briefly on every `make test`; `make fuzz FUZZTIME=10m`
# runs them longer by hand.
FUZZ_TARGETS := \
	./hostarch:FuzzAddrRangeSeq \
	./usermem:FuzzCopyInt32StringsInVec \
	./addrspace:FuzzModel \
	./addrspace:FuzzHostile \
	./addrspace:FuzzRestore

#
# Go 1.26's fuzz coordinator can fail a target at the end of a -fuzztime
# duration with a bare "context deadline exceeded" when a worker is still
# mid-call as the deadline fires (golang.org/issue/75804, fixed in Go 1.27),
# more often on a loaded machine. That failure names no input and writes no
# reproducer, so a run that ends in it (and in no "Failing input written")
# is run again, at most twice; any other failure fails at once.
fuzz-smoke fuzz:
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		for try in 1 2 3; do \
			echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
			if $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg 2>&1 | tee $$log; \
				[ $${PIPESTATUS[0]} -eq 0 ]; then break; fi; \
			if [ $$try -lt 3 ] && grep -q 'context deadline exceeded' $$log && \
				! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' $$log; then \
				echo "fuzz $$name: the coordinator's deadline race (golang.org/issue/75804), no input at fault: again"; \
				continue; fi; \
			exit 1; \
		done; \
	done

# `make soak SOAK_TIME=30m` runs the randomised tests at length with fresh
# seeds (printed, so that a failure can be replayed): the differential test
# against the host kernel, the reference-model test, and each fuzz target,
# each for SOAK_TIME.
SOAK_TIME ?= 5m

soak:
	@seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	echo "TestHostDiff for $(SOAK_TIME), MMSIM_HOSTDIFF_SEED=$$seed"; \
	MMSIM_HOSTDIFF_TIME=$(SOAK_TIME) MMSIM_HOSTDIFF_SEED=$$seed \
		$(GO) test -count=1 -timeout 0 -v -run '^TestHostDiff$$' ./addrspace/ || exit 1; \
	seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	echo "TestModel for $(SOAK_TIME), MMSIM_MODEL_SEED=$$seed"; \
	MMSIM_MODEL_TIME=$(SOAK_TIME) MMSIM_MODEL_OPS=1000000000 MMSIM_MODEL_SEED=$$seed \
		$(GO) test -count=1 -timeout 0 -v -run '^TestModel$$' ./addrspace/ || exit 1
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(SOAK_TIME)

# The benchmark suite (bench/, its own module): every copy path of the
# library next to copy() and gVisor/Unicorn, in interleaved rounds. Prints
# the table and writes bench/results/latest.{txt,json,svg,bench}; about
# 3 minutes on 2 cores. `cd bench && go run ./cmd/mmbench -h` for the flags
# (-quick is the 10-second smoke run that `make test` also does).
bench:
	cd bench && $(GO) run ./cmd/mmbench -svg results/latest.svg -jsonfile results/latest.json \
		-table results/latest.txt -raw results/latest.bench
