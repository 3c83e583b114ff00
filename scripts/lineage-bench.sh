#!/usr/bin/env bash
# Lineage benchmarks (issue 5); docs/lineage.md has results.
#  1. open, read 4 KiB, close of N cached files through the mount: a tracked
#     process (lamina run) vs an untracked one, and the untracked loop on a
#     mount without lineage (--no-lineage: the read side's figure).
#  2. the three-rule Snakemake workflow under lamina run vs plain, on the mount.
#  3. lamina lineage of a version 50 runs deep in 100,000 versions:
#     go test -bench BenchmarkWalkDeep ./lineage/
# Needs root (FUSE) and python3; snakemake for 2. N=10000 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
L=$PWD/bin/lamina
[ -x "$L" ] || go build -o bin/lamina ./cmd/lamina
N=${N:-10000}
ROUNDS=${ROUNDS:-3}
PARTS=",${PARTS:-reads,snakemake,walk},"
part() { case "$PARTS" in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
T=$(mktemp -d /tmp/lamina-lineage-bench.XXXXXX)
export GOPATH=$(go env GOPATH) GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE)
export HOME=$T/home XDG_CONFIG_HOME=$T/cfg XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache XDG_RUNTIME_DIR=$T/run LAMINA_INSTANCE=
cleanup() { "$L" umount "$T/lab" >/dev/null 2>&1 || true; rm -rf "$T"; }
trap cleanup EXIT
"$L" init --storage "$T/storage" --name bench >/dev/null
mkdir -p "$T/lab"

cat > "$T/reader.py" <<'PY'
import os, sys, time
root, n = sys.argv[1], int(sys.argv[2])
paths = [os.path.join(root, "d%03d" % (i % 100), "f%05d" % i) for i in range(n)]
t = time.perf_counter()
for p in paths:
    fd = os.open(p, os.O_RDONLY)
    os.read(fd, 4096)
    os.close(fd)
print("%.4f" % (time.perf_counter() - t))
PY
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

mountit() { "$L" mount "$@" "$T/lab" >/dev/null; }
if part reads; then
echo "### open+read 4 KiB+close of $N cached files (median of $ROUNDS)"
mountit
python3 - "$T/lab/files" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
data = os.urandom(4096)
for d in range(100):
    os.makedirs(os.path.join(root, "d%03d" % d), exist_ok=True)
for i in range(n):
    with open(os.path.join(root, "d%03d" % (i % 100), "f%05d" % i), "wb") as f:
        f.write(data)
PY
"$L" umount "$T/lab" >/dev/null
# Rounds interleave the three cases so that the machine's drift hits all.
: > "$T/u"; : > "$T/t"; : > "$T/n"
for i in $(seq "$ROUNDS"); do
  mountit --no-lineage
  python3 "$T/reader.py" "$T/lab/files" "$N" >/dev/null   # warm the kernel caches
  python3 "$T/reader.py" "$T/lab/files" "$N" >> "$T/n"
  "$L" umount "$T/lab" >/dev/null
  mountit
  python3 "$T/reader.py" "$T/lab/files" "$N" >/dev/null
  python3 "$T/reader.py" "$T/lab/files" "$N" >> "$T/u"
  "$L" run --transform bench -- python3 "$T/reader.py" "$T/lab/files" "$N" 2>/dev/null >> "$T/t"
  "$L" umount "$T/lab" >/dev/null
done
untracked=$(median < "$T/u"); tracked=$(median < "$T/t"); nolineage=$(median < "$T/n")
awk -v u="$untracked" -v t="$tracked" -v n="$nolineage" -v N="$N" 'BEGIN {
  printf "untracked %.3f s (%.0f files/s), tracked %.3f s: tracked/untracked %.3f (target <= 1.2)\n", u, N/u, t, t/u
  printf "no lineage %.3f s: untracked/no-lineage %.3f (target <= 1.05)\n", n, u/n }'
fi

if part snakemake && command -v snakemake >/dev/null; then
  echo "### three-rule Snakemake workflow on the mount (median of $ROUNDS)"
  mountit
  wf=$T/lab/wf
  mkdir -p "$wf/raw"
  printf 'a,1\nb,2\n' > "$wf/raw/a.csv"; printf 'c,3\n' > "$wf/raw/b.csv"
  cat > "$wf/Snakefile" <<'SMK'
rule report:
    input: "results/merged.csv", "results/stats.tsv"
    output: "results/report.txt"
    shell: "cat {input} > {output}"

rule merge:
    input: "raw/a.csv", "raw/b.csv"
    output: "results/merged.csv"
    shell: "cat {input} > {output}"

rule stats:
    input: "raw/a.csv"
    output: "results/stats.tsv"
    shell: "wc -l {input} > {output}"
SMK
  one() {
    rm -rf "$wf/results" "$wf/.snakemake"
    local s e; s=$(date +%s%N)
    (cd "$wf" && "$@" snakemake -j2 -q >/dev/null 2>&1)
    e=$(date +%s%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
  }
  plain=$(for i in $(seq "$ROUNDS"); do one; done | median)
  tracked=$(for i in $(seq "$ROUNDS"); do one "$L" run --; done | median)
  "$L" umount "$T/lab" >/dev/null
  awk -v p="$plain" -v t="$tracked" 'BEGIN { printf "plain %.2f s, lamina run %.2f s: ratio %.2f (target <= 1.3)\n", p, t, t/p }'
fi

if part walk; then
  echo "### lamina lineage, 50 runs deep in 100,000 versions: go test -bench BenchmarkWalkDeep ./lineage/"
  go test -run '^$' -bench BenchmarkWalkDeep -benchtime 20x ./lineage/
fi
