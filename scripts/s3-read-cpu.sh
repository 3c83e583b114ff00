#!/usr/bin/env bash
# The S3 read path of binaries side by side: for each BIN in turn, ROUNDS
# times, a cold read of SIZE through a fresh mount (cache cleared, page
# cache dropped), then the same read after a remount (the cache folder
# full, the page cache kept), with the daemon's CPU from /proc (ticks of
# 10 ms). One versitygw on 127.0.0.1:PORT, one instance in a scratch HOME.
# DROP=0 keeps the page cache: on these VMs a page first touched after
# drop_caches costs several times a recycled one (docs/s3-bench.md, eighth
# pass), which a workstation whose page cache is full never pays.
# Needs root (drop_caches, mounts) and versitygw (.ci/run installs it).
#   scripts/s3-read-cpu.sh OLD_BIN NEW_BIN
set -euo pipefail
SIZE=${SIZE:-1G} ROUNDS=${ROUNDS:-2} PORT=${PORT:-7391} DROP=${DROP:-1}
VGW=${VERSITYGW:-$(command -v versitygw || echo "$HOME/.cache/lamina-ci/bin/versitygw")}
[ $# -ge 1 ] || { echo "usage: $0 BIN..." >&2; exit 2; }
W=$(mktemp -d /var/tmp/s3cpu.XXXX)
M=$W/mnt
mkdir -p "$W/s3/bucket" "$W/h/run" "$M"
chmod 700 "$W/h/run"
"$VGW" --access AK --secret SKSKSKSK --port "127.0.0.1:$PORT" posix "$W/s3" >"$W/vgw.log" 2>&1 &
vgw=$!
cleanup() {
	mountpoint -q "$M" && "$1" umount --force "$M" >/dev/null 2>&1 || true
	kill "$vgw" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap 'cleanup "$1"' EXIT
export HOME=$W/h XDG_RUNTIME_DIR=$W/h/run XDG_CONFIG_HOME=$W/h/cfg XDG_DATA_HOME=$W/h/data \
	XDG_CACHE_HOME=$W/h/cache AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SKSKSKSK
sleep 1
"$1" init --storage s3://bucket/lam --name cpu --endpoint "http://127.0.0.1:$PORT" --path-style >/dev/null
head -c "$SIZE" /dev/urandom >"$W/big.bin"
"$1" save "$W/big.bin" --key big.bin >/dev/null 2>&1
rm "$W/big.bin"

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
read_once() { # BIN LABEL
	"$1" mount --foreground "$M" 2>>"$W/mount.log" &
	local d=$!
	for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.1; done
	local t0 v0 out
	t0=$(ticks $d) v0=$(ticks $vgw)
	out=$(dd if="$M/big.bin" of=/dev/null bs=1M 2>&1 | tail -1 | sed 's/.*copied, //')
	printf '%-40s %-8s %-28s daemon %4d ticks  versitygw %4d ticks  load %s\n' "$1" "$2" "$out" \
		$(($(ticks $d) - t0)) $(($(ticks $vgw) - v0)) "$(cut -d' ' -f1 /proc/loadavg)"
	"$1" umount "$M" >/dev/null
	wait $d || true
}
for _ in $(seq "$ROUNDS"); do
	for b in "$@"; do
		"$b" cache clear >/dev/null 2>&1
		sync
		[ "$DROP" = 0 ] || echo 3 >/proc/sys/vm/drop_caches
		read_once "$b" cold
		read_once "$b" remount
	done
done
