#!/usr/bin/env bash
# Reads through the real mount daemon (issue 3; docs/mount-bench.md, "Reads"):
# a version of SIZE random bytes (default 1 GiB) in local storage, read
# sequentially cold (page cache dropped) and warm, and with fio randread
# 4 KiB (4 jobs, 10 s), each against the same bytes as a plain local file.
# Prints MB/s, IOPS and the CPU time the daemon used for each cold read,
# the figure that still means something on a shared machine. Root (mount,
# drop_caches). Usage: scripts/read-bench.sh [LAMINA_BINARY]
# LAMINA_CPUPROFILE=FILE also writes the daemon's CPU profile (written at
# unmount; the other lamina commands of the script do not see the variable).
# RUNS=N cold/warm rounds (default 2); FIO=0 skips fio.
set -euo pipefail
PROFILE=${LAMINA_CPUPROFILE:-}
unset LAMINA_CPUPROFILE
L=$(realpath "${1:-bin/lamina}")
SIZE=${SIZE:-1G}
B=$(mktemp -d /var/tmp/lamina-rbench.XXXXXX)
export XDG_CONFIG_HOME=$B/config XDG_DATA_HOME=$B/data XDG_CACHE_HOME=$B/cache XDG_RUNTIME_DIR=$B/run
mkdir -p "$B/run" "$B/mnt"
cleanup() {
  grep -q " $B/mnt " /proc/mounts && umount -l "$B/mnt"
  rm -rf "$B"
}
trap cleanup EXIT
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
rate() { dd if="$1" of=/dev/null bs=1M 2>&1 | tail -1 | awk '{print $(NF-1), $NF}'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
fio_iops() {
  fio --name=r --filename="$1" --readonly --rw=randread --bs=4k --size="$(stat -c %s "$B/plain.bin")" \
    --ioengine=psync --numjobs=4 --group_reporting --time_based --runtime=10 \
    --output-format=terse --terse-version=3 | cut -d';' -f8
}

"$L" init --storage "$B/storage" --name rbench >/dev/null
head -c "$SIZE" /dev/urandom > "$B/plain.bin"
"$L" save "$B/plain.bin" --key big.bin >/dev/null
LAMINA_CPUPROFILE=$PROFILE "$L" mount --foreground "$B/mnt" 2>"$B/mount.log" &
mp=$!
for _ in $(seq 100); do grep -q " $B/mnt " /proc/mounts && break; sleep 0.1; done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); clock ticks: $(getconf CLK_TCK)/s"
for run in $(seq "${RUNS:-2}"); do
  drop; echo "cold, plain file: $(rate "$B/plain.bin")"
  drop; t0=$(ticks $mp)
  echo "cold, mount:      $(rate "$B/mnt/big.bin")  (daemon CPU: $(( $(ticks $mp) - t0 )) ticks)"
  echo "warm, plain file: $(rate "$B/plain.bin")"
  echo "warm, mount:      $(rate "$B/mnt/big.bin")"
done
if [ "${FIO:-1}" != 0 ] && command -v fio >/dev/null; then
  echo "fio randread 4 KiB, plain file: $(fio_iops "$B/plain.bin") IOPS"
  echo "fio randread 4 KiB, mount:      $(fio_iops "$B/mnt/big.bin") IOPS"
fi
"$L" umount "$B/mnt" >/dev/null 2>&1 || umount "$B/mnt"
wait $mp
