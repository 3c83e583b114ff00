# Lamina — see README.md. Every target works on a fresh Debian machine with Go.
GO      ?= go
VERSION ?= 0.1.0
# The commit's time tells a CLI and a mount daemon of two builds which is newer
# (cmd/lamina/build.go); Go's own vcs.time is missing where -buildvcs=false.
COMMIT_TIME := $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commitTime=$(COMMIT_TIME)
# urfave/cli without its man-page generator (unused; its init cost every command ~2 ms)
TAGS    := urfave_cli_no_docs
PKGS    := ./...

.PHONY: build test bench lint demo clean fuzz

build: bin/lamina

bin/lamina: $(shell find . -name '*.go' -not -path './demo/*') go.mod go.sum
	$(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/lamina ./cmd/lamina

# The whole suite, race detector on; real FUSE mounts and tmpfs need root.
# cmd/lamina takes ~10 min on 2 quiet cores and went past 25 under a load
# of 30; the bound is for a hang, not a slow machine.
test:
	$(GO) test -race -count=1 -timeout 45m $(PKGS)

# Short fuzzing of every parser (the seed corpora also run in `make test`).
fuzz:
	$(GO) test -run XXX -fuzz FuzzCheckKey -fuzztime 20s ./ref
	$(GO) test -run XXX -fuzz FuzzDecodeManifest -fuzztime 20s ./cache
	$(GO) test -run XXX -fuzz FuzzVersionRecord -fuzztime 20s ./catalog
	$(GO) test -run XXX -fuzz FuzzArtifactRecord -fuzztime 20s ./catalog
	$(GO) test -run XXX -fuzz FuzzFile -fuzztime 20s ./dataset

# Benchmarks with their baselines, measured in the same run; see BENCHMARKS.md.
bench: build
	scripts/bench.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt: run gofmt -w'; exit 1)
	$(GO) vet $(PKGS)
	scripts/check-imports.sh
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

# An instance in ./demo (nothing outside it is touched), sample data in two
# versions, and what the catalog shows about them.
demo: build
	scripts/demo.sh

clean:
	@if [ -d demo/lab ] && mountpoint -q demo/lab; then bin/lamina umount demo/lab; fi
	rm -rf bin demo
