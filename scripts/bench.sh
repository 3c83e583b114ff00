#!/usr/bin/env bash
# make bench: every benchmark with its baseline, in one run. Figures go to
# stdout; BENCHMARKS.md records them with the command of each section.
# BENCH=foundation,ontology,mount,postgres picks sections (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
want=",${BENCH:-foundation,ontology,mount,postgres},"
section() { case "$want" in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if section foundation; then
  echo "## Foundation: go run ./bench"
  go run ./bench -lamina bin/lamina "$@"
fi
if section ontology; then
  echo "## Ontologies: go test -bench ./ontology/"
  go test -run '^$' -bench . -benchmem ./ontology/
fi
if section postgres; then
  # PostgreSQL catalog vs bbolt, and 8 writer processes on two mounts
  # (issue 9); docs/postgres.md has results.
  echo "## PostgreSQL catalog: scripts/pg-bench.sh"
  scripts/pg-bench.sh
fi
if section mount; then
  echo "## Mount: go test -bench BenchmarkMount ./fs/ (root, /dev/fuse)"
  go test -run XXX -bench 'BenchmarkMount' -benchtime 1x -timeout 60m ./fs/
fi
# S3 (issue 8): request overhead by size, direct parallel PUT/GET, and the
# Lamina S3 stack (save, cold read) against versitygw on 127.0.0.1, which
# the benchmarks start themselves; docs/s3-bench.md has results.
LAMINA_ALLOW_SKIP=1 go test -run XXX -bench 'GetRange|DirectParallel|S3Stack' -benchtime 3x ./storage/s3/ ./cache/
scripts/write-bench.sh   # the mount write side (issue 4); docs/write-bench.md
