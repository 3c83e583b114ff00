#!/usr/bin/env bash
# make bench: every benchmark with its baseline, in one run. Figures go to
# stdout; BENCHMARKS.md records them with the command of each section.
# BENCH=foundation,ontology,mount picks sections (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
want=",${BENCH:-foundation,ontology,mount},"
section() { case "$want" in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if section foundation; then
  echo "## Foundation: go run ./bench"
  go run ./bench -lamina bin/lamina "$@"
fi
if section ontology; then
  echo "## Ontologies: go test -bench ./ontology/"
  go test -run '^$' -bench . -benchmem ./ontology/
fi
if section mount; then
  echo "## Mount: go test -bench BenchmarkMount ./fs/ (root, /dev/fuse)"
  go test -run XXX -bench 'BenchmarkMount' -benchtime 1x -timeout 60m ./fs/
fi
