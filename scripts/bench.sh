#!/usr/bin/env bash
# make bench: every benchmark with its baseline, in one run. Figures go to
# stdout as a Markdown table; BENCHMARKS.md records them with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./bench -lamina bin/lamina "$@"
