#!/usr/bin/env bash
# make bench: every benchmark with its baseline, in one run. Figures go to
# stdout; BENCHMARKS.md records them with the command of each section.
# BENCH=foundation,ontology,dataset,query,mount,postgres,lineage,s3 picks sections (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
want=",${BENCH:-foundation,ontology,dataset,query,mount,postgres,lineage,s3},"
section() { case "$want" in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if section foundation; then
  echo "## Foundation: go run ./bench"
  go run ./bench -lamina bin/lamina "$@"
fi
if section ontology; then
  echo "## Ontologies: go test -bench ./ontology/"
  go test -run '^$' -bench . -benchmem ./ontology/
  # Processes that load CL, Uberon, Mondo, HsapDv: curate, search,
  # descendants, with and without index files; docs/ontology-bench.md.
  echo "## Ontologies in a CLI process: go test -bench BenchmarkOntologyCLI ./cmd/lamina/"
  go test -run '^$' -bench BenchmarkOntologyCLI -benchtime 10x ./cmd/lamina/
fi
if section dataset; then
  # Parquet tables read whole, per codec (wall and CPU time a read).
  echo "## Datasets: go test -bench ReadParquet ./dataset/"
  go test -run '^$' -bench ReadParquet -benchmem ./dataset/
fi
if section query; then
  # Queries over 100,000 annotated versions (issue 7), in process and as
  # CLI processes (median wall and CPU); docs/annotate-bench.md has results.
  echo "## Queries: go test -bench ./catalog/ ./cmd/lamina/"
  go test -run '^$' -bench 'Find100k|Search100k|List1000|Children100k' -benchtime 20x -benchmem -timeout 30m ./catalog/
  # One Save of 10,000-100,000 new keys (a large folder saved at once).
  go test -run '^$' -bench SaveBatch -benchtime 1x ./catalog/
  LAMINA_BIN=$PWD/bin/lamina go test -run '^$' -bench QueryCLI100k -benchtime 15x -timeout 30m ./cmd/lamina/
fi
if section postgres; then
  # PostgreSQL catalog vs bbolt, and 8 writer processes on two mounts
  # (issue 9); docs/postgres.md has results.
  echo "## PostgreSQL catalog: scripts/pg-bench.sh"
  scripts/pg-bench.sh
fi
if section lineage; then
  # Tracked vs untracked reads, Snakemake under lamina run, lamina lineage
  # 50 runs deep (issue 5); docs/lineage.md has results.
  echo "## Lineage: scripts/lineage-bench.sh (root, /dev/fuse)"
  scripts/lineage-bench.sh
fi
if section mount; then
  echo "## Mount: go test -bench BenchmarkMount ./fs/ (root, /dev/fuse)"
  go test -run XXX -bench 'BenchmarkMount' -benchtime 1x -timeout 60m ./fs/
  # The same reads through the real daemon, with its CPU per cold read.
  echo "## Mount reads: scripts/read-bench.sh (root)"
  scripts/read-bench.sh bin/lamina
fi
if section s3; then
  # S3 (issue 8) against versitygw on 127.0.0.1 (started by the benchmarks,
  # or LAMINA_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY): request overhead by
  # size; 1 GiB save and cold reads through the mount against direct
  # parallel PUT/GET of the same bytes, rclone mount and s3fs (apt-get
  # install rclone s3fs); 10,000 files of 4 KiB; bytes in the bucket for 10
  # versions; bytes fetched by 100 random reads through a memory map
  # (docs/mount-bench.md). Root (mounts, drop_caches). docs/s3-bench.md has results.
  echo "## S3: go test -bench GetRange ./storage/s3/; go run ./bench -only s3save,s3read,s3mmap,s3small,s3dedup (root)"
  go test -run XXX -bench 'GetRange' -benchtime 20x ./storage/s3/
  go run ./bench -lamina bin/lamina -only s3save,s3read,s3mmap,s3small,s3dedup
fi
# The mount write side (issue 4): closes without FUSE, then through a mount; docs/write-bench.md
go test -run '^$' -bench SmallCommit -benchtime 1000x -benchmem ./stage/
scripts/write-bench.sh
# Edits in place of a big file (append, 4 KiB in the middle, truncate -s); docs/write-bench.md
scripts/edit-bench.sh
# Per-file operations over one folder (touch, chmod, rename, rm); docs/write-bench.md
scripts/folder-ops-bench.sh 2000
