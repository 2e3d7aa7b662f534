# mmsim's build entry points. `make test` is what CI runs (.ci/run).

GO       ?= go
FUZZTIME ?= 10s
# Nested modules (each has its own go.mod) tested along with the root one.
NESTED   := $(patsubst %/go.mod,%,$(wildcard */go.mod))

.PHONY: test fmt-check vet unit fuzz-smoke fuzz bench

test: fmt-check vet unit fuzz-smoke

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	@for m in $(NESTED); do echo "go vet ($$m)"; (cd $$m && $(GO) vet ./...) || exit 1; done

unit:
	$(GO) test -race -count=1 ./...
	@for m in $(NESTED); do echo "go test ($$m)"; (cd $$m && $(GO) test -race -count=1 ./...) || exit 1; done

# Each fuzz target runs briefly on every `make test`; `make fuzz FUZZTIME=10m`
# runs them longer by hand.
FUZZ_TARGETS := \
	./hostarch:FuzzAddrRangeSeq \
	./usermem:FuzzCopyInt32StringsInVec \
	./addrspace:FuzzModel \
	./addrspace:FuzzHostile

fuzz-smoke fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

# The benchmark suite (bench/, its own module): every copy path of the
# library next to copy() and gVisor/Unicorn, in interleaved rounds. Prints
# the table and writes bench/results/latest.{txt,json,svg,bench}; about
# 3 minutes on 2 cores. `cd bench && go run ./cmd/mmbench -h` for the flags
# (-quick is the 10-second smoke run that `make test` also does).
bench:
	cd bench && $(GO) run ./cmd/mmbench -svg results/latest.svg -jsonfile results/latest.json \
		-table results/latest.txt -raw results/latest.bench
