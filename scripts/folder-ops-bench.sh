#!/usr/bin/env bash
# Per-file operations on one folder of N files through the mount, each
# against a plain local folder in the same run (docs/write-bench.md,
# "Folder operations"): cp -r in, touch, chmod, rename and rm of every
# file, then a folder made and removed per file name (a Python loop, no
# fork per file), then rm -rf of a fresh copy.
# Needs root (or fusermount3) and bin/lamina. Prints Markdown.
#   scripts/folder-ops-bench.sh [N]   (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
LAMINA=${LAMINA:-$(pwd)/bin/lamina}
N=${1:-2000}
T=$(mktemp -d /var/tmp/lamina-fobench.XXXXXX)
. scripts/freshfs.sh   # a fresh journaled ext4 when root: see there why
freshfs_mount "$T" 4 || true
export XDG_CONFIG_HOME=$T/config XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache XDG_RUNTIME_DIR=$T/run
MNT=$T/mnt
cleanup() {
	"$LAMINA" umount "$MNT" >/dev/null 2>&1 || true
	freshfs_umount "$T"
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$MNT" "$T/local" "$T/src"
"$LAMINA" init --storage "$T/storage" --name fobench >/dev/null
"$LAMINA" mount "$MNT" >/dev/null
for i in $(seq "$N"); do echo "$i" > "$T/src/f$i.txt"; done
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$@"; }
ops() { # ops DIR: touch, chmod, rename, remove each file; prints four times
	python3 - "$1" <<'PY'
import os, sys, time
d = sys.argv[1]
names = sorted(os.listdir(d))
out = []
for op in ("touch", "chmod", "rename", "remove", "mkdir", "rmdir"):
    t0 = time.monotonic()
    for n in names:
        p = os.path.join(d, n)
        if op == "touch":
            os.utime(p, (1.6e9, 1.6e9))
        elif op == "chmod":
            os.chmod(p, 0o444)
        elif op == "rename":
            os.rename(p, os.path.join(d, "r" + n))
        elif op == "remove":
            os.remove(os.path.join(d, "r" + n))
        elif op == "mkdir":
            os.mkdir(p)
        else:
            os.rmdir(p)
    out.append(f"{time.monotonic() - t0:.2f}")
print(" ".join(out))
PY
}
declare -A L M
for where in local mount; do
	if [ $where = local ]; then dir=$T/local; else dir=$MNT; fi
	t0=$(now); cp -r "$T/src" "$dir/a"; t1=$(now); cp=$(secs "$t0" "$t1")
	read -r touch chmod rename remove mkdir rmdir < <(ops "$dir/a")
	cp -r "$T/src" "$dir/b"; sleep 1
	t0=$(now); rm -rf "$dir/b"; t1=$(now); rmrf=$(secs "$t0" "$t1")
	if [ $where = local ]; then L=([cp]=$cp [touch]=$touch [chmod]=$chmod [rename]=$rename [remove]=$remove [mkdir]=$mkdir [rmdir]=$rmdir [rmrf]=$rmrf)
	else M=([cp]=$cp [touch]=$touch [chmod]=$chmod [rename]=$rename [remove]=$remove [mkdir]=$mkdir [rmdir]=$rmdir [rmrf]=$rmrf); fi
done
echo "| $N files of one folder | mount, s | local folder, s |"
echo "|---|---:|---:|"
for k in cp touch chmod rename remove mkdir rmdir rmrf; do
	label=$k
	case $k in cp) label="cp -r into it" ;; rmrf) label="rm -rf of a copy" ;; mkdir | rmdir) label="$k a folder per name" ;; *) label="$k each file" ;; esac
	echo "| $label | ${M[$k]} | ${L[$k]} |"
done
