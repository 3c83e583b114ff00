#!/usr/bin/env bash
# In-place edits of a big file through the mount (docs/write-bench.md, "Edits
# in place"): an append (`echo x >> f`), a 4 KiB pwrite near the end and one
# in the middle (an O_RDWR open), and `truncate -s` of a new file, each timed as its write (the
# copy on write of the version) and its close (the commit), with the daemon's
# CPU. Needs root (or fusermount3) and bin/lamina. Prints Markdown.
#   scripts/edit-bench.sh [SIZE_MIB] [TRUNCATE_GIB] [ROUNDS]   (defaults 200 2 3)
# BASE=/path/to/an/older/lamina runs it too, alternating round by round, each
# binary with an instance and a mount of its own; figures are medians.
set -euo pipefail
cd "$(dirname "$0")/.."
LAMINA=${LAMINA:-$(pwd)/bin/lamina}
SIZE=${1:-200} TRUNC=${2:-2} ROUNDS=${3:-3}
T=$(mktemp -d /var/tmp/lamina-ebench.XXXXXX)
BINS=("$LAMINA")
[ -n "${BASE:-}" ] && BINS+=("$BASE")
cleanup() {
	for i in "${!BINS[@]}"; do
		XDG_RUNTIME_DIR=$T/$i/run XDG_CONFIG_HOME=$T/$i/config XDG_DATA_HOME=$T/$i/data \
			"${BINS[$i]}" umount "$T/$i/mnt" >/dev/null 2>&1 || true
	done
	rm -rf "$T"
}
trap cleanup EXIT
head -c $((SIZE << 20)) /dev/urandom > "$T/src.bin"
PIDS=()
for i in "${!BINS[@]}"; do
	d=$T/$i
	mkdir -p "$d/mnt"
	export XDG_CONFIG_HOME=$d/config XDG_DATA_HOME=$d/data XDG_CACHE_HOME=$d/cache XDG_RUNTIME_DIR=$d/run
	"${BINS[$i]}" init --storage "$d/storage" --name "ebench$i" >/dev/null
	"${BINS[$i]}" mount "$d/mnt" >/dev/null
	PIDS+=("$(pgrep -n -f -- "--instance ebench$i mount")")
	cp "$T/src.bin" "$d/mnt/big"
done
cat > "$T/op.py" <<'PY'
import os, subprocess, sys, time
mnt, pid, op, size_mib, trunc_gib, r = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
def cpu():
    s = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(s[11]) + int(s[12])) / os.sysconf("SC_CLK_TCK")
c0, t0 = cpu(), time.monotonic()
if op == "append":    # echo x >> big
    fd = os.open(f"{mnt}/big", os.O_WRONLY | os.O_APPEND); os.write(fd, b"x\n")
elif op == "pwrite":  # 4 KiB in the middle, as a database page
    fd = os.open(f"{mnt}/big", os.O_RDWR); os.pwrite(fd, os.urandom(4096), (size_mib << 19) + 4096 * int(r))
elif op == "pwend":   # 4 KiB near the end (in the last chunk)
    fd = os.open(f"{mnt}/big", os.O_RDWR); os.pwrite(fd, os.urandom(4096), os.fstat(fd).st_size - 8192)
t1 = time.monotonic()
if op == "truncate":  # truncate -s: open, ftruncate, close in one command
    subprocess.run(["truncate", "-s", f"{trunc_gib}G", f"{mnt}/sparse{r}"], check=True)
else:
    os.close(fd)
t2 = time.monotonic()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {cpu() - c0:.2f}")
PY
declare -A RES
for r in $(seq "$ROUNDS"); do
	for i in "${!BINS[@]}"; do
		for op in append pwend pwrite truncate; do
			RES[$i.$op]+="$(python3 "$T/op.py" "$T/$i/mnt" "${PIDS[$i]}" $op "$SIZE" "$TRUNC" "$r");"
			sleep 0.5
		done
	done
done
# The versions hold what was written: the last one of big, read back.
for i in "${!BINS[@]}"; do
	cmp -s <(head -c $((SIZE << 19)) "$T/src.bin") <(head -c $((SIZE << 19)) "$T/$i/mnt/big") || echo "binary $i: big differs in its first half!" >&2
done
med() { python3 -c "
import statistics, sys
rows = [list(map(float, x.split())) for x in sys.argv[1].split(';') if x]
print(' | '.join(f'{statistics.median(c):.3f}' for c in zip(*rows)))" "$1"; }
echo "Edits in place of a ${SIZE} MiB file of random bytes, medians of $ROUNDS rounds (load $(cut -d' ' -f1-3 /proc/loadavg))."
echo
echo "| binary | operation | write (copy on write), s | close (commit), s | daemon CPU, s |"
echo "|---|---|---:|---:|---:|"
for i in "${!BINS[@]}"; do
	for op in append pwend pwrite truncate; do
		case $op in append) what="echo x >> big" ;; pwend) what="4 KiB pwrite near the end" ;; pwrite) what="4 KiB pwrite in the middle" ;; truncate) what="truncate -s ${TRUNC}G new (one command)" ;; esac
		echo "| $(basename "$(dirname "${BINS[$i]}")")/$(basename "${BINS[$i]}") | $what | $(med "${RES[$i.$op]}") |"
	done
done
