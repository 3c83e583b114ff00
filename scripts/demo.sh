#!/usr/bin/env bash
# make demo: a scratch instance in ./demo on the embedded default (bbolt
# catalog + local storage), sample data saved in two versions, and what the
# catalog knows about them. Nothing outside ./demo is touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo="$root/demo"
export PATH="$root/bin:$PATH"
lamina=lamina
samples="$root/../shared/data/samples"
rm -rf "$demo"
mkdir -p "$demo/work"
export HOME="$demo/home" XDG_CONFIG_HOME="$demo/config" XDG_DATA_HOME="$demo/data" XDG_CACHE_HOME="$demo/cache" XDG_RUNTIME_DIR="$demo/run"
unset LAMINA_INSTANCE
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
cd "$demo/work"

step "$lamina" init --storage "$demo/storage" --name demo
if [ -f "$samples/pbmc_small_obs.csv" ]; then
  cp "$samples/pbmc_small_obs.csv" obs.csv
else
  printf 'cell,cell_type\nAAAC,T cell\nAAAG,B cell\n' > obs.csv
fi
step "$lamina" save obs.csv --key scrna/obs.csv --description "cell metadata"
# Version 2: one more cell.
echo 'ZZZZ-1,added in version 2' >> obs.csv
step "$lamina" save obs.csv --key scrna/obs.csv --description "one more cell"
step "$lamina" save obs.csv --key scrna/obs.csv
[ -d "$samples/pbmc_small.zarr" ] && step "$lamina" save "$samples/pbmc_small.zarr" --key scrna/pbmc.zarr
step "$lamina" ls scrna/
step "$lamina" ls --versions scrna/obs.csv
step "$lamina" show scrna/obs.csv@v1
printf '\n\033[1m$ lamina get scrna/obs.csv@v1 -o - | diff - <(lamina get scrna/obs.csv -o -)\033[0m\n'
diff <("$lamina" get scrna/obs.csv@v1 -o -) <("$lamina" get scrna/obs.csv -o -) || true
step "$lamina" info
printf '\nThe demo instance lives in %s; `make clean` removes it.\n' "$demo"
