#!/usr/bin/env bash
# The PostgreSQL catalog (issue 9), one run; docs/postgres.md has results.
#  1. catalog benchmarks, PostgreSQL vs bbolt: single lookups, listings, the
#     conformance workload, 8 writers on two handles, and the curation
#     issue's Find/Search/List on 100,000 annotated versions (Queries100k:
#     building them in bbolt and loading them into PostgreSQL takes ~10 min
#     here; PGBENCH='ByKey|Children' skips it, LAMINA_QUERIES_N=20000
#     shrinks it). postgres-cached is a store whose Listen runs, as in a
#     mount daemon: its lookups are cached (hit% says how many were
#     answered so). Beside ns/op: cpu-us/op
#     (this process) and srv-us/op (the local server's processes), which
#     move less with the machine's load than wall time;
#  2. 8 writer processes on two mounts (two workstations: own XDG folders,
#     daemons and caches; one storage folder, one database) creating
#     FILES small files each: none lost, files/s.
# A durable throwaway cluster is started (fsync on, as bbolt fsyncs).
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-1000}
work=$(mktemp -d)
chmod 755 "$work"
eval "$(scripts/pgcluster.sh start "$work/pg" durable)"
cleanup() {
  for m in "$work"/ws*/mnt; do [ -d "$m" ] && XDG_CONFIG_HOME=${m%/mnt}/cfg XDG_DATA_HOME=${m%/mnt}/data XDG_RUNTIME_DIR=${m%/mnt}/run bin/lamina umount "$m" >/dev/null 2>&1 || true; done
  scripts/pgcluster.sh stop "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT

echo "### catalog: go test -bench . ./catalog/postgres/ (durable cluster)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench "${PGBENCH:-.}" -benchtime 2s -benchmem -timeout 60m ./catalog/postgres/
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "### 8 writer processes on two mounts, $FILES files each"
[ -x bin/lamina ] || make build >/dev/null
ws() { # ws N CMD...: run lamina as workstation N
  local d="$work/ws$1"; shift
  HOME=$d/home XDG_CONFIG_HOME=$d/cfg XDG_DATA_HOME=$d/data XDG_CACHE_HOME=$d/cache XDG_RUNTIME_DIR=$d/run LAMINA_INSTANCE= bin/lamina "$@"
}
mkdir -p "$work/ws1/mnt" "$work/ws2/mnt" "$work/storage"
ws 1 init --storage "$work/storage" --name lab --db "$LAMINA_PG_URL" >/dev/null
ws 2 connect lab --db "$LAMINA_PG_URL" >/dev/null
ws 1 mount "$work/ws1/mnt" >/dev/null
ws 2 mount "$work/ws2/mnt" >/dev/null
start=$(date +%s.%N)
for p in 1 2 3 4 5 6 7 8; do
  m="$work/ws$(( (p % 2) + 1 ))/mnt"
  ( mkdir -p "$m/p$p"; for i in $(seq "$FILES"); do echo "p$p $i" >"$m/p$p/f$i.txt"; done ) &
done
wait
end=$(date +%s.%N)
n=$(psql "$LAMINA_PG_URL" -Atc "SELECT count(*) FROM artifacts WHERE latest > 0 AND key LIKE 'p_/f%'")
secs=$(echo "$end - $start" | bc -l)
printf "files: %d of %d recorded (%s lost), %.1f s, %.0f files/s\n" "$n" $((8 * FILES)) $((8 * FILES - n)) "$secs" "$(echo "$n / $secs" | bc -l)"
# Each mount sees the other's files.
for p in 1 2; do
  c=$(ls "$work/ws$p/mnt/p$(( 3 - p ))" | wc -l)
  echo "ws$p sees $c files of p$(( 3 - p ))"
done
