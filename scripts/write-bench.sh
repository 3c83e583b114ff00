#!/usr/bin/env bash
# Write-side benchmarks of the mount (issue 4), each against its baseline in
# the same run; needs root (or fusermount3) and bin/lamina. Prints Markdown.
#   scripts/write-bench.sh [SIZE_MIB] [FILES] [RSS_MIB]   (defaults 1024 10000 4096)
# The small-file figures are medians of three alternating rounds of FILES each.
# Daemon CPU time is the steadier figure on a shared machine (docs/write-bench.md).
set -euo pipefail
cd "$(dirname "$0")/.."
LAMINA=${LAMINA:-$(pwd)/bin/lamina}
SIZE=${1:-1024} FILES=${2:-10000} RSS_SIZE=${3:-4096}
T=$(mktemp -d /var/tmp/lamina-wbench.XXXXXX)
# Everything (storage, cache, the local baselines) on a fresh journaled ext4
# when root: see scripts/freshfs.sh for why. FRESH_FS=0 keeps /var/tmp.
. scripts/freshfs.sh
freshfs_mount "$T" $(( (3 * SIZE + 3 * RSS_SIZE) / 1024 + 4 )) && FS="fresh ext4 image" || FS="$(df --output=fstype "$T" | tail -1) at /var/tmp"
export XDG_CONFIG_HOME=$T/config XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache XDG_RUNTIME_DIR=$T/run
MNT=$T/mnt
cleanup() {
	"$LAMINA" umount "$MNT" >/dev/null 2>&1 || true
	! grep -q " $T/lmnt " /proc/mounts || umount -l "$T/lmnt"
	freshfs_umount "$T"
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$MNT" "$T/local"
"$LAMINA" init --storage "$T/storage" --name wbench >/dev/null
"$LAMINA" mount "$MNT" >/dev/null
PID=$(pgrep -n -f -- "--instance wbench mount")
now() { date +%s.%N; }
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$PID/stat"; }   # the daemon's user+sys, s
rate() { python3 -c "import sys; print(f'{float(sys.argv[1])/(float(sys.argv[3])-float(sys.argv[2])):.1f}')" "$@"; }

# 1. Sequential write: random bytes (from the page cache) into a new file.
head -c $((SIZE << 20)) /dev/urandom > "$T/src.bin"
cat "$T/src.bin" > /dev/null
t0=$(now); dd if="$T/src.bin" of="$T/local/big" bs=1M conv=fsync status=none; t1=$(now)
local_mib=$(rate "$SIZE" "$t0" "$t1")
c0=$(cpu); t0=$(now); dd if="$T/src.bin" of="$MNT/big" bs=1M status=none; t1=$(now)   # close() includes the commit
mnt_mib=$(rate "$SIZE" "$t0" "$t1")
big_cpu=$(python3 -c "import sys; print(f'{(float(sys.argv[1]) - float(sys.argv[2])) * 1024 / $SIZE:.2f}')" "$(cpu)" "$c0")
rm -f "$T/local/big" "$T/src.bin"

# 2. Many small files: FILES x 4 KiB, distinct bytes each, by one writer and
# by 8 processes at once (FILES/8 each, a folder each). The scratch folder of
# the mount (a plain folder behind FUSE: no versions) is what FUSE alone costs.
cat > "$T/mk.py" <<'PY'
import os, sys, time
from multiprocessing import Pool
def make(args):
    d, n, seed = args
    os.makedirs(d, exist_ok=True)
    blobs = [os.urandom(4096) for _ in range(256)]
    for i in range(n):
        with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
            f.write(blobs[i % 256][:4080] + seed.to_bytes(8, "little") + i.to_bytes(8, "little"))
d, n, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
jobs = [(os.path.join(d, f"w{k}") if w > 1 else d, n // w, k) for k in range(w)]
t0 = time.monotonic()
if w == 1:
    make(jobs[0])
else:
    with Pool(w) as p:
        p.map(make, jobs)
print(n // w * w / (time.monotonic() - t0))
PY
# The local disk's rate moves several-fold with the load of a shared machine,
# so the runs alternate, three rounds, and each figure is the median.
median() { python3 -c "import sys, statistics; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
# go-fuse's own example/loopback of a plain folder, built from the module
# cache: what any go-fuse daemon can do (its WRITEs bypass it: passthrough).
LOOP=$T/loopback LMNT=$T/lmnt
mkdir -p "$LMNT" "$T/lorig"
go build -o "$LOOP" github.com/hanwen/go-fuse/v2/example/loopback 2>/dev/null || LOOP=
loopback() {
	"$LOOP" -q -directmount "$LMNT" "$T/lorig" & local pid=$!
	for _ in $(seq 100); do grep -q " $LMNT " /proc/mounts && break; sleep 0.05; done
	python3 "$T/mk.py" "$LMNT/many$1" "$FILES" 1
	umount "$LMNT"; wait $pid
}
L1=() M1=() S1=() G1=() L8=() M8=()
for r in 1 2 3; do
	L1+=("$(python3 "$T/mk.py" "$T/local/many$r" "$FILES" 1)")
	c0=$(cpu)
	M1+=("$(python3 "$T/mk.py" "$MNT/many$r" "$FILES" 1)")
	small_cpu=$(python3 -c "import sys; print(float(sys.argv[1]) + float(sys.argv[2]) - float(sys.argv[3]))" "${small_cpu:-0}" "$(cpu)" "$c0")
	S1+=("$(python3 "$T/mk.py" "$MNT/.snakemake/many$r" "$FILES" 1)")
	[ -n "$LOOP" ] && G1+=("$(loopback $r)")
	L8+=("$(python3 "$T/mk.py" "$T/local/many8-$r" "$FILES" 8)")
	M8+=("$(python3 "$T/mk.py" "$MNT/many8-$r" "$FILES" 8)")
done
local_fs=$(median "${L1[@]}") mnt_fs=$(median "${M1[@]}") scratch_fs=$(median "${S1[@]}")
local_fs8=$(median "${L8[@]}") mnt_fs8=$(median "${M8[@]}")
loop_fs=$([ -n "$LOOP" ] && median "${G1[@]}" || echo 0)

# 3. Daemon memory while writing a large file, in a new daemon (VmHWM is a
# peak over the process's life: the catalog of the files above is mapped).
"$LAMINA" umount "$MNT" >/dev/null
"$LAMINA" mount "$MNT" >/dev/null
PID=$(pgrep -n -f -- "--instance wbench mount")
head -c $((RSS_SIZE << 20)) /dev/urandom | dd of="$MNT/huge" bs=1M status=none
rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$PID/status)

echo "Files on: $FS."
echo
echo "| benchmark | lamina mount | baseline | ratio | goal |"
echo "|---|---:|---:|---:|---|"
echo "| ${SIZE} MiB sequential write incl. close+commit, MiB/s | $mnt_mib | $local_mib (local file + fsync) | $(python3 -c "print(f'{$mnt_mib/$local_mib:.2f}')") | ≥ 0.5 |"
echo "| ${FILES} × 4 KiB creates, files/s | $(printf %.0f "$mnt_fs") | $(printf %.0f "$local_fs") (local dir) | $(python3 -c "print(f'{$mnt_fs/$local_fs:.2f}')") | ≥ 0.25 |"
echo "| the same, 8 writers at once, files/s | $(printf %.0f "$mnt_fs8") | $(printf %.0f "$local_fs8") (local dir) | $(python3 -c "print(f'{$mnt_fs8/$local_fs8:.2f}')") | |"
echo "| the same into the mount's scratch folder (FUSE alone), files/s | $(printf %.0f "$scratch_fs") | $(printf %.0f "$local_fs") (local dir) | $(python3 -c "print(f'{$scratch_fs/$local_fs:.2f}')") | |"
[ -n "$LOOP" ] && echo "| the same into go-fuse's example/loopback of a plain folder, files/s | $(printf %.0f "$loop_fs") | $(printf %.0f "$local_fs") (local dir) | $(python3 -c "print(f'{$loop_fs/$local_fs:.2f}')") | |"
echo "| daemon CPU (user+sys): per GiB written sequentially, s; per 4 KiB create (1 writer), ms | $big_cpu; $(python3 -c "print(f'{$small_cpu * 1000 / (3 * $FILES):.2f}')") | | | |"
echo "| daemon peak RSS writing ${RSS_SIZE} MiB, MB | $rss | | | < 200 |"
