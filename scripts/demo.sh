#!/usr/bin/env bash
# make demo: the main job end to end, in ./demo only (nothing outside it is
# touched): an instance on the embedded default (bbolt catalog + local
# storage), sample data in two versions, a mount, a tracked run that reads
# through the mount and writes a result, and the lineage it produced.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# The tracked run is a Python script: say so before the demo starts.
command -v python3 >/dev/null || { echo "make demo needs python3 (apt-get install python3)" >&2; exit 1; }
demo="$root/demo"
samples="$root/../shared/data/samples"
if mountpoint -q "$demo/lab" 2>/dev/null; then "$root/bin/lamina" umount "$demo/lab" || umount -l "$demo/lab" || true; fi
rm -rf "$demo"
mkdir -p "$demo/work" "$demo/lab"
export PATH="$root/bin:$PATH"
export HOME="$demo/home" XDG_CONFIG_HOME="$demo/config" XDG_DATA_HOME="$demo/data" XDG_CACHE_HOME="$demo/cache" XDG_RUNTIME_DIR="$demo/run"
unset LAMINA_INSTANCE
step() { printf '\n\033[1m$'; printf ' %q' "$@"; printf '\033[0m\n'; "$@"; }  # %q: lines that paste
note() { printf '\n\033[2m# %s\033[0m\n' "$*"; }
cd "$demo/work"

step lamina init --storage "$demo/storage" --name demo
if [ -f "$samples/pbmc_small_obs.csv" ]; then
  cp "$samples/pbmc_small_obs.csv" obs.csv
  chmod u+w obs.csv # the shared sample is read-only; its next version appends to it
else
  printf 'cell_id,cell_type\nAAAC-1,T cell\nAAAG-1,B cell\n' > obs.csv
fi
step lamina save obs.csv --key scrna/obs.csv --description "cell metadata"
note "version 2: one more cell"
tail -n 1 obs.csv | sed 's/^[^,]*/ZZZZ-1/' >> obs.csv
step lamina save obs.csv --key scrna/obs.csv --description "one more cell"
step lamina save obs.csv --key scrna/obs.csv
[ -d "$samples/pbmc_small.zarr" ] && step lamina save "$samples/pbmc_small.zarr" --key scrna/pbmc.zarr
step lamina ls scrna/
step lamina ls --versions scrna/obs.csv

note "the catalog as a filesystem"
step lamina mount "$demo/lab"
trap 'lamina umount "$demo/lab" >/dev/null 2>&1 || true' EXIT
step ls -l "$demo/lab/scrna"
step head -n 3 "$demo/lab/scrna/obs.csv@v1"
printf '\n\033[1m$ python3 -m json.tool %s | head -n 20\033[0m\n' "$demo/lab/scrna/obs.csv.meta"
meta=$(python3 -m json.tool "$demo/lab/scrna/obs.csv.meta") # whole, then cut: a pipe into head fails under pipefail (EPIPE)
head -n 20 <<<"$meta"
note "the first 20 lines; the sidecar of the run's output below shows its lineage part"

note "a tracked run: a script that reads through the mount and writes a result"
cat > count_cells.py <<'PY'
import collections, csv, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, newline="") as f:
    rows = list(csv.DictReader(f))
col = "cell_type" if rows and "cell_type" in rows[0] else list(rows[0])[-1]
counts = collections.Counter(r[col] for r in rows)
with open(dst, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["cell_type", "n"])
    w.writerows(counts.most_common())
print(f"{len(rows)} cells, {len(counts)} cell types")
PY
mkdir -p "$demo/lab/results"
step lamina run --transform count_cells --param min_cells=1 -- python3 count_cells.py "$demo/lab/scrna/obs.csv" "$demo/lab/results/cell_counts.csv"
step head -n 4 "$demo/lab/results/cell_counts.csv"
note "the lineage part of the output's sidecar (jq .lineage FILE.meta does the same)"
lineage_of='import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["lineage"], indent=2))'
printf '\n\033[1m$ python3 -c %s %s\033[0m\n' "'$lineage_of'" "$demo/lab/results/cell_counts.csv.meta"
python3 -c "$lineage_of" "$demo/lab/results/cell_counts.csv.meta"
step lamina lineage results/cell_counts.csv
step lamina runs ls
step lamina info
step lamina umount "$demo/lab"
trap - EXIT
printf '\nThe demo instance lives in %s; `make clean` removes it.\n' "$demo"
# Its settings are under the demo's own XDG folders: a shell of the user's
# does not see it without them.
printf 'To use it afterwards, in a shell of its own (these variables move where other programs of that shell keep their files too):\n\n'
printf '  export PATH=%q:"$PATH" XDG_CONFIG_HOME=%q XDG_DATA_HOME=%q XDG_CACHE_HOME=%q XDG_RUNTIME_DIR=%q\n' \
  "$root/bin" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
printf '  lamina ls scrna/ ; lamina mount %q ; ls %q\n' "$demo/lab" "$demo/lab/scrna"
